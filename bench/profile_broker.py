"""Where does nanomq-twisted spend its time under QoS 0 load?

Starts a separate nanomq-twisted, runs the QoS 0 scenario against it while
``py-spy record --format raw`` samples it (sampling, so the hot path is not
distorted the way cProfile's per-call hooks distort it), then sums samples
per leaf frame ("own time") and per frame anywhere on the stack ("total").
Falls back to cProfile (``python -m cProfile -o``) when py-spy is missing
or not permitted to ptrace.  Throughput of this run is not reported.
"""

import collections
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile

from brokers import free_port, nanomq_broker
from scenarios import qos0


def _pyspy_top(raw_path, n):
    own = collections.Counter()
    total = collections.Counter()
    samples = 0
    with open(raw_path) as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count)
            # "func (file.py:123)" -> "func (file.py)": aggregate per function
            frames = [re.sub(r":\d+\)$", ")", fr) for fr in stack.split(";")]
            samples += count
            own[frames[-1]] += count
            for fr in set(frames):
                total[fr] += count
    lines = [f"py-spy: {samples} samples (own = leaf frame, total = anywhere on stack)",
             "| # | own % | total % | function (file) |", "|---|---|---|---|"]
    for i, (fr, c) in enumerate(own.most_common(n), 1):
        lines.append(f"| {i} | {100 * c / samples:.1f} | {100 * total[fr] / samples:.1f} | `{fr}` |")
    return "\n".join(lines)


def _cprofile_top(stats_path, n):
    st = pstats.Stats(stats_path)
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    tot = sum(v[2] for v in st.stats.values()) or 1
    lines = ["cProfile (tottime = own time)", "| # | own % | calls | function |", "|---|---|---|---|"]
    for i, ((fn, ln, name), (_cc, nc, tt, _ct, _callers)) in enumerate(rows, 1):
        lines.append(f"| {i} | {100 * tt / tot:.1f} | {nc} | `{name} ({os.path.basename(fn)}:{ln})` |")
    return "\n".join(lines)


def profile_qos0(quick=False, top=12):
    workdir = tempfile.mkdtemp(prefix="nanomq-prof-")
    pyspy = shutil.which("py-spy")
    if pyspy:
        broker = nanomq_broker(workdir, free_port())
        raw = os.path.join(workdir, "pyspy.txt")
        try:
            warm, win = (0.5, 2.0) if quick else (1.0, 5.0)
            rec = subprocess.Popen([pyspy, "record", "--pid", str(broker.pid), "--format", "raw",
                                    "--rate", "250", "--nonblocking", "--duration", str(int(warm + win + 3)),
                                    "-o", raw], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                res = qos0(broker, quick)
            finally:
                try:
                    _out, err = rec.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    rec.kill()
                    _out, err = rec.communicate()
        finally:
            broker.stop()
        if os.path.exists(raw) and os.path.getsize(raw):
            return f"QoS 0 under py-spy: {res}\n" + _pyspy_top(raw, top)
        sys.stderr.write("py-spy failed ({}); falling back to cProfile\n".format(err.decode()[-300:]))
    stats = os.path.join(workdir, "broker.prof")
    broker = nanomq_broker(workdir, free_port(), extra_argv=("-m", "cProfile", "-o", stats))
    try:
        res = qos0(broker, quick)
    finally:
        broker.stop()
    return f"QoS 0 under cProfile: {res}\n" + _cprofile_top(stats, top)


if __name__ == "__main__":
    print(profile_qos0("--quick" in sys.argv))
