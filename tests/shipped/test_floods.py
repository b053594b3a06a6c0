# -*- test-case-name: tests.shipped.test_floods -*-
"""
Floods against the state quotas, over real loopback sockets, on the
shipped configuration (``etc/nanomq.conf``: ``max_packet_size = 256MB``,
``max_topic_alias = 1024``, SQLite on) and its default quotas unless a test
says which key it lowers to stay fast:

- 100,000 subscriptions from one client: ``mqtt.max_subscriptions``
  (10,000) are granted, every filter after them gets 0x97;
- 100,000 retained topics: the store keeps ``max_retained_messages``,
  refuses the rest (counted), and tells a 5.0 QoS 1 publisher 0x97;
- a 1 MB "topic": a PUBLISH whose 65,535-byte topic has 32,768 levels
  (PUBACK 0x90, no trie node made), the same as a filter (SUBACK 0x8F),
  and with ``max_topic_length`` lowered, the DISCONNECT 0x90 that comes
  before the megabyte behind the length field is even sent;
- 65,535 topic aliases from one 5.0 client: the broker's Topic Alias
  Maximum (1024) bounds the map, alias 1025 is DISCONNECT 0x94;
- a subscriber that never reads, flooded with QoS 1: its queue stays
  within ``max_mqueue_bytes``, the rest is dropped and counted.

The long versions, with memory measured, are ``tools/flood_quotas.py``
(results in ``bench/results/``, figures in docs/reliability.md).
"""

import os
import socket

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from nanomq_twisted.config import load

from .. import packets as P
from ..e2e.support import TIMEOUT, RawClient, in_thread, start_app
from .support import shipped_copy

QUOTA_EXCEEDED = 0x97
TOPIC_NAME_INVALID = 0x90
TOPIC_FILTER_INVALID = 0x8F
TOPIC_ALIAS_INVALID = 0x94


def on_reactor(fn, *args):
    return threads.blockingCallFromThread(reactor, fn, *args)


@defer.inlineCallbacks
def start(testcase, extra=""):
    """The shipped file on free ports, with ``extra`` appended (an ``mqtt``
    block overrides single keys: HOCON merges it)."""
    workdir = os.path.abspath(testcase.mktemp())
    os.makedirs(workdir)
    path = shipped_copy(workdir)
    if extra:
        with open(path, "a", encoding="utf-8") as f:
            f.write("\n" + extra + "\n")
    app = start_app(testcase, load(path))
    port = yield app.port("tcp")
    return app.broker, port


def connected(port, client_id, level=5):
    raw = RawClient(port, TIMEOUT)
    raw.send(P.connect(client_id, level=level))
    connack = raw.recv_packet()
    assert connack[0] == 0x20 and connack[3] == 0, connack
    return raw


def suback_codes(packet, level=5):
    """The reason codes of a SUBACK laid out by ``P.suback``."""
    assert packet[0] == 0x90, packet[:8]
    i = 1
    while packet[i] & 0x80:
        i += 1
    i += 1 + 2  # remaining length, packet id
    if level == 5:
        i += 1  # empty properties
    return packet[i:]


class FloodTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_100k_subscriptions_from_one_client(self):
        broker, port = yield start(self)
        per_packet = 1000

        def scenario():
            raw = connected(port, "hoarder")
            granted = refused = 0
            for n in range(100):
                filters = [(f"dev/{n}/{i}/state", 1) for i in range(per_packet)]
                raw.send(P.subscribe(n + 1, filters, level=5))
                codes = suback_codes(raw.recv_packet())
                assert len(codes) == per_packet
                granted += codes.count(1)
                refused += codes.count(QUOTA_EXCEEDED)
            raw.close()
            return granted, refused

        self.assertEqual(broker.config.max_subscriptions, 10000)
        granted, refused = yield in_thread(scenario)
        self.assertEqual((granted, refused), (10000, 90000))
        self.assertEqual(broker.stats.refused_subscriptions, 90000)

    @defer.inlineCallbacks
    def test_100k_retained_topics(self):
        broker, port = yield start(self, "mqtt { max_retained_messages = 20000 }")
        count = 100000

        def scenario():
            raw = connected(port, "retainer", level=4)
            batch = 5000
            for start_at in range(0, count, batch):
                raw.send(b"".join(P.publish(f"ret/{i}", b"v", retain=True)
                                  for i in range(start_at, start_at + batch)) + P.PINGREQ)
                assert raw.recv_packet() == P.PINGRESP
            raw.close()
            v5 = connected(port, "v5pub")
            v5.send(P.publish("ret/more", b"v", qos=1, retain=True, mid=1, level=5))
            ack = v5.recv_packet()
            v5.send(P.publish("ret/0", b"replaced", qos=1, retain=True, mid=2, level=5))
            replaced = v5.recv_packet()
            v5.close()
            return ack, replaced

        ack, replaced = yield in_thread(scenario)
        self.assertEqual(ack, P.puback(1, QUOTA_EXCEEDED))
        # A topic already retained may still be replaced (0x10: nobody subscribed).
        self.assertEqual(replaced, P.puback(2, 0x10))
        self.assertEqual(len(broker.retained), 20000)
        self.assertEqual(broker.stats.refused_retained, count - 20000 + 1)
        self.assertEqual(broker.retained.get("ret/0").payload, b"replaced")

    @defer.inlineCallbacks
    def test_1mb_topic_with_32768_levels(self):
        broker, port = yield start(self)
        deep = "/".join(["a"] * 32768)  # 65,535 bytes, the longest a topic can be
        self.assertEqual(len(deep), 65535)
        payload = b"p" * (1024 * 1024)
        nodes = broker.retained.node_count()

        def scenario():
            raw = connected(port, "deep")
            raw.send(P.publish(deep, payload, qos=1, retain=True, mid=1, level=5))
            ack = raw.recv_packet()
            raw.send(P.subscribe(2, [(deep, 1), (deep[:-2] + "/#", 1)], level=5))
            codes = suback_codes(raw.recv_packet())
            raw.close()
            return ack, codes

        ack, codes = yield in_thread(scenario)
        self.assertEqual(ack, P.puback(1, TOPIC_NAME_INVALID))
        self.assertEqual(codes, bytes([TOPIC_FILTER_INVALID] * 2))
        self.assertEqual(broker.retained.node_count(), nodes)
        self.assertEqual(broker.subscriptions.filter_count, 0)
        self.assertEqual(broker.stats.refused_topics, 3)

    @defer.inlineCallbacks
    def test_long_topic_refused_before_the_body_is_sent(self):
        broker, port = yield start(self, "mqtt { max_topic_length = 1024 }")

        def scenario():
            raw = connected(port, "long")
            # The fixed header of a PUBLISH of 2 + 65,535 + 1 MiB bytes and
            # the topic length field: nothing else.
            body = 2 + 65535 + 1 + 1024 * 1024
            raw.send(b"\x30" + P.varint(body) + b"\xff\xff")
            return raw.recv_until_closed()

        data = yield in_thread(scenario)
        self.assertEqual(data[:3], b"\xe0" + data[1:2] + bytes([TOPIC_NAME_INVALID]))
        # All the broker ever had: the CONNECT and those six bytes.
        self.assertLess(broker.stats.bytes_received, 64)

    @defer.inlineCallbacks
    def test_65535_topic_aliases(self):
        broker, port = yield start(self)
        self.assertEqual(broker.limits.topic_alias_maximum, 1024)

        def alias_publish(alias, topic):
            return P.publish(topic, b"x", level=5, properties=P.props(P.p_u16(0x23, alias)))

        def aliases():
            return len(broker.connections["aliaser"].inbound.aliases)

        def scenario():
            raw = connected(port, "aliaser")
            raw.send(b"".join(alias_publish(a, f"alias/{a}") for a in range(1, 1025))
                     + P.PINGREQ)
            assert raw.recv_packet() == P.PINGRESP
            held = on_reactor(aliases)
            raw.send(alias_publish(1025, "alias/1025"))
            answer = raw.recv_until_closed()
            # All 65,535 in one write: closed at 1,025 as well (the kernel
            # may reset it, the rest being unread, before the DISCONNECT is
            # read), and never more than 1,024 held meanwhile.
            flood = connected(port, "aliaser2")
            try:
                flood.send(b"".join(alias_publish(a, f"alias/{a}") for a in range(1, 65536)))
                flood.recv_until_closed()
            except (BrokenPipeError, ConnectionResetError):
                pass
            flood.close()
            return held, answer

        held, data = yield in_thread(scenario)
        self.assertEqual(held, 1024)
        self.assertEqual(data[0], 0xE0)
        self.assertEqual(data[2], TOPIC_ALIAS_INVALID)
        self.assertNotIn("aliaser", broker.connections)
        self.assertNotIn("aliaser2", broker.connections)

    @defer.inlineCallbacks
    def test_subscriber_that_never_reads_is_held_to_max_mqueue_bytes(self):
        limit = 256 * 1024
        broker, port = yield start(self, f"mqtt {{ max_mqueue_bytes = {limit} }}")
        payload = b"q" * 16384

        def state():
            session = broker.sessions["slow"]
            conn = session.conn
            return conn.congested, session.queue_bytes, len(session.queue)

        def scenario():
            slow = socket.socket()
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.settimeout(TIMEOUT)
            slow.connect(("127.0.0.1", port))
            try:
                slow.sendall(P.connect("slow") + P.subscribe(1, [("flood/#", 1)]))
                head = b""
                while len(head) < 4 + 5:
                    head += slow.recv(9 - len(head))
                pub = connected(port, "flooder", level=4)
                mid = 0
                for _ in range(16):
                    batch = []
                    for _ in range(64):
                        mid += 1
                        batch.append(P.publish("flood/x", payload, qos=1, mid=mid))
                    pub.send(b"".join(batch) + P.PINGREQ)
                    while pub.recv_packet() != P.PINGRESP:
                        pass
                pub.close()
                return on_reactor(state)
            finally:
                slow.close()

        congested, queue_bytes, queued = yield in_thread(scenario)
        self.assertTrue(congested)
        self.assertLessEqual(queue_bytes, limit)
        self.assertLessEqual(queued, limit // len(payload))
        self.assertGreater(broker.stats.dropped_queue_bytes, 0)
        self.assertEqual(broker.stats.dropped_queue_full, 0)
