"""
The broker's one MQTT client protocol (nanomq_twisted/client/protocol.py)
on ``StringTransport`` and a ``task.Clock``, the server's side played
with the hand-written frames of tests/packets.py; and once against our
own broker protocol over ``iosim``.
"""

from twisted.internet import task
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from nanomq_twisted.client.interfaces import IClientConnection, IClientOwner, IClientSession
from nanomq_twisted.client.options import ClientOptions, OutboundMessage
from nanomq_twisted.client.protocol import MQTTClientFactory
from nanomq_twisted.client.session import ClientSession
from nanomq_twisted.config import loads
from nanomq_twisted.core.broker import Broker
from nanomq_twisted.core.message import Message
from nanomq_twisted.mqtt.packets import SubscriptionOptions
from nanomq_twisted.transport.protocol import MQTTServerFactory

from .. import packets as P
from ..driving import drive


@implementer(IClientOwner)
class Owner:
    """Keeps what the protocol told it, in order."""

    client_label = "test client"
    server = "mqtt-tcp://server:1883"

    def __init__(self):
        self.events = []
        self.client = None
        self.fail_on_message = False

    def connected(self, client, connack, unsent):
        self.client = client
        self.events.append(("connected", connack.session_present, list(unsent)))

    def message(self, client, topic, publish):
        if self.fail_on_message:
            raise RuntimeError("owner bug")
        self.events.append(("message", topic, publish.payload, publish.qos))

    def delivered(self, client, message):
        self.events.append(("delivered", message))

    def gave_up(self, client, message):
        self.events.append(("gave_up", message))

    def writable(self, client):
        self.events.append(("writable",))

    def disconnected(self, client, reason, was_connected):
        self.events.append(("disconnected", was_connected))

    def named(self, kind):
        return [event for event in self.events if event[0] == kind]


class ClientTestCase(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(500.0)
        self.owner = Owner()

    def make(self, **overrides):
        values = {"client_id": "c1", "keepalive": 30}
        values.update(overrides)
        self.session = ClientSession(ClientOptions(**values))
        self.factory = MQTTClientFactory(self.owner, self.session, self.clock)

    def dial(self):
        """A new connection of the same session; returns the CONNECT bytes."""
        self.protocol = self.factory.buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        data = self.transport.value()
        self.transport.clear()
        return data

    def feed(self, data):
        self.protocol.dataReceived(data)
        out = self.transport.value()
        self.transport.clear()
        return out

    def drop(self):
        self.protocol.connectionLost(None)


class ConnectTests(ClientTestCase):
    def test_311_connect_bytes(self):
        self.make(keepalive=10, username="u", password=b"pw")
        self.assertEqual(self.dial(), P.connect("c1", keepalive=10, username="u",
                                                password=b"pw"))

    def test_5_connect_bytes(self):
        # The spec's own example frame (figure 3-6 property), client "test".
        self.make(level=5, client_id="test", keepalive=10,
                  properties={"session_expiry_interval": 10})
        self.assertEqual(self.dial(), P.CONNECT_5)

    def test_interfaces(self):
        self.make()
        self.dial()
        verifyObject(IClientConnection, self.protocol)
        verifyObject(IClientSession, self.session)
        verifyObject(IClientOwner, self.owner)

    def test_connack_timeout_aborts(self):
        self.make()
        self.dial()
        self.clock.advance(9.9)
        self.assertFalse(self.transport.disconnecting)
        with capturedLogs() as events:
            self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnected)  # aborted
        self.assertIn("no CONNACK", events[-1]["error"])

    def test_refused_connack_closes(self):
        self.make()
        self.dial()
        with capturedLogs() as events:
            self.feed(P.connack(code=5))
        self.assertTrue(self.transport.disconnecting)
        self.assertIn("CONNACK code 0x05", events[-1]["error"])
        self.drop()
        self.assertEqual(self.owner.events, [("disconnected", False)])


class KeepaliveTests(ClientTestCase):
    def test_ping_then_timeout(self):
        self.make(keepalive=10, ping_timeout=3.0)
        self.dial()
        self.feed(P.connack())
        self.clock.advance(9.0)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(1.0)
        self.assertEqual(self.transport.value(), P.PINGREQ)
        self.transport.clear()
        self.feed(P.PINGRESP)
        self.clock.advance(10.0)
        self.assertEqual(self.transport.value(), P.PINGREQ)
        self.clock.advance(2.9)
        self.assertFalse(self.transport.disconnecting)
        with capturedLogs() as events:
            self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnected)
        self.assertIn("no PINGRESP", events[-1]["error"])
        self.drop()
        self.assertEqual(self.owner.named("disconnected"), [("disconnected", True)])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class OutboundTests(ClientTestCase):
    def test_qos1_resent_with_dup_after_reconnect(self):
        self.make(clean_start=False)
        self.dial()
        self.feed(P.connack())
        message = OutboundMessage("a/b", b"hi", 1)
        self.assertTrue(self.owner.client.publish(message))
        self.assertEqual(self.transport.value(), P.publish("a/b", b"hi", qos=1, mid=1))
        self.drop()
        self.assertEqual(self.dial(), P.connect("c1", clean=False, keepalive=30))
        out = self.feed(P.connack(session_present=True))
        self.assertEqual(out, P.publish("a/b", b"hi", qos=1, dup=True, mid=1))
        self.feed(P.puback(1))
        self.assertEqual(self.owner.named("delivered"), [("delivered", message)])
        self.assertEqual(self.owner.named("connected")[-1], ("connected", True, []))

    def test_qos2_pubrel_resent_after_reconnect(self):
        self.make(level=5, clean_start=False)
        self.dial()
        self.feed(P.connack(level=5))
        message = OutboundMessage("q", b"2", 2)
        self.owner.client.publish(message)
        self.assertEqual(self.transport.value(), P.publish("q", b"2", qos=2, mid=1, level=5))
        self.transport.clear()
        self.assertEqual(self.feed(P.pubrec(1)), P.pubrel(1))
        self.drop()
        self.dial()
        self.assertEqual(self.feed(P.connack(session_present=True, level=5)), P.pubrel(1))
        self.assertEqual(self.owner.named("delivered"), [])
        self.feed(P.pubcomp(1))
        self.assertEqual(self.owner.named("delivered"), [("delivered", message)])

    def test_without_a_remote_session_the_owner_gets_them_back(self):
        self.make()
        self.dial()
        self.feed(P.connack())
        message = OutboundMessage("a", b"", 1)
        self.owner.client.publish(message)
        self.drop()
        self.dial()
        self.assertEqual(self.feed(P.connack()), b"")
        self.assertEqual(self.owner.named("connected")[-1], ("connected", False, [message]))

    def test_retry_tick_resends_and_tells_the_owner(self):
        self.make(keepalive=0, retry_interval=1.0, retry_wait=2.0, retry_limit=1)
        self.dial()
        self.feed(P.connack())
        self.owner.client.publish(OutboundMessage("a", b"", 1))
        self.transport.clear()
        self.clock.advance(1.0)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(1.0)
        self.assertEqual(self.transport.value(), P.publish("a", b"", qos=1, dup=True, mid=1))
        self.assertEqual(len(self.owner.named("writable")), 2)

    def test_back_pressure(self):
        self.make()
        self.dial()
        self.feed(P.connack())
        client = self.owner.client
        self.assertTrue(client.writable())
        client.pauseProducing()
        self.assertFalse(client.writable())
        client.resumeProducing()
        self.assertTrue(client.writable())
        self.assertEqual(self.owner.named("writable"), [("writable",)])

    def test_disconnect(self):
        self.make(level=5)
        self.dial()
        self.feed(P.connack(level=5))
        self.owner.client.disconnect()
        self.assertEqual(self.transport.value(), P.disconnect())
        self.assertTrue(self.transport.disconnecting)


class InboundTests(ClientTestCase):
    def test_qos2_delivered_once(self):
        self.make()
        self.dial()
        self.feed(P.connack())
        self.assertEqual(self.feed(P.publish("t/1", b"x", qos=2, mid=5)), P.pubrec(5))
        self.assertEqual(self.feed(P.publish("t/1", b"x", qos=2, dup=True, mid=5)),
                         P.pubrec(5))
        self.assertEqual(self.feed(P.pubrel(5)), P.pubcomp(5))
        self.assertEqual(self.owner.named("message"), [("message", "t/1", b"x", 2)])

    def test_in_one_read_with_connack(self):
        self.make()
        self.dial()
        out = self.feed(P.connack() + P.publish("t", b"1", qos=1, mid=1)
                        + P.publish("t", b"2"))
        self.assertEqual(out, P.puback(1))
        self.assertEqual([e[2] for e in self.owner.named("message")], [b"1", b"2"])


class MalformedInputTests(ClientTestCase):
    def test_v5_malformed_publish_disconnects_with_0x81(self):
        self.make(level=5)
        self.dial()
        self.feed(P.connack(level=5))
        with capturedLogs() as events:
            out = self.feed(b"\x36\x05\x00\x01t\x00\x01")  # PUBLISH with QoS 3
        self.assertEqual(out, P.disconnect(0x81))
        self.assertTrue(self.transport.disconnecting)
        self.assertFalse(self.transport.disconnected)  # closed, not aborted
        (event,) = [e for e in events if "closing the connection" in e["log_format"]]
        self.assertEqual((event["code"], event["who"], event["server"]),
                         (0x81, "test client", "mqtt-tcp://server:1883"))
        self.assertIn("QoS 3", event["error"])
        # Nothing more is read from a closed stream.
        self.assertEqual(self.feed(P.publish("t", b"x")), b"")
        self.assertEqual(self.owner.named("message"), [])

    def test_311_packet_a_client_never_gets_just_closes(self):
        self.make()
        self.dial()
        self.feed(P.connack())
        with capturedLogs() as events:
            out = self.feed(P.subscribe(1, [("a", 0)]))
        self.assertEqual(out, b"")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual([e["code"] for e in events if "code" in e], [0x82])

    def test_owner_bug_is_logged_and_closes_with_0x80(self):
        self.make(level=5)
        self.dial()
        self.feed(P.connack(level=5))
        self.owner.fail_on_message = True
        out = self.feed(P.publish("t", b"x", level=5))
        self.assertEqual(out, P.disconnect(0x80))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_server_disconnect_aborts(self):
        self.make(level=5)
        self.dial()
        self.feed(P.connack(level=5))
        with capturedLogs() as events:
            self.feed(P.disconnect(0x8B))
        self.assertTrue(self.transport.disconnected)
        self.assertIn("DISCONNECT 0x8b", events[-1]["error"])


class AgainstOurBrokerTests(SynchronousTestCase):
    """QoS 2 both ways against the broker's own server protocol."""

    def test_qos2_both_ways(self):
        clock = task.Clock()
        config = loads('listeners.tcp { bind = "127.0.0.1:0" }\n', path="<test>")
        broker = drive(self, Broker(config.mqtt, clock=clock.seconds, sys_events=False), clock)
        owner = Owner()
        session = ClientSession(ClientOptions(level=5, client_id="c5", keepalive=30))
        _client, _server, pump = iosim.connectedServerAndClient(
            lambda: MQTTServerFactory(broker, clock).buildProtocol(None),
            lambda: MQTTClientFactory(owner, session, clock).buildProtocol(None),
            clock=clock,
        )
        pump.flush()
        owner.client.subscribe([SubscriptionOptions("down/#", 2)])
        owner.client.publish(OutboundMessage("down/x", b"loop", 2))
        pump.flush()
        now = clock.seconds()
        broker.publish(Message("down/y", b"in", 2, False, None, now, "other"), now)
        pump.flush()
        self.assertEqual(owner.named("message"),
                         [("message", "down/x", b"loop", 2), ("message", "down/y", b"in", 2)])
        self.assertEqual(len(owner.named("delivered")), 1)
        self.assertEqual((len(session.flows), session.incoming_qos2, session.requests),
                         (0, set(), {}))
