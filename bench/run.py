"""One command for the whole benchmark.

    python bench/run.py [--quick] [--scenarios qos0 qos1 ...] [--json FILE] [--profile]

Starts nanomq-twisted and mosquitto on free loopback ports, runs every
selected scenario against each of them back to back (so both columns come
from the same run on the same machine), stops both brokers (also on
Ctrl-C), and prints one table: nanomq-twisted, mosquitto, ratio, target.
With only two cores shared by broker and load generator, absolute numbers
mean little; the ratio to mosquitto measured the same way is the result.
``--profile`` additionally samples the broker with py-spy during a separate
QoS 0 run (see profile.py); its throughput is not part of the table.
"""

import argparse
import json
import math
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from brokers import BrokerSet, raise_nofile
from scenarios import METRICS, SCENARIOS

NAMES = ("nanomq-twisted", "mosquitto")


def fmt(v):
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def judge(metric, nano, mosq):
    """(ratio text, target text, verdict) for one metric."""
    unit, _higher, kind, target = METRICS.get(metric, ("", True, None, None))
    ratio = ""
    if isinstance(nano, (int, float)) and isinstance(mosq, (int, float)) and mosq:
        ratio = f"{nano / mosq:.2f}x"
    if kind is None or not isinstance(nano, (int, float)):
        return ratio, "", ""
    if kind == "ratio":
        ok = isinstance(mosq, (int, float)) and mosq and nano / mosq >= target
        return ratio, f">= {target}x", "MET" if ok else "NOT MET"
    if kind == "max":
        return ratio, f"<= {target} {unit}", "MET" if nano <= target else "NOT MET"
    return ratio, f">= {target:,} {unit}", "MET" if nano >= target else "NOT MET"


def table(results):
    metrics = []
    for name in NAMES:
        for m in results.get(name, {}):
            if m not in metrics:
                metrics.append(m)
    rows = [("metric", "unit", NAMES[0], NAMES[1], "ratio", "target", "verdict")]
    for m in metrics:
        nano = results.get(NAMES[0], {}).get(m, "-")
        mosq = results.get(NAMES[1], {}).get(m, "-")
        ratio, target, verdict = judge(m, nano, mosq)
        unit = METRICS.get(m, ("",))[0]
        rows.append((m, unit, fmt(nano), fmt(mosq), ratio, target, verdict))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter windows, smaller N (smoke test)")
    ap.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    ap.add_argument("--json", help="also write raw results to this file")
    ap.add_argument("--profile", action="store_true", help="py-spy profile of nanomq during QoS 0")
    args = ap.parse_args(argv)
    raise_nofile()
    results = {n: {} for n in NAMES}
    errors = []
    t_start = time.time()
    with BrokerSet(NAMES) as bs:
        for sc in args.scenarios:
            for name in NAMES:
                broker = bs.brokers[name]
                if not broker.alive():
                    errors.append(f"{name} was dead before {sc}; restarting. Log tail:\n{broker.tail()}")
                    broker.start()
                broker.wait_idle()
                t0 = time.time()
                try:
                    res = SCENARIOS[sc](broker, args.quick)
                    results[name].update(res)
                    print(f"[{time.time() - t_start:6.1f}s] {sc:9s} {name:15s} "
                          + ", ".join(f"{k}={fmt(v)}" for k, v in res.items())
                          + f"  ({time.time() - t0:.1f}s)", flush=True)
                except Exception:
                    tb = traceback.format_exc()
                    errors.append(f"{sc} on {name}:\n{tb}")
                    results[name][sc + ".error"] = "ERROR"
                    print(f"[{time.time() - t_start:6.1f}s] {sc} {name} FAILED:\n{tb}", flush=True)
                    if not broker.alive():
                        errors.append(f"{name} died during {sc}; log tail:\n{broker.tail()}")
    print()
    print(table(results))
    print(f"\ntotal {time.time() - t_start:.0f}s")
    for e in errors:
        print("\nERROR:", e)
    if args.profile:
        from profile_broker import profile_qos0
        print()
        print(profile_qos0(args.quick))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "errors": errors, "quick": args.quick,
                       "scenarios": args.scenarios}, f, indent=1, default=str)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
