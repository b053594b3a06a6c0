#!/usr/bin/env python3
"""
Crash safety, the long run (issue 16): ``kill -9`` of the broker at random
moments during QoS 1 and QoS 2 floods and retained-message writes from
real paho clients into persistent subscribers, on the shipped
configuration (etc/nanomq.conf, ports and paths moved as in
tests/shipped/support.py), the broker in its own process as users run it.

    python tools/crash_cycles.py                         # 20 cycles, sync_ack as shipped (true)
    python tools/crash_cycles.py --sync-ack false        # the window an unsynced ack can lose
    python tools/crash_cycles.py --cycles 5 --seed 7

Each cycle restarts the broker on the same data folder, reconnects the
clients (their sessions are still there), floods until both publishers
have a random number of acknowledgements from that broker, sometimes with
the subscribers offline (so the broker queues for them), then kills it.
After every kill the database the broker left is checked with ``PRAGMA
integrity_check`` (on a copy).  After the last one a broker starts once
more and drains; then, per publisher, what was acknowledged and never
delivered, QoS 2 delivered twice, and retained topics older than their
last acknowledged message are counted; without ``sync_ack`` also how long
before its kill the oldest lost message had been acknowledged (the window
that can be lost).  The harness is tests/shipped/floods.py, which the
suite's short version (tests/shipped/test_kill9.py) shares.

The summary (JSON) goes to bench/results/crash-<sync>-<date>.json (or
``--json``); docs/reliability.md quotes it.  Exit status 1 when anything
acknowledged was lost with sync_ack on, or the database was ever corrupt.
"""

import argparse
import base64
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)

from nanomq_twisted.config.loader import load  # noqa: E402
from nanomq_twisted.persistence.sqlite_rows import DB_NAME  # noqa: E402
from tests.shipped.floods import AHEAD, Campaign, integrity  # noqa: E402
from tests.shipped.process import shipped_on_ports, spawn  # noqa: E402

#: Kill moments: this many acknowledgements per publisher from one broker.
KILL_AT = (50, 900)
#: Chance that a cycle's subscribers stay offline.
OFFLINE_CHANCE = 0.3


def counters(http_port):
    """The broker's Prometheus counters that say a message went missing
    by policy rather than by crash (``nanomq_messages_dropped``)."""
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/api/v4/prometheus")
    request.add_header("Authorization", "Basic " + base64.b64encode(b"admin:public").decode())
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("nanomq_messages_dropped", "nanomq_messages_received"):
            values[name] = float(value)
    return values


def run(cycles, sync_ack, run_seed, workdir, offline_chance=OFFLINE_CHANCE):
    changes = []
    if not sync_ack:
        changes.append((r"sync_ack = true", "sync_ack = false"))
    path, ports = shipped_on_ports(workdir, changes)
    config = load(path)
    db_path = os.path.join(config.sqlite.mounted_file_path, DB_NAME)
    log = os.path.join(workdir, "broker.log")
    rng = random.Random(run_seed)
    campaign = Campaign(config.mqtt.max_mqueue_len, prefix="crash")
    corrupt = []
    started = time.monotonic()
    try:
        for cycle in range(cycles):
            process = spawn(path, ports, log)
            kill_at = rng.randint(*KILL_AT)
            # Offline only while the subscribers' queues have room for the
            # whole cycle (its acknowledgements plus what paho has ahead):
            # past max_mqueue_len the broker drops by policy, and the run
            # would measure the queue limit, not the disk.
            offline = cycle > 0 and rng.random() < offline_chance
            if offline:
                kill_at = min(kill_at, campaign.room() // 2 - AHEAD)
                offline = kill_at >= KILL_AT[0]
                if not offline:
                    kill_at = rng.randint(*KILL_AT)
            campaign.flood_and_kill(ports["tcp"],
                                    lambda p=process: os.kill(p.pid, signal.SIGKILL),
                                    kill_at, cycle == 0, not offline,
                                    lambda: counters(ports["http"]))
            process.wait()
            check = integrity(db_path)
            campaign.cycles[-1]["integrity"] = check
            if check != "ok":
                corrupt.append((cycle, check))
            print(f"cycle {cycle}: kill at {kill_at} acks, "
                  f"{'offline' if offline else 'online'} subscribers, "
                  f"acked {campaign.cycles[-1]['acked']}, integrity {check}", flush=True)
        process = spawn(path, ports, log)
        campaign.drain(ports["tcp"])
        process.terminate()
        process.wait(30)
    finally:
        campaign.close()
    verdict = campaign.verdict()
    with open(log, encoding="utf-8", errors="replace") as f:
        tracebacks = sum(1 for line in f if "Traceback" in line)
    floods = campaign.floods
    return {
        "date": datetime.date.today().isoformat(),
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], check=False, cwd=ROOT,
                                 capture_output=True, text=True).stdout.strip(),
        "python": sys.version.split()[0],
        "configuration": "etc/nanomq.conf (ports and paths moved)"
                         + ("" if sync_ack else ", sqlite.sync_ack = false"),
        "sync_ack": sync_ack,
        "seed": run_seed,
        "offline_chance": offline_chance,
        "cycles": len(campaign.cycles),
        "seconds": round(time.monotonic() - started, 1),
        "kills": [{k: v for k, v in c.items() if k != "killed_at"} for c in campaign.cycles],
        "published": {f"q{f.qos}": f.next_seq for f in floods},
        "acknowledged": {f"q{f.qos}": len(f.acked) for f in floods},
        "retained_published": campaign.retained.next_seq,
        "retained_topics": len(campaign.retained.acked),
        "lost_acknowledged": {f"q{q}": len(verdict[f"lost_q{q}"]) for q in (1, 2)},
        "never_delivered": {f"q{q}": len(verdict[f"missing_q{q}"]) for q in (1, 2)},
        "lost_window": {f"q{q}": [{"cycle": c, "lost": n,
                                   "oldest_ack_before_kill_ms": round(oldest * 1000, 1),
                                   "newest_ack_before_kill_ms": round(newest * 1000, 1),
                                   "read_after_kill": late}
                                  for c, n, oldest, newest, late in verdict[f"window_q{q}"]]
                        for q in (1, 2)},
        "lost_seqs": {f"q{q}": verdict[f"lost_q{q}"][:100] for q in (1, 2)},
        "q2_delivered_twice": len(verdict["twice_q2"]),
        "stale_retained_topics": verdict["stale_retained"],
        "corrupt_databases": corrupt,
        "log_tracebacks": tracebacks,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--sync-ack", choices=("true", "false"), default="true")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--offline", type=float, default=OFFLINE_CHANCE,
                        help="chance that a cycle's subscribers stay offline")
    parser.add_argument("--json", default=None, help="where the summary goes")
    args = parser.parse_args(argv)
    sync_ack = args.sync_ack == "true"
    run_seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    workdir = tempfile.mkdtemp(prefix="nanomq-crash-")
    summary = run(args.cycles, sync_ack, run_seed, workdir, args.offline)
    out = args.json or os.path.join(
        ROOT, "bench", "results",
        f"crash-sync-{'on' if sync_ack else 'off'}-{summary['date']}.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(json.dumps({k: summary[k] for k in (
        "cycles", "seconds", "acknowledged", "lost_acknowledged", "never_delivered",
        "q2_delivered_twice", "stale_retained_topics", "corrupt_databases",
        "log_tracebacks")}))
    print(f"summary: {out}")
    bad = summary["corrupt_databases"] or summary["log_tracebacks"] or (
        sync_ack and (any(summary["lost_acknowledged"].values())
                      or summary["q2_delivered_twice"] or summary["stale_retained_topics"]))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
