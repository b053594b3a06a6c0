"""What one message costs in the pure core, without sockets or a reactor.

    python bench/core_path.py [--messages N] [--profile]

A publisher and a subscriber connection of the real core (``Broker``,
``ClientConnection``) on sinks that only count bytes; PUBLISH packets are
decoded by the real ``Decoder`` from pre-built bytes in batches, as one
``dataReceived`` would see them, and the subscriber acknowledges QoS 1/2
the same way.  Printed: microseconds per message for QoS 0 and QoS 1
(1 -> 1) and QoS 0 fan-out 1 -> 100 per delivery, and QoS 1 to a
persistent subscriber through a real SQLite store whose commits run
in-line (``inline_store``: their CPU is counted, the disk wait is not
overlapped) with ``sqlite.sync_ack`` off and on, on the shipped
``etc/nanomq.conf`` mqtt section, so that changes to the hot path can be
compared without the noise of the kernel and a second process.  This is a
measuring tool, not a throughput claim: bench/run.py measures the broker.
"""

import argparse
import cProfile
import gc
import os
import pstats
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from mqttwire import connect_packet, puback, publish_packet, subscribe_packet

from nanomq_twisted.config import load
from nanomq_twisted.core.broker import Broker
from nanomq_twisted.core.connection import ClientConnection
from nanomq_twisted.core.info import TransportInfo
from nanomq_twisted.mqtt.codec import Decoder

SHIPPED = os.path.join(os.path.dirname(HERE), "etc", "nanomq.conf")
BATCH = 100


class CountingSink:
    def __init__(self):
        self.bytes = 0
        self.chunks = []

    def send(self, chunks):
        self.chunks.extend(chunks)
        self.bytes += sum(len(c) for c in chunks)

    def close(self):
        pass


class Endpoint:
    def __init__(self, broker, client_id, clean=True, clock=None):
        self.broker = broker
        self.clock = clock
        self.sink = CountingSink()
        self.conn = ClientConnection(broker, self.sink, TransportInfo(("127.0.0.1", 1)))
        self.decoder = Decoder(max_packet_size=broker.config.max_packet_size)
        self.feed(connect_packet(client_id, clean=clean))

    def feed(self, data, now=0.0):
        broker = self.broker
        broker.in_turn = True
        for packet in self.decoder.feed(data):
            self.conn.receive(packet, now)
        broker.in_turn = False
        if self.clock is not None:
            self.clock.advance(0)
        broker.flush()


def inline_store(sync_ack, workdir):
    """A real ``SqliteStore`` on a file in ``workdir`` whose "worker
    thread" runs each commit in-line at the end of the turn that closed
    the batch: the CPU a commit costs (SQLite's included) is counted, the
    disk wait is not overlapped."""
    from twisted.internet import defer, task

    from nanomq_twisted.persistence.sqlite_store import SqliteStore

    clock = task.Clock()

    def run_in_thread(fn, *args):
        return defer.succeed(fn(*args))

    store = SqliteStore(os.path.join(workdir, "nano_qos_db.db"), clock, run_in_thread,
                        sync_ack=sync_ack)
    store.open()
    return store, clock


def run(qos, messages, subscribers=1, store=None):
    """Microseconds per delivery; with ``store`` (``inline_store``) the
    subscribers hold persistent sessions and every turn ends with the
    store's due timers (its commits)."""
    broker = Broker(load(SHIPPED).mqtt, sys_events=False)
    clock = None
    if store is not None:
        store, clock = store
        broker.set_store(store)
    subs = [Endpoint(broker, f"s{i}", clean=store is None) for i in range(subscribers)]
    for sub in subs:
        sub.feed(subscribe_packet(1, [("t", qos)]))
        sub.sink.chunks.clear()
    for sub in subs:
        sub.clock = clock
    pub = Endpoint(broker, "p", clock=clock)
    payload = b"x" * 64
    batches = []
    mid = 0
    for _ in range(messages // BATCH):
        parts = []
        for _ in range(BATCH):
            mid = mid % 65535 + 1
            parts.append(publish_packet("t", payload, qos, mid))
        batches.append(b"".join(parts))
    start = time.process_time()
    for data in batches:
        pub.feed(data)
        if qos:
            for sub in subs:
                # Each chunk is one PUBLISH to "t": 2-byte header, 2-byte
                # topic length, "t", then the packet id.
                acks = b"".join(puback(int.from_bytes(c[5:7], "big"))
                                for c in sub.sink.chunks)
                sub.sink.chunks.clear()
                sub.feed(acks)
        else:
            for sub in subs:
                sub.sink.chunks.clear()
    elapsed = time.process_time() - start
    return elapsed / (messages * subscribers) * 1e6


class GcClock:
    """Time spent in the cyclic garbage collector (a ``gc.callbacks``
    entry): where a threshold's cost shows without the noise of the rest."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.seconds = 0.0
        self.runs = 0
        self._start = None

    def __call__(self, phase, _info):
        if phase == "start":
            self._start = time.perf_counter()
        elif self._start is not None:
            self.seconds += time.perf_counter() - self._start
            self.runs += 1
            self._start = None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--gc-threshold", type=int, default=0,
                    help="collect as twistd's process does (tap.tune_collector: "
                         "this first threshold, gc.freeze); 0: Python's defaults")
    args = ap.parse_args()
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, 50, 100)
        gc.freeze()
    gc_time = GcClock()
    gc.callbacks.append(gc_time)
    cases = (("QoS 0 1->1", 0, 1, None), ("QoS 1 1->1", 1, 1, None),
             ("QoS 0 1->100", 0, 100, None),
             ("QoS 1 1->1 persistent subscriber, sync_ack = false", 1, 1, False),
             ("QoS 1 1->1 persistent subscriber, sync_ack = true", 1, 1, True))
    for label, qos, fan, sync_ack in cases:
        count = args.messages if fan == 1 else args.messages // 50
        store = None
        if sync_ack is not None:
            store = inline_store(sync_ack, tempfile.mkdtemp(prefix="core-path-"))
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
        gc_time.reset()
        cost = run(qos, count, fan, store)
        collector = gc_time.seconds * 1e6 / (count * fan)
        if args.profile:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
        print(f"{label}: {cost:.2f} us per delivery, of which {collector:.2f} us in the "
              f"cyclic garbage collector ({gc_time.runs} collections)")


if __name__ == "__main__":
    main()
