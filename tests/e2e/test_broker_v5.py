# -*- test-case-name: tests.e2e.test_broker_v5 -*-
"""
MQTT 5.0 features end to end with paho-mqtt: subscription options (Retain
Handling, Retain As Published, No Local), subscription identifiers, topic
aliases, message properties and their conversion across versions, message
expiry and Maximum Packet Size.
"""

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from .support import Clients, in_thread, play, start_broker


def properties(packet_type, **values):
    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props


def publish_props(**values):
    return properties(PacketTypes.PUBLISH, **values)


def options(qos=0, **values):
    return SubscribeOptions(qos=qos, **values)


class SubscriptionOptionTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_retain_handling_0_1_2_MQTT_3_3_1_9_to_11(self):
        def scenario(clients):
            pub = clients("pub", 4)
            pub.connect()
            pub.publish("rh/kept", b"retained", 1, retain=True)
            pub.publish("rh/sentinel", b"s")
            sub = clients("sub", 5)
            sub.connect()
            sub.subscribe("rh/sentinel")
            # 0: sent at every subscribe, even a repeated one.
            for _ in range(2):
                sub.subscribe("rh/+", 0, options=options(1, retainHandling=0))
                message = sub.expect()
                self.assertEqual((message.topic, message.retain), ("rh/kept", True))
            # 1: only for a new subscription.
            sub.subscribe("rh/#", 0, options=options(1, retainHandling=1))
            self.assertEqual(sub.expect().topic, "rh/kept")
            sub.subscribe("rh/#", 0, options=options(1, retainHandling=1))
            # 2: never.
            sub.subscribe("rh/kept", 0, options=options(1, retainHandling=2))
            pub.publish("rh/sentinel", b"s")
            sub.expect_sentinel("rh/sentinel")

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_retain_as_published_MQTT_3_3_1_12_13(self):
        def scenario(clients):
            keep = clients("keep", 5)
            keep.connect()
            keep.subscribe("rap", 0, options=options(1, retainAsPublished=True))
            clear = clients("clear", 5)
            clear.connect()
            clear.subscribe("rap", 0, options=options(1, retainAsPublished=False))
            pub = clients("pub", 5)
            pub.connect()
            pub.publish("rap", b"r", 1, retain=True)
            self.assertTrue(keep.expect().retain)
            self.assertFalse(clear.expect().retain)
            pub.publish("rap", b"n", 1)
            self.assertFalse(keep.expect().retain)

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_no_local_MQTT_3_8_3_3(self):
        def scenario(clients):
            me = clients("me", 5)
            me.connect()
            me.subscribe("nl/#", 0, options=options(1, noLocal=True))
            me.publish("nl/own", b"mine", 1)
            other = clients("other", 5)
            other.connect()
            other.publish("nl/other", b"theirs", 1)
            message = me.expect_sentinel("nl/other")
            self.assertEqual(message.payload, b"theirs")

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_subscription_identifiers_MQTT_3_3_4_3(self):
        def scenario(clients):
            sub = clients("sub", 5)
            sub.connect()
            sub.subscribe(
                "sid/+", 1,
                properties=properties(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=7),
            )
            sub.subscribe("sid/plain", 1)
            pub = clients("pub", 4)
            pub.connect()
            pub.publish("sid/x", b"x", 1)
            message = sub.expect()
            self.assertEqual(message.properties.SubscriptionIdentifier, [7])
            # Overlapping: one copy carrying the one identifier there is.
            pub.publish("sid/plain", b"y", 1)
            message = sub.expect()
            self.assertEqual(message.properties.SubscriptionIdentifier, [7])
            pub.publish("sid/x", b"sentinel")
            self.assertEqual(sub.expect_sentinel("sid/x").payload, b"sentinel")

        yield play(self, scenario)


class MessagePropertyTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_properties_pass_through_MQTT_3_3_2_15_to_20(self):
        def scenario(clients):
            sub = clients("sub", 5)
            sub.connect()
            sub.subscribe("props", 1)
            pub = clients("pub", 5)
            pub.connect()
            props = publish_props(
                PayloadFormatIndicator=1,
                ContentType="text/plain",
                ResponseTopic="reply/here",
                CorrelationData=b"\x01\x02corr",
                UserProperty=[("k1", "v1"), ("k2", "v2"), ("k1", "again")],
            )
            pub.publish("props", b"hello", 1, properties=props)
            got = sub.expect().properties
            self.assertEqual(got.PayloadFormatIndicator, 1)
            self.assertEqual(got.ContentType, "text/plain")
            self.assertEqual(got.ResponseTopic, "reply/here")
            self.assertEqual(got.CorrelationData, b"\x01\x02corr")
            # Order of user properties is kept [MQTT-3.3.2-18].
            self.assertEqual(got.UserProperty, [("k1", "v1"), ("k2", "v2"), ("k1", "again")])

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_cross_version_v311_to_v5_and_v5_to_v311(self):
        def scenario(clients):
            sub5 = clients("sub5", 5)
            sub5.connect()
            sub5.subscribe("cross/#", 2)
            sub4 = clients("sub4", 4)
            sub4.connect()
            sub4.subscribe("cross/#", 2)
            pub4 = clients("pub4", 4)
            pub4.connect()
            pub4.publish("cross/from4", b"plain", 2)
            message = sub5.expect()
            self.assertEqual((message.topic, message.payload, message.qos),
                             ("cross/from4", b"plain", 2))
            self.assertFalse(hasattr(message.properties, "UserProperty"))
            self.assertEqual(sub4.expect().payload, b"plain")
            pub5 = clients("pub5", 5)
            pub5.connect()
            pub5.publish("cross/from5", b"rich", 1,
                         properties=publish_props(UserProperty=[("a", "b")],
                                                  ContentType="x/y"))
            message = sub4.expect()
            self.assertEqual((message.topic, message.payload, message.qos),
                             ("cross/from5", b"rich", 1))
            message = sub5.expect()
            self.assertEqual(message.properties.UserProperty, [("a", "b")])

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_topic_alias_client_to_broker_MQTT_3_3_2_12(self):
        def scenario(clients):
            sub = clients("sub", 4)
            sub.connect()
            sub.subscribe("alias/long/topic", 1)
            pub = clients("pub", 5)
            _, _, connack = pub.connect()
            self.assertEqual(connack.TopicAliasMaximum, 10)
            pub.publish("alias/long/topic", b"first", 1,
                        properties=publish_props(TopicAlias=3))
            pub.publish("", b"second", 1, properties=publish_props(TopicAlias=3))
            self.assertEqual(
                [(m.topic, m.payload) for m in (sub.expect(), sub.expect())],
                [("alias/long/topic", b"first"), ("alias/long/topic", b"second")],
            )

        yield play(self, scenario, "mqtt.max_topic_alias = 10\n")

    @defer.inlineCallbacks
    def test_topic_alias_out_of_range_disconnects_0x94(self):
        def scenario(clients):
            pub = clients("pub", 5)
            pub.connect()
            pub.paho.publish("t", b"x", 0, properties=publish_props(TopicAlias=11))
            reason, _ = pub.disconnects.get(timeout=10)
            self.assertEqual(reason.value, 0x94)

        yield play(self, scenario, "mqtt.max_topic_alias = 10\n")

    @defer.inlineCallbacks
    def test_maximum_packet_size_skips_large_message_MQTT_3_1_2_24(self):
        def scenario(clients):
            sub = clients("small", 5)
            sub.connect(properties=properties(PacketTypes.CONNECT, MaximumPacketSize=100))
            sub.subscribe("mps", 1)
            pub = clients("pub", 4)
            pub.connect()
            pub.publish("mps", b"x" * 200, 1)
            pub.publish("mps", b"x" * 200, 0)
            pub.publish("mps", b"small", 1)
            self.assertEqual(sub.expect().payload, b"small")

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_message_expiry_in_offline_queue_MQTT_3_3_2_5(self):
        running = yield start_broker(self)
        clients = Clients(self, running.port)
        session = properties(PacketTypes.CONNECT, SessionExpiryInterval=300)

        def before(clients):
            status = clients("status", 4)
            status.connect()
            status.subscribe("$SYS/brokers/client_status")
            sub = clients("exp", 5, clean=False)
            sub.connect(properties=session)
            sub.subscribe("exp/#", 1)
            sub.disconnect()
            status.wait_status("exp", "offline")
            pub = clients("pub", 5)
            pub.connect()
            pub.publish("exp/short", b"dies", 1,
                        properties=publish_props(MessageExpiryInterval=1))
            pub.publish("exp/long", b"lives", 1,
                        properties=publish_props(MessageExpiryInterval=100))

        yield in_thread(before, clients)
        # The one timed wait: what is tested here is time itself.
        yield task.deferLater(reactor, 1.5, lambda: None)

        def after(clients):
            back = clients("exp", 5, clean=False)
            flags, _, _ = back.connect(properties=session)
            self.assertTrue(flags.session_present)
            message = back.expect()
            self.assertEqual((message.topic, message.payload), ("exp/long", b"lives"))
            # The forwarded expiry is reduced by the time spent waiting
            # [MQTT-3.3.2-6].
            self.assertLess(message.properties.MessageExpiryInterval, 100)
            self.assertGreater(message.properties.MessageExpiryInterval, 90)

        yield in_thread(after, clients)
