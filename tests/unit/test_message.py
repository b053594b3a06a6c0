"""
``core/message.py``: the routed message and the wire forms cached on it.

Every expected PUBLISH is laid out by ``tests/packets.py`` (hand-written
``struct`` code following the specification figures), never by the
project's encoder; time is a plain ``now`` stepped by ``TICK``.
"""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.core.message import Message, forwarded_properties, with_packet_id
from nanomq_twisted.mqtt.codec import Decoder

from .. import packets as P

TICK = 0.25

# Property identifiers [MQTT-2.2.2.2].
PAYLOAD_FORMAT = 0x01
EXPIRY = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION = 0x09
SUB_ID = 0x0B
TOPIC_ALIAS = 0x23
USER = 0x26


class WireQos0Tests(SynchronousTestCase):
    def test_v311_plain(self):
        message = Message("a/b", b"hi")
        self.assertEqual(message.wire_qos0(False, False, None, 0.0), P.publish("a/b", b"hi"))

    def test_v311_retain_bit_is_the_variant_not_the_message(self):
        """The RETAIN bit sent is the one asked for (retained delivery,
        Retain As Published), whatever the message was published with."""
        message = Message("a/b", b"hi", retain=False)
        self.assertEqual(message.wire_qos0(False, True, None, 0.0),
                         P.publish("a/b", b"hi", retain=True))
        published_retained = Message("a/b", b"hi", retain=True)
        self.assertEqual(published_retained.wire_qos0(False, False, None, 0.0),
                         P.publish("a/b", b"hi"))

    def test_v5_empty_property_block(self):
        message = Message("a/b", b"hi")
        self.assertEqual(message.wire_qos0(True, False, None, 0.0),
                         P.publish("a/b", b"hi", level=5))

    def test_v311_never_carries_properties(self):
        """A 3.1.1 subscriber of a message published with 5.0 properties
        gets a 3.1.1 PUBLISH: no property block, no subscription ids."""
        message = Message("t", b"x", properties={"content_type": "text/plain",
                                                 "message_expiry_interval": 30})
        self.assertEqual(message.wire_qos0(False, False, (7,), 0.0), P.publish("t", b"x"))

    def test_variants_are_distinct(self):
        """One message, several cached forms: each is right for its key."""
        message = Message("t", b"x")
        v5 = message.wire_qos0(True, False, None, 0.0)
        v3 = message.wire_qos0(False, False, None, 0.0)
        v5_retained = message.wire_qos0(True, True, None, 0.0)
        v5_sub = message.wire_qos0(True, False, (3,), 0.0)
        self.assertEqual(v5, P.publish("t", b"x", level=5))
        self.assertEqual(v3, P.publish("t", b"x"))
        self.assertEqual(v5_retained, P.publish("t", b"x", retain=True, level=5))
        self.assertEqual(v5_sub, P.publish("t", b"x", level=5,
                                           properties=P.props(P.p_varint(SUB_ID, 3))))
        # Asked again, the same variants come back unchanged.
        self.assertEqual(message.wire_qos0(True, False, None, 0.0), v5)
        self.assertEqual(message.wire_qos0(True, False, (3,), 0.0), v5_sub)

    def test_seeded_wire_form_is_sent_as_received(self):
        """The received bytes stand for the QoS 0 variant they match."""
        message = Message("a/b", b"hi")
        received = P.publish("a/b", b"hi")
        message.seed_wire_form(False, 0, False, received)
        self.assertIs(message.wire_qos0(False, False, None, 0.0), received)
        # Other variants are still encoded for themselves.
        self.assertEqual(message.wire_qos0(False, True, None, 0.0),
                         P.publish("a/b", b"hi", retain=True))

    def test_seeded_qos1_template_gets_each_packet_id(self):
        """A received QoS 1 PUBLISH (the publisher's packet id 7) is the
        template: each subscriber's copy is those bytes with its own id."""
        message = Message("a/b", b"hi", qos=1)
        message.seed_wire_form(True, 1, False, P.publish("a/b", b"hi", qos=1, mid=7, level=5))
        template = message.wire_template(True, 1, False, None, 0.0)
        self.assertEqual(with_packet_id(template, 300),
                         P.publish("a/b", b"hi", qos=1, mid=300, level=5))
        self.assertEqual(with_packet_id(template, 2, dup=True),
                         P.publish("a/b", b"hi", qos=1, mid=2, dup=True, level=5))

    def test_utf8_topic(self):
        topic = "s\u00e9nsor/\U0002a6d4"
        message = Message(topic, b"")
        self.assertEqual(message.wire_qos0(False, False, None, 0.0), P.publish(topic))


class SubscriptionIdentifierTests(SynchronousTestCase):
    def test_several_identifiers_in_order(self):
        """One PUBLISH carries every matching subscription's identifier
        [MQTT-3.3.4-3], each as its own property."""
        message = Message("t", b"x")
        expected = P.publish("t", b"x", level=5, properties=P.props(
            P.p_varint(SUB_ID, 2), P.p_varint(SUB_ID, 300)))
        self.assertEqual(message.wire_qos0(True, False, (2, 300), 0.0), expected)

    def test_identifiers_come_after_the_message_properties(self):
        message = Message("t", b"x", properties={"content_type": "c"})
        expected = P.publish("t", b"x", level=5, properties=P.props(
            P.p_str(CONTENT_TYPE, "c"), P.p_varint(SUB_ID, 9)))
        self.assertEqual(message.wire_qos0(True, False, (9,), 0.0), expected)
        # ... and do not leak into the message's own properties.
        self.assertEqual(message.properties, {"content_type": "c"})
        self.assertEqual(message.wire_qos0(True, False, None, 0.0),
                         P.publish("t", b"x", level=5,
                                   properties=P.props(P.p_str(CONTENT_TYPE, "c"))))


class ForwardedPropertiesTests(SynchronousTestCase):
    """What of an incoming PUBLISH's properties reaches a subscriber."""

    INCOMING = P.publish("t", b"{}", 1, mid=5, level=5, properties=P.props(
        P.p_byte(PAYLOAD_FORMAT, 1),
        P.p_u16(TOPIC_ALIAS, 4),
        P.p_pair(USER, "z", "1"),
        P.p_str(CONTENT_TYPE, "application/json"),
        P.p_pair(USER, "a", "2"),
        P.p_pair(USER, "z", "3"),
        P.p_str(RESPONSE_TOPIC, "reply/here"),
        P.p_bin(CORRELATION, b"\x00\x01"),
        P.p_varint(SUB_ID, 12),
    ))

    def received(self):
        (packet,) = list(Decoder(protocol_level=5).feed(self.INCOMING))
        return packet

    def test_topic_alias_and_subscription_identifier_are_not_forwarded(self):
        """A Topic Alias is per connection [MQTT-3.3.2-10..12] and
        subscription identifiers are the receiver's own: neither goes on."""
        kept = forwarded_properties(self.received().properties)
        self.assertNotIn("topic_alias", kept)
        self.assertNotIn("subscription_identifier", kept)

    def test_forwarded_publish_bytes(self):
        """The PUBLISH a 5.0 subscriber gets: the payload format indicator
        unchanged [MQTT-3.3.2-4], user properties in their received order,
        repeated names included [MQTT-3.3.2-18], content type, response
        topic and correlation data [MQTT-3.3.2-15..20]; no topic alias."""
        packet = self.received()
        message = Message(packet.topic, packet.payload, packet.qos, False,
                          forwarded_properties(packet.properties), 0.0)
        expected = P.publish("t", b"{}", 1, mid=1, level=5, properties=P.props(
            P.p_byte(PAYLOAD_FORMAT, 1),
            P.p_pair(USER, "z", "1"),
            P.p_pair(USER, "a", "2"),
            P.p_pair(USER, "z", "3"),
            P.p_str(CONTENT_TYPE, "application/json"),
            P.p_str(RESPONSE_TOPIC, "reply/here"),
            P.p_bin(CORRELATION, b"\x00\x01"),
        ))
        template = message.wire_template(True, 1, False, None, 0.0)
        self.assertEqual(with_packet_id(template, 1), expected)

    def test_payload_format_indicator_zero_is_forwarded(self):
        """0 ("unspecified bytes") is a value, not an absence [MQTT-3.3.2-4]."""
        kept = forwarded_properties({"payload_format_indicator": 0})
        message = Message("t", b"\xff", properties=kept)
        self.assertEqual(message.wire_qos0(True, False, None, 0.0),
                         P.publish("t", b"\xff", level=5,
                                   properties=P.props(P.p_byte(PAYLOAD_FORMAT, 0))))

    def test_nothing_to_forward(self):
        self.assertIsNone(forwarded_properties(None))
        self.assertIsNone(forwarded_properties({}))
        self.assertIsNone(forwarded_properties({"topic_alias": 3}))


class ExpiryTests(SynchronousTestCase):
    """Message Expiry Interval [MQTT-3.3.2-5], [MQTT-3.3.2-6]."""

    def test_expired(self):
        message = Message("t", b"x", properties={"message_expiry_interval": 2}, now=100.0)
        self.assertEqual(message.expiry_at, 102.0)
        self.assertFalse(message.expired(100.0))
        self.assertFalse(message.expired(102.0 - TICK))
        self.assertTrue(message.expired(102.0))

    def test_no_expiry(self):
        message = Message("t", b"x", properties={"content_type": "c"}, now=5.0)
        self.assertIsNone(message.expiry_at)
        self.assertFalse(message.expired(1e12))

    def test_forwarded_interval_is_decremented(self):
        """The interval sent is the received one minus the time the message
        waited in the server [MQTT-3.3.2-6], rounded up to whole seconds."""
        message = Message("t", b"x", properties={"message_expiry_interval": 10}, now=50.0)

        def sent_at(now):
            return message.wire_qos0(True, False, None, now)

        def expected(seconds):
            return P.publish("t", b"x", level=5, properties=P.props(P.p_u32(EXPIRY, seconds)))

        self.assertEqual(sent_at(50.0), expected(10))
        self.assertEqual(sent_at(50.0 + TICK), expected(10))
        self.assertEqual(sent_at(51.0), expected(9))
        self.assertEqual(sent_at(53.0 + TICK), expected(7))
        self.assertEqual(sent_at(60.0 - TICK), expected(1))
        # The earlier forms are not served from the cache at a later time.
        self.assertEqual(sent_at(51.0), expected(9))

    def test_decremented_in_qos1_template_keeps_property_position(self):
        message = Message("t", b"x", qos=1, now=0.0, properties={
            "content_type": "c", "message_expiry_interval": 60, "user_property": [("k", "v")]})
        template = message.wire_template(True, 1, False, (4,), 20.0 + TICK)
        expected = P.publish("t", b"x", 1, mid=0x1234, level=5, properties=P.props(
            P.p_str(CONTENT_TYPE, "c"),
            P.p_u32(EXPIRY, 40),
            P.p_pair(USER, "k", "v"),
            P.p_varint(SUB_ID, 4),
        ))
        self.assertEqual(with_packet_id(template, 0x1234), expected)
        # The message itself still says 60.
        self.assertEqual(message.properties["message_expiry_interval"], 60)

    def test_v311_has_no_expiry_on_the_wire(self):
        message = Message("t", b"x", properties={"message_expiry_interval": 10}, now=0.0)
        self.assertEqual(message.wire_qos0(False, False, None, 3.0), P.publish("t", b"x"))


class TemplateTests(SynchronousTestCase):
    """QoS 1/2 forms: a template with the packet id patched in."""

    def test_qos1_v311(self):
        message = Message("a/b", b"hi", qos=1)
        template = message.wire_template(False, 1, False, None, 0.0)
        self.assertEqual(with_packet_id(template, 10), P.PUBLISH_311_QOS1)

    def test_qos1_v5(self):
        message = Message("a/b", b"hi", qos=1)
        template = message.wire_template(True, 1, False, None, 0.0)
        self.assertEqual(with_packet_id(template, 10), P.PUBLISH_5_QOS1)

    def test_qos2_retain(self):
        message = Message("x", b"payload", qos=2, retain=True)
        template = message.wire_template(False, 2, True, None, 0.0)
        self.assertEqual(with_packet_id(template, 65535),
                         P.publish("x", b"payload", 2, retain=True, mid=65535))

    def test_granted_qos_is_the_variant(self):
        """A QoS 2 message to a QoS 1 subscription goes out at QoS 1."""
        message = Message("x", b"p", qos=2)
        template = message.wire_template(False, 1, False, None, 0.0)
        self.assertEqual(with_packet_id(template, 2), P.publish("x", b"p", 1, mid=2))

    def test_dup_flag(self):
        """A resent PUBLISH has DUP=1 and its original packet id
        [MQTT-4.4.0-1], [MQTT-3.3.1-1]; the template is not changed."""
        message = Message("a/b", b"hi", qos=2)
        template = message.wire_template(True, 2, True, None, 0.0)
        self.assertEqual(with_packet_id(template, 7, dup=True),
                         P.publish("a/b", b"hi", 2, retain=True, dup=True, mid=7, level=5))
        self.assertEqual(with_packet_id(template, 7),
                         P.publish("a/b", b"hi", 2, retain=True, mid=7, level=5))

    def test_packet_id_offset_with_long_remaining_length(self):
        """A payload of more than 127 bytes makes the remaining length two
        bytes long; the packet id is still patched in the right place."""
        payload = bytes(range(256)) * 3
        message = Message("long/topic", payload, qos=1)
        for v5 in (False, True):
            template = message.wire_template(v5, 1, False, None, 0.0)
            self.assertEqual(with_packet_id(template, 0x0102),
                             P.publish("long/topic", payload, 1, mid=0x0102,
                                       level=5 if v5 else 4))

    def test_packet_id_offset_with_properties(self):
        message = Message("t", b"x", qos=1, properties={"user_property": [("a", "b")]})
        template = message.wire_template(True, 1, False, (1,), 0.0)
        expected = P.publish("t", b"x", 1, mid=513, level=5, properties=P.props(
            P.p_pair(USER, "a", "b"), P.p_varint(SUB_ID, 1)))
        self.assertEqual(with_packet_id(template, 513), expected)


class AliasTests(SynchronousTestCase):
    """``wire_with_alias``: a server-assigned Topic Alias towards a 5.0
    client [MQTT-3.3.2-12]."""

    def test_establishing_and_using_an_alias(self):
        message = Message("a/b", b"hi", properties={"content_type": "c"})
        first = message.wire_with_alias("a/b", 1, 0, False, None, None, 0.0)
        later = message.wire_with_alias("", 1, 1, False, None, 9, 0.0)
        self.assertEqual(first, P.publish("a/b", b"hi", level=5, properties=P.props(
            P.p_str(CONTENT_TYPE, "c"), P.p_u16(TOPIC_ALIAS, 1))))
        self.assertEqual(later, P.publish("", b"hi", 1, mid=9, level=5, properties=P.props(
            P.p_str(CONTENT_TYPE, "c"), P.p_u16(TOPIC_ALIAS, 1))))

    def test_alias_is_not_cached_into_other_variants(self):
        message = Message("a/b", b"hi")
        message.wire_with_alias("a/b", 3, 0, False, None, None, 0.0)
        self.assertEqual(message.wire_qos0(True, False, None, 0.0),
                         P.publish("a/b", b"hi", level=5))
        self.assertIsNone(message.properties)
