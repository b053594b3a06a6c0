#!/usr/bin/env python3
"""
The long fuzz run: the grammar-aware fuzzer of tests/fuzzing against the
shipped configuration (etc/nanomq.conf, ports and paths moved as in
tests/shipped/support.py), the broker in its own process as users run it
(``python -m nanomq_twisted -c <copy>``), over loopback.

    python tools/fuzz_broker.py                      # 100,000 MQTT + 10,000 WS cases
    python tools/fuzz_broker.py --mqtt 2000 --ws 200 --seed 7

Every case is checked against the answer the specification names
(tests/fuzzing/runner.py); after each one a fresh client must be served
(a failure there stops the run: the broker crashed or hung).  Case
failures are recorded, not raised, so one run reports all of them.  At the
end the broker's log is searched for tracebacks and error lines, and its
RSS is read.  The summary (JSON) goes to bench/results/fuzz-<date>.json;
docs/reliability.md quotes it.  Bounded: it stops after the given counts
and stops the broker it started.
"""

import argparse
import datetime
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)

import psutil  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from tests.fuzzing import grammar, websocket  # noqa: E402
from tests.fuzzing.runner import CaseFailure, check_alive, run_case  # noqa: E402
from tests.shipped.process import shipped_on_ports, spawn  # noqa: E402

LOG_ERROR = re.compile(r"Traceback|Unhandled|#error\]|#critical\]")


def start_broker(workdir, extra=""):
    """The shipped file on fixed free loopback ports, with ``extra`` HOCON
    appended; returns (process, ports, log path)."""
    os.makedirs(workdir, exist_ok=True)
    path, ports = shipped_on_ports(workdir, extra=extra)
    log = os.path.join(workdir, "broker.log")
    try:
        return spawn(path, ports, log), ports, log
    except RuntimeError as error:
        raise SystemExit(str(error)) from None


class Tally:
    def __init__(self):
        self.outcomes = {}
        self.failures = {}
        self.cases = 0
        self.dead = None

    def record(self, label, outcome):
        key = f"{label} -> {outcome}"
        self.outcomes[key] = self.outcomes.get(key, 0) + 1

    def fail(self, error):
        key = f"{error.case.label}: {error.why}"
        entry = self.failures.setdefault(key, {"count": 0, "first": None})
        entry["count"] += 1
        if entry["first"] is None:
            entry["first"] = {"case": repr(error.case)[:2000],
                              "received": repr(error.received)[:2000]}


def fuzz(strategy, count, run_one, alive, tally, run_seed):
    numbers = itertools.count()

    @seed(run_seed)
    @settings(max_examples=count, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(case):
        if tally.dead is not None:
            return
        n = next(numbers)
        tally.cases += 1
        try:
            tally.record(case.label, run_one(case, n))
        except CaseFailure as error:
            tally.fail(error)
        except OSError as error:
            tally.fail(CaseFailure(case, f"socket error {type(error).__name__}"))
        try:
            alive(n)
        except AssertionError as error:
            tally.dead = {"after": repr(case)[:2000], "error": str(error)}

    one()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mqtt", type=int, default=100_000, help="MQTT cases")
    parser.add_argument("--ws", type=int, default=10_000, help="WebSocket cases")
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--out", default=None, help="JSON summary path")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="nanomq-fuzz-")
    process, ports, log = start_broker(workdir)
    broker = psutil.Process(process.pid)
    rss_start = broker.memory_info().rss
    started = time.monotonic()
    results = {}
    try:
        for name, strategy, count, run_one in (
            ("mqtt", grammar.cases, args.mqtt,
             lambda case, n: run_case(ports["tcp"], case, f"fuzz-{n}")),
            ("websocket", websocket.ws_cases(), args.ws,
             lambda case, n: websocket.run_ws_case(ports["ws"], case, f"ws-fuzz-{n}")),
        ):
            tally = Tally()
            t0 = time.monotonic()
            fuzz(strategy, count, run_one,
                 lambda n, name=name: check_alive(ports["tcp"], f"{name}-alive-{n}"),
                 tally, args.seed)
            results[name] = {
                "cases": tally.cases, "seconds": round(time.monotonic() - t0, 1),
                "failures": tally.failures, "broker_died_or_hung": tally.dead,
                "outcomes": dict(sorted(tally.outcomes.items())),
            }
            print(f"{name}: {tally.cases} cases, {len(tally.failures)} failure kinds, "
                  f"dead={tally.dead is not None}", flush=True)
            if tally.dead is not None:
                break
        rss_end = broker.memory_info().rss
        still_running = process.poll() is None
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    with open(log, encoding="utf-8", errors="replace") as f:
        log_errors = [line.rstrip() for line in f if LOG_ERROR.search(line)]
    summary = {
        "date": datetime.date.today().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=ROOT,
                                 capture_output=True,
                                 text=True).stdout.strip(),
        "seed": args.seed,
        "python": sys.version.split()[0],
        "seconds": round(time.monotonic() - started, 1),
        "broker_running_at_end": still_running,
        "broker_exit_code_after_sigterm": process.returncode,
        "rss_mib": {"start": round(rss_start / 2**20, 1), "end": round(rss_end / 2**20, 1)},
        "log_error_lines": log_errors[:50],
        "log_error_count": len(log_errors),
        "results": results,
    }
    out = args.out or os.path.join(ROOT, "bench", "results",
                                   f"fuzz-{summary['date']}.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"summary: {out}")
    bad = (log_errors or not still_running
           or any(r["failures"] or r["broker_died_or_hung"] for r in results.values()))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
