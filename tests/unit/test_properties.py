"""
Tests for the MQTT 5 property table and property blocks.

Expected bytes come from `tests.packets` (hand-built from the
specification) and from paho-mqtt's independent ``Properties.pack()``;
the permitted-packet column of our table is checked against paho's too.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.mqtt import properties as P
from nanomq_twisted.mqtt.errors import MalformedPacket, MqttError, ProtocolError
from nanomq_twisted.mqtt.packets import CONNECT, PUBLISH, SUBSCRIBE
from tests import packets as pk

# Written from [MQTT-2.2.2.2] table 2-4, independently of properties.py:
# id, name, hand-built encoder, a sample value.
SPEC = [
    (0x01, "payload_format_indicator", pk.p_byte, 1),
    (0x02, "message_expiry_interval", pk.p_u32, 3600),
    (0x03, "content_type", pk.p_str, "text/plain"),
    (0x08, "response_topic", pk.p_str, "reply/here"),
    (0x09, "correlation_data", pk.p_bin, b"\x00\x01corr"),
    (0x0B, "subscription_identifier", pk.p_varint, 268435455),
    (0x11, "session_expiry_interval", pk.p_u32, 0xFFFFFFFF),
    (0x12, "assigned_client_identifier", pk.p_str, "auto-123"),
    (0x13, "server_keep_alive", pk.p_u16, 30),
    (0x15, "authentication_method", pk.p_str, "SCRAM-SHA-1"),
    (0x16, "authentication_data", pk.p_bin, b"\xde\xad"),
    (0x17, "request_problem_information", pk.p_byte, 0),
    (0x18, "will_delay_interval", pk.p_u32, 5),
    (0x19, "request_response_information", pk.p_byte, 1),
    (0x1A, "response_information", pk.p_str, "resp/"),
    (0x1C, "server_reference", pk.p_str, "other:1883"),
    (0x1F, "reason_string", pk.p_str, "because \u00e9"),
    (0x21, "receive_maximum", pk.p_u16, 65535),
    (0x22, "topic_alias_maximum", pk.p_u16, 10),
    (0x23, "topic_alias", pk.p_u16, 7),
    (0x24, "maximum_qos", pk.p_byte, 1),
    (0x25, "retain_available", pk.p_byte, 0),
    (0x26, "user_property", None, [("k", "v")]),
    (0x27, "maximum_packet_size", pk.p_u32, 1024),
    (0x28, "wildcard_subscription_available", pk.p_byte, 1),
    (0x29, "subscription_identifier_available", pk.p_byte, 1),
    (0x2A, "shared_subscription_available", pk.p_byte, 0),
]

_PAHO_TYPE = {0: PacketTypes.WILLMESSAGE}


def _expected(ident, build, value):
    if build is None:
        return pk.props(*(pk.p_pair(ident, k, v) for k, v in value))
    return pk.props(build(ident, value))


def _paho_name(ident):
    for name, number in Properties(PacketTypes.PUBLISH).names.items():
        if number == ident:
            return name.replace(" ", "")
    raise KeyError(ident)


def _some_packet(prop):
    return min(prop.packets)


class TableTests(SynchronousTestCase):
    def test_table_matches_spec(self):
        """Every property of table 2-4 is present, once, with its id."""
        self.assertEqual(
            [(p.id, p.name) for p in P.PROPERTIES],
            [(i, n) for i, n, _, _ in SPEC])

    def test_allowed_packets_match_paho(self):
        """The permitted-packet column agrees with paho-mqtt's table."""
        reference = Properties(PacketTypes.PUBLISH).properties
        for prop in P.PROPERTIES:
            ours = {_PAHO_TYPE.get(t, t) for t in prop.packets}
            self.assertEqual(ours, set(reference[prop.id][1]), prop.name)

    def test_repeatable(self):
        """Only User Property repeats, and Subscription Identifier in
        PUBLISH [MQTT-3.3.4-4]."""
        for prop in P.PROPERTIES:
            if prop.name == "user_property":
                self.assertEqual(prop.repeat_in, prop.packets)
            elif prop.name == "subscription_identifier":
                self.assertEqual(prop.repeat_in, {PUBLISH})
            else:
                self.assertEqual(prop.repeat_in, frozenset(), prop.name)

    def test_is_allowed(self):
        self.assertTrue(P.is_allowed("topic_alias", PUBLISH))
        self.assertFalse(P.is_allowed("topic_alias", CONNECT))
        self.assertFalse(P.is_allowed("nonsense", CONNECT))


def _make_each_property_test(ident, name, build, value):
    def test(self):
        prop = P.BY_ID[ident]
        ptype = _some_packet(prop)
        expected = _expected(ident, build, value)
        if name == "subscription_identifier" and ptype == PUBLISH:
            value_in = [value]
        else:
            value_in = value
        # Encoder agrees with the hand-built bytes.
        self.assertEqual(P.encode_properties({name: value_in}), expected)
        # Decoder reads them back.
        decoded, pos = P.decode_properties(expected, 0, len(expected), ptype)
        self.assertEqual(decoded, {name: value_in})
        self.assertEqual(pos, len(expected))
        # paho-mqtt's independent encoder produces the same bytes.
        paho = Properties(_PAHO_TYPE.get(ptype, ptype))
        setattr(paho, _paho_name(ident), value[0] if build is None else value)
        self.assertEqual(paho.pack(), expected)
        # And the property is refused in a packet that may not carry it.
        for other in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 14, 15, 0):
            if other not in prop.packets:
                self.assertRaises(MalformedPacket, P.decode_properties,
                                  expected, 0, len(expected), other)
    test.__name__ = f"test_property_0x{ident:02x}_{name}"
    return test


class EachPropertyTests(SynchronousTestCase):
    """One test per property identifier, generated from `SPEC`."""

    for _ident, _name, _build, _value in SPEC:
        _t = _make_each_property_test(_ident, _name, _build, _value)
        locals()[_t.__name__] = _t
    del _ident, _name, _build, _value, _t


class BlockTests(SynchronousTestCase):
    def test_empty_block(self):
        self.assertEqual(P.encode_properties({}), b"\x00")
        self.assertEqual(P.decode_properties(b"\x00", 0, 1, PUBLISH), ({}, 1))

    def test_order_preserved(self):
        """Properties are written in dict order so decoded blocks re-encode
        to identical bytes."""
        block = pk.props(pk.p_u16(0x23, 3), pk.p_byte(0x01, 1),
                         pk.p_pair(0x26, "a", "1"), pk.p_u32(0x02, 9),
                         pk.p_pair(0x26, "a", "2"))
        decoded, _ = P.decode_properties(block, 0, len(block), PUBLISH)
        self.assertEqual(decoded["user_property"], [("a", "1"), ("a", "2")])
        self.assertEqual(list(decoded),
                         ["topic_alias", "payload_format_indicator",
                          "user_property", "message_expiry_interval"])
        again = P.encode_properties(decoded)
        self.assertEqual(len(again), len(block))
        self.assertEqual(P.decode_properties(again, 0, len(again), PUBLISH)[0],
                         decoded)

    def test_multiple_subscription_identifiers_in_publish_MQTT_3_3_4_4(self):
        block = pk.props(pk.p_varint(0x0B, 1), pk.p_varint(0x0B, 200))
        decoded, _ = P.decode_properties(block, 0, len(block), PUBLISH)
        self.assertEqual(decoded, {"subscription_identifier": [1, 200]})
        self.assertEqual(P.encode_properties(decoded), block)

    def test_subscription_identifier_single_in_subscribe(self):
        block = pk.props(pk.p_varint(0x0B, 5))
        self.assertEqual(
            P.decode_properties(block, 0, len(block), SUBSCRIBE)[0],
            {"subscription_identifier": 5})
        twice = pk.props(pk.p_varint(0x0B, 5), pk.p_varint(0x0B, 6))
        self.assertRaises(ProtocolError, P.decode_properties, twice, 0,
                          len(twice), SUBSCRIBE)

    def test_duplicate_non_repeatable_is_protocol_error(self):
        block = pk.props(pk.p_u32(0x02, 1), pk.p_u32(0x02, 2))
        self.assertRaises(ProtocolError, P.decode_properties, block, 0,
                          len(block), PUBLISH)

    def test_unknown_identifier_is_malformed(self):
        for ident in (0x00, 0x04, 0x2B, 0x7F, 0x80):
            block = pk.props(pk.p_byte(ident, 0))
            self.assertRaises(MalformedPacket, P.decode_properties, block, 0,
                              len(block), PUBLISH)

    def test_length_overruns(self):
        block = b"\x05\x01\x01"
        self.assertRaises(MalformedPacket, P.decode_properties, block, 0,
                          len(block), PUBLISH)

    def test_value_truncated_inside_block(self):
        # Block claims 3 bytes; a four byte integer needs 5.
        block = b"\x03\x02\x00\x00" + b"\x00\x00"
        self.assertRaises(MalformedPacket, P.decode_properties, block, 0,
                          len(block), PUBLISH)

    def test_invalid_values(self):
        """Boolean bytes must be 0/1 and some values non-zero; a Topic Alias
        of 0 is Topic Alias invalid [MQTT-3.3.2-8]."""
        cases = [
            (pk.p_byte(0x17, 2), CONNECT, 0x82),
            (pk.p_byte(0x19, 7), CONNECT, 0x82),
            (pk.p_u16(0x21, 0), CONNECT, 0x82),
            (pk.p_u32(0x27, 0), CONNECT, 0x82),
            (pk.p_varint(0x0B, 0), SUBSCRIBE, 0x82),
            (pk.p_u16(0x23, 0), PUBLISH, 0x94),
            # Found by the fuzzer: a Response Topic with wildcards
            # [MQTT-3.3.2-14], in a PUBLISH and in a will.
            (pk.p_str(0x08, "reply/+"), PUBLISH, 0x82),
            (pk.p_str(0x08, "reply/#"), P.WILL_PROPERTIES, 0x82),
        ]
        for prop, ptype, code in cases:
            block = pk.props(prop)
            exc = self.assertRaises(MqttError, P.decode_properties, block, 0,
                                    len(block), ptype)
            self.assertEqual(exc.reason_code, code)

    def test_payload_format_indicator_any_value_MQTT_3_3_2_4(self):
        """The specification names 0 and 1 but makes no other value an
        error, and the server forwards it unaltered: 0x02 and 0xFF decode,
        in PUBLISH and in the will, and encode back to the same bytes."""
        for value in (2, 0xFF):
            block = pk.props(pk.p_byte(0x01, value))
            for ptype in (PUBLISH, P.WILL_PROPERTIES):
                self.assertEqual(
                    P.decode_properties(block, 0, len(block), ptype),
                    ({"payload_format_indicator": value}, len(block)))
            self.assertEqual(
                P.encode_properties({"payload_format_indicator": value}), block)

    def test_encoder_refuses_out_of_range_values(self):
        """Nothing outside what a conforming receiver accepts is ever
        written: paho-mqtt refuses a Maximum Packet Size above 268,435,455
        and drops the connection, so producing one is a ValueError."""
        refused = {
            "maximum_packet_size": (0, 268435456, 2**32 - 1),
            "receive_maximum": (0, 65536),
            "topic_alias_maximum": (-1, 65536),
            "server_keep_alive": (-1, 65536),
            "topic_alias": (0, 65536),
            "subscription_identifier": (0, 268435456),
            "session_expiry_interval": (-1, 2**32),
            "message_expiry_interval": (-1, 2**32),
            "payload_format_indicator": (-1, 256),
            "maximum_qos": (2,),
            "retain_available": (2,),
            "request_problem_information": (2,),
        }
        for name, values in refused.items():
            for value in values:
                self.assertRaises(ValueError, P.encode_properties, {name: value})
        self.assertRaises(ValueError, P.encode_properties,
                          {"subscription_identifier": [1, 0]})
        self.assertRaises(ValueError, P.encode_properties,
                          {"maximum_packet_size": "10"})
        # The edges themselves are fine, and match hand-built bytes.
        self.assertEqual(
            P.encode_properties({"maximum_packet_size": 268435455}),
            pk.props(pk.p_u32(0x27, 268435455)))
        self.assertEqual(
            P.encode_properties({"receive_maximum": 65535}),
            pk.props(pk.p_u16(0x21, 65535)))

    def test_invalid_utf8_in_string_property_MQTT_1_5_4_1(self):
        block = pk.props(b"\x03\x00\x02\xc3\x28")
        self.assertRaises(MalformedPacket, P.decode_properties, block, 0,
                          len(block), PUBLISH)

    def test_unknown_name_encoding_is_value_error(self):
        self.assertRaises(ValueError, P.encode_properties, {"bogus": 1})

    def test_lone_user_property_pair(self):
        self.assertEqual(P.encode_properties({"user_property": ("a", "b")}),
                         pk.props(pk.p_pair(0x26, "a", "b")))

    @settings(max_examples=200, deadline=None)
    @given(st.data())
    def test_round_trip_against_paho(self, data):
        """Random PUBLISH property sets: our bytes equal paho's when written
        in paho's (identifier) order, and decode back to the input."""
        text = st.text(st.characters(blacklist_categories=("Cs",),
                                     blacklist_characters="\x00"),
                       max_size=20)
        candidates = {
            "payload_format_indicator": st.integers(0, 1),
            "message_expiry_interval": st.integers(0, 2**32 - 1),
            "content_type": text,
            # A topic name: no wildcards [MQTT-3.3.2-14].
            "response_topic": text.filter(lambda t: "+" not in t and "#" not in t),
            "correlation_data": st.binary(max_size=20),
            "subscription_identifier": st.lists(
                st.integers(1, 268435455), min_size=1, max_size=3),
            "topic_alias": st.integers(1, 65535),
            "user_property": st.lists(st.tuples(text, text), min_size=1,
                                      max_size=3),
        }
        chosen = data.draw(st.sets(st.sampled_from(sorted(candidates))))
        props = {}
        paho = Properties(PacketTypes.PUBLISH)
        for prop in P.PROPERTIES:
            if prop.name in chosen:
                value = data.draw(candidates[prop.name])
                props[prop.name] = value
                setattr(paho, _paho_name(prop.id), value)
        encoded = P.encode_properties(props)
        self.assertEqual(encoded, paho.pack())
        self.assertEqual(
            P.decode_properties(encoded, 0, len(encoded), PUBLISH),
            (props, len(encoded)))
