"""Durable acknowledgements: what ``sqlite.sync_ack`` costs (issue 18).

    python bench/durable.py [--runs N] [--quick] [--json FILE]

Three brokers, a fresh process for every run, rotating which goes first:

* ``durable``: nanomq-twisted on the shipped ``etc/nanomq.conf`` copy
  (``brokers.shipped_config``) with ``sqlite.sync_ack = true``: every
  PUBACK waits for the commit holding its message;
* ``non-durable``: the same copy with ``sqlite.sync_ack = false``: PUBACK
  at once, the message written in the next batch;
* ``mosquitto``: as in run.py (no persistence: it keeps sessions in
  memory only and writes nothing per message).

Scenarios (scenarios.py): ``durable`` -- QoS 1 4 -> 4 with persistent
subscribers (CleanSession=0), so every message is owed to a durable
session -- and ``durable_latency`` -- 1 -> 1 at 1,000 msg/s, QoS 1, to a
persistent subscriber, with the publisher's PUBLISH -> PUBACK time.

It prints medians [min-max] per broker, the generator's and the broker's
CPU, and the two ratios of issue 18's target: durable / non-durable and
durable / mosquitto (each >= 0.5), and the ack latency the commit adds
(durable minus non-durable, p50 and p99).
"""

import argparse
import json
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import brokers
from run import CLEAN_EXIT, _on_sigterm, cpu, fmt, med, meta, spread
from scenarios import SCENARIOS, Opts

#: name -> how to start it
BROKERS = {
    "durable": lambda: brokers.start_nanomq(sync_ack=True),
    "non-durable": lambda: brokers.start_nanomq(sync_ack=False),
    "mosquitto": brokers.start_mosquitto,
}
TARGET = 0.5


def run_all(scenarios, runs, opts, errors):
    results = {sc: {n: [] for n in BROKERS} for sc in scenarios}
    names = list(BROKERS)
    for sc in scenarios:
        for i in range(runs):
            order = names[i % len(names):] + names[:i % len(names)]
            for name in order:
                b, res = None, {}
                t0 = time.monotonic()
                try:
                    b = BROKERS[name]()
                    res = SCENARIOS[sc](b, opts)
                except Exception:  # noqa: BLE001 -- record, go on with the next run
                    tb = traceback.format_exc()
                    errors.append(f"{sc} run {i + 1} on {name}:\n{tb}\n{b.tail() if b else ''}")
                    res = {sc + ".error": tb.strip().splitlines()[-1]}
                finally:
                    if b is not None:
                        code = brokers.cleanup(b)
                        res[sc + ".broker_exit"] = code
                        if code not in CLEAN_EXIT:
                            errors.append(f"{name} exited with {code} after {sc} run {i + 1}")
                results[sc][name].append(res)
                keys = [k for k in ("msgs_s", "lost", "p50_us", "ack_p50_us", "ack_p99_us")
                        if sc + "." + k in res]
                shown = "  ".join(f"{k}={fmt(res[sc + '.' + k])}" for k in keys)
                print(f"{sc} run {i + 1} {name:12s} {shown}  ({time.monotonic() - t0:.1f}s)",
                      flush=True)
    return results


def report(results):
    lines = []
    if "durable" in results:
        r = results["durable"]
        lines += ["| QoS 1 4→4, persistent subscribers | msg/s | lost (acked, never received) "
                  "| sent/acked | CPU gen/broker |", "|---|---|---|---|---|"]
        for name in BROKERS:
            runs = r[name]
            sent = sum(x.get("durable.sent", 0) for x in runs)
            acked = sum(x.get("durable.acked", 0) for x in runs)
            lost = sum(x.get("durable.lost", 0) for x in runs)
            lines.append(f"| {name} | {spread(runs, 'durable.msgs_s')} | {fmt(lost)} "
                         f"| {fmt(sent)}/{fmt(acked)} | {cpu(runs, 'durable')} |")
        d, n, m = (med(r[k], "durable.msgs_s") for k in BROKERS)
        if d and n and m:
            lines += ["", f"durable / non-durable = {d / n:.2f}x (target >= {TARGET}x: "
                      f"{'MET' if d / n >= TARGET else 'NOT MET'}); "
                      f"durable / mosquitto = {d / m:.2f}x (target >= {TARGET}x: "
                      f"{'MET' if d / m >= TARGET else 'NOT MET'})"]
    if "durable_latency" in results:
        r = results["durable_latency"]
        lines += ["", "| 1→1 at 1,000 msg/s QoS 1, persistent subscriber | ack p50 µs | ack p99 µs "
                  "| one-way p50 µs | one-way p99 µs | lost |", "|---|---|---|---|---|---|"]
        for name in BROKERS:
            runs = r[name]
            lines.append(
                f"| {name} | {spread(runs, 'durable_latency.ack_p50_us')} "
                f"| {spread(runs, 'durable_latency.ack_p99_us')} "
                f"| {spread(runs, 'durable_latency.p50_us')} "
                f"| {spread(runs, 'durable_latency.p99_us')} "
                f"| {fmt(sum(x.get('durable_latency.lost', 0) for x in runs))} |")
        for q in ("p50", "p99"):
            d = med(r["durable"], f"durable_latency.ack_{q}_us")
            n = med(r["non-durable"], f"durable_latency.ack_{q}_us")
            if d is not None and n is not None:
                lines.append(f"\nack latency added by the commit, {q}: {d - n:,.0f} µs")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--scenarios", nargs="+", choices=("durable", "durable_latency"),
                    default=["durable", "durable_latency"])
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    brokers.raise_nofile()
    args.bare, args.window, args.ack_window = False, 500, 100
    info = meta(args)
    print(f"# {info['date']}  load {info['loadavg_start']}  git {info['git']}", flush=True)
    errors = []
    try:
        results = run_all(args.scenarios, args.runs, Opts(quick=args.quick), errors)
    except KeyboardInterrupt:
        errors.append("interrupted")
        results = None
    finally:
        brokers.stop_all()
    with open("/proc/loadavg") as f:
        info["loadavg_end"] = f.read().strip()
    text = report(results) if results else ""
    print()
    print(text)
    print(f"\nload at end {info['loadavg_end']}")
    for e in errors:
        print("\nERROR:", e)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": info, "runs": results, "report": text, "errors": errors}, f,
                      indent=1, default=str)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
