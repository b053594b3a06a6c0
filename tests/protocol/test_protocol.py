# -*- test-case-name: tests.protocol.test_protocol -*-
"""
``MQTTServerProtocol`` on a ``StringTransport`` with a ``task.Clock``:
keepalive at keepalive × ``keepalive_multiplier``, the CONNECT deadline,
the v5 DISCONNECT on keepalive timeout, and push-producer backpressure.
Expected bytes are written by hand (``tests/packets.py``).
"""

from twisted.internet import task
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.config import loads
from nanomq_twisted.core.auth import PENDING
from nanomq_twisted.core.broker import OUTBOX_LIMIT, Broker
from nanomq_twisted.transport.protocol import CONNECT_TIMEOUT, MQTTServerFactory

from .. import packets as P
from ..driving import drive

EPSILON = 0.01


class ProtocolTestCase(SynchronousTestCase):
    conf = ""

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1000.0)
        config = loads("listeners.tcp { bind = \"127.0.0.1:0\" }\n" + self.conf,
                       path="<test>")
        self.broker = Broker(config.mqtt, clock=self.clock.seconds, sys_events=False)
        drive(self, self.broker, self.clock)
        self.factory = MQTTServerFactory(self.broker, self.clock)

    def connection(self):
        protocol = self.factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.addCleanup(self.lose, protocol)
        return protocol, transport

    def lose(self, protocol):
        # The transport's connectionLost; a second call is a no-op.
        protocol.connectionLost(Failure(ConnectionDone()))

    def connected(self, client_id, level=4, keepalive=10, **kwargs):
        protocol, transport = self.connection()
        props = P.props(P.p_u16(0x21, 10)) if level == 5 else b"\x00"
        protocol.dataReceived(
            P.connect(client_id, level=level, keepalive=keepalive, properties=props,
                      **kwargs)
        )
        connack = transport.value()
        self.assertEqual((connack[0], connack[3]), (0x20, 0))
        transport.clear()
        return protocol, transport


class KeepaliveTests(ProtocolTestCase):
    def test_keepalive_one_and_a_half_MQTT_3_1_2_24(self):
        _protocol, transport = self.connected("k", keepalive=10)
        self.clock.advance(15.0 - EPSILON)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(2 * EPSILON)
        self.assertTrue(transport.disconnecting)
        # 3.1.1: a plain close, no bytes.
        self.assertEqual(transport.value(), b"")

    def test_any_packet_resets_keepalive(self):
        protocol, transport = self.connected("k", keepalive=10)
        self.clock.advance(10.0)
        protocol.dataReceived(P.PINGREQ)
        self.assertEqual(transport.value(), P.PINGRESP)
        self.clock.advance(15.0 - EPSILON)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(2 * EPSILON)
        self.assertTrue(transport.disconnecting)

    def test_keepalive_zero_disables(self):
        _protocol, transport = self.connected("k", keepalive=0)
        self.clock.advance(10.0**6)
        self.assertFalse(transport.disconnecting)

    def test_v5_keepalive_timeout_disconnect_0x8d(self):
        _protocol, transport = self.connected("k5", level=5, keepalive=4)
        self.clock.advance(6.0 - EPSILON)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(2 * EPSILON)
        self.assertEqual(
            transport.value(),
            P.disconnect(0x8D, P.props(P.p_str(0x1F, "keep alive timeout"))),
        )
        self.assertTrue(transport.disconnecting)


class SlowAuthenticator:
    """Answers later, as HTTP auth does."""

    def __init__(self):
        self.pending = []

    def authenticate(self, request, done):
        self.pending.append(done)
        return PENDING


class AsyncAuthKeepaliveTests(ProtocolTestCase):
    def test_keepalive_enforced_after_asynchronous_auth(self):
        self.broker.authenticator = auth = SlowAuthenticator()
        protocol, transport = self.connection()
        protocol.dataReceived(P.connect("slow", keepalive=10))
        self.assertEqual(transport.value(), b"")
        self.clock.advance(1.0)
        auth.pending.pop()(0)
        self.clock.advance(0)  # the flush of output made outside a turn
        self.assertEqual(transport.value(), P.connack())
        # Keepalive counts from the CONNECT, one second ago.
        self.clock.advance(14.0 - EPSILON)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(2 * EPSILON)
        self.assertTrue(transport.disconnecting)


class MultiplierTests(ProtocolTestCase):
    conf = "mqtt.keepalive_multiplier = 2\n"

    def test_keepalive_multiplier_from_config(self):
        _protocol, transport = self.connected("k", keepalive=10)
        self.clock.advance(20.0 - EPSILON)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(2 * EPSILON)
        self.assertTrue(transport.disconnecting)


class ConnectTimeoutTests(ProtocolTestCase):
    def test_no_connect_in_time_closes(self):
        _protocol, transport = self.connection()
        self.clock.advance(CONNECT_TIMEOUT - EPSILON)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(2 * EPSILON)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")

    def test_connect_in_time_cancels_deadline(self):
        _protocol, transport = self.connected("c", keepalive=0)
        self.clock.advance(CONNECT_TIMEOUT * 10)
        self.assertFalse(transport.disconnecting)

    def test_partial_connect_still_times_out(self):
        protocol, transport = self.connection()
        protocol.dataReceived(P.connect("slow")[:5])
        self.clock.advance(CONNECT_TIMEOUT + EPSILON)
        self.assertTrue(transport.disconnecting)


class BackpressureTests(ProtocolTestCase):
    def test_pause_marks_congested_resume_drains(self):
        """While the transport is paused the connection keeps its output in
        the core's outbox (nothing is written); past ``OUTBOX_LIMIT`` it is
        congested: QoS 0 dropped, QoS 1 queued.  ``resumeProducing`` sends
        the outbox, then the queued message."""
        sub, sub_transport = self.connected("sub", keepalive=0)
        sub.dataReceived(P.subscribe(1, [("bp", 1)]))
        self.assertEqual(sub_transport.value(), P.suback(1, [1]))
        sub_transport.clear()
        pub, pub_transport = self.connected("pub", keepalive=0)

        sub.pauseProducing()
        # A paused transport alone is a burst, not a slow consumer.
        self.assertFalse(sub.conn.congested)
        self.assertEqual(sub_transport.producerState, "paused")
        big = b"x" * 65536
        # Publishes written until the outbox holds OUTBOX_LIMIT bytes.
        count = OUTBOX_LIMIT // len(P.publish("bp", big, qos=0)) + 1
        for _ in range(count):
            pub.dataReceived(P.publish("bp", big, qos=0))
        self.assertTrue(sub.conn.congested)
        self.assertEqual(sub_transport.value(), b"")
        dropped = self.broker.stats.dropped
        pub.dataReceived(P.publish("bp", b"zero", qos=0))
        self.assertEqual(self.broker.stats.dropped, dropped + 1)
        pub.dataReceived(P.publish("bp", b"one", qos=1, mid=7))
        self.assertEqual(pub_transport.value()[-4:], P.puback(7))
        self.assertEqual(sub_transport.value(), b"")
        self.assertEqual(len(self.broker.sessions["sub"].queue), 1)

        sub.resumeProducing()
        self.assertFalse(sub.conn.congested)
        self.assertEqual(sub_transport.producerState, "producing")
        self.assertEqual(
            sub_transport.value(),
            P.publish("bp", big, qos=0) * count + P.publish("bp", b"one", qos=1, mid=1))

    def test_protocol_registered_as_streaming_producer(self):
        protocol, transport = self.connection()
        self.assertIs(transport.producer, protocol)
        self.assertTrue(transport.streaming)


class ErrorMappingTests(ProtocolTestCase):
    def test_unknown_protocol_level_connack_0x01(self):
        protocol, transport = self.connection()
        protocol.dataReceived(P.connect("x", level=7))
        self.assertEqual(transport.value(), b"\x20\x02\x00\x01")
        self.assertTrue(transport.disconnecting)

    def test_v5_malformed_gets_disconnect_0x81(self):
        protocol, transport = self.connected("m", level=5)
        protocol.dataReceived(b"\x36\x00")
        value = transport.value()
        self.assertEqual((value[0], value[2]), (0xE0, 0x81))
        self.assertTrue(transport.disconnecting)

    def test_v311_malformed_plain_close(self):
        protocol, transport = self.connected("m", level=4)
        protocol.dataReceived(b"\x36\x00")
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_nothing_processed_after_error_in_same_segment(self):
        protocol, transport = self.connected("m", level=4)
        protocol.dataReceived(b"\x36\x00" + P.PINGREQ)
        self.assertEqual(transport.value(), b"")


class ClosingTests(ProtocolTestCase):
    """A close the broker decides must end the socket even when the peer
    does not cooperate: Twisted's TLS transport does not close while a
    producer is registered, then waits for the peer's close_notify."""

    def test_close_unregisters_and_aborts_a_lingering_peer(self):
        from nanomq_twisted.transport.protocol import CLOSE_TIMEOUT

        protocol, transport = self.connected("m", level=4)
        protocol.dataReceived(b"\x36\x00")  # malformed: the broker closes
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(transport.producer)
        aborted = []
        transport.abortConnection = lambda: aborted.append(True)
        self.clock.advance(CLOSE_TIMEOUT - EPSILON)
        self.assertEqual(aborted, [])
        self.clock.advance(2 * EPSILON)
        self.assertEqual(aborted, [True])

    def test_no_abort_once_the_connection_is_gone(self):
        protocol, _transport = self.connected("m", level=4)
        protocol.dataReceived(b"\x36\x00")
        call = protocol._abort_call
        self.lose(protocol)
        self.assertFalse(call.active())

    def test_connect_timeout_aborts_at_once(self):
        protocol, transport = self.connection()
        protocol.dataReceived(P.connect("slow")[:5])
        self.clock.advance(CONNECT_TIMEOUT + EPSILON)
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(transport.producer)
        self.assertEqual(self.broker.stats.connect_timeouts, 1)
