# -*- test-case-name: tests.unit.test_codec_errors -*-
"""
Codec error handling: every malformed or forbidden input raises the
``MqttError`` whose reason code the spec asks for, and CONNACK return codes
map between 5.0 and 3.1.1.  (Split from test_codec.py to keep modules small.)
"""
import struct

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.mqtt import Decoder, MqttError
from nanomq_twisted.mqtt import reason_codes as rc
from nanomq_twisted.mqtt.errors import (
    MalformedPacket,
    PacketTooLarge,
)
from nanomq_twisted.mqtt.packets import (
    Pingreq,
    Puback,
    Pubcomp,
)
from tests import packets as pk

from .test_codec import LEVELS, decode_all, decode_one


class ErrorTests(SynchronousTestCase):
    """Each validation rule, with the reason code the peer should get."""

    def assertCode(self, code, data, level=None, **kw):
        exc = self.assertRaises(MqttError, decode_all, data, level, **kw)
        self.assertEqual(exc.reason_code, code, exc.message)
        return exc

    # -- framing -----------------------------------------------------------

    def test_varint_longer_than_4_bytes_MQTT_1_5_5(self):
        self.assertCode(0x81, b"\x30\xff\xff\xff\xff\x01", 4)
        # Detected from the header alone, before the fifth byte arrives.
        self.assertCode(0x81, b"\x30\x80\x80\x80\x80", 4)

    def test_first_packet_not_connect_MQTT_3_1_0_1(self):
        self.assertCode(0x82, pk.PINGREQ)
        self.assertCode(0x82, pk.publish("a", level=4))

    def test_second_connect_MQTT_3_1_0_2(self):
        self.assertCode(0x82, pk.connect("a") + pk.connect("a"))
        self.assertCode(0x82, pk.connect("a"), 4)

    def test_reserved_packet_types(self):
        self.assertCode(0x81, b"\x00\x00", 4)
        self.assertCode(0x81, pk.auth(), 4)
        self.assertCode(0x81, pk.auth(), 3)

    def test_fixed_header_flags_MQTT_2_2_2_2(self):
        for first in (0x21, 0x41, 0x52, 0x60, 0x63, 0x71, 0x80, 0x83,
                      0x91, 0xA0, 0xB1, 0xC1, 0xD8, 0xE2, 0xF4):
            self.assertCode(0x81, struct.pack("B", first) + b"\x00", 5)

    def test_connect_fixed_header_flags_MQTT_2_2_2_2(self):
        raw = bytearray(pk.connect("a"))
        raw[0] |= 1
        self.assertCode(0x81, bytes(raw))

    def test_publish_qos_3_MQTT_3_3_1_4(self):
        self.assertCode(0x81, b"\x36\x05\x00\x01a\x00\x01", 4)

    def test_dup_on_qos0_MQTT_3_3_1_2(self):
        raw = pk.publish("a", dup=True, level=5)
        self.assertCode(0x82, raw, 5)
        # Tolerated below 5.
        self.assertTrue(decode_one(pk.publish("a", dup=True), 4).dup)

    def test_packet_too_large_before_body(self):
        """The limit is enforced from the header alone: the body of a
        huge packet is never awaited."""
        header = b"\x30" + pk.varint(268435455)
        self.assertCode(0x95, header, 4, max_packet_size=1024)
        d = Decoder(4, max_packet_size=100)
        self.assertEqual(len(list(d.feed(pk.publish("a", b"x" * 95)))), 1)
        self.assertRaises(PacketTooLarge, list,
                          d.feed(pk.publish("a", b"x" * 96)))

    def test_packet_size_boundary(self):
        raw = pk.publish("a", b"x" * 10, level=4)
        self.assertEqual(len(decode_all(raw, 4, max_packet_size=len(raw))), 1)
        self.assertCode(0x95, raw, 4, max_packet_size=len(raw) - 1)

    def test_max_packet_size_changed_at_runtime(self):
        d = Decoder()
        list(d.feed(pk.connect("a", 5)))
        d.max_packet_size = 10
        self.assertRaises(PacketTooLarge, list,
                          d.feed(pk.publish("t", b"x" * 10, level=5)))

    def test_default_limit_allows_maximum(self):
        header = b"\x30\xff\xff\xff\x7f"
        self.assertEqual(decode_all(header, 4), [])

    def test_packet_too_large_during_connect(self):
        self.assertCode(0x95, pk.connect("a" * 100), None,
                        max_packet_size=50)

    # -- CONNECT -----------------------------------------------------------

    def test_unsupported_protocol_level_MQTT_3_1_2_2(self):
        for name, level in (("MQTT", 3), ("MQTT", 6), ("MQIsdp", 4),
                            ("MQTX", 4), ("MQIsdp", 5)):
            self.assertCode(0x84, pk.connect("a", level, name=name))

    def test_reserved_flag_set_MQTT_3_1_2_3(self):
        for level in LEVELS:
            exc = self.assertCode(0x81, pk.connect("a", level,
                                                   connect_flags=0x03))
            self.assertEqual(exc.protocol_level, level)

    def test_will_qos_without_will_flag_MQTT_3_1_2_11_13(self):
        self.assertCode(0x81, pk.connect("a", 4, connect_flags=0x0A))

    def test_will_retain_without_will_flag_MQTT_3_1_2_15(self):
        self.assertCode(0x81, pk.connect("a", 5, connect_flags=0x22))

    def test_will_qos_3_MQTT_3_1_2_14(self):
        self.assertCode(0x81, pk.connect("a", 4, will_topic="w",
                                         connect_flags=0x1E))

    def test_password_without_username_MQTT_3_1_2_22(self):
        for level in (3, 4):
            self.assertCode(0x81, pk.connect("a", level, password=b"p"))
        c = decode_one(pk.connect("a", 5, password=b"p"))
        self.assertEqual((c.username, c.password), (None, b"p"))

    def test_will_topic_with_wildcard(self):
        self.assertCode(0x90, pk.connect("a", 4, will_topic="a/#"))
        self.assertCode(0x90, pk.connect("a", 5, will_topic=""))

    def test_connect_truncated_and_trailing(self):
        raw = pk.connect("abc", 4)
        self.assertCode(0x81, pk.fixed(0x10, raw[2:-1]))
        self.assertCode(0x81, pk.fixed(0x10, raw[2:] + b"\x00"))

    def test_connect_invalid_utf8_client_id_MQTT_1_5_4_1(self):
        self.assertCode(0x81, pk.connect(b"\xff\xfe", 4))
        # Encoded surrogate half.
        self.assertCode(0x81, pk.connect(b"\xed\xa0\x80", 4))

    def test_connect_nul_in_username_MQTT_1_5_4_2(self):
        self.assertCode(0x81, pk.connect("a", 4, username="u\x00"))

    def test_will_property_not_allowed_in_connect(self):
        self.assertCode(0x81, pk.connect(
            "a", 5, properties=pk.props(pk.p_u32(0x18, 1))))

    def test_connack_checks(self):
        self.assertCode(0x81, b"\x20\x02\x02\x00", 4)  # [MQTT-3.2.2-1]
        self.assertCode(0x82, b"\x20\x02\x00\x06", 4)
        self.assertCode(0x82, b"\x20\x02\x01\x05", 4)  # [MQTT-3.2.2-4]
        self.assertCode(0x82, b"\x20\x03\x00\x10\x00", 5)
        self.assertCode(0x81, b"\x20\x03\x00\x00\x00", 4)

    # -- PUBLISH -------------------------------------------------------------

    def test_publish_packet_id_zero_MQTT_2_2_1_3(self):
        self.assertCode(0x82, pk.publish("a", qos=1, mid=0), 4)
        self.assertCode(0x82, pk.publish("a", qos=2, mid=0, level=5), 5)

    def test_subscription_identifier_from_a_client_MQTT_3_3_4_6(self):
        """Found by the fuzzer (tests/fuzzing): a client's PUBLISH with a
        Subscription Identifier is a Protocol Error for the server; a
        client decoder (a bridge) takes it from its server."""
        connect = b"\x10\x0e\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x01c"
        publish = b"\x32\x08\x00\x01t\x00\x01\x02\x0b\x05"
        server = Decoder()
        self.assertEqual(len(list(server.feed(connect))), 1)
        exc = self.assertRaises(MqttError, list, server.feed(publish))
        self.assertEqual(exc.reason_code, 0x82)
        (packet,) = Decoder(protocol_level=5).feed(publish)
        self.assertEqual(packet.properties, {"subscription_identifier": [5]})

    def test_publish_wildcard_topic_MQTT_3_3_2_2(self):
        for topic in ("a/+", "#", "a/#/b", "x+"):
            self.assertCode(0x90, pk.publish(topic, level=4), 4)
            self.assertCode(0x90, pk.publish(topic, level=5), 5)

    def test_publish_shared_subscription_prefix_topic(self):
        """Our rule (docs/compatibility.md): topic names starting $share/ or
        $queue/ are refused like wildcards; the will topic too."""
        for topic in ("$share/g/a", "$queue/a"):
            self.assertCode(0x90, pk.publish(topic, level=4), 4)
            self.assertCode(0x90, pk.publish(topic, level=5), 5)
            self.assertCode(0x90, pk.connect("a", 5, will_topic=topic))

    def test_publish_empty_topic_MQTT_4_7_3_1(self):
        self.assertCode(0x81, pk.publish("", level=4), 4)
        self.assertCode(0x82, pk.publish("", level=5), 5)
        ok = decode_one(pk.publish("", b"x", level=5, properties=pk.props(
            pk.p_u16(0x23, 4))), 5)
        self.assertEqual((ok.topic, ok.properties), ("", {"topic_alias": 4}))

    def test_publish_topic_alias_zero_MQTT_3_3_2_8(self):
        self.assertCode(0x94, pk.publish("a", level=5, properties=pk.props(
            pk.p_u16(0x23, 0))), 5)

    def test_publish_topic_invalid_utf8_MQTT_1_5_4_1(self):
        self.assertCode(0x81, pk.publish(b"a\xc3", level=4), 4)
        self.assertCode(0x81, pk.publish("a\x00b", level=4), 4)

    def test_publish_truncated(self):
        self.assertCode(0x81, b"\x30\x01\x00", 4)
        self.assertCode(0x81, b"\x30\x03\x00\x05a", 4)
        self.assertCode(0x81, b"\x32\x04\x00\x01a\x00", 4)

    def test_publish_property_errors(self):
        self.assertCode(0x81, pk.publish("a", level=5, properties=pk.props(
            pk.p_u32(0x11, 1))), 5)  # session expiry: not allowed
        self.assertCode(0x82, pk.publish("a", level=5, properties=pk.props(
            pk.p_str(0x03, "x"), pk.p_str(0x03, "y"))), 5)
        self.assertCode(0x81, pk.publish("a", level=5, properties=pk.props(
            pk.p_byte(0x7E, 1))), 5)
        self.assertCode(0x81, pk.publish("a", level=5,
                                         properties=b"\x09\x01\x01"), 5)

    # -- acknowledgements ------------------------------------------------------

    def test_ack_packet_id_zero_MQTT_2_2_1_3(self):
        for build in (pk.puback, pk.pubrec, pk.pubrel, pk.pubcomp):
            self.assertCode(0x82, build(0), 4)

    def test_ack_lengths(self):
        for build in (pk.puback, pk.pubrec, pk.pubrel, pk.pubcomp):
            self.assertCode(0x81, build(1, 0), 4)  # 3 bytes in 3.1.1
            self.assertCode(0x81, build(1)[:1] + b"\x01\x00", 5)
            self.assertCode(0x81, build(1, 0, b"\x00\x00"), 5)

    def test_ack_reason_codes(self):
        self.assertCode(0x82, pk.puback(1, 0x92), 5)
        self.assertCode(0x82, pk.pubrel(1, 0x10), 5)
        self.assertEqual(decode_one(pk.pubcomp(1, 0x92, b"\x00"), 5),
                         Pubcomp(1, 0x92))

    def test_subscribe_no_filters_MQTT_3_8_3_3(self):
        self.assertCode(0x82, pk.subscribe(1, [], 4), 4)
        self.assertCode(0x82, pk.subscribe(1, [], 5), 5)

    def test_subscribe_packet_id_zero_MQTT_2_2_1_3(self):
        self.assertCode(0x82, pk.subscribe(0, [("a", 0)], 4), 4)

    def test_subscribe_reserved_option_bits_MQTT_3_8_3_4(self):
        self.assertCode(0x81, pk.subscribe(1, [("a", 0x04)], 4), 4)
        self.assertCode(0x81, pk.subscribe(1, [("a", 0x40)], 5), 5)
        self.assertCode(0x81, pk.subscribe(1, [("a", 0x80)], 5), 5)

    def test_subscribe_qos_3(self):
        self.assertCode(0x81, pk.subscribe(1, [("a", 3)], 4), 4)
        self.assertCode(0x81, pk.subscribe(1, [("a", 3)], 5), 5)

    def test_subscribe_retain_handling_3(self):
        self.assertCode(0x82, pk.subscribe(1, [("a", 0x30)], 5), 5)

    def test_no_local_on_shared_subscription_MQTT_3_8_3_4(self):
        self.assertCode(0x82, pk.subscribe(1, [("$share/g/a", 0x04)], 5), 5)

    def test_subscribe_filters_not_validated(self):
        """Bad filters reach the broker, which answers SUBACK 0x8F."""
        got = decode_one(pk.subscribe(1, [("a/#/b", 0), ("", 1)], 5), 5)
        self.assertEqual([s.topic_filter for s in got.subscriptions],
                         ["a/#/b", ""])

    def test_subscribe_invalid_utf8_filter_MQTT_1_5_4_1(self):
        self.assertCode(0x81, pk.subscribe(1, [(b"\xc0\xaf", 0)], 4), 4)

    def test_subscribe_truncated_options(self):
        self.assertCode(0x81, pk.fixed(0x82, pk.u16(1) + pk.string("a")), 4)

    def test_subscribe_duplicate_subscription_identifier(self):
        self.assertCode(0x82, pk.subscribe(1, [("a", 0)], 5, pk.props(
            pk.p_varint(0x0B, 1), pk.p_varint(0x0B, 2))), 5)

    def test_unsubscribe_no_filters_MQTT_3_10_3_2(self):
        self.assertCode(0x82, pk.unsubscribe(1, [], 4), 4)
        self.assertCode(0x82, pk.unsubscribe(1, [], 5), 5)

    def test_unsubscribe_packet_id_zero(self):
        self.assertCode(0x82, pk.unsubscribe(0, ["a"], 4), 4)

    def test_suback_codes(self):
        self.assertCode(0x82, pk.suback(1, (3,), 4), 4)  # [MQTT-3.9.3-2]
        self.assertCode(0x82, pk.suback(1, (0x11,), 5), 5)
        self.assertCode(0x82, pk.suback(1, (), 4), 4)

    def test_unsuback_checks(self):
        self.assertCode(0x81, pk.unsuback(1, (0,), 5)[:1] + b"\x03\x00\x01\x00",
                        4)
        self.assertCode(0x82, pk.unsuback(1, (0x10,), 5), 5)
        self.assertCode(0x82, pk.unsuback(1, (), 5), 5)

    def test_ping_with_body(self):
        self.assertCode(0x81, b"\xc0\x01\x00", 4)
        self.assertCode(0x81, b"\xd0\x01\x00", 4)

    def test_disconnect_checks(self):
        self.assertCode(0x81, b"\xe0\x01\x00", 4)
        self.assertCode(0x82, pk.disconnect(0x01), 5)
        self.assertCode(0x81, pk.disconnect(0x00, b"\x00\x00"), 5)
        self.assertCode(0x81, pk.disconnect(0x00, pk.props(
            pk.p_u16(0x23, 1))), 5)

    def test_auth_checks(self):
        self.assertCode(0x82, pk.auth(0x01), 5)
        self.assertCode(0x81, pk.auth(0x18, pk.props(pk.p_u32(0x11, 1))), 5)

    def test_error_after_good_packets_in_same_chunk(self):
        """Packets before the bad one are yielded first."""
        d = Decoder(4)
        it = d.feed(pk.PINGREQ + pk.puback(1) + b"\xc1\x00" + pk.PINGREQ)
        self.assertEqual(next(it), Pingreq())
        self.assertEqual(next(it), Puback(1))
        self.assertRaises(MalformedPacket, next, it)


class ConnackMappingTests(SynchronousTestCase):
    def test_connack_code_for_v3(self):
        expected = {
            0x00: 0, 0x84: 1, 0x85: 2, 0x88: 3, 0x89: 3, 0x8A: 3, 0x86: 4,
            0x87: 5, 0x8C: 5, 0x80: 3, 0x81: 3, 0x97: 3, 0x9F: 3,
        }
        for v5, v3 in expected.items():
            self.assertEqual(rc.connack_code_for_v3(v5), v3, hex(v5))

    def test_reason_code_values(self):
        self.assertEqual(
            (rc.SUCCESS, rc.NO_MATCHING_SUBSCRIBERS, rc.MALFORMED_PACKET,
             rc.KEEP_ALIVE_TIMEOUT, rc.SESSION_TAKEN_OVER,
             rc.PACKET_TOO_LARGE, rc.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED,
             rc.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED),
            (0x00, 0x10, 0x81, 0x8D, 0x8E, 0x95, 0x9E, 0xA2))


class PubackFastPathTests(SynchronousTestCase):
    """The decoder's short path for a plain PUBACK keeps every rule of the
    general one."""

    def connected(self, level=4):
        decoder = Decoder()
        list(decoder.feed(pk.connect("c", level=level)))
        return decoder

    def test_plain_puback(self):
        decoder = self.connected()
        self.assertEqual(list(decoder.feed(b"\x40\x02\x01\x02")), [Puback(0x0102)])

    def test_packet_id_0_MQTT_2_2_1_3(self):
        decoder = self.connected()
        exc = self.assertRaises(MqttError, list, decoder.feed(b"\x40\x02\x00\x00"))
        self.assertEqual(exc.reason_code, rc.PROTOCOL_ERROR)

    def test_before_connect_MQTT_3_1_0_1(self):
        exc = self.assertRaises(MqttError, list, Decoder().feed(b"\x40\x02\x00\x01"))
        self.assertEqual(exc.reason_code, rc.PROTOCOL_ERROR)

    def test_split_and_stopped_early(self):
        # Half a PUBACK waits for its rest; a consumer that stops after
        # one packet finds the others still buffered at the next feed.
        decoder = self.connected(level=5)
        self.assertEqual(list(decoder.feed(b"\x40\x02\x00")), [])
        packets = decoder.feed(b"\x01\x40\x02\x00\x02" + pk.PINGREQ)
        self.assertEqual(next(packets), Puback(1))
        del packets
        self.assertEqual(list(decoder.feed(b"")), [Puback(2), Pingreq()])
