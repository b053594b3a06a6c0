#!/usr/bin/env python3
# -*- test-case-name: tests.shipped.test_soak -*-
"""
The soak: the shipped configuration under a mixed load for a long time.

    python tools/soak.py                        # 30 minutes, ~1,000 churning clients
    nice -n 10 python tools/soak.py --minutes 30
    python tools/soak.py --seconds 90 --clients 200 --persistent 8   # a short run

The broker is ``twistd -n nanomq -c <copy>`` in its own process, where the
copy is etc/nanomq.conf with free loopback ports and a temp data folder
(tests/shipped/support.py ``shipped_copy``); everything else is as shipped
(SQLite persistence with ``sync_ack``, WebSocket listener, REST API with
admin/public, queue and in-flight limits of 2048).

The load (one asyncio process; raw clients framed by bench/mqttwire.py,
plus paho-mqtt clients in their own threads):

- numbered flows at QoS 0, 1 and 2 into subscribers that stay connected
  (TCP and WebSocket, 3.1.1 and 5.0), into two shared-subscription groups
  (``$share/g1``, QoS 1; ``$share/g2``, QoS 2) and into persistent
  sessions (3.1.1 CleanSession=0, 5.0 with a session expiry) that go
  offline and come back (tools/soak_flows.py, soak_sessions.py);
- ``--clients`` slots connecting and going again, checking retained
  messages or chatting on churn topics (tools/soak_churn.py);
- REST polls of /api/v4/clients, /api/v4/prometheus, /api/v4/brokers.

Every ``--sample`` seconds it records the broker's RSS (/proc/PID/status
VmRSS), open file descriptors (/proc/PID/fd), CPU, the generator's CPU,
and the error lines and tracebacks in the broker's log.  At the end
publishers stop, everything offline comes back, and the run drains until
every receiver has every message (or ``--drain`` seconds pass); then all
clients leave and the broker's descriptors must fall back to what they
were before the first client.  The JSON result goes to
bench/results/soak-<date>.json; exit status 1 if anything acknowledged
was lost, a QoS 2 message came twice, an error was logged, or descriptors
were left open.
"""

import argparse
import asyncio
import collections
import datetime
import json
import os
import random
import shutil
import sys
import tempfile
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path[:0] = [ROOT, TOOLS, os.path.join(ROOT, "bench")]

from brokers import raise_nofile  # noqa: E402
from loadgen import gen_cpu  # noqa: E402
from soak_broker import BrokerProcess  # noqa: E402
from soak_churn import Churn, Retained, rest_poll  # noqa: E402
from soak_client import connect  # noqa: E402
from soak_flows import Ledger, Publisher, Router, sleep_or_stop  # noqa: E402
from soak_report import git, report  # noqa: E402
from soak_sessions import PahoPersistent, PahoPublisher, Persistent  # noqa: E402

#: (flow, QoS, topic, msg/s at --rate 1, publisher (transport, version)).
FLOWS = (
    ("q0", 0, "soak/q0", 100, ("tcp", 4)),
    ("q1", 1, "soak/q1", 100, ("ws", 5)),
    ("q2", 2, "soak/q2", 50, ("tcp", 5)),
    ("sh1", 1, "soak/shared/q1", 50, ("tcp", 4)),
    ("sh2", 2, "soak/shared/q2", 30, ("ws", 4)),
    ("p1", 1, "soak/persist/q1", 10, ("tcp", 5)),
    ("p2", 2, "soak/persist/q2", 10, ("tcp", 4)),
    ("paho1", 1, "soak/paho/q1", 20, ("paho", 4)),
)
#: Subscribers that stay connected: (name, flow, transport, version).
STABLE = (
    ("sub-q0-tcp4", "q0", "tcp", 4), ("sub-q0-ws5", "q0", "ws", 5),
    ("sub-q1-tcp5", "q1", "tcp", 5), ("sub-q1-ws4", "q1", "ws", 4),
    ("sub-q2-tcp4", "q2", "tcp", 4), ("sub-q2-ws5", "q2", "ws", 5),
    ("sub-paho1-tcp4", "paho1", "tcp", 4),
)
#: Shared groups: flow -> (group filter, [(member, transport, version)]).
SHARED = {
    "sh1": ("$share/g1/soak/shared/q1",
            [("g1-tcp4", "tcp", 4), ("g1-tcp5", "tcp", 5), ("g1-ws5", "ws", 5)]),
    "sh2": ("$share/g2/soak/shared/q2", [("g2-tcp4", "tcp", 4), ("g2-ws5", "ws", 5)]),
}
#: paho persistent subscribers: (name, transport, version, [(flow, qos)]).
PAHO_PERSISTENT = (
    ("paho-persist-tcp4", "tcp", 4, [("p1", 1), ("paho1", 1)]),
    ("paho-persist-ws5", "ws", 5, [("p2", 2)]),
)


class Soak:
    def __init__(self, args, broker):
        self.args = args
        self.broker = broker
        self.ports = broker.ports
        self.rng = random.Random(args.seed)
        self.router = Router()
        self.stop = asyncio.Event()
        self.conns = []
        self.publishers = []
        self.persistent = []
        self.paho_subs = []
        self.paho_pubs = []
        self.samples = []
        # The code under test, read before the run (docs may change meanwhile).
        self.commit = git(ROOT, "rev-parse", "HEAD")
        self.dirty = bool(git(ROOT, "status", "--short", "--", "nanomq_twisted", "tools",
                              "bench", "etc"))
        self.stats = {"churn": collections.Counter(), "sessions": collections.Counter(),
                      "rest": {}}

    def port(self, transport):
        return self.ports["ws" if transport == "ws" else "tcp"]

    async def _client(self, name, transport, version, on_message=None, filters=()):
        conn, _ = await connect(self.port(transport), name, on_message or _drop,
                                version=version, ws=transport == "ws")
        self.conns.append(conn)
        if filters:
            codes = await asyncio.wait_for(conn.subscribe(list(filters)), 60)
            if any(c >= 0x80 for c in codes):
                raise ConnectionError(f"SUBACK {codes!r} for {name}")
        return conn

    async def setup(self):
        args = self.args
        receivers = collections.defaultdict(list)
        for name, flow, _t, _v in STABLE:
            receivers[flow].append(name)
        for flow in SHARED:
            receivers[flow].append(f"group-{flow}")
        plan = []
        for i in range(args.persistent):
            flow, qos = ("p1", 1) if i % 2 == 0 else ("p2", 2)
            name = f"persist-{i}-{'v5' if i // 2 % 2 else 'v4'}"
            plan.append((name, flow, qos, "ws" if i % 4 == 3 else "tcp", 5 if i // 2 % 2 else 4))
            receivers[flow].append(name)
        for name, _t, _v, subs in PAHO_PERSISTENT:
            for flow, _q in subs:
                receivers[flow].append(name)
        ledgers = {}
        for flow, qos, topic, _rate, _pub in FLOWS:
            ledgers[flow] = self.router.add(Ledger(flow, qos, topic, receivers[flow]))
        for name, flow, transport, version in STABLE:
            ledger = ledgers[flow]
            await self._client(name, transport, version, self.router.handler(name),
                               [(ledger.topic, ledger.qos)])
        for flow, (group, members) in SHARED.items():
            for member, transport, version in members:
                await self._client(member, transport, version,
                                   self.router.handler(f"group-{flow}", member),
                                   [(group, ledgers[flow].qos)])
        cycle = (args.online, args.offline)
        for name, flow, qos, transport, version in plan:
            client = Persistent(name, self.port(transport), transport == "ws", version,
                                [(ledgers[flow].topic, qos)], self.router, self.rng,
                                *cycle, self.stats["sessions"])
            await client.start()
            self.persistent.append(client)
        for name, transport, version, subs in PAHO_PERSISTENT:
            client = PahoPersistent(name, self.port(transport), transport == "ws", version,
                                    [(ledgers[f].topic, q) for f, q in subs], self.router,
                                    self.rng, *cycle, self.stats["sessions"])
            await client.start()
            self.paho_subs.append(client)
        for flow, _qos, _topic, rate, (transport, version) in FLOWS:
            if transport == "paho":
                conn = PahoPublisher(f"pub-{flow}", self.ports["tcp"], False, version)
                await conn.start()
                self.paho_pubs.append(conn)
            else:
                conn = await self._client(f"pub-{flow}", transport, version)
            window = 1500 if flow.startswith("p") else 500
            self.publishers.append(Publisher(ledgers[flow], conn, rate * args.rate,
                                             e2e_window=window))
        self.retained = Retained(await self._client("pub-retained", "tcp", 4),
                                 args.retained, 10 * args.rate)
        await self.retained.seed()
        self.churn = Churn(self.ports, args.clients, self.rng, self.retained,
                           args.hold, args.off, args.ramp, self.stats["churn"])

    def sample(self, t0, cpu0, phase="load"):
        broker = self.broker
        rss, fds, bcpu = broker.rss_kib(), broker.fds(), broker.cpu()
        broker.scan_log()
        sample = {
            "t": round(time.monotonic() - t0, 1), "phase": phase, "rss_kib": rss, "fds": fds,
            "broker_cpu_s": round(bcpu - cpu0[0], 2), "gen_cpu_s": round(gen_cpu() - cpu0[1], 2),
            "churn_connected": self.churn.connected,
            "sent": sum(f.sent for f in self.router.flows.values()),
            "log_errors": broker.log["errors"], "tracebacks": broker.log["tracebacks"],
        }
        self.samples.append(sample)
        print("{phase}: t={t:>7}s rss={rss_kib} KiB fds={fds} broker_cpu={broker_cpu_s}s "
              "gen_cpu={gen_cpu_s}s churn={churn_connected} sent={sent} "
              "errors={log_errors} tracebacks={tracebacks}".format(**sample), flush=True)

    async def sampler(self, t0, cpu0):
        while not await sleep_or_stop(self.stop, self.args.sample):
            self.sample(t0, cpu0)
            if not self.broker.alive():
                self.stats["broker_died"] = True
                self.stop.set()

    async def run(self):
        args = self.args
        await self.setup()
        t0 = time.monotonic()
        cpu0 = (self.broker.cpu(), gen_cpu())
        self.sample(t0, cpu0)
        tasks = [asyncio.ensure_future(c) for c in (
            *(p.run(self.stop) for p in self.publishers),
            *(p.run(self.stop) for p in self.persistent),
            *(p.run(self.stop) for p in self.paho_subs),
            self.retained.run(self.stop), self.churn.run(self.stop),
            rest_poll(self.ports["http"], args.rest_interval, self.stop, self.stats["rest"]),
            self.sampler(t0, cpu0))]
        await sleep_or_stop(self.stop, args.seconds)
        self.stop.set()
        await asyncio.gather(*tasks)
        load_seconds = time.monotonic() - t0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.drain
        for publisher in self.publishers:
            await publisher.drain(deadline)
        while not self.router.complete() and loop.time() < deadline:
            await asyncio.sleep(0.1)
        drained = self.router.complete()
        drain_seconds = time.monotonic() - t0 - load_seconds
        self.sample(t0, cpu0, "drained")
        await self.leave()
        fds_after = await self.broker.wait_fds(self.broker.fds_baseline, 60)
        self.sample(t0, cpu0, "clients left")
        return {"load_seconds": round(load_seconds, 1), "drained": drained,
                "drain_seconds": round(drain_seconds, 1), "fds_after_clients_left": fds_after,
                "generator_cpu_s": round(gen_cpu() - cpu0[1], 1),
                "broker_cpu_s": round(self.broker.cpu() - cpu0[0], 1)}

    async def leave(self):
        for conn in self.conns:
            if conn.is_open:
                conn.disconnect()
        for client in self.persistent:
            client.close()
        for client in self.paho_subs + self.paho_pubs:
            await client.close()
        for conn in self.conns + [p.conn for p in self.persistent]:
            if conn is not None:
                await asyncio.wait_for(conn.closed, 60)


def _drop(*_args):
    return None


def span(text):
    low, _, high = text.partition("-")
    return (float(low), float(high or low))


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=None, help="overrides --minutes")
    parser.add_argument("--clients", type=int, default=1000, help="churning client slots")
    parser.add_argument("--persistent", type=int, default=20, help="raw persistent sessions")
    parser.add_argument("--retained", type=int, default=50, help="retained topics")
    parser.add_argument("--rate", type=float, default=1.0, help="flow rate multiplier")
    parser.add_argument("--hold", type=span, default=(5, 40), help="churn: seconds online")
    parser.add_argument("--off", type=span, default=(1, 10), help="churn: seconds away")
    parser.add_argument("--ramp", type=float, default=30.0, help="churn: start spread (s)")
    parser.add_argument("--online", type=span, default=(10, 40),
                        help="persistent: seconds online")
    parser.add_argument("--offline", type=span, default=(5, 30),
                        help="persistent: seconds offline")
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds left out of the RSS figures (default 5 min, at most "
                             "a third of the run)")
    parser.add_argument("--rest-interval", type=float, default=5.0)
    parser.add_argument("--drain", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=20261204)
    parser.add_argument("--out", default=None, help="JSON result path")
    parser.add_argument("--note", default="", help="free text kept in the JSON")
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = args.minutes * 60
    if args.warmup is None:
        args.warmup = min(300.0, args.seconds / 3)
    return args


def main(argv=None):
    args = parse(argv)
    raise_nofile()
    workdir = tempfile.mkdtemp(prefix="nanomq-soak-")
    broker = BrokerProcess(workdir, ROOT)
    started = datetime.datetime.now()
    broker.start()
    try:
        soak = Soak(args, broker)
        outcome = asyncio.run(soak.run())
    finally:
        exit_code = broker.stop()
    broker.scan_log()
    result = report(args, soak, broker, outcome, exit_code, started)
    out = args.out or os.path.join(ROOT, "bench", "results",
                                   f"soak-{started.date().isoformat()}.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(result["summary_text"])
    print(f"result: {out}")
    if result["ok"]:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"broker log kept: {broker.log_path}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
