#!/usr/bin/env python3
"""
The long flood runs against the state quotas, with memory measured.

    python tools/flood_quotas.py              # every flood, about two minutes
    python tools/flood_quotas.py --only subscriptions retained

Each flood runs in a fresh process of its own (so RSS figures do not
carry over) and starts the real application on a copy of the shipped
configuration (etc/nanomq.conf on free loopback ports, as in
tests/shipped/support.py, SQLite on), in this process so that
``tracemalloc`` sees the broker's allocations, and drives it from a thread
over raw sockets (packets laid by hand, tests/packets.py).  For each flood
it records what was sent, what the broker answered (reason codes counted),
the counters, the memory the broker's Python objects hold afterwards
(tracemalloc, current minus before), the process RSS before, at its peak
(sampled every 50 ms) and after, and the time taken:

- ``subscriptions``: 100,000 filters from one 5.0 client, on the default
  ``max_subscriptions`` (10,000), then once with the limit off (0) to show
  what it saves;
- ``retained``: 100,000 retained topics (the default quota, 1,000,000,
  keeps them all: per-message cost), then 200,000 against
  ``max_retained_messages = 50000``;
- ``long_topics``: 200 PUBLISHes of a 65,535-byte topic with 32,768 levels
  and a 1 MiB payload each, QoS 1;
- ``aliases``: 20 5.0 clients each sending aliases 1..65,535 (the shipped
  ``max_topic_alias = 1024`` ends each one at 1,025);
- ``slow_consumer``: a subscriber that never reads, flooded with 256 MiB of
  QoS 0 and then 256 MiB of QoS 1 in 64 KiB messages (the default
  ``max_mqueue_bytes``, 64 MiB, is what binds: 2,048 of them would be 128
  MiB).

The summary goes to bench/results/quotas-<date>.json; docs/reliability.md
quotes it.  Bounded: each flood stops its broker; nothing is left running.
"""

import argparse
import datetime
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
sys.path.insert(0, ROOT)

import psutil  # noqa: E402
from twisted.internet import defer, task, threads  # noqa: E402

from nanomq_twisted.config import load  # noqa: E402
from nanomq_twisted.tap import make_app  # noqa: E402
from tests import packets as P  # noqa: E402
from tests.e2e.support import RawClient  # noqa: E402
from tests.shipped.support import shipped_copy  # noqa: E402

MIB = 1024 * 1024


class RssSampler:
    """The peak RSS of this process, sampled in a thread."""

    def __init__(self):
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


def connected(port, client_id, level=5, clean=True):
    raw = RawClient(port, 60)
    raw.send(P.connect(client_id, level=level, clean=clean))
    connack = raw.recv_packet()
    assert connack[0] == 0x20 and connack[3] == 0, connack
    return raw


def reason_of_suback(packet):
    i = 1
    while packet[i] & 0x80:
        i += 1
    return packet[i + 1 + 2 + 1:]


def codes_count(codes):
    out = {}
    for code in codes:
        key = f"0x{code:02x}"
        out[key] = out.get(key, 0) + 1
    return out


# -- the floods (each runs in a thread, the broker on the reactor) ----------


def flood_subscriptions(port, measure, count=100000):
    raw = connected(port, "hoarder")
    codes = b""
    per = 1000
    for n in range(count // per):
        raw.send(P.subscribe(n + 1, [(f"dev/{n}/{i}/state", 1) for i in range(per)], level=5))
        codes += reason_of_suback(raw.recv_packet())
    measure()
    raw.close()
    return {"filters_sent": count, "suback": codes_count(codes)}


def flood_retained(port, measure, count=100000):
    raw = connected(port, "retainer", level=4)
    batch = 5000
    for first in range(0, count, batch):
        raw.send(b"".join(P.publish(f"ret/{i}/state", b"v" * 16, retain=True)
                          for i in range(first, first + batch)) + P.PINGREQ)
        assert raw.recv_packet() == P.PINGRESP
    raw.close()
    v5 = connected(port, "v5pub")
    v5.send(P.publish("ret/one-more", b"v", qos=1, retain=True, mid=1, level=5))
    ack = v5.recv_packet()
    measure()
    v5.close()
    return {"topics_sent": count, "payload_bytes": 16,
            "v5_qos1_retained_after": f"0x{ack[4]:02x}" if len(ack) > 4 else "0x00"}


def flood_long_topics(port, measure, count=200):
    deep = "/".join(["a"] * 32768)
    payload = b"p" * MIB
    raw = connected(port, "deep")
    codes = []
    for mid in range(1, count + 1):
        raw.send(P.publish(deep, payload, qos=1, retain=True, mid=mid, level=5))
        ack = raw.recv_packet()
        codes.append(ack[4])
    measure()
    raw.close()
    return {"publishes": count, "topic_bytes": len(deep), "topic_levels": 32768,
            "payload_bytes": len(payload), "puback": codes_count(codes)}


def flood_aliases(port, measure, clients=20):
    def alias_publish(n, a):
        return P.publish(f"alias/{n}/{a}/" + "t" * 64, b"x", level=5,
                         properties=P.props(P.p_u16(0x23, a)))

    results = []
    raws = []
    for n in range(clients):
        raw = connected(port, f"aliaser-{n}")
        raws.append(raw)
        raw.send(b"".join(alias_publish(n, a) for a in range(1, 1025)) + P.PINGREQ)
        assert raw.recv_packet() == P.PINGRESP
    # Every client holds its 1,024 aliases now.
    measure()
    resets = 0
    for n, raw in enumerate(raws):
        try:
            raw.send(b"".join(alias_publish(n, a) for a in range(1025, 65536)))
            data = raw.recv_until_closed()
        except (BrokenPipeError, ConnectionResetError):
            # Closed at alias 1,025 with the rest unread: the kernel resets.
            resets += 1
            data = b""
        results.append(data[2] if len(data) > 2 and data[0] == 0xE0 else None)
        raw.close()
    return {"clients": clients, "aliases_sent_each": 65535,
            "topic_bytes": len("alias/0/1/") + 64,
            "disconnect": codes_count(c for c in results if c is not None),
            "reset_before_the_disconnect_was_read": resets}


def flood_slow_consumer(port, measure, total=256 * MIB, size=64 * 1024):
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.settimeout(60)
    slow.connect(("127.0.0.1", port))
    slow.sendall(P.connect("slow") + P.subscribe(1, [("flood/#", 1)]))
    head = b""
    while len(head) < 9:
        head += slow.recv(9 - len(head))
    payload = b"z" * size
    pub = connected(port, "flooder", level=4)
    count = total // size
    mid = 0
    for qos in (0, 1):
        for _ in range(count // 64):
            batch = []
            for _ in range(64):
                mid = mid % 65535 + 1
                batch.append(P.publish("flood/x", payload, qos=qos, mid=mid if qos else None))
            pub.send(b"".join(batch) + P.PINGREQ)
            while pub.recv_packet() != P.PINGRESP:
                pass
    measure()
    pub.close()
    slow.close()
    return {"payload_bytes": size, "qos0_messages": count, "qos1_messages": count}


FLOODS = {
    "subscriptions": [("default", "", flood_subscriptions),
                      ("limit_off", "mqtt { max_subscriptions = 0 }", flood_subscriptions)],
    "retained": [("default", "", flood_retained),
                 ("quota_50000", "mqtt { max_retained_messages = 50000 }",
                  lambda port, measure: flood_retained(port, measure, 200000))],
    "long_topics": [("default", "", flood_long_topics)],
    "aliases": [("default", "", flood_aliases)],
    "slow_consumer": [("default", "", flood_slow_consumer)],
}

COUNTERS = ("refused_subscriptions", "refused_retained", "refused_topics",
            "dropped", "dropped_queue_full", "dropped_queue_bytes",
            "dropped_slow_consumer", "sent", "received")


@defer.inlineCallbacks
def run_one(reactor, workdir, extra, flood):
    path = shipped_copy(workdir)
    if extra:
        with open(path, "a", encoding="utf-8") as f:
            f.write("\n" + extra + "\n")
    gc.collect()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    app = make_app(load(path), reactor)
    app.service.startService()
    try:
        port = yield app.port("tcp")
        broker = app.broker
        gc.collect()
        traced_before = tracemalloc.get_traced_memory()[0]
        sampler = RssSampler()
        started = time.monotonic()
        held = {}

        def state():
            # On the reactor thread, at the flood's height (clients still
            # connected): what the broker holds.
            gc.collect()
            slow = broker.sessions.get("slow")
            held.update({
                "broker_python_heap_growth_mib": round(
                    (tracemalloc.get_traced_memory()[0] - traced_before) / MIB, 2),
                "rss_at_height_mib": round(process.memory_info().rss / MIB, 1),
                "retained_kept": len(broker.retained),
                "retained_bytes": broker.retained.bytes,
                "subscriptions_kept": sum(len(s.subscriptions)
                                          for s in broker.sessions.values()),
                "counters": {name: getattr(broker.stats, name) for name in COUNTERS},
            })
            if slow is not None and slow.conn is not None:
                held["held_for_the_slow_client"] = {
                    "queue_bytes": slow.queue_bytes, "queued": len(slow.queue),
                    "inflight": len(slow.inflight), "outbox_bytes": slow.conn.outbox_bytes}

        def measure():
            threads.blockingCallFromThread(reactor, state)

        result = yield threads.deferToThread(flood, port, measure)
        seconds = time.monotonic() - started
        peak = sampler.stop()
        result.update(held)
        result.update({
            "seconds": round(seconds, 2),
            "rss_before_mib": round(rss_before / MIB, 1),
            "rss_peak_mib": round(peak / MIB, 1),
            "rss_after_mib": round(process.memory_info().rss / MIB, 1),
        })
        return result
    finally:
        yield app.service.stopService()


@defer.inlineCallbacks
def one(reactor, key):
    """Run the flood ``key`` (``name/variant``) and print its JSON."""
    name, variant = key.split("/")
    ((extra, flood),) = [(e, f) for v, e, f in FLOODS[name] if v == variant]
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as workdir:
        result = yield run_one(reactor, workdir, extra, flood)
    result["extra_configuration"] = extra or None
    print(json.dumps(result))


def main(args):
    summary = {"date": datetime.date.today().isoformat(), "python": sys.version.split()[0],
               "configuration": "etc/nanomq.conf (loopback ports, SQLite on)", "floods": {}}
    for name in args.only or list(FLOODS):
        for variant, _extra, _flood in FLOODS[name]:
            key = f"{name}/{variant}"
            print(key, "...", flush=True)
            out = subprocess.run([sys.executable, __file__, "--one", key], check=True,
                                 capture_output=True, text=True, timeout=900,
                                 env=dict(os.environ, PYTHONPATH=ROOT)).stdout
            result = json.loads(out.strip().splitlines()[-1])
            summary["floods"][key] = result
            print(json.dumps(result, indent=1), flush=True)
    path = os.path.join(ROOT, "bench", "results", f"quotas-{summary['date']}.json")
    if not args.no_write:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")
        print("wrote", path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(FLOODS))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        task.react(one, [arguments.one])
    else:
        main(arguments)
