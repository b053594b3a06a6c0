# -*- test-case-name: tests.e2e.test_slowloris -*-
"""
Slow peers on the listeners the shipped configuration does not have (TLS,
QUIC; tests/shipped/test_slowloris.py covers TCP, WebSocket and the REST
API), the inbound rate limit, and connections per address, over real
loopback sockets with short deadlines configured in the test's HOCON.

Every slow peer is a reactor-driven client protocol whose ``connectionLost``
the test awaits; the broker must serve a real client meanwhile.  Expected
bytes come from ``tests.packets``.  Nothing sleeps.
"""

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.protocol import Factory
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.trial.unittest import TestCase

from nanomq_twisted.transport.quic.client import client_configuration, connect_quic

from .. import packets as P
from .support import Clients, Dribbler, RawClient, in_thread
from .test_robustness import assert_still_serving
from .transport_support import new_certs, q, ssl_block, start_with

SHORT = "listeners { connect_timeout = 500ms, handshake_timeout = 500ms }\n"

INTERVAL = 0.05


class SlowTlsTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.certs = new_certs(self)
        self.running, self.ports = yield start_with(
            self, SHORT + ssl_block(self.certs), ("tcp", "ssl"))
        self.stats = self.running.broker.stats

    def tcp(self, peer):
        return connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.ports["ssl"]), peer)

    @defer.inlineCallbacks
    def test_handshake_never_finished(self):
        """A peer that sends nothing, or a ClientHello a byte at a time, is
        dropped at the handshake deadline; no MQTT connection is made."""
        hello_start = bytes.fromhex("16030100c4010000c00303") + b"\x00" * 200
        peers = [Dribbler(b"", 1.0), Dribbler(hello_start, INTERVAL)]
        for peer in peers:
            yield self.tcp(peer)
        yield in_thread(assert_still_serving, Clients(self, self.ports["tcp"]))
        yield defer.gatherResults([peer.closed for peer in peers])
        self.assertLess(peers[1].sent, len(hello_start))
        self.assertEqual(self.stats.handshake_timeouts, 2)
        self.assertEqual(self.stats.connect_timeouts, 0)

    @defer.inlineCallbacks
    def test_connect_dribbled_inside_tls(self):
        """The handshake done, a CONNECT sent a byte (a TLS record) at a
        time meets the CONNECT deadline."""
        with open(self.certs.ca, "rb") as f:
            trust = Certificate.loadPEM(f.read())
        options = optionsForClientTLS("localhost", trustRoot=trust)
        endpoint = wrapClientTLS(
            options, TCP4ClientEndpoint(reactor, "127.0.0.1", self.ports["ssl"]))
        connect = P.connect("tls-slowloris-" + "x" * 100)
        peer = Dribbler(connect, INTERVAL)
        yield connectProtocol(endpoint, peer)
        yield peer.closed
        self.assertLess(peer.sent, len(connect))
        self.assertEqual(self.stats.connect_timeouts, 1)
        self.assertEqual(self.stats.handshake_timeouts, 0)


class _Mute(protocol.Protocol):
    """A QUIC peer that finishes the handshake and never opens its stream
    (it never writes, so the server never sees the stream)."""

    def __init__(self):
        self.lost = defer.Deferred()

    def connectionLost(self, reason):
        self.lost.callback(None)


class SlowQuicTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_no_stream_opened(self):
        """A QUIC connection kept alive without an MQTT stream would never
        meet the CONNECT timeout: it is closed at the handshake deadline."""
        certs = new_certs(self)
        conf = SHORT + (
            "listeners.quic {\n"
            '  bind = "127.0.0.1:0"\n'
            f"  keyfile = {q(certs.server_key)}\n"
            f"  certfile = {q(certs.server_cert)}\n"
            "}\n")
        running, ports = yield start_with(self, conf, ("tcp", "quic"))
        configuration = client_configuration(server_name="localhost", cafile=certs.ca)
        mute = _Mute()
        client = yield connect_quic(reactor, "127.0.0.1", ports["quic"], configuration,
                                    Factory.forProtocol(lambda: mute))
        yield in_thread(assert_still_serving, Clients(self, ports["tcp"]))
        yield mute.lost
        yield client.transport.session.terminated_deferred
        self.assertEqual(running.broker.stats.handshake_timeouts, 1)


class RateLimitTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_publisher_over_its_rate_is_slowed_not_dropped(self):
        """``conn_messages_in = "20,1s"``: a publisher sends 60 QoS 1
        messages at once; the broker stops reading it until the budget is
        back (counted), never disconnects it, and acknowledges and delivers
        all 60, in order."""
        running, ports = yield start_with(
            self, 'rate_limit { conn_messages_in = "20,1s" }\n', ("tcp",))
        stats = running.broker.stats

        def scenario():
            sub = RawClient(ports["tcp"])
            sub.send(P.connect("rate-sub"))
            assert sub.recv_packet() == P.connack()
            sub.send(P.subscribe(1, [("rate/t", 0)]))
            assert sub.recv_packet() == P.suback(1, [0])
            pub = RawClient(ports["tcp"])
            pub.send(P.connect("rate-pub"))
            assert pub.recv_packet() == P.connack()
            pub.send(b"".join(P.publish("rate/t", b"%d" % i, qos=1, mid=i + 1)
                              for i in range(60)))
            acks = [pub.recv_packet() for _ in range(60)]
            assert acks == [P.puback(i + 1) for i in range(60)]
            got = [sub.recv_packet() for _ in range(60)]
            assert got == [P.publish("rate/t", b"%d" % i) for i in range(60)]
            pub.send(P.PINGREQ)
            assert pub.recv_packet() == P.PINGRESP
            pub.close()
            sub.close()

        yield in_thread(scenario)
        self.assertGreaterEqual(stats.rate_limited, 1)


class PerAddressTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_third_connection_from_one_address(self):
        """``max_connections_per_address = 2`` over every listener: the
        third connection from 127.0.0.1 gets CONNACK 0x97 (5.0) / 0x03
        (3.1.1) and is closed; once one closes, a new one is served."""
        running, ports = yield start_with(
            self, "listeners.max_connections_per_address = 2\n"
                  'listeners.tcp.second { bind = "127.0.0.1:0" }\n',
            ("tcp", "tcp.second"))

        def scenario():
            one = RawClient(ports["tcp"])
            one.send(P.connect("one"))
            assert one.recv_packet() == P.connack()
            two = RawClient(ports["tcp.second"])
            two.send(P.connect("two", level=5))
            connack = two.recv_packet()
            assert (connack[0], connack[2:4]) == (0x20, b"\x00\x00"), connack
            refused5 = RawClient(ports["tcp"])
            refused5.send(P.connect("three", level=5))
            assert refused5.recv_until_closed() == P.connack(code=0x97, level=5)
            refused4 = RawClient(ports["tcp.second"])
            refused4.send(P.connect("four"))
            assert refused4.recv_until_closed() == P.connack(code=0x03)
            one.close()
            return two

        two = yield in_thread(scenario)
        self.addCleanup(two.close)
        # Wait for the broker to see the close (its count drops to one).
        broker = running.broker
        while broker.admission.counts.get("127.0.0.1") != 1:
            yield deferLater(0.02)

        def again():
            five = RawClient(ports["tcp"])
            five.send(P.connect("five"))
            assert five.recv_packet() == P.connack()
            five.close()

        yield in_thread(again)
        self.assertEqual(broker.stats.refused_per_address, 2)
        self.assertNotIn("three", broker.sessions)


def deferLater(seconds):
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)
