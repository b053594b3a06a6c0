"""
``core/session.py``: delivery towards one client, its queue and its
in-flight window.

A real ``Broker`` and real ``ClientConnection``s writing into a
``FakeSink``; the session is driven through its own API (``deliver``,
``pump``, ``resend_inflight``, the ``on_*`` acknowledgements) and time is a
plain ``now`` stepped by ``TICK``.  Expected bytes come from
``tests/packets.py``.
"""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.config import loads
from nanomq_twisted.core.broker import Broker
from nanomq_twisted.core.connection import ClientConnection
from nanomq_twisted.core.info import TransportInfo
from nanomq_twisted.core.message import Message
from nanomq_twisted.mqtt.packets import Connect

from .. import packets as P
from ..sinks import FakeSink
from .test_store_sqlite import StoreTestMixin

TICK = 0.25

EXPIRY = 0x02
TOPIC_ALIAS = 0x23


def make_broker(conf=""):
    config = loads('listeners.tcp { bind = "127.0.0.1:0" }\n' + conf, path="<test>")
    return Broker(config.mqtt, sys_events=False)


class Client:
    """One client id; each ``connect`` opens a new connection for it."""

    def __init__(self, broker, client_id, level=4, clean=True):
        self.broker = broker
        self.client_id = client_id
        self.level = level
        self.clean = clean
        self.conn = None
        self.sink = None

    def connect(self, now, clean=None, **properties):
        """CONNECT on a new connection; returns the session.  The CONNACK
        (and whatever the session resent) is left in ``wire()``."""
        if self.level == 5 and "session_expiry_interval" not in properties and not (
            self.clean if clean is None else clean
        ):
            properties["session_expiry_interval"] = 3600
        self.sink = FakeSink()
        self.conn = ClientConnection(self.broker, self.sink,
                                     TransportInfo(("127.0.0.1", 50000)))
        self.conn.receive(Connect(
            client_id=self.client_id,
            protocol_level=self.level,
            clean_start=self.clean if clean is None else clean,
            keepalive=0,
            properties=properties,
        ), now)
        self.broker.flush()
        return self.broker.sessions[self.client_id]

    def connected(self, now, **properties):
        """``connect``, dropping the CONNACK from the output."""
        session = self.connect(now, **properties)
        connack_length = 2 + self.sink.data[1]
        del self.sink.data[:connack_length]
        return session

    def wire(self):
        """What the client received since the last call."""
        self.broker.flush()
        data = bytes(self.sink.data)
        del self.sink.data[:]
        return data

    def lost(self, now):
        self.conn.connection_lost(now)


def qos1(topic="t", payload=b"m", now=0.0, **kwargs):
    return Message(topic, payload, 1, now=now, **kwargs)


class DeliveryTests(SynchronousTestCase):
    def setUp(self):
        self.broker = make_broker()
        self.client = Client(self.broker, "c")
        self.session = self.client.connected(0.0)

    def test_qos0_is_written(self):
        self.session.deliver(Message("a/b", b"hi"), 0, False, None, TICK)
        self.assertEqual(self.client.wire(), P.publish("a/b", b"hi"))
        self.assertEqual(self.broker.stats.sent, 1)
        self.assertEqual(len(self.session.inflight), 0)

    def test_qos1_packet_ids_in_order(self):
        for payload in (b"1", b"2", b"3"):
            self.session.deliver(qos1(payload=payload), 1, False, None, TICK)
        self.assertEqual(self.client.wire(), b"".join(
            P.publish("t", p, 1, mid=i) for i, p in ((1, b"1"), (2, b"2"), (3, b"3"))))
        self.assertEqual(list(self.session.inflight), [1, 2, 3])

    def test_granted_qos_caps_the_message_qos(self):
        """A QoS 2 message to a QoS 1 subscription is a QoS 1 flow."""
        self.session.deliver(Message("t", b"m", 2), 1, False, None, 0.0)
        self.assertEqual(self.client.wire(), P.publish("t", b"m", 1, mid=1))
        self.assertTrue(self.session.on_puback(1, TICK))

    def test_puback_ends_the_flow(self):
        self.session.deliver(qos1(), 1, False, None, 0.0)
        self.assertTrue(self.session.on_puback(1, TICK))
        self.assertEqual(len(self.session.inflight), 0)
        # A repeated or unknown PUBACK is ignored.
        self.assertFalse(self.session.on_puback(1, TICK))
        self.assertFalse(self.session.on_puback(77, TICK))

    def test_qos2_flow(self):
        """PUBLISH, PUBREC -> PUBREL, PUBCOMP [MQTT-4.3.3]."""
        self.session.deliver(Message("t", b"m", 2), 2, False, None, 0.0)
        self.assertEqual(self.client.wire(), P.publish("t", b"m", 2, mid=1))
        self.assertFalse(self.session.on_puback(1, TICK))  # wrong ack for QoS 2
        self.assertFalse(self.session.on_pubcomp(1, TICK))  # not released yet
        self.assertTrue(self.session.on_pubrec(1, 0, TICK))
        self.assertTrue(self.session.inflight[1].released)
        # A repeated PUBREC asks for PUBREL again [MQTT-4.3.3-4].
        self.assertTrue(self.session.on_pubrec(1, 0, 2 * TICK))
        self.assertTrue(self.session.on_pubcomp(1, 3 * TICK))
        self.assertEqual(len(self.session.inflight), 0)
        self.assertFalse(self.session.on_pubrec(1, 0, 3 * TICK))

    def test_failed_pubrec_ends_the_flow(self):
        """A PUBREC with a reason code of 0x80 or more ends the QoS 2 flow:
        no PUBREL, and the packet id is free [MQTT-4.3.3-4]."""
        self.session.deliver(Message("t", b"m", 2), 2, False, None, 0.0)
        self.assertFalse(self.session.on_pubrec(1, 0x87, TICK))
        self.assertEqual(len(self.session.inflight), 0)

    def test_packet_id_not_reused_at_once(self):
        """Ids go round robin: a just-acknowledged id is not handed out
        again next [MQTT-2.2.1-3]."""
        self.session.deliver(qos1(), 1, False, None, 0.0)
        self.session.on_puback(1, TICK)
        self.session.deliver(qos1(), 1, False, None, TICK)
        self.assertEqual(self.client.wire(),
                         P.publish("t", b"m", 1, mid=1) + P.publish("t", b"m", 1, mid=2))

    def test_packet_id_wraps_around_skipping_ids_in_use(self):
        """After 65535 the allocator starts at 1 again, passing over ids
        still in flight [MQTT-2.2.1-3]."""
        broker = make_broker("mqtt { max_inflight_window = 65535 }")
        client = Client(broker, "w")
        session = client.connected(0.0)
        message = qos1()
        for _ in range(65535):
            session.deliver(message, 1, False, None, 0.0)
        client.wire()
        for pid in (1, 3, 65535):
            session.on_puback(pid, TICK)
        session.deliver(qos1(payload=b"a"), 1, False, None, TICK)
        session.deliver(qos1(payload=b"b"), 1, False, None, TICK)
        session.deliver(qos1(payload=b"c"), 1, False, None, TICK)
        self.assertEqual(client.wire(), P.publish("t", b"a", 1, mid=1)
                         + P.publish("t", b"b", 1, mid=3) + P.publish("t", b"c", 1, mid=65535))
        # Every id is in use again: the next message waits in the queue.
        session.deliver(qos1(payload=b"d"), 1, False, None, TICK)
        self.assertEqual(client.wire(), b"")
        self.assertEqual(len(session.queue), 1)

    def test_qos2_inbound_awaiting_rel(self):
        self.session.rel_awaited(9, TICK)
        self.assertEqual(self.session.awaiting_rel, {9: TICK})
        self.assertTrue(self.session.rel_done(9))
        self.assertFalse(self.session.rel_done(9))

    def test_delivered_event(self):
        seen = []
        self.broker.events.listen(
            "message_delivered", lambda event, **fields: seen.append(fields["message"]))
        message = qos1()
        self.session.deliver(message, 1, False, None, 0.0)
        self.session.deliver(Message("t", b"z"), 0, False, None, 0.0)
        self.assertEqual([m.payload for m in seen], [b"m", b"z"])


class OfflineQueueTests(SynchronousTestCase):
    """A persistent session while its client is away."""

    def setUp(self):
        self.broker = make_broker("mqtt { max_mqueue_len = 3 }")
        self.client = Client(self.broker, "away", clean=False)
        self.session = self.client.connected(0.0)
        self.client.lost(TICK)

    def test_qos0_is_dropped_and_counted(self):
        self.session.deliver(Message("t", b"x"), 0, False, None, 1.0)
        self.assertEqual(len(self.session.queue), 0)
        self.assertEqual(self.broker.stats.dropped, 1)

    def test_qos1_queued_and_sent_on_reconnect_in_order(self):
        for n in range(3):
            self.session.deliver(qos1(payload=b"%d" % n), 1, False, None, 1.0 + n * TICK)
        self.assertEqual(len(self.session.queue), 3)
        self.assertEqual(self.broker.stats.sent, 0)
        self.client.connected(2.0)
        # New messages to the client: first sent now, DUP=0, fresh ids.
        self.assertEqual(self.client.wire(), b"".join(
            P.publish("t", b"%d" % n, 1, mid=n + 1) for n in range(3)))
        self.assertEqual(len(self.session.queue), 0)

    def test_queue_limit_drops_and_counts(self):
        """``max_mqueue_len`` bounds the queue; what does not fit is
        dropped and counted, the queued ones are kept."""
        for n in range(5):
            self.session.deliver(qos1(payload=b"%d" % n), 1, False, None, 1.0)
        self.assertEqual(len(self.session.queue), 3)
        self.assertEqual(self.broker.stats.dropped_queue_full, 2)
        self.assertEqual(self.broker.stats.dropped, 2)
        self.client.connected(2.0)
        self.assertEqual(self.client.wire(), b"".join(
            P.publish("t", b"%d" % n, 1, mid=n + 1) for n in range(3)))

    def test_expired_while_queued_is_not_sent(self):
        """A message whose expiry passed before onward delivery started is
        deleted [MQTT-3.3.2-5]; one still valid is sent."""
        short = qos1(payload=b"short", now=1.0, properties={"message_expiry_interval": 2})
        long = qos1(payload=b"long", now=1.0, properties={"message_expiry_interval": 60})
        self.session.deliver(short, 1, False, None, 1.0)
        self.session.deliver(long, 1, False, None, 1.0)
        self.client.connected(3.0)
        self.assertEqual(self.client.wire(), P.publish("t", b"long", 1, mid=1))
        self.assertEqual(self.broker.stats.dropped_expired, 1)

    def test_expiry_decremented_on_reconnect(self):
        """A 5.0 client gets the remaining interval [MQTT-3.3.2-6]."""
        broker = make_broker()
        client = Client(broker, "v5", level=5, clean=False)
        session = client.connected(0.0)
        client.lost(TICK)
        message = qos1(now=1.0, properties={"message_expiry_interval": 10})
        session.deliver(message, 1, False, None, 1.0)
        client.connected(4.0 + TICK, clean=False)
        self.assertEqual(client.wire(), P.publish(
            "t", b"m", 1, mid=1, level=5, properties=P.props(P.p_u32(EXPIRY, 7))))


class InflightWindowTests(SynchronousTestCase):
    """At most Receive Maximum QoS 1/2 PUBLISHes unacknowledged towards a
    client [MQTT-3.3.4-9], the rest waiting in order in the queue."""

    def setUp(self):
        self.broker = make_broker()
        self.client = Client(self.broker, "rm", level=5)
        self.session = self.client.connected(0.0, receive_maximum=2)

    def test_window_holds_the_rest_in_order(self):
        for n in range(4):
            self.session.deliver(qos1(payload=b"%d" % n), 1, False, None, 0.0)
        self.assertEqual(self.client.wire(), P.publish("t", b"0", 1, mid=1, level=5)
                         + P.publish("t", b"1", 1, mid=2, level=5))
        self.assertEqual(len(self.session.queue), 2)
        self.session.on_puback(2, TICK)
        self.assertEqual(self.client.wire(), P.publish("t", b"2", 1, mid=3, level=5))
        # A message arriving while others wait goes behind them.
        self.session.deliver(qos1(payload=b"4"), 1, False, None, TICK)
        self.assertEqual(self.client.wire(), b"")
        self.session.on_puback(1, 2 * TICK)
        self.session.on_puback(3, 2 * TICK)
        self.assertEqual(self.client.wire(), P.publish("t", b"3", 1, mid=4, level=5)
                         + P.publish("t", b"4", 1, mid=5, level=5))

    def test_qos2_counts_until_pubcomp(self):
        """A released QoS 2 message (PUBREL sent) still counts against the
        window until PUBCOMP [MQTT-4.9.0-2]."""
        for n in range(3):
            self.session.deliver(Message("t", b"%d" % n, 2), 2, False, None, 0.0)
        self.client.wire()
        self.session.on_pubrec(1, 0, TICK)
        self.assertEqual(self.client.wire(), b"")
        self.session.on_pubcomp(1, TICK)
        self.assertEqual(self.client.wire(), P.publish("t", b"2", 2, mid=3, level=5))

    def test_failed_pubrec_opens_the_window(self):
        for n in range(3):
            self.session.deliver(Message("t", b"%d" % n, 2), 2, False, None, 0.0)
        self.client.wire()
        self.session.on_pubrec(2, 0x80, TICK)
        self.assertEqual(self.client.wire(), P.publish("t", b"2", 2, mid=3, level=5))

    def test_qos0_is_not_held_by_the_window(self):
        self.session.deliver(qos1(), 1, False, None, 0.0)
        self.session.deliver(qos1(), 1, False, None, 0.0)
        self.client.wire()
        self.session.deliver(Message("t", b"zero"), 0, False, None, 0.0)
        self.assertEqual(self.client.wire(), P.publish("t", b"zero", level=5))

    def test_expired_in_the_queue_is_skipped(self):
        for n in range(2):
            self.session.deliver(qos1(payload=b"%d" % n), 1, False, None, 0.0)
        self.session.deliver(
            qos1(payload=b"brief", properties={"message_expiry_interval": 1}),
            1, False, None, 0.0)
        self.session.deliver(qos1(payload=b"late"), 1, False, None, 0.0)
        self.client.wire()
        self.session.on_puback(1, 1.0 + TICK)
        self.assertEqual(self.client.wire(), P.publish("t", b"late", 1, mid=3, level=5))
        self.assertEqual(self.broker.stats.dropped_expired, 1)

    def test_broker_window_caps_the_client_receive_maximum(self):
        """``mqtt.max_inflight_window`` bounds what is in flight even when
        the client allows more (a 3.1.1 client announces nothing)."""
        broker = make_broker("mqtt { max_inflight_window = 1 }")
        client = Client(broker, "v3")
        session = client.connected(0.0)
        session.deliver(qos1(payload=b"a"), 1, False, None, 0.0)
        session.deliver(qos1(payload=b"b"), 1, False, None, 0.0)
        self.assertEqual(client.wire(), P.publish("t", b"a", 1, mid=1))
        session.on_puback(1, TICK)
        self.assertEqual(client.wire(), P.publish("t", b"b", 1, mid=2))


class ResendTests(SynchronousTestCase):
    """Unacknowledged PUBLISH and PUBREL packets are resent, with their
    original packet ids and DUP=1 on the PUBLISH, when the client
    reconnects to its session [MQTT-4.4.0-1], [MQTT-3.3.1-1]."""

    def setUp(self):
        self.broker = make_broker()

    def test_reconnect_resends_publish_with_dup_and_pubrel(self):
        client = Client(self.broker, "r", clean=False)
        session = client.connected(0.0)
        session.deliver(qos1(payload=b"one"), 1, False, None, 0.0)
        session.deliver(Message("t", b"two", 2), 2, True, None, 0.0)
        session.deliver(Message("t", b"three", 2), 2, False, None, 0.0)
        session.on_pubrec(3, 0, TICK)
        client.wire()
        client.lost(2 * TICK)
        client.connected(1.0)
        self.assertEqual(client.wire(), b"".join((
            P.publish("t", b"one", 1, dup=True, mid=1),
            P.publish("t", b"two", 2, retain=True, dup=True, mid=2),
            P.pubrel(3),
        )))
        self.assertEqual(list(session.inflight), [1, 2, 3])
        # The next new message continues after the ids in use.
        session.deliver(qos1(payload=b"four"), 1, False, None, 1.0)
        self.assertEqual(client.wire(), P.publish("t", b"four", 1, mid=4))

    def test_v5_reconnect_resend(self):
        client = Client(self.broker, "r5", level=5, clean=False)
        session = client.connected(0.0)
        session.deliver(qos1(), 1, False, (5,), 0.0)
        client.wire()
        client.lost(TICK)
        client.connected(1.0, clean=False)
        self.assertEqual(client.wire(), P.publish(
            "t", b"m", 1, dup=True, mid=1, level=5,
            properties=P.props(P.p_varint(0x0B, 5))))

    def test_smaller_receive_maximum_on_reconnect(self):
        """Back with Receive Maximum 2 while 4 were in flight: 2 are
        resent, the others keep their ids and follow one per
        acknowledgement [MQTT-3.3.4-9]; new messages wait behind them."""
        client = Client(self.broker, "rm", level=5, clean=False)
        session = client.connected(0.0)
        for n in range(4):
            session.deliver(qos1(payload=b"%d" % n), 1, False, None, 0.0)
        client.wire()
        client.lost(TICK)
        session.deliver(qos1(payload=b"new"), 1, False, None, 0.5)
        client.connected(1.0, clean=False, receive_maximum=2)

        def dup(n):
            return P.publish("t", b"%d" % n, 1, dup=True, mid=n + 1, level=5)

        self.assertEqual(client.wire(), dup(0) + dup(1))
        session.on_puback(2, 1.0 + TICK)
        self.assertEqual(client.wire(), dup(2))
        # The client acknowledges one it had before we resent it.
        session.on_puback(4, 1.0 + TICK)
        self.assertEqual(client.wire(), b"")
        session.on_puback(1, 1.5)
        self.assertEqual(client.wire(), P.publish("t", b"new", 1, mid=5, level=5))
        self.assertEqual(list(session.inflight), [3, 5])

    def test_released_flows_count_against_the_new_window(self):
        """A QoS 2 message awaiting PUBCOMP still holds its place: its
        PUBREL is resent, the PUBLISH after it waits."""
        client = Client(self.broker, "rel", level=5, clean=False)
        session = client.connected(0.0)
        session.deliver(Message("t", b"a", 2), 2, False, None, 0.0)
        session.deliver(Message("t", b"b", 2), 2, False, None, 0.0)
        session.on_pubrec(1, 0, TICK)
        client.wire()
        client.lost(TICK)
        client.connected(1.0, clean=False, receive_maximum=1)
        self.assertEqual(client.wire(), P.pubrel(1))
        session.on_pubcomp(1, 1.0 + TICK)
        self.assertEqual(client.wire(), P.publish("t", b"b", 2, dup=True, mid=2, level=5))

    def test_retry_resends_only_the_old_ones(self):
        """The 3.1.1 retry timer: ``older_than`` picks the flows last sent
        at or before it."""
        client = Client(self.broker, "old")
        session = client.connected(0.0)
        session.deliver(qos1(payload=b"early"), 1, False, None, 0.0)
        session.deliver(qos1(payload=b"later"), 1, False, None, 5.0)
        client.wire()
        session.resend_inflight(10.0, older_than=4.0)
        self.assertEqual(client.wire(), P.publish("t", b"early", 1, dup=True, mid=1))
        # Resent at 10: not due again for a cut-off before that.
        session.resend_inflight(12.0, older_than=6.0)
        self.assertEqual(client.wire(), P.publish("t", b"later", 1, dup=True, mid=2))

    def test_nothing_is_resent_while_offline(self):
        client = Client(self.broker, "off", clean=False)
        session = client.connected(0.0)
        session.deliver(qos1(), 1, False, None, 0.0)
        client.wire()
        client.lost(TICK)
        session.resend_inflight(1.0)
        self.assertEqual(len(session.inflight), 1)


class MaximumPacketSizeTests(SynchronousTestCase):
    """Never send a client a packet larger than the Maximum Packet Size it
    announced: such a message is dropped for it, and counted
    [MQTT-3.1.2-24], [MQTT-3.1.2-25]."""

    def setUp(self):
        self.broker = make_broker()
        self.client = Client(self.broker, "small", level=5, clean=False)

    def test_oversize_qos0_dropped(self):
        session = self.client.connected(0.0, maximum_packet_size=20)
        session.deliver(Message("t", b"x" * 20), 0, False, None, 0.0)
        session.deliver(Message("t", b"fits"), 0, False, None, 0.0)
        self.assertEqual(self.client.wire(), P.publish("t", b"fits", level=5))
        self.assertEqual(self.broker.stats.dropped_oversize, 1)

    def test_exact_size_is_sent(self):
        session = self.client.connected(0.0, maximum_packet_size=20)
        expected = P.publish("t", b"x" * 12, 1, mid=1, level=5)
        self.assertEqual(len(expected), 20)
        session.deliver(qos1(payload=b"x" * 12), 1, False, None, 0.0)
        self.assertEqual(self.client.wire(), expected)

    def test_oversize_qos1_dropped_without_taking_an_id(self):
        session = self.client.connected(0.0, maximum_packet_size=20)
        session.deliver(qos1(payload=b"x" * 13), 1, False, None, 0.0)
        session.deliver(qos1(payload=b"ok"), 1, False, None, 0.0)
        self.assertEqual(self.client.wire(), P.publish("t", b"ok", 1, mid=1, level=5))
        self.assertEqual(self.broker.stats.dropped_oversize, 1)
        self.assertEqual(list(session.inflight), [1])

    def test_queued_then_too_large_for_the_new_connection(self):
        session = self.client.connected(0.0)
        self.client.lost(TICK)
        session.deliver(qos1(payload=b"x" * 100), 1, False, None, 1.0)
        session.deliver(qos1(payload=b"ok"), 1, False, None, 1.0)
        self.client.connected(2.0, maximum_packet_size=50)
        self.assertEqual(self.client.wire(), P.publish("t", b"ok", 1, mid=1, level=5))
        self.assertEqual(self.broker.stats.dropped_oversize, 1)

    def test_inflight_too_large_for_the_new_connection_is_not_resent(self):
        """A message in flight when the client left, larger than the
        Maximum Packet Size it announces when it comes back, is dropped
        rather than resent; its packet id is freed [MQTT-3.1.2-25]."""
        session = self.client.connected(0.0)
        session.deliver(qos1(payload=b"x" * 100), 1, False, None, 0.0)
        session.deliver(qos1(payload=b"ok"), 1, False, None, 0.0)
        self.client.wire()
        self.client.lost(TICK)
        self.client.connected(2.0, maximum_packet_size=50)
        self.assertEqual(self.client.wire(),
                         P.publish("t", b"ok", 1, dup=True, mid=2, level=5))
        self.assertEqual(self.broker.stats.dropped_oversize, 1)
        self.assertEqual(list(session.inflight), [2])

    def test_dropped_on_resend_leaves_the_store(self):
        """For a durable session the dropped message is done in the store
        too, or a restart would bring it back."""
        store = StoreTestMixin.make_store(self)
        self.broker.set_store(store)
        session = self.client.connected(0.0)
        self.assertTrue(session.durable)
        session.deliver(qos1(payload=b"x" * 100), 1, False, None, 0.0)
        self.client.wire()
        self.assertEqual(store.rows, 1)
        self.client.lost(TICK)
        self.client.connected(2.0, maximum_packet_size=50)
        self.assertEqual(store.rows, 0)

    def test_too_large_with_a_topic_alias(self):
        """The aliased form is measured too."""
        session = self.client.connected(0.0, maximum_packet_size=30,
                                        topic_alias_maximum=2)
        session.deliver(Message("topic", b"x" * 30), 0, False, None, 0.0)
        session.deliver(Message("topic", b"ok"), 0, False, None, 0.0)
        self.assertEqual(self.client.wire(), P.publish(
            "topic", b"ok", level=5, properties=P.props(P.p_u16(TOPIC_ALIAS, 1))))
        self.assertEqual(self.broker.stats.dropped_oversize, 1)


class CongestionTests(SynchronousTestCase):
    """A client that does not read: QoS 0 is dropped and counted, QoS 1/2
    waits in the queue until the network takes data again."""

    def setUp(self):
        self.broker = make_broker()
        self.client = Client(self.broker, "slow")
        self.session = self.client.connected(0.0)
        self.broker.outbox_limit = 20
        self.client.conn.pause_output()

    def test_congested(self):
        self.session.deliver(Message("t", b"x" * 20), 0, False, None, 0.0)
        self.assertTrue(self.client.conn.congested)
        self.session.deliver(Message("t", b"lost"), 0, False, None, 0.0)
        self.session.deliver(qos1(payload=b"kept"), 1, False, None, 0.0)
        self.assertEqual(self.broker.stats.dropped_slow_consumer, 1)
        self.assertEqual(self.broker.stats.dropped, 1)
        self.assertEqual(len(self.session.queue), 1)
        self.assertEqual(self.client.wire(), b"")
        self.client.conn.resume_output(TICK)
        self.assertEqual(self.client.wire(), P.publish("t", b"x" * 20)
                         + P.publish("t", b"kept", 1, mid=1))


class DrainedOutboxTests(SynchronousTestCase):
    """Congested within one turn, drained by the flush at its end without
    the network ever pushing back (so no ``resume_output``)."""

    def setUp(self):
        self.broker = make_broker()
        self.client = Client(self.broker, "burst")
        self.session = self.client.connected(0.0)
        self.broker.outbox_limit = 20
        self.session.deliver(Message("t", b"x" * 20), 0, False, None, 0.0)
        self.session.deliver(qos1(payload=b"waits"), 1, False, None, 0.0)
        self.assertEqual(len(self.session.queue), 1)

    def test_queued_message_leaves_without_a_next_delivery(self):
        """Nothing is in flight, so no acknowledgement will pump the
        queue: the flush that ends the congestion does, in order
        [MQTT-4.6.0-6]."""
        self.assertEqual(self.client.wire(), P.publish("t", b"x" * 20)
                         + P.publish("t", b"waits", 1, mid=1))
        self.assertEqual(len(self.session.queue), 0)
        self.assertFalse(self.client.conn.congested)

    def test_next_message_goes_behind_the_queued_one(self):
        self.client.wire()
        self.session.deliver(qos1(payload=b"next"), 1, False, None, TICK)
        self.assertEqual(self.client.wire(), P.publish("t", b"next", 1, mid=2))


class BookkeepingTests(SynchronousTestCase):
    def test_clear_messages(self):
        broker = make_broker()
        client = Client(broker, "c", clean=False)
        session = client.connected(0.0)
        session.deliver(qos1(), 1, False, None, 0.0)
        client.lost(TICK)
        session.deliver(qos1(), 1, False, None, 0.0)
        session.rel_awaited(4, 0.0)
        session.clear_messages()
        self.assertEqual((len(session.inflight), len(session.queue), session.awaiting_rel),
                         (0, 0, {}))

    def test_cancel_timers(self):
        broker = make_broker()
        session = Client(broker, "c").connected(0.0)
        fired = []
        session.expiry_timer = broker.timers.call_at(1.0, fired.append)
        session.will_timer = broker.timers.call_at(1.0, fired.append)
        session.cancel_timers()
        broker.run_timers(2.0)
        self.assertEqual(fired, [])
        self.assertIsNone(session.expiry_timer)
        self.assertIsNone(session.will_timer)
