# -*- test-case-name: tests.unit.test_broker -*-
"""
The pure core (``Broker``, ``ClientConnection``, ``Session``) without a
reactor: connections write into a fake sink, time is a plain ``now`` that
the tests step, and delayed work runs through ``broker.run_timers(now)``.

What a sink received is read back with the project's ``Decoder`` (reading
output is fine); every expected value is written out by hand.
"""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.config import loads
from nanomq_twisted.core.broker import Broker
from nanomq_twisted.core.connection import ClientConnection
from nanomq_twisted.core.info import TransportInfo
from nanomq_twisted.mqtt.codec import Decoder
from nanomq_twisted.mqtt.errors import MqttError
from nanomq_twisted.mqtt.packets import (
    Connack,
    Connect,
    Disconnect,
    Puback,
    Publish,
    Pubrec,
    Pubrel,
    Subscribe,
    SubscriptionOptions,
    Unsubscribe,
    Will,
)

from .. import packets as P
from ..sinks import FakeSink

TICK = 0.25


def make_broker(conf=""):
    config = loads("listeners.tcp { bind = \"127.0.0.1:0\" }\n" + conf, path="<test>")
    return Broker(config.mqtt, sys_events=False)


class Peer:
    """One client connection of the core, driven by hand."""

    def __init__(self, broker, client_id, level=4, clean=True, properties=None,
                 will=None, keepalive=60):
        self.broker = broker
        self.level = level
        self.sink = FakeSink()
        self.conn = ClientConnection(broker, self.sink, TransportInfo(("127.0.0.1", 50000)))
        self.decoder = Decoder(protocol_level=level)
        self.connect_packet = Connect(
            client_id=client_id,
            protocol_level=level,
            clean_start=clean,
            keepalive=keepalive,
            will=will,
            properties=properties or {},
        )
        self._next_id = 1

    def connect(self, now=0.0):
        self.send(self.connect_packet, now)
        return self.received()

    def send(self, packet, now=0.0):
        """One packet in, then the end of the adapter's turn: a flush."""
        self.conn.receive(packet, now)
        self.broker.flush()

    def received(self):
        self.broker.flush()
        packets = list(self.decoder.feed(bytes(self.sink.data)))
        del self.sink.data[:]
        return packets

    def subscribe(self, topic_filter, qos=0, now=0.0, **options):
        pid = self._next_id
        self._next_id += 1
        self.send(Subscribe(pid, (SubscriptionOptions(topic_filter, qos, **options),)), now)
        return self.received()

    def publish(self, topic, payload, qos=0, now=0.0, retain=False, properties=None):
        pid = None
        if qos:
            pid = self._next_id
            self._next_id += 1
        self.send(Publish(topic, payload, qos, retain, False, pid, properties or {}), now)
        return self.received()

    def lost(self, now=0.0):
        """The transport reports the connection closed."""
        self.conn.connection_lost(now)


def publishes(packets):
    return [p for p in packets if isinstance(p, Publish)]


class ConnectSubscribePublishTests(SynchronousTestCase):
    def setUp(self):
        self.broker = make_broker()

    def test_connect_subscribe_publish_qos1(self):
        sub = Peer(self.broker, "sub")
        self.assertEqual(sub.connect(), [Connack(False, 0)])
        suback = sub.subscribe("a/+", 1)
        self.assertEqual(len(suback), 1)
        self.assertEqual(suback[0].reason_codes, (1,))
        pub = Peer(self.broker, "pub")
        pub.connect()
        self.assertEqual(pub.publish("a/b", b"hi", 1), [Puback(1)])
        (message,) = sub.received()
        self.assertEqual((message.topic, message.payload, message.qos, message.retain),
                         ("a/b", b"hi", 1, False))
        self.assertIsNotNone(message.packet_id)
        sub.send(Puback(message.packet_id))
        self.assertEqual(len(self.broker.sessions["sub"].inflight), 0)

    def test_qos2_inbound_flow_MQTT_4_3_3(self):
        pub = Peer(self.broker, "pub")
        pub.connect()
        self.assertEqual(pub.publish("x", b"1", 2), [Pubrec(1)])
        # A DUP re-send before PUBREL is acknowledged, not routed again.
        sub = Peer(self.broker, "sub")
        sub.connect()
        sub.subscribe("x", 2)
        pub.send(Publish("x", b"1", 2, False, True, 1))
        self.assertEqual(pub.received(), [Pubrec(1)])
        self.assertEqual(sub.received(), [])
        pub.send(Pubrel(1))
        (comp,) = pub.received()
        self.assertEqual((comp.packet_id, comp.reason_code), (1, 0))

    def test_v5_puback_no_matching_subscribers(self):
        pub = Peer(self.broker, "pub", level=5)
        pub.connect()
        (ack,) = pub.publish("nobody", b"x", 1)
        self.assertEqual((ack.packet_id, ack.reason_code), (1, 0x10))

    def test_takeover_MQTT_3_1_4_3(self):
        watcher = Peer(self.broker, "watcher")
        watcher.connect()
        watcher.subscribe("will")
        old = Peer(self.broker, "twin", level=5, will=Will("will", b"old gone"))
        old.connect()
        new = Peer(self.broker, "twin", level=5)
        (connack,) = new.connect(now=1.0)
        self.assertEqual(connack.reason_code, 0)
        (disconnect,) = old.received()
        self.assertIsInstance(disconnect, Disconnect)
        self.assertEqual(disconnect.reason_code, 0x8E)
        self.assertTrue(old.sink.closed)
        # The old connection ended without DISCONNECT: its will goes out.
        (will,) = watcher.received()
        self.assertEqual(will.payload, b"old gone")
        # The late connectionLost of the old transport changes nothing.
        old.lost(now=1.0)
        self.assertIs(self.broker.connections["twin"], new.conn)
        new.subscribe("t", 1)
        packets = new.publish("t", b"still here", 1)
        self.assertEqual([p.payload for p in publishes(packets)], [b"still here"])


class TimerTests(SynchronousTestCase):
    def setUp(self):
        self.broker = make_broker("mqtt.retry_interval = 10s\n")

    def test_will_delay_MQTT_3_1_3_9(self):
        watcher = Peer(self.broker, "watcher")
        watcher.connect()
        watcher.subscribe("will")
        dying = Peer(
            self.broker, "dying", level=5, clean=False,
            properties={"session_expiry_interval": 100},
            will=Will("will", b"late", properties={"will_delay_interval": 5}),
        )
        dying.connect()
        dying.lost(now=0.0)
        self.broker.run_timers(5.0 - TICK)
        self.assertEqual(watcher.received(), [])
        self.broker.run_timers(5.0)
        self.assertEqual([p.payload for p in watcher.received()], [b"late"])

    def test_will_delay_cancelled_by_reconnect(self):
        watcher = Peer(self.broker, "watcher")
        watcher.connect()
        watcher.subscribe("will")
        props = {"session_expiry_interval": 100}
        dying = Peer(self.broker, "dying", level=5, clean=False, properties=props,
                     will=Will("will", b"late", properties={"will_delay_interval": 5}))
        dying.connect()
        dying.lost(now=0.0)
        back = Peer(self.broker, "dying", level=5, clean=False, properties=props)
        (connack,) = back.connect(now=1.0)
        self.assertTrue(connack.session_present)
        self.broker.run_timers(50.0)
        self.assertEqual(watcher.received(), [])

    def test_will_sent_when_session_expires_before_delay(self):
        watcher = Peer(self.broker, "watcher")
        watcher.connect()
        watcher.subscribe("will")
        dying = Peer(self.broker, "dying", level=5, clean=False,
                     properties={"session_expiry_interval": 2},
                     will=Will("will", b"w", properties={"will_delay_interval": 30}))
        dying.connect()
        dying.lost(now=0.0)
        self.broker.run_timers(2.0 - TICK)
        self.assertEqual(watcher.received(), [])
        self.broker.run_timers(2.0)
        self.assertEqual([p.payload for p in watcher.received()], [b"w"])

    def test_will_on_clean_start_reconnect_keeps_its_expiry(self):
        """A clean-start reconnect ends the session before the will delay,
        so the will goes out at once [MQTT-3.1.3-9], stamped with the
        reconnect time: its Message Expiry Interval is intact."""
        keep = {"session_expiry_interval": 300}
        watcher = Peer(self.broker, "watcher", level=5, clean=False, properties=keep)
        watcher.connect()
        watcher.subscribe("will", 1)
        watcher.lost(now=0.0)
        dying = Peer(self.broker, "dying", level=5, clean=False, properties=keep,
                     will=Will("will", b"w", 1, properties={
                         "will_delay_interval": 100, "message_expiry_interval": 10}))
        dying.connect()
        dying.lost(now=0.0)
        self.broker.run_timers(1.0)
        back = Peer(self.broker, "dying", level=5, clean=True)
        (connack,) = back.connect(now=50.0)
        self.assertFalse(connack.session_present)
        # The will waits in the offline watcher's queue: 5 s of its 10 left.
        again = Peer(self.broker, "watcher", level=5, clean=False, properties=keep)
        (will,) = publishes(again.connect(now=55.0))
        self.assertEqual(will.payload, b"w")
        self.assertEqual(will.properties.get("message_expiry_interval"), 5)

    def test_disconnect_session_expiry_zero_ends_session(self):
        sub = Peer(self.broker, "sub", level=5, clean=False,
                   properties={"session_expiry_interval": 10})
        sub.connect()
        sub.send(Disconnect(0, {"session_expiry_interval": 0}))
        self.assertTrue(sub.sink.closed)
        sub.lost()
        self.assertNotIn("sub", self.broker.sessions)

    def test_disconnect_raising_expiry_from_zero_MQTT_3_14_2_2(self):
        sub = Peer(self.broker, "sub", level=5)
        sub.connect()
        with self.assertRaises(MqttError) as caught:
            sub.send(Disconnect(0, {"session_expiry_interval": 10}))
        self.assertEqual(caught.exception.reason_code, 0x82)

    def test_session_expiry_MQTT_3_1_2_23(self):
        sub = Peer(self.broker, "sub", level=5, clean=False,
                   properties={"session_expiry_interval": 10})
        sub.connect()
        sub.subscribe("t", 1)
        sub.lost(now=0.0)
        self.broker.run_timers(10.0 - TICK)
        self.assertIn("sub", self.broker.sessions)
        self.broker.run_timers(10.0)
        self.assertNotIn("sub", self.broker.sessions)
        back = Peer(self.broker, "sub", level=5, clean=False)
        (connack,) = back.connect(now=11.0)
        self.assertFalse(connack.session_present)

    def test_v311_persistent_session_never_expires(self):
        sub = Peer(self.broker, "sub", level=4, clean=False)
        sub.connect()
        sub.subscribe("t", 1)
        sub.lost(now=0.0)
        self.broker.run_timers(10.0**9)
        self.assertIn("sub", self.broker.sessions)

    def _unacked(self, level, keepalive=60):
        sub = Peer(self.broker, "sub", level=level, keepalive=keepalive)
        sub.connect()
        sub.subscribe("t", 1)
        pub = Peer(self.broker, "pub")
        pub.connect()
        pub.publish("t", b"m", 1)
        (first,) = sub.received()
        self.assertFalse(first.dup)
        return sub, first

    def test_v311_retry_unacked_qos1_after_retry_interval(self):
        sub, first = self._unacked(4)
        self.broker.run_timers(10.0 - TICK)
        self.assertEqual(sub.received(), [])
        self.broker.run_timers(10.0)
        (again,) = sub.received()
        self.assertTrue(again.dup)
        self.assertEqual((again.packet_id, again.payload), (first.packet_id, b"m"))
        # Acknowledged: no more retries.
        sub.send(Puback(first.packet_id), now=11.0)
        self.broker.run_timers(100.0)
        self.assertEqual(sub.received(), [])

    def test_v5_no_retry_while_connected_MQTT_4_4_0_1(self):
        # Keepalive 0: connected for good, however long nothing is said.
        sub, _ = self._unacked(5, keepalive=0)
        self.broker.run_timers(1000.0)
        self.assertEqual(sub.received(), [])

    def test_keepalive_deadline_is_a_core_timer_MQTT_3_1_2_22(self):
        # Keepalive 10 times the default multiplier 1.5: silence for 15 s ends
        # the connection; a packet meanwhile (last_rx, stamped by the
        # adapter) moves the deadline.
        peer = Peer(self.broker, "k", level=5, keepalive=10)
        peer.connect(now=0.0)
        peer.conn.last_rx = 5.0
        self.broker.run_timers(15.0)
        self.assertEqual(peer.received(), [])
        self.broker.run_timers(20.0 - TICK)
        self.assertEqual(peer.received(), [])
        self.broker.run_timers(20.0)
        (disconnect,) = peer.received()
        self.assertEqual(disconnect.reason_code, 0x8D)
        self.assertTrue(peer.sink.closed)

    def test_connect_deadline(self):
        sink = FakeSink()
        conn = ClientConnection(self.broker, sink, TransportInfo(("127.0.0.1", 50001)))
        conn.accepted(100.0, 10.0)
        self.broker.run_timers(110.0 - TICK)
        self.assertIsNone(sink.timed_out_waiting_for)
        self.broker.run_timers(110.0)
        self.assertEqual(sink.timed_out_waiting_for, "CONNECT")

    def test_connect_deadline_cancelled_by_connect(self):
        peer = Peer(self.broker, "c", keepalive=0)
        peer.conn.accepted(0.0, 10.0)
        peer.connect(now=1.0)
        self.broker.run_timers(100.0)
        self.assertIsNone(peer.sink.timed_out_waiting_for)
        self.assertFalse(peer.sink.closed)

    def test_v311_retry_rearmed_after_reconnect(self):
        sub = Peer(self.broker, "sub", clean=False)
        sub.connect()
        sub.subscribe("t", 1)
        pub = Peer(self.broker, "pub")
        pub.connect()
        pub.publish("t", b"m", 1)
        sub.received()
        sub.lost(now=1.0)
        back = Peer(self.broker, "sub", clean=False)
        packets = back.connect(now=2.0)
        self.assertEqual([p.dup for p in publishes(packets)], [True])
        self.broker.run_timers(12.0)
        self.assertEqual([p.dup for p in publishes(back.received())], [True])


class FlowControlTests(SynchronousTestCase):
    def test_queue_bound_max_mqueue_len(self):
        broker = make_broker("mqtt.max_mqueue_len = 3\n")
        sub = Peer(broker, "sub", clean=False)
        sub.connect()
        sub.subscribe("q", 1)
        sub.lost()
        pub = Peer(broker, "pub")
        pub.connect()
        for i in range(5):
            pub.publish("q", b"%d" % i, 1)
        self.assertEqual(broker.stats.dropped_queue_full, 2)
        back = Peer(broker, "sub", clean=False)
        packets = back.connect(now=1.0)
        self.assertEqual([p.payload for p in publishes(packets)], [b"0", b"1", b"2"])

    def test_qos0_not_stored_for_offline_session(self):
        broker = make_broker()
        sub = Peer(broker, "sub", clean=False)
        sub.connect()
        sub.subscribe("q", 1)
        sub.lost()
        pub = Peer(broker, "pub")
        pub.connect()
        pub.publish("q", b"zero", 0)
        back = Peer(broker, "sub", clean=False)
        self.assertEqual(publishes(back.connect(now=1.0)), [])

    def test_receive_maximum_window_MQTT_4_9_0_1(self):
        broker = make_broker()
        sub = Peer(broker, "sub", level=5, properties={"receive_maximum": 2})
        sub.connect()
        sub.subscribe("w", 1)
        pub = Peer(broker, "pub")
        pub.connect()
        for i in range(4):
            pub.publish("w", b"%d" % i, 1)
        first = publishes(sub.received())
        self.assertEqual([p.payload for p in first], [b"0", b"1"])
        sub.send(Puback(first[0].packet_id))
        (third,) = publishes(sub.received())
        self.assertEqual(third.payload, b"2")
        sub.send(Puback(first[1].packet_id))
        sub.send(Puback(third.packet_id))
        self.assertEqual([p.payload for p in publishes(sub.received())], [b"3"])

    def test_client_that_does_not_read_is_congested(self):
        """The network pushes back (``pause_output``): output stays in the
        connection's outbox.  Once it holds ``outbox_limit`` bytes the
        client is congested: QoS 0 is dropped (counted), QoS 1 queued in
        the session; when the network takes data again the outbox goes out
        first, then the queue."""
        broker = make_broker()
        broker.outbox_limit = 40
        sub = Peer(broker, "sub")
        sub.connect()
        sub.subscribe("c", 1)
        pub = Peer(broker, "pub")
        pub.connect()
        sub.conn.pause_output()
        pub.publish("c", b"x" * 30, 0)  # 37 bytes: in the outbox
        pub.publish("c", b"y" * 30, 0)  # 74: over the limit now
        self.assertTrue(sub.conn.congested)
        dropped = broker.stats.dropped_slow_consumer
        pub.publish("c", b"lost", 0)
        pub.publish("c", b"kept", 1)
        self.assertEqual(sub.received(), [])
        self.assertEqual(broker.stats.dropped_slow_consumer, dropped + 1)
        self.assertEqual(len(broker.sessions["sub"].queue), 1)
        sub.conn.resume_output(1.0)
        self.assertEqual(
            [p.payload for p in publishes(sub.received())],
            [b"x" * 30, b"y" * 30, b"kept"])

    def test_maximum_packet_size_skips_oversize(self):
        broker = make_broker()
        sub = Peer(broker, "sub", level=5, properties={"maximum_packet_size": 50})
        sub.connect()
        sub.subscribe("m", 1)
        pub = Peer(broker, "pub")
        pub.connect()
        pub.publish("m", b"x" * 100, 1)
        pub.publish("m", b"small", 1)
        self.assertEqual([p.payload for p in publishes(sub.received())], [b"small"])
        self.assertEqual(broker.stats.dropped_oversize, 1)


class SubscriptionChangeTests(SynchronousTestCase):
    def test_resubscribe_replaces_options_MQTT_3_8_4_3(self):
        broker = make_broker()
        sub = Peer(broker, "sub", level=5)
        sub.connect()
        sub.subscribe("t", 0)
        sub.subscribe("t", 2)
        pub = Peer(broker, "pub")
        pub.connect()
        pub.publish("t", b"x", 2)
        self.assertEqual([p.qos for p in publishes(sub.received())], [2])

    def test_unsubscribe_shared_and_plain_MQTT_3_10_4_1(self):
        broker = make_broker()
        sub = Peer(broker, "sub", level=5)
        sub.connect()
        sub.subscribe("$share/g/u", 1)
        sub.subscribe("t", 1)
        sub.send(Unsubscribe(20, ("$share/g/u", "t", "never")))
        (unsuback,) = sub.received()
        self.assertEqual(unsuback.reason_codes, (0, 0, 0x11))
        pub = Peer(broker, "pub")
        pub.connect()
        pub.publish("u", b"y", 1)
        pub.publish("t", b"z", 1)
        self.assertEqual(sub.received(), [])


class OutboundTopicAliasTests(SynchronousTestCase):
    """Broker → client Topic Aliases up to the client's Topic Alias Maximum
    [MQTT-3.2.2-17]: the first PUBLISH on a topic carries topic and alias,
    later ones only the alias; no more aliases than the client allows
    [MQTT-3.3.2-11]."""

    def setUp(self):
        self.broker = make_broker()
        self.sub = Peer(self.broker, "sub", level=5, properties={"topic_alias_maximum": 1})
        self.sub.connect()
        self.sub.subscribe("t/#", 1)
        self.pub = Peer(self.broker, "pub")
        self.pub.connect()

    def raw(self):
        data = bytes(self.sub.sink.data)
        del self.sub.sink.data[:]
        return data

    def test_alias_established_then_used(self):
        self.pub.publish("t/long/topic/name", b"one")
        self.assertEqual(
            self.raw(),
            P.publish("t/long/topic/name", b"one", level=5, properties=P.props(P.p_u16(35, 1))),
        )
        self.pub.publish("t/long/topic/name", b"two", qos=1)
        self.assertEqual(
            self.raw(),
            P.publish("", b"two", qos=1, mid=1, level=5, properties=P.props(P.p_u16(35, 1))),
        )

    def test_no_alias_beyond_maximum(self):
        self.pub.publish("t/a", b"x")
        self.raw()
        self.pub.publish("t/b", b"y")
        self.assertEqual(self.raw(), P.publish("t/b", b"y", level=5))

    def test_client_without_alias_maximum_gets_plain_topics(self):
        other = Peer(self.broker, "plain", level=5)
        other.connect()
        other.subscribe("t/#")
        self.pub.publish("t/a", b"x")
        self.assertEqual(bytes(other.sink.data), P.publish("t/a", b"x", level=5))

    def test_alias_not_recorded_when_packet_is_too_large(self):
        small = Peer(
            self.broker,
            "small",
            level=5,
            properties={"topic_alias_maximum": 5, "maximum_packet_size": 40},
        )
        small.connect()
        small.subscribe("t/#")
        del small.sink.data[:]
        self.pub.publish("t/big", b"z" * 64)
        self.assertEqual(bytes(small.sink.data), b"")
        self.pub.publish("t/big", b"ok")
        # The alias is established by this packet, not assumed from the drop.
        self.assertEqual(
            bytes(small.sink.data),
            P.publish("t/big", b"ok", level=5, properties=P.props(P.p_u16(35, 1))),
        )


class ServerKeepAliveTests(SynchronousTestCase):
    """``mqtt.max_keepalive`` is announced as Server Keep Alive to 5.0
    clients asking for more (or for none) and is then the keepalive the
    broker enforces [MQTT-3.2.2-21]."""

    def setUp(self):
        self.broker = make_broker("mqtt { max_keepalive = 30 }")

    def test_zero_keepalive_gets_server_keepalive(self):
        peer = Peer(self.broker, "c", level=5, keepalive=0)
        self.assertEqual(peer.connect()[0].properties.get("server_keep_alive"), 30)
        self.assertEqual(peer.conn.keepalive_timeout, 30 * 1.5)

    def test_larger_keepalive_is_capped(self):
        peer = Peer(self.broker, "c", level=5, keepalive=600)
        self.assertEqual(peer.connect()[0].properties.get("server_keep_alive"), 30)

    def test_smaller_keepalive_is_kept(self):
        peer = Peer(self.broker, "c", level=5, keepalive=10)
        self.assertNotIn("server_keep_alive", peer.connect()[0].properties)
        self.assertEqual(peer.conn.keepalive, 10)

    def test_v311_keepalive_is_never_overridden(self):
        peer = Peer(self.broker, "c", level=4, keepalive=600)
        peer.connect()
        self.assertEqual(peer.conn.keepalive, 600)


class SharedRedispatchTests(SynchronousTestCase):
    """A share-group member whose session ends with unacknowledged QoS 1/2
    messages: they go to another member [MQTT-4.8.2-5]."""

    def setUp(self):
        self.broker = make_broker()
        self.a = Peer(self.broker, "a", level=5)  # session expiry 0
        self.a.connect()
        self.a.subscribe("$share/g/job/+", 1)
        self.b = Peer(self.broker, "b", level=5)
        self.b.connect()
        self.b.subscribe("$share/g/job/+", 1)
        self.pub = Peer(self.broker, "pub")
        self.pub.connect()

    def test_unacked_message_goes_to_another_member_when_session_ends(self):
        self.pub.publish("job/1", b"work", qos=1)
        got_a = publishes(self.a.received())
        self.assertEqual([p.payload for p in got_a], [b"work"])
        self.assertEqual(publishes(self.b.received()), [])
        self.a.lost(now=1.0)  # no PUBACK; expiry 0 ends the session
        got_b = publishes(self.b.received())
        self.assertEqual([(p.topic, p.payload, p.qos) for p in got_b], [("job/1", b"work", 1)])

    def test_acknowledged_message_is_not_redispatched(self):
        self.pub.publish("job/1", b"work", qos=1)
        (publish,) = publishes(self.a.received())
        self.a.send(Puback(publish.packet_id))
        self.a.lost(now=1.0)
        self.assertEqual(publishes(self.b.received()), [])

    def test_plain_overlapping_subscription_keeps_its_message(self):
        self.a.subscribe("job/#", 1)
        self.pub.publish("job/1", b"work", qos=1)
        self.a.received()
        self.b.received()
        self.a.lost(now=1.0)
        self.assertEqual(publishes(self.b.received()), [])

    def test_persistent_member_keeps_its_message_while_offline(self):
        c = Peer(self.broker, "c", level=4, clean=False)
        c.connect()
        c.subscribe("$share/h/job/+", 1)
        d = Peer(self.broker, "d")
        d.connect()
        d.subscribe("$share/h/job/+", 1)
        self.pub.publish("job/2", b"w2", qos=1)
        self.assertEqual(len(publishes(c.received())), 1)
        c.lost(now=1.0)  # the session lives on: delivery completes on reconnect
        self.assertEqual(publishes(d.received()), [])
