# -*- test-case-name: tests.e2e.test_robustness -*-
"""
The robustness suite: hostile and broken peers over real sockets.

The broker runs in-process (``start_broker``) so the tests can look at its
counters and at the protocol of one connection.  Every scenario ends with a
paho client proving that the broker still serves; every error the broker
logs as a failure (an "internal error" while handling bytes) fails the
test through trial's logged-error check.

- a corpus with one case for each error the codec raises, before and after
  CONNECT, at 3.1.1 and 5.0;
- seeded random bytes, byte-flipped valid packets and every truncation of
  valid packets;
- remaining lengths far beyond ``max_packet_size``;
- a slowloris CONNECT dribbled byte by byte (the CONNECT timeout ends it);
- a burst of 2,000 connects (the listen backlog holds);
- a subscriber that never reads while a publisher floods it: QoS 0 is
  dropped and counted, QoS 1 queued up to ``max_mqueue_len`` then dropped
  and counted, and the bytes buffered for it stop growing;
- ``max_connections`` on a listener.

Durations are bounded by the test timeouts; nothing sleeps.
"""

import random
import selectors
import socket

from twisted.internet import defer, reactor, task, threads
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial import unittest

from nanomq_twisted.core.broker import OUTBOX_LIMIT
from nanomq_twisted.core.connection import FLUSH_SLICE

from .. import packets as P
from .support import TIMEOUT, Clients, Dribbler, RawClient, in_thread, start_broker

MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
TOPIC_NAME_INVALID = 0x90
PACKET_TOO_LARGE = 0x95
CLOSE = None  # 3.x reaction, and any reaction before CONNACK: a plain close


def raw_connect(port, client_id, level=4, timeout=TIMEOUT):
    """A raw socket past CONNECT/CONNACK."""
    raw = RawClient(port, timeout)
    raw.send(P.connect(client_id, level=level))
    connack = raw.recv_packet()
    assert connack[0] == 0x20 and connack[3] == 0, connack
    return raw


def assert_still_serving(clients, name="healthy"):
    client = clients(name, 4)
    client.connect()
    client.subscribe("alive/" + name, 1)
    client.publish("alive/" + name, b"yes", 1)
    got = client.expect()
    assert got.payload == b"yes", got.payload
    client.disconnect()


def on_reactor(fn, *args):
    """Run ``fn`` on the reactor thread from a scenario thread."""
    return threads.blockingCallFromThread(reactor, fn, *args)


def buffered(transport):
    """Bytes a Twisted transport holds for its peer, not yet written."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def after_connect_cases():
    """``(name, data(level), {level: expected reason})`` for bytes sent on
    an established connection; the v5 reason is checked in the DISCONNECT,
    3.1.1 just sees the close."""

    def publish_body(level, topic_bytes, rest=b""):
        props = b"\x00" if level == 5 else b""
        return topic_bytes + props + rest

    return [
        ("reserved packet type 0", lambda lv: b"\x00\x00", MALFORMED),
        ("reserved packet type 15 in 3.1.1 / AUTH without method in 5",
         lambda lv: b"\xf0\x00" if lv == 4 else P.auth(0x18), None),
        ("bad SUBSCRIBE flags",
         lambda lv: b"\x80" + P.subscribe(1, [("t", 0)], level=lv)[1:], MALFORMED),
        ("bad PUBREL flags", lambda lv: b"\x60\x02\x00\x01", MALFORMED),
        ("remaining length of 5 bytes", lambda lv: b"\x30\xff\xff\xff\xff\x7f", MALFORMED),
        ("PUBLISH QoS 3",
         lambda lv: b"\x36" + P.publish("t", b"x", qos=1, mid=1, level=lv)[1:], MALFORMED),
        ("truncated PUBLISH topic", lambda lv: b"\x30\x01\x00", MALFORMED),
        ("PUBLISH topic overruns", lambda lv: b"\x30\x03\x00\x09a", MALFORMED),
        ("invalid UTF-8 topic",
         lambda lv: P.fixed(0x30, publish_body(lv, b"\x00\x02\xff\xfe", b"x")), MALFORMED),
        ("U+0000 in topic",
         lambda lv: P.fixed(0x30, publish_body(lv, b"\x00\x03a\x00b", b"x")), MALFORMED),
        ("truncated packet identifier", lambda lv: b"\x32\x04\x00\x01a\x00", MALFORMED),
        ("packet identifier 0",
         lambda lv: P.fixed(0x32, b"\x00\x01a\x00\x00" + (b"\x00" if lv == 5 else b"")),
         PROTOCOL_ERROR),
        ("wildcard topic", lambda lv: P.publish("a/#", b"x", level=lv), TOPIC_NAME_INVALID),
        ("empty topic",
         lambda lv: P.fixed(0x30, publish_body(lv, b"\x00\x00", b"x")),
         {4: MALFORMED, 5: PROTOCOL_ERROR}),
        ("second CONNECT", lambda lv: P.connect("again", level=lv), PROTOCOL_ERROR),
        ("SUBSCRIBE without filters",
         lambda lv: P.fixed(0x82, b"\x00\x01" + (b"\x00" if lv == 5 else b"")),
         PROTOCOL_ERROR),
        ("subscription QoS 3",
         lambda lv: P.fixed(0x82, b"\x00\x01" + (b"\x00" if lv == 5 else b"")
                            + P.string("t") + b"\x03"), MALFORMED),
        ("PUBACK with packet id 0", lambda lv: b"\x40\x02\x00\x00", PROTOCOL_ERROR),
        ("PUBACK with trailing bytes in 3.1.1 / bad reason in 5",
         lambda lv: b"\x40\x03\x00\x01\x01", {4: MALFORMED, 5: PROTOCOL_ERROR}),
        ("string overruns (UNSUBSCRIBE)",
         lambda lv: P.fixed(0xA2, b"\x00\x01" + (b"\x00" if lv == 5 else b"") + b"\x00\x09ab"),
         MALFORMED),
        ("server-only packet (CONNACK)",
         lambda lv: b"\x20\x02\x00\x00" if lv == 4 else b"\x20\x03\x00\x00\x00",
         PROTOCOL_ERROR),
        ("remaining length 256 MiB", lambda lv: b"\x30\xff\xff\xff\x7f", PACKET_TOO_LARGE),
        ("remaining length over max_packet_size",
         lambda lv: b"\x30\x80\x80\x80\x01" + b"\x00\x01t", PACKET_TOO_LARGE),
    ]


V5_ONLY_CASES = [
    ("unknown property", P.fixed(0x30, b"\x00\x01t\x02\x7f\x00x"), MALFORMED),
    ("property not allowed in PUBLISH", P.fixed(0x30, b"\x00\x01t\x02\x24\x01x"), MALFORMED),
    ("property repeated",
     P.fixed(0x30, b"\x00\x01t" + P.props(P.p_byte(0x01, 1), P.p_byte(0x01, 1)) + b"x"),
     PROTOCOL_ERROR),
    ("property length overruns", P.fixed(0x30, b"\x00\x01t\x09\x01"), MALFORMED),
    ("retain handling 3",
     P.fixed(0x82, b"\x00\x01\x00" + P.string("t") + b"\x30"), PROTOCOL_ERROR),
    ("no local on a shared subscription",
     P.fixed(0x82, b"\x00\x01\x00" + P.string("$share/g/t") + b"\x04"), PROTOCOL_ERROR),
    # 3.1.1 tolerates it (docs/compatibility.md), 5.0 does not.
    ("DUP on QoS 0", b"\x38" + P.publish("t", b"x", level=5)[1:], PROTOCOL_ERROR),
    ("topic alias 0",
     P.fixed(0x30, b"\x00\x01t" + P.props(P.p_u16(0x23, 0)) + b"x"), 0x94),
]


def before_connect_cases():
    """``(name, data, expected bytes before the close)``."""
    good = P.connect("pre", level=4)
    return [
        ("first packet not CONNECT", P.PINGREQ, b""),
        ("PUBLISH first", P.publish("t", b"x"), b""),
        ("protocol level 6", P.connect("x", level=6), b"\x20\x02\x00\x01"),
        ("protocol name MQTX", P.connect("x", name="MQTX"), b"\x20\x02\x00\x01"),
        ("reserved CONNECT flag", good[:9] + bytes((good[9] | 1,)) + good[10:], b""),
        ("will QoS 3", P.connect("w", will_topic="t", will_qos=3), b""),
        ("will retain without will flag", P.connect("w", connect_flags=0x22), b""),
        ("will topic with a wildcard", P.connect("w", will_topic="a/+"), b""),
        ("CONNECT trailing bytes", P.fixed(0x10, good[2:] + b"zz"), b""),
        ("CONNECT length 256 MiB", b"\x10\xff\xff\xff\x7f", b""),
        ("CONNECT remaining length of 5 bytes", b"\x10\xff\xff\xff\xff\x7f", b""),
        ("CONNECT empty", b"\x10\x00", b""),
        ("password without user name (3.1.1)", _password_only(), b""),
    ]


def _password_only():
    # Flags 0x42: password + clean session, no user name [MQTT-3.1.2-22].
    body = P.string("MQTT") + b"\x04\x42\x00\x3c" + P.string("pw") + P.string("secret")
    return P.fixed(0x10, body)


@defer.inlineCallbacks
def start(testcase, conf=""):
    """``start_broker``, plus a cleanup (run before the broker stops) that
    waits until the server side of every connection has closed."""
    running = yield start_broker(testcase, conf)
    factory = running.listener().factory
    testcase.addCleanup(poll, lambda: factory.open_connections == 0, "connections to close")
    return running


@defer.inlineCallbacks
def poll(predicate, what, timeout=TIMEOUT, interval=0.02):
    """Bounded Deferred polling on the reactor."""
    for _ in range(int(timeout / interval)):
        if predicate():
            return
        yield task.deferLater(reactor, interval, lambda: None)
    raise AssertionError(f"timed out waiting for {what}")


class MalformedCorpusTests(unittest.TestCase):
    timeout = 60

    def assertReaction(self, raw, level, reason, name):
        if isinstance(reason, dict):
            reason = reason[level]
        data = raw.recv_until_closed()
        if level == 5 and reason is not None:
            self.assertTrue(data[:1] == b"\xe0", f"{name}: no DISCONNECT, got {data!r}")
            self.assertEqual(data[2], reason, f"{name}: reason 0x{data[2]:02x}")
        elif level == 4:
            self.assertEqual(data, b"", f"{name}: 3.1.1 expects a plain close")
        else:
            self.assertIn(data[:1], (b"", b"\xe0"), name)

    @defer.inlineCallbacks
    def test_every_codec_error_after_connect(self):
        running = yield start(self, "mqtt.max_packet_size = 1MB\n")

        def scenario(clients):
            failed = []

            def case(name, level, data, reason):
                raw = raw_connect(running.port, f"c{level}", level, timeout=5)
                try:
                    raw.send(data)
                    self.assertReaction(raw, level, reason, name)
                except Exception as error:  # noqa: BLE001 -- report every case
                    failed.append(f"{name} (level {level}): {error!r}")
                finally:
                    raw.close()

            for name, data, reason in after_connect_cases():
                for level in (4, 5):
                    case(name, level, data(level), reason)
            for name, data, reason in V5_ONLY_CASES:
                case(name, 5, data, reason)
            self.assertEqual(failed, [])
            assert_still_serving(clients)

        yield in_thread(scenario, Clients(self, running.port))

    @defer.inlineCallbacks
    def test_every_codec_error_before_connect(self):
        running = yield start(self)

        def scenario(clients):
            failed = []
            for name, data, expected in before_connect_cases():
                raw = RawClient(running.port, timeout=5)
                try:
                    raw.send(data)
                    got = raw.recv_until_closed()
                    if got != expected:
                        failed.append(f"{name}: {got!r}")
                except Exception as error:  # noqa: BLE001 -- report every case
                    failed.append(f"{name}: {error!r}")
                finally:
                    raw.close()
            self.assertEqual(failed, [])
            assert_still_serving(clients)

        yield in_thread(scenario, Clients(self, running.port))
        yield poll(lambda: running.broker.connection_count == 0, "all connections gone")

    @defer.inlineCallbacks
    def test_random_flipped_and_truncated_input(self):
        """Seeded fuzz: whatever the broker answers, it must not fail
        internally, must end each connection once the peer half-closes, and
        must keep serving."""
        running = yield start(self)
        rng = random.Random(20240609)
        valid_v4 = [
            P.publish("fuzz/a", b"payload", qos=1, mid=7),
            P.publish("fuzz/b", b"p", qos=2, mid=8, retain=True),
            P.subscribe(3, [("fuzz/#", 1), ("x/+", 2)]),
            P.unsubscribe(4, ["fuzz/#"]),
            P.puback(1), P.pubrec(2), P.pubrel(3), P.pubcomp(4), P.PINGREQ,
        ]
        valid_v5 = [
            P.publish("fuzz/a", b"payload", qos=1, mid=7, level=5,
                      properties=P.props(P.p_u32(0x02, 30), P.p_pair(0x26, "k", "v"))),
            P.subscribe(3, [("fuzz/#", 1)], level=5, properties=P.props(P.p_varint(0x0B, 5))),
            P.unsubscribe(4, ["fuzz/#"], level=5),
            P.puback(1, 0x10, b"\x00"), P.disconnect(0x04), P.auth(0x18),
        ]
        connects = [P.connect("fz4", level=4, username="u", password=b"p",
                              will_topic="w/t", will_payload=b"bye", will_qos=1),
                    P.connect("fz5", level=5)]

        def exchange(port, level, data):
            sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            try:
                if level:
                    sock.sendall(P.connect(f"fuzz{level}", level=level))
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(65536):
                    pass
            finally:
                sock.close()

        def mutate(packet):
            data = bytearray(packet)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            return bytes(data)

        def scenario(clients):
            port = running.port
            for _ in range(60):
                level = rng.choice((4, 5))
                size = rng.randrange(1, 200)
                exchange(port, level, bytes(rng.randrange(256) for _ in range(size)))
            for _ in range(80):
                level = rng.choice((4, 5))
                packet = rng.choice(valid_v4 if level == 4 else valid_v5)
                exchange(port, level, mutate(packet) + mutate(packet))
            for _ in range(40):
                exchange(port, None, mutate(rng.choice(connects)))
                # CONNECT type with a random body of a consistent length.
                body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
                exchange(port, None, P.fixed(0x10, body))
            for packet in valid_v4:
                for cut in range(1, len(packet)):
                    exchange(port, 4, packet[:cut])
            for packet in connects:
                for cut in range(1, len(packet)):
                    exchange(port, None, packet[:cut])
            assert_still_serving(clients)

        yield in_thread(scenario, Clients(self, running.port))
        yield poll(lambda: running.broker.connection_count == 0, "all fuzz connections gone")


class HostilePeerTests(unittest.TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_slowloris_connect_is_closed_by_connect_timeout(self):
        running = yield start(self)
        factory = running.listener().factory
        factory.connect_timeout = 0.5
        connect = P.connect("slowloris-" + "x" * 200)
        peers = []
        for _ in range(3):
            peer = Dribbler(connect, 0.02)
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", running.port)
            yield connectProtocol(endpoint, peer)
            peers.append(peer)
        silent = Dribbler(b"", 1.0)
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", running.port), silent)
        yield defer.gatherResults([p.closed for p in peers + [silent]])
        for peer in peers:
            # Closed by the deadline, long before the CONNECT was complete.
            self.assertLess(peer.sent, len(connect))
            self.assertEqual(peer.received, b"")
        self.assertEqual(running.broker.connection_count, 0)
        yield in_thread(assert_still_serving, Clients(self, running.port))

    @defer.inlineCallbacks
    def test_burst_of_2000_connects(self):
        running = yield start(self)
        broker = running.broker
        count = 2000

        def scenario(clients):
            addr = ("127.0.0.1", running.port)
            socks = []
            try:
                selector = selectors.DefaultSelector()
                for _ in range(count):
                    sock = socket.socket()
                    sock.setblocking(False)
                    sock.connect_ex(addr)
                    socks.append(sock)
                    selector.register(sock, selectors.EVENT_WRITE)
                pending = set(socks)
                for _ in range(100):
                    if not pending:
                        break
                    for key, _events in selector.select(timeout=TIMEOUT):
                        pending.discard(key.fileobj)
                        selector.unregister(key.fileobj)
                selector.close()
                assert not pending, f"{len(pending)} connects never completed"
                errors = [s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) for s in socks]
                assert not any(errors), sorted(set(errors))
                for i, sock in enumerate(socks):
                    sock.setblocking(True)
                    sock.settimeout(TIMEOUT)
                    sock.sendall(P.connect(f"flood-{i}"))
                for sock in socks:
                    connack = b""
                    while len(connack) < 4:
                        chunk = sock.recv(4 - len(connack))
                        assert chunk, "closed before CONNACK"
                        connack += chunk
                    assert connack == b"\x20\x02\x00\x00", connack
                assert on_reactor(lambda: broker.connection_count) == count
                # Served during the flood.  (A raw socket: with ~4,000 fds
                # open in this process paho's select() cannot take its fd.)
                raw = raw_connect(running.port, "during")
                raw.send(P.subscribe(1, [("during", 1)]))
                assert raw.recv_packet() == b"\x90\x03\x00\x01\x01"
                raw.send(P.publish("during", b"ok", qos=1, mid=2))
                got = {raw.recv_packet() for _ in range(2)}
                assert P.puback(2) in got, got
                raw.close()
            finally:
                for sock in socks:
                    sock.close()
            assert_still_serving(clients)

        yield in_thread(scenario, Clients(self, running.port))
        yield poll(lambda: broker.connection_count == 0, "the flood to disconnect")
        self.assertEqual(broker.stats.connects, count + 2)

    @defer.inlineCallbacks
    def test_subscriber_that_never_reads(self):
        """QoS 0 is dropped and counted once the client is a slow consumer,
        QoS 1 waits in a bounded queue; the bytes the broker buffers for it
        stop growing; other clients are served; reading again resumes it."""
        running = yield start(self, "mqtt.max_mqueue_len = 50\n")
        broker = running.broker
        payload = b"z" * 16384
        chunk = 64  # 1 MiB of payload per round trip

        def state():
            conn = broker.connections["slow"]
            stats = broker.stats
            return {
                "congested": conn.congested,
                # What the broker holds for it: Twisted's write buffer plus
                # the core's outbox (kept while the transport pushes back).
                "held": buffered(conn.sink.transport) + conn.outbox_bytes,
                "dropped": stats.dropped,
                "sent": stats.sent,
                "queued": len(conn.session.queue),
                "full": stats.dropped_queue_full,
                "inflight": len(conn.session.inflight),
            }

        def flood(pub, qos, rounds):
            mid = 0
            for _ in range(rounds):
                batch = []
                for _ in range(chunk):
                    mid = mid % 65535 + 1
                    batch.append(P.publish("flood/x", payload, qos=qos,
                                           mid=mid if qos else None))
                pub.send(b"".join(batch) + P.PINGREQ)
                while pub.recv_packet() != P.PINGRESP:
                    pass  # PUBACKs

        def scenario(clients):
            slow = socket.socket()
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.settimeout(TIMEOUT)
            slow.connect(("127.0.0.1", running.port))
            try:
                slow.sendall(P.connect("slow", level=4)
                             + P.subscribe(1, [("flood/#", 1), ("after", 0)]))
                head = b""
                while len(head) < 4 + 5:  # CONNACK, SUBACK
                    head += slow.recv(9 - len(head))
                pub = raw_connect(running.port, "flooder")
                # Phase 1: flood QoS 0 until the broker gives up on "slow".
                for _ in range(64):
                    flood(pub, 0, 1)
                    if on_reactor(state)["congested"]:
                        break
                before = on_reactor(state)
                assert before["congested"], "never marked as a slow consumer"
                # Bounded: the outbox limit, one slice handed to Twisted
                # past its high-water mark, and one packet on either side.
                bound = 2 * FLUSH_SLICE + OUTBOX_LIMIT + 4 * (len(payload) + 16)
                assert before["held"] <= bound, (before, bound)
                # Phase 2: further QoS 0 messages are dropped, counted --
                # all of them, but those the kernel made room for meanwhile
                # (a slice of the outbox left, as many got in).
                flood(pub, 0, 4)
                after = on_reactor(state)
                assert after["held"] <= bound, (after, bound)
                dropped = after["dropped"] - before["dropped"]
                delivered = after["sent"] - before["sent"]
                assert dropped + delivered == 4 * chunk, (dropped, delivered)
                assert dropped >= 4 * chunk - (2 * FLUSH_SLICE) // len(payload) - 2, dropped
                # Phase 3: QoS 1 queues up to max_mqueue_len, then drops.
                flood(pub, 1, 2)
                last = on_reactor(state)
                assert last["held"] <= bound, (last, bound)
                # Every message is accounted for: queued (at most 50), in
                # flight (when the kernel took a slice meanwhile) or
                # dropped as queue-full.
                queued, inflight = last["queued"], last["inflight"]
                full = last["full"] - after["full"]
                assert queued <= 50, queued
                assert queued + inflight + full == 2 * chunk, (queued, inflight, full)
                assert_still_serving(clients)
                # Reading again resumes delivery: the queue drains, the
                # congestion clears and new messages arrive.
                for _ in range(100000):
                    assert slow.recv(1 << 20), "closed"
                    now = on_reactor(state)
                    if not now["congested"] and not now["queued"]:
                        break
                pub.send(P.publish("after", b"resumed"))
                buf = b""
                while b"resumed" not in buf:
                    data = slow.recv(1 << 20)
                    assert data, "closed"
                    buf = buf[-64:] + data
                pub.close()
            finally:
                slow.close()

        yield in_thread(scenario, Clients(self, running.port))


class MaxConnectionsTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def test_listener_max_connections(self):
        running = yield start(
            self, 'listeners.tcp { bind = "127.0.0.1:0", max_connections = 2 }\n')
        factory = running.listener().factory
        self.assertEqual(factory.max_connections, 2)

        def scenario(clients):
            first = raw_connect(running.port, "one")
            second = raw_connect(running.port, "two", 5)
            refused5 = clients.raw()
            refused5.send(P.connect("three", level=5))
            self.assertEqual(refused5.recv_until_closed(), b"\x20\x03\x00\x97\x00")
            refused4 = clients.raw()
            refused4.send(P.connect("four", level=4))
            self.assertEqual(refused4.recv_until_closed(), b"\x20\x02\x00\x03")
            first.close()
            second.close()

        yield in_thread(scenario, Clients(self, running.port))
        yield poll(lambda: factory.open_connections == 0, "closes to be seen")
        self.assertNotIn("three", running.broker.sessions)
        yield in_thread(assert_still_serving, Clients(self, running.port))
