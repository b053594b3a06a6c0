# -*- test-case-name: tests.protocol.test_rate_limit -*-
"""
The adapter's side of the inbound rate limit and of the per-address limit
(core/admission.py): ``MQTTServerProtocol`` on a ``StringTransport`` with a
``task.Clock``.  Over its budget a connection stops reading its transport
(``producerState`` "paused") until the clock says the budget is back; the
output backpressure and the rate pause both hold reading, and reading
resumes only when neither does.  Expected bytes: ``tests/packets.py``.
"""

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from .. import packets as P
from .test_protocol import ProtocolTestCase


class RateLimitProtocolTests(ProtocolTestCase):
    def setUp(self):
        super().setUp()
        # 10 PUBLISHes, then 10/s; 100 KiB, then 10 KiB/s.
        self.broker.admission.configure(messages_in=(10, 1.0), bytes_in=(102400, 10.0))

    def test_messages_over_the_budget_pause_reading(self):
        protocol, transport = self.connected("fast", keepalive=0)
        protocol.dataReceived(P.publish("t", b"x") * 10)
        self.assertEqual(transport.producerState, "producing")
        protocol.dataReceived(P.publish("t", b"x") * 20)
        self.assertEqual(transport.producerState, "paused")
        self.assertEqual(self.broker.stats.rate_limited, 1)
        self.clock.advance(1.99)
        self.assertEqual(transport.producerState, "paused")
        self.clock.advance(0.02)
        self.assertEqual(transport.producerState, "producing")
        self.assertFalse(transport.disconnecting)
        self.assertEqual(self.broker.stats.received, 30)

    def test_bytes_over_the_budget_pause_reading(self):
        protocol, transport = self.connected("big", keepalive=0)
        # One 64 KiB read over a spent budget: 6.4 s at 10 KiB/s.
        protocol.dataReceived(b"\xc0\x00" * 51000)  # PINGREQs, 100 KiB with CONNECT
        self.assertEqual(transport.producerState, "producing")
        protocol.dataReceived(b"\xc0\x00" * 32768)
        self.assertEqual(transport.producerState, "paused")
        self.clock.advance(6.5)
        self.assertEqual(transport.producerState, "producing")

    def test_output_backpressure_and_rate_pause_together(self):
        protocol, transport = self.connected("both", keepalive=0)
        protocol.dataReceived(P.publish("t", b"x") * 20)
        self.assertEqual(transport.producerState, "paused")
        # The write buffer drains meanwhile: still paused for the rate.
        protocol.pauseProducing()
        protocol.resumeProducing()
        self.assertEqual(transport.producerState, "paused")
        # The rate pause ends while the write buffer is full: still paused.
        protocol.pauseProducing()
        self.clock.advance(1.01)
        self.assertEqual(transport.producerState, "paused")
        protocol.resumeProducing()
        self.assertEqual(transport.producerState, "producing")

    def test_keepalive_survives_a_long_pause(self):
        protocol, transport = self.connected("slow", keepalive=2)
        protocol.dataReceived(P.publish("t", b"x") * 60)  # 5 s owed
        self.assertEqual(transport.producerState, "paused")
        self.clock.advance(4.0)  # past keepalive x 1.5 = 3 s
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1.01)
        self.assertEqual(transport.producerState, "producing")
        protocol.dataReceived(P.PINGREQ)
        self.assertEqual(transport.value()[-2:], P.PINGRESP)
        self.assertFalse(transport.disconnecting)


class PerAddressProtocolTests(ProtocolTestCase):
    def test_over_the_limit_gets_connack_0x97_and_close(self):
        self.broker.admission.configure(per_address=1)
        self.connected("first", level=5)  # StringTransport's peer 192.168.1.1
        protocol, transport = self.connection()
        protocol.dataReceived(P.connect("second", level=5))
        self.assertEqual(transport.value(), P.connack(code=0x97, level=5))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.broker.stats.refused_per_address, 1)

    def test_another_address_is_served(self):
        self.broker.admission.configure(per_address=1)
        self.connected("first")
        protocol = self.factory.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.1.1.1", 4000))
        protocol.makeConnection(transport)
        self.addCleanup(self.lose, protocol)
        protocol.dataReceived(P.connect("elsewhere"))
        self.assertEqual(transport.value(), P.connack())
