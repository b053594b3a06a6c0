"""One command for the whole benchmark.

    python bench/run.py [--quick] [--runs N] [--scenarios qos0 qos1 ...]
                        [--json FILE] [--profile] [--bare]

For every scenario and every run it starts a FRESH broker process --
nanomq-twisted on a copy of the shipped etc/nanomq.conf (ports and file
locations moved; ``--bare``: a minimal config) and mosquitto, alternating
which goes first -- runs the scenario, and stops the broker.  It prints
each run as it finishes, then one table: medians of the runs with min-max,
the ratio of the medians, the target, a verdict, exact message counts, and
the generator's and the broker's CPU beside every figure.  A rate is "not
evidence" if in any run of either broker the generator used more than a
third of the broker's CPU.  ``--profile`` also samples nanomq-twisted with
py-spy during a separate QoS 0 run (see profile_broker.py).
"""

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import brokers
from scenarios import HEADLINE, METRICS, SCENARIOS, Opts

NAMES = ("nanomq-twisted", "mosquitto")
CLEAN_EXIT = (0, -15)   # twistd re-raises SIGTERM after a clean shutdown


def fmt(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _vals(runs, metric):
    return [r[metric] for r in runs if isinstance(r.get(metric), (int, float)) and not isinstance(r.get(metric), bool)]


def med(runs, metric):
    v = _vals(runs, metric)
    return statistics.median(v) if v else None


def spread(runs, metric):
    v = _vals(runs, metric)
    m = med(runs, metric)
    if m is None:
        return "-"
    if len(v) == 1:
        return fmt(m)
    return f"{fmt(m)} [{fmt(min(v))}-{fmt(max(v))}]"


def judge(metric, nano_runs, mosq_runs):
    """(ratio text, target text, verdict) for one metric."""
    unit, _higher, kind, target, cpu_bound = METRICS.get(metric, ("", True, None, None, False))
    nano, mosq = med(nano_runs, metric), med(mosq_runs, metric)
    ratio = f"{nano / mosq:.2f}x" if nano is not None and mosq else ""
    if kind is None or nano is None:
        return ratio, "", ""
    if kind == "ratio":
        ok = bool(mosq) and nano / mosq >= target
        ttext = f">= {target}x"
    elif kind == "ratio_max":
        ok = bool(mosq) and nano / mosq <= target
        ttext = f"<= {target}x"
    elif kind == "max":
        ok = nano <= target
        ttext = f"<= {fmt(target)} {unit}"
    else:  # zero: in every run
        ok = all(v == 0 for v in _vals(nano_runs, metric))
        ttext = "0 in every run"
    verdict = "MET" if ok else "NOT MET"
    if cpu_bound:
        sc = metric.split(".")[0]
        ev = [r.get(sc + ".evidence") for r in nano_runs + mosq_runs]
        if not all(ev):
            verdict += " (NOT EVIDENCE: generator > 1/3 of broker CPU in a run)"
    return ratio, ttext, verdict


def counts(runs, sc):
    keys = ("sent", "expected", "received", "lost", "dup")
    if not any(f"{sc}.sent" in r for r in runs):
        return ""
    tot = [sum(r.get(f"{sc}.{k}", 0) for r in runs) for k in keys]
    return "/".join(fmt(t) for t in tot)


def cpu(runs, sc):
    g, b = med(runs, sc + ".gen_cpu_pct"), med(runs, sc + ".broker_cpu_pct")
    if g is None:
        return ""
    worst = max(_vals(runs, sc + ".gen_broker_ratio") or [float("nan")])
    return f"{g:.0f}% / {b:.0f}% (max {worst:.2f})"


def summary_rows(runs, scenarios):
    rows = []
    for sc in scenarios:
        nano_runs, mosq_runs = runs[sc][NAMES[0]], runs[sc][NAMES[1]]
        for k, metric in enumerate(HEADLINE[sc]):
            ratio, target, verdict = judge(metric, nano_runs, mosq_runs)
            unit = METRICS[metric][0]
            first = k == 0
            rows.append({
                "metric": metric, "unit": unit,
                NAMES[0]: spread(nano_runs, metric), NAMES[1]: spread(mosq_runs, metric),
                "ratio": ratio, "target": target, "verdict": verdict,
                "counts_" + NAMES[0]: counts(nano_runs, sc) if first else "",
                "counts_" + NAMES[1]: counts(mosq_runs, sc) if first else "",
                "cpu_" + NAMES[0]: cpu(nano_runs, sc) if first else "",
                "cpu_" + NAMES[1]: cpu(mosq_runs, sc) if first else "",
            })
    return rows


def table(rows):
    head = ["metric", "unit", NAMES[0], NAMES[1], "ratio", "target", "verdict",
            "sent/expected/received/lost/dup nanomq", "same, mosquitto",
            "gen/broker CPU nanomq", "gen/broker CPU mosquitto"]
    keys = ["metric", "unit", NAMES[0], NAMES[1], "ratio", "target", "verdict",
            "counts_" + NAMES[0], "counts_" + NAMES[1], "cpu_" + NAMES[0], "cpu_" + NAMES[1]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(str(r[k]) for k in keys) + " |")
    return "\n".join(lines)


def run_line(sc, i, name, res, secs):
    h = HEADLINE[sc]
    parts = [f"{m.split('.', 1)[1]}={fmt(res.get(m))}" for m in h if m in res]
    if f"{sc}.sent" in res:
        parts.append("sent/exp/recv/lost/dup=" + "/".join(
            fmt(res.get(f"{sc}.{k}", 0)) for k in ("sent", "expected", "received", "lost", "dup")))
    if f"{sc}.gen_cpu_pct" in res:
        cpu_bound = METRICS[h[0]][4]
        ev = "" if res.get(f"{sc}.evidence") or not cpu_bound else " NOT-EVIDENCE"
        parts.append(f"gen {res[sc + '.gen_cpu_pct']:.0f}% broker {res[sc + '.broker_cpu_pct']:.0f}%"
                     f" ratio {res[sc + '.gen_broker_ratio']:.2f}{ev}")
    return f"{sc:8s} run {i + 1} {name:15s} " + ", ".join(parts) + f"  ({secs:.1f}s)"


def meta(args):
    def sh(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10, cwd=brokers.REPO,
                                  check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    with open("/proc/loadavg") as f:
        load = f.read().strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "argv": sys.argv[1:], "git": sh("git", "rev-parse", "HEAD"),
        "python": platform.python_version(), "mosquitto": brokers.mosquitto_version(),
        "cpus": os.cpu_count(), "cpu_model": model, "kernel": platform.release(), "loadavg_start": load,
        "nanomq_config": "bare" if args.bare else "shipped etc/nanomq.conf (ports/paths moved)",
        "window": args.window, "ack_window": args.ack_window, "runs": args.runs, "quick": args.quick,
    }


def _on_sigterm(_signum, _frame):
    raise KeyboardInterrupt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter windows, 2,000 idle connections")
    ap.add_argument("--runs", type=int, default=3, help="runs per scenario and broker (median reported)")
    ap.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    ap.add_argument("--json", help="write every run, the summary and metadata to this file")
    ap.add_argument("--profile", action="store_true", help="py-spy profile of nanomq-twisted under QoS 0")
    ap.add_argument("--profile-out", default=None, help="directory for the py-spy raw file (default: temp)")
    ap.add_argument("--bare", action="store_true", help="nanomq-twisted on a minimal config, not the shipped one")
    ap.add_argument("--window", type=int, default=500, help="end-to-end in-flight messages per publisher")
    ap.add_argument("--ack-window", type=int, default=100, help="QoS 1 unacknowledged PUBLISHes per publisher")
    ap.add_argument("--coalesce-ms", type=float, default=None, help="override the per-scenario read coalescing")
    ap.add_argument("--mosquitto-nodelay", action="store_true", help="mosquitto with set_tcp_nodelay true")
    ap.add_argument("--brokers", nargs="+", choices=NAMES, default=list(NAMES))
    args = ap.parse_args(argv)
    # Ctrl-C and SIGTERM both unwind through the finally below (stop_all),
    # also when started with SIGINT ignored (e.g. as a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_sigterm)
    brokers.raise_nofile()
    opts = Opts(quick=args.quick, window=args.window, ack_window=args.ack_window,
                coalesce=None if args.coalesce_ms is None else args.coalesce_ms / 1e3)
    info = meta(args)
    print(f"# {info['date']}  {info['mosquitto']}  python {info['python']}  {info['cpus']} CPUs  "
          f"load {info['loadavg_start']}  nanomq config: {info['nanomq_config']}", flush=True)
    runs = {sc: {n: [] for n in NAMES} for sc in args.scenarios}
    errors = []
    t_start = time.monotonic()
    try:
        for sc in args.scenarios:
            for i in range(args.runs):
                order = args.brokers if i % 2 == 0 else list(reversed(args.brokers))
                for name in order:
                    t0 = time.monotonic()
                    b = None
                    res = {}
                    try:
                        b = brokers.start(name, bare=args.bare, mosquitto_nodelay=args.mosquitto_nodelay)
                        res = SCENARIOS[sc](b, opts)
                    except Exception:  # noqa: BLE001 -- record any failure, go on with the next run
                        tb = traceback.format_exc()
                        tail = b.tail() if b is not None else ""
                        errors.append(f"{sc} run {i + 1} on {name}:\n{tb}\nbroker log tail:\n{tail}")
                        print(f"{sc} run {i + 1} {name} FAILED:\n{tb}", flush=True)
                        res = {sc + ".error": tb.strip().splitlines()[-1]}
                    finally:
                        if b is not None:
                            code = brokers.cleanup(b)
                            res[sc + ".broker_exit"] = code
                            if code not in CLEAN_EXIT:
                                errors.append(f"{name} exited with {code} after {sc} run {i + 1}")
                    runs[sc][name].append(res)
                    print(run_line(sc, i, name, res, time.monotonic() - t0), flush=True)
    except KeyboardInterrupt:
        errors.append("interrupted")
        print("\ninterrupted; stopping brokers", flush=True)
    finally:
        brokers.stop_all()
    done = [sc for sc in args.scenarios if all(runs[sc][n] for n in NAMES)]
    rows = summary_rows(runs, done)
    print()
    print(table(rows))
    with open("/proc/loadavg") as f:
        info["loadavg_end"] = f.read().strip()
    info["wall_s"] = time.monotonic() - t_start
    print(f"\n{args.runs} run(s) per broker and scenario, fresh broker per run; total {info['wall_s']:.0f}s; "
          f"load at end {info['loadavg_end']}")
    print("CPU columns: median generator % / median broker % of one core in the window "
          "(max generator/broker ratio over the runs; > 0.33 = not evidence)")
    for e in errors:
        print("\nERROR:", e)
    prof = None
    if args.profile and "interrupted" not in errors:
        from profile_broker import profile_qos0
        print()
        prof = profile_qos0(opts, bare=args.bare, out_dir=args.profile_out)
        print(prof)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": info, "summary": rows, "runs": runs, "errors": errors, "profile": prof},
                      f, indent=1, default=str)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
