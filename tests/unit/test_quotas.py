# -*- test-case-name: tests.unit.test_quotas -*-
"""
The state quotas (core/quotas.py): subscriptions per session, topic length
and levels, retained count and bytes, queue bytes per session -- each with
its key, its answer on the wire and its counter.

No reactor: the core is driven packet by packet with ``now`` stepped by
hand.  Expected bytes are laid by hand with ``tests.packets``, never with
the project's encoder.
"""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.config import ConfigError, loads
from nanomq_twisted.core.broker import Broker
from nanomq_twisted.core.connection import ClientConnection
from nanomq_twisted.core.info import TransportInfo
from nanomq_twisted.core.message import Message
from nanomq_twisted.mqtt.codec import Decoder
from nanomq_twisted.mqtt.errors import MqttError
from nanomq_twisted.mqtt.packets import (
    Connect,
    Publish,
    Subscribe,
    SubscriptionOptions,
    Will,
)

from .. import packets as pk
from ..sinks import FakeSink


def broker_with(text=""):
    cfg = loads('listeners.tcp { bind = "127.0.0.1:0" }\n' + text, path="<test>")
    return Broker(cfg.mqtt, sys_events=False)


class Peer:
    """One connection of the core, read back as raw bytes."""

    def __init__(self, broker, client_id, level=5, will=None, clean=True):
        self.broker = broker
        self.level = level
        self.sink = FakeSink()
        self.conn = ClientConnection(broker, self.sink, TransportInfo(("127.0.0.1", 50000)))
        self.conn.receive(Connect(client_id=client_id, protocol_level=level,
                                  clean_start=clean, keepalive=60, will=will), 0.0)
        self.connack = self.take()

    def take(self):
        self.broker.flush()
        data = bytes(self.sink.data)
        del self.sink.data[:]
        return data

    def subscribe(self, pid, *filters, qos=0):
        options = tuple(SubscriptionOptions(f, qos) for f in filters)
        self.conn.receive(Subscribe(pid, options), 0.0)
        return self.take()

    def publish(self, topic, payload=b"x", qos=0, pid=None, retain=False):
        self.conn.receive(Publish(topic, payload, qos, retain, False, pid, {}), 0.0)
        return self.take()


class ConfigurationTests(SynchronousTestCase):
    def test_defaults_are_generous_but_bounded(self):
        mqtt = broker_with().config
        self.assertEqual(
            (mqtt.max_subscriptions, mqtt.max_topic_levels, mqtt.max_topic_length,
             mqtt.max_retained_messages, mqtt.max_retained_bytes, mqtt.max_mqueue_bytes),
            (10000, 128, 65535, 1000000, 256 * 1024 * 1024, 64 * 1024 * 1024))

    def test_keys_with_units(self):
        mqtt = broker_with("mqtt { max_retained_bytes = 1MB, max_mqueue_bytes = 0,"
                           " max_subscriptions = 0 }").config
        self.assertEqual((mqtt.max_retained_bytes, mqtt.max_mqueue_bytes,
                          mqtt.max_subscriptions), (1048576, 0, 0))

    def test_out_of_range_is_an_error_naming_the_key(self):
        for text, key in (("mqtt { max_topic_levels = 0 }", "mqtt.max_topic_levels"),
                          ("mqtt { max_topic_length = 70000 }", "mqtt.max_topic_length"),
                          ("mqtt { max_subscriptions = -1 }", "mqtt.max_subscriptions")):
            with self.assertRaises(ConfigError) as caught:
                broker_with(text)
            self.assertEqual(caught.exception.key, key)


class MaxSubscriptionsTests(SynchronousTestCase):
    def setUp(self):
        self.broker = broker_with("mqtt { max_subscriptions = 3 }")

    def test_filters_over_the_limit_get_0x97_each(self):
        peer = Peer(self.broker, "c")
        self.assertEqual(peer.subscribe(1, "a", "b"), pk.suback(1, [0, 0], level=5))
        # One more fits; the two after it are refused, the packet is served.
        self.assertEqual(peer.subscribe(2, "c", "d", "e"),
                         pk.suback(2, [0, 0x97, 0x97], level=5))
        self.assertEqual(sorted(self.broker.sessions["c"].subscriptions), ["a", "b", "c"])
        self.assertEqual(self.broker.stats.refused_subscriptions, 2)

    def test_replacing_a_subscription_is_not_a_new_one(self):
        peer = Peer(self.broker, "c")
        peer.subscribe(1, "a", "b", "c")
        self.assertEqual(peer.subscribe(2, "a", qos=1), pk.suback(2, [1], level=5))
        self.assertEqual(self.broker.stats.refused_subscriptions, 0)

    def test_unsubscribing_makes_room(self):
        peer = Peer(self.broker, "c")
        peer.subscribe(1, "a", "b", "c")
        self.broker.unsubscribe(self.broker.sessions["c"], "a")
        self.assertEqual(peer.subscribe(2, "d"), pk.suback(2, [0], level=5))

    def test_v311_gets_0x80(self):
        peer = Peer(self.broker, "c", level=4)
        self.assertEqual(peer.subscribe(1, "a", "b", "c", "d"), pk.suback(1, [0, 0, 0, 0x80]))

    def test_zero_is_no_limit(self):
        broker = broker_with("mqtt { max_subscriptions = 0 }")
        peer = Peer(broker, "c")
        filters = [f"t/{i}" for i in range(20000)]
        peer.conn.receive(Subscribe(1, tuple(SubscriptionOptions(f, 0) for f in filters)), 0.0)
        self.assertEqual(len(broker.sessions["c"].subscriptions), 20000)


class TopicQuotaTests(SynchronousTestCase):
    def setUp(self):
        self.broker = broker_with("mqtt { max_topic_levels = 4, max_topic_length = 32 }")

    def test_filter_over_levels_or_length_is_0x8f(self):
        peer = Peer(self.broker, "c")
        self.assertEqual(peer.subscribe(1, "a/b/c/d", "a/b/c/d/e", "x" * 33, "+/+/+/#"),
                         pk.suback(1, [0, 0x8F, 0x8F, 0], level=5))
        self.assertEqual(self.broker.stats.refused_topics, 2)
        v3 = Peer(self.broker, "c3", level=4)
        self.assertEqual(v3.subscribe(1, "a/b/c/d/e"), pk.suback(1, [0x80]))

    def test_qos1_publish_over_levels_is_puback_0x90_and_not_routed(self):
        sub = Peer(self.broker, "sub")
        sub.subscribe(1, "#")
        pub = Peer(self.broker, "pub")
        self.assertEqual(pub.publish("a/b/c/d/e", qos=1, pid=7), pk.puback(7, 0x90))
        self.assertEqual(pub.publish("a/b/c/d/e", qos=2, pid=8), pk.pubrec(8, 0x90))
        self.assertEqual(sub.take(), b"")
        self.assertEqual(self.broker.stats.refused_topics, 2)
        self.assertFalse(pub.conn.session.awaiting_rel)
        # The connection goes on.
        self.assertEqual(pub.publish("a/b", qos=1, pid=9), pk.puback(9))

    def test_qos0_publish_over_levels_is_disconnect_0x90(self):
        pub = Peer(self.broker, "pub")
        with self.assertRaises(MqttError) as caught:
            pub.publish("a/b/c/d/e")
        self.assertEqual(caught.exception.reason_code, 0x90)

    def test_v311_publish_over_levels_closes(self):
        pub = Peer(self.broker, "pub", level=4)
        with self.assertRaises(MqttError):
            pub.publish("a/b/c/d/e", qos=1, pid=1)

    def test_topic_alias_never_stands_for_a_topic_over_the_quota(self):
        broker = broker_with("mqtt { max_topic_levels = 2, max_topic_alias = 10 }")
        pub = Peer(broker, "pub")
        pub.conn.receive(Publish("a/b/c", b"x", 1, False, False, 1, {"topic_alias": 1}), 0.0)
        self.assertEqual(pub.take(), pk.puback(1, 0x90))
        self.assertIsNone(pub.conn.inbound.aliases)

    def test_will_topic_over_the_quota_is_connack_0x90(self):
        will = Will("a/b/c/d/e", b"bye")
        peer = Peer(self.broker, "w", will=will)
        self.assertEqual(peer.connack, pk.connack(code=0x90, level=5, properties=b"\x00"))
        self.assertTrue(peer.sink.closed)
        v3 = Peer(self.broker, "w3", level=4, will=will)
        self.assertEqual(v3.connack, pk.connack(code=0x03))
        self.assertNotIn("w", self.broker.sessions)
        self.assertEqual(self.broker.stats.refused_topics, 2)

    def test_decoder_refuses_a_long_topic_before_the_body_arrives(self):
        """The topic length field is enough: the 1 MB behind it is never
        buffered [MQTT-3.3.2-1]."""
        decoder = Decoder(protocol_level=5, max_topic_length=32)
        header = b"\x30" + pk.varint(2 + 65535 + 1 + 1024 * 1024) + b"\xff\xff"
        with self.assertRaises(MqttError) as caught:
            list(decoder.feed(header))
        self.assertEqual(caught.exception.reason_code, 0x90)
        # At the limit it waits for the rest as usual.
        decoder = Decoder(protocol_level=5, max_topic_length=32)
        self.assertEqual(list(decoder.feed(b"\x30" + pk.varint(100) + b"\x00\x20")), [])

    def test_default_decoder_has_no_extra_check(self):
        decoder = Decoder(protocol_level=4)
        topic = "t" * 65535
        (packet,) = decoder.feed(pk.publish(topic, b"p"))
        self.assertEqual(packet.topic, topic)


class RetainedQuotaTests(SynchronousTestCase):
    def setUp(self):
        self.broker = broker_with("mqtt { max_retained_messages = 2 }")

    def retain(self, topic, payload=b"v"):
        self.broker.publish(Message(topic, payload, 0, True, None, 0.0), 0.0)

    def test_count_full_refuses_new_topics_only(self):
        self.retain("a")
        self.retain("b")
        self.retain("c")
        retained = self.broker.retained
        self.assertEqual(len(retained), 2)
        self.assertNotIn("c", retained)
        self.assertEqual(self.broker.stats.refused_retained, 1)
        # Replacing and deleting still work when full.
        self.retain("a", b"new")
        self.assertEqual(retained.get("a").payload, b"new")
        self.retain("b", b"")
        self.retain("c")
        self.assertIn("c", retained)

    def test_bytes_full(self):
        broker = broker_with("mqtt { max_retained_bytes = 20 }")
        broker.publish(Message("t1", b"x" * 10, 0, True, None, 0.0), 0.0)
        self.assertEqual(broker.retained.bytes, 12)
        broker.publish(Message("t2", b"x" * 10, 0, True, None, 0.0), 0.0)
        self.assertNotIn("t2", broker.retained)
        # Replacing is charged the difference: 12 -> 20 fits, 21 does not.
        broker.publish(Message("t1", b"x" * 18, 0, True, None, 0.0), 0.0)
        self.assertEqual(broker.retained.bytes, 20)
        broker.publish(Message("t1", b"x" * 19, 0, True, None, 0.0), 0.0)
        self.assertEqual(len(broker.retained.get("t1").payload), 18)
        broker.publish(Message("t1", b"", 0, True, None, 0.0), 0.0)
        self.assertEqual(broker.retained.bytes, 0)
        self.assertEqual(broker.stats.refused_retained, 2)

    def test_v5_qos1_publisher_told_0x97_and_nothing_routed(self):
        self.retain("a")
        self.retain("b")
        sub = Peer(self.broker, "sub")
        sub.subscribe(1, "c")
        pub = Peer(self.broker, "pub")
        self.assertEqual(pub.publish("c", qos=1, pid=3, retain=True), pk.puback(3, 0x97))
        self.assertEqual(pub.publish("c", qos=2, pid=4, retain=True), pk.pubrec(4, 0x97))
        self.assertEqual(sub.take(), b"")
        self.assertEqual(self.broker.stats.refused_retained, 2)
        # Not retained, it goes through.
        self.assertEqual(pub.publish("c", qos=1, pid=5), pk.puback(5))
        self.assertTrue(sub.take())

    def test_v311_and_qos0_are_routed_without_being_retained(self):
        self.retain("a")
        self.retain("b")
        sub = Peer(self.broker, "sub", level=4)
        sub.subscribe(1, "c")
        pub = Peer(self.broker, "pub", level=4)
        self.assertEqual(pub.publish("c", b"m", qos=1, pid=3, retain=True), pk.puback(3))
        self.assertEqual(sub.take(), pk.publish("c", b"m"))
        self.assertNotIn("c", self.broker.retained)
        self.assertEqual(self.broker.stats.refused_retained, 1)


class QueueBytesTests(SynchronousTestCase):
    def setUp(self):
        # A 3.1.1 session offline: QoS 1 messages queue.
        self.broker = broker_with("mqtt { max_mqueue_bytes = 100, max_mqueue_len = 1000 }")
        peer = Peer(self.broker, "off", level=4, clean=False)
        peer.conn.receive(Subscribe(1, (SubscriptionOptions("q", 1),)), 0.0)
        peer.conn.connection_lost(0.0)
        self.session = self.broker.sessions["off"]

    def send(self, size):
        self.broker.publish(Message("q", b"x" * (size - 1), 1, False, None, 0.0), 0.0)

    def test_bytes_bound_the_queue(self):
        for _ in range(4):
            self.send(30)
        self.assertEqual(len(self.session.queue), 3)
        self.assertEqual(self.session.queue_bytes, 90)
        stats = self.broker.stats
        self.assertEqual((stats.dropped_queue_bytes, stats.dropped), (1, 1))

    def test_one_message_always_fits_an_empty_queue(self):
        self.send(500)
        self.assertEqual(len(self.session.queue), 1)
        self.send(1)
        self.assertEqual(self.broker.stats.dropped_queue_bytes, 1)

    def test_delivery_gives_the_bytes_back(self):
        self.send(60)
        self.assertEqual(self.session.queue_bytes, 60)
        peer = Peer(self.broker, "off", level=4, clean=False)
        self.assertEqual(self.session.queue_bytes, 0)
        self.assertIn(b"x" * 59, peer.connack)
