"""Where does nanomq-twisted spend its time under load?

Starts a fresh nanomq-twisted on the shipped config (``--bare``: minimal
config), runs one scenario (``--scenario``, default ``qos0``) against it
while ``py-spy record
--format raw --nonblocking`` samples it (sampling, so the hot path is not
distorted the way cProfile's per-call hooks distort it), then sums the
samples per function: "own" = the function is the leaf frame, "total" =
anywhere on the stack.  Prints the top 15 by own time.  Throughput of this
run is printed but not part of the table (py-spy costs some CPU).

    python bench/profile_broker.py [--quick] [--bare] [--scenario NAME] [--out DIR]
                                   [--sync-ack true|false]
"""

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import brokers
from scenarios import SCENARIOS, Opts


def top_functions(raw_path, n=15):
    own = collections.Counter()
    total = collections.Counter()
    samples = 0
    with open(raw_path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            count = int(count)
            # "func (file.py:123)" -> "func (file.py)": aggregate per function
            frames = [re.sub(r":\d+\)$", ")", fr) for fr in stack.split(";")]
            frames = [re.sub(r"\(/.*/(nanomq_twisted|twisted)/", r"(\1/", fr) for fr in frames]
            samples += count
            own[frames[-1]] += count
            for fr in set(frames):
                total[fr] += count
    lines = [f"py-spy: {samples} samples (own = leaf frame, total = anywhere on the stack)",
             "", "| # | own % | total % | function (file) |", "|---|---|---|---|"]
    for i, (fr, c) in enumerate(own.most_common(n), 1):
        lines.append(f"| {i} | {100 * c / max(samples, 1):.1f} | {100 * total[fr] / max(samples, 1):.1f} | `{fr}` |")
    return "\n".join(lines)


def profile_qos0(opts, bare=False, out_dir=None, rate=200, scenario="qos0", sync_ack=None):
    pyspy = shutil.which("py-spy")
    if not pyspy:
        return "py-spy not installed (pip install py-spy): no profile"
    out_dir = out_dir or tempfile.mkdtemp(prefix="nanomq-prof-")
    os.makedirs(out_dir, exist_ok=True)
    raw = os.path.join(out_dir, f"nanomq-{scenario}.pyspy.txt")
    broker = brokers.start_nanomq(bare=bare, sync_ack=sync_ack)
    err = b""
    try:
        dur = int(opts.warmup + opts.measure + 2)
        rec = subprocess.Popen([pyspy, "record", "--pid", str(broker.pid), "--format", "raw", "--rate", str(rate),
                                "--nonblocking", "--duration", str(dur), "-o", raw],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            res = SCENARIOS[scenario](broker, opts)
        finally:
            try:
                _out, err = rec.communicate(timeout=dur + 30)
            except subprocess.TimeoutExpired:
                rec.kill()
                _out, err = rec.communicate(timeout=10)
    finally:
        brokers.cleanup(broker)
    if not (os.path.exists(raw) and os.path.getsize(raw)):
        return "py-spy failed: " + err.decode(errors="replace")[-500:]
    figures = ", ".join(f"{k.split('.', 1)[1]} {v:,.0f}" for k, v in res.items()
                        if isinstance(v, (int, float)) and k.endswith(("msgs_s", "p50_us", "p99_us",
                                                                        "lost", "cpu_pct")))
    head = (f"nanomq-twisted ({'bare' if bare else 'shipped'} config) under {scenario} with py-spy at "
            f"{rate} Hz: {figures}\nraw samples: {raw}\n")
    return head + top_functions(raw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--bare", action="store_true")
    ap.add_argument("--out", default=None, help="directory for the raw py-spy output")
    ap.add_argument("--scenario", default="qos0", choices=sorted(SCENARIOS))
    ap.add_argument("--sync-ack", choices=("true", "false"), default=None,
                    help="override the shipped sqlite.sync_ack in the copy")
    args = ap.parse_args()
    brokers.raise_nofile()
    try:
        print(profile_qos0(Opts(quick=args.quick), bare=args.bare, out_dir=args.out,
                           scenario=args.scenario,
                           sync_ack=None if args.sync_ack is None else args.sync_ack == "true"))
    finally:
        brokers.stop_all()


if __name__ == "__main__":
    main()
