# -*- test-case-name: tests.unit.test_properties -*-
"""
MQTT 5 properties: one table, and the encoder/decoder of a property block.

Every fact about a property -- identifier, name, wire type, which packets
may carry it, whether it may repeat, what values are legal -- is a row of
`PROPERTIES` ([MQTT-2.2.2.2] table 2-4), so a rule can be checked against
the specification by reading one line.  The decoder is driven entirely by
the table; nothing else in the codec knows about individual properties.

Two value rules per row, on purpose different:

- ``constraint`` is what the *decoder* refuses from a peer, and only what
  the specification makes an error ("It is a Protocol Error ... to have a
  value other than 0 or 1").  The Payload Format Indicator has none: the
  specification names 0 and 1 but makes no other value an error, and a
  server must forward it unaltered [MQTT-3.3.2-4].  A Response Topic is a
  topic name and "MUST NOT contain wildcard characters" [MQTT-3.3.2-14]:
  one that does is a Protocol Error (found by the fuzzer, tests/fuzzing).
- ``bounds`` is what the *encoder* will ever write: the strict range a
  conforming receiver accepts (Maximum Packet Size 1..268,435,455, Receive
  Maximum 1..65,535, ...).  Writing outside it is a programming error
  (``ValueError``), so a value derived from configuration that was not
  clamped can never reach a client -- paho-mqtt drops the whole connection
  over one such property.

Properties travel as a ``dict`` keyed by the snake_case name.  A property
that may repeat in a packet (``user_property`` everywhere, and
``subscription_identifier`` in PUBLISH) decodes to a list; a
``user_property`` value is a list of ``(name, value)`` pairs.  Will
properties are checked as if they belonged to the pseudo packet type
`WILL_PROPERTIES`.
"""

from collections import namedtuple

from nanomq_twisted.mqtt import wire
from nanomq_twisted.mqtt.errors import MalformedPacket, MqttError, ProtocolError
from nanomq_twisted.mqtt.packets import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
)

# Pseudo packet type for the Will Properties inside CONNECT (type 0 is
# reserved on the wire, so it can never clash with a real packet).
WILL_PROPERTIES = 0

# Wire types, [MQTT-1.5].
BYTE = "byte"
TWO_BYTE_INT = "two_byte_int"
FOUR_BYTE_INT = "four_byte_int"
VARINT = "varint"
UTF8 = "utf8"
BINARY = "binary"
UTF8_PAIR = "utf8_pair"

# Value constraints: (predicate, reason code when violated).
_BOOLEAN = (lambda v: v in (0, 1), 0x82)
_NON_ZERO = (lambda v: v != 0, 0x82)
# [MQTT-3.3.2-14] a Response Topic is a topic name: no wildcards.
_TOPIC_NAME = (lambda v: "+" not in v and "#" not in v, 0x82)
# [MQTT-3.3.2-8] a Topic Alias of 0 is answered with Topic Alias invalid.
_ALIAS = (lambda v: v != 0, 0x94)

Property = namedtuple(
    "Property", "id name type packets repeat_in constraint bounds"
)

_ALL_WITH_PROPS = frozenset({
    CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE,
    SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH, WILL_PROPERTIES,
})
_MSG = frozenset({PUBLISH, WILL_PROPERTIES})
_REASON_STRING = frozenset({
    CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT,
    AUTH,
})
_NONE = frozenset()
_f = frozenset

# Encoder bounds (inclusive).  The type's own range unless the property's
# definition narrows it.
_U8 = (0, 0xFF)
_U16 = (0, 0xFFFF)
_U32 = (0, 0xFFFFFFFF)
_FLAG = (0, 1)
_NONZERO_U16 = (1, 0xFFFF)
_NONZERO_VARINT = (1, wire.MAX_VARINT)
# The largest packet has a 268,435,455-byte remaining length [MQTT-1.5.5];
# clients (paho-mqtt) refuse a Maximum Packet Size above it.
_PACKET_SIZE = (1, wire.MAX_VARINT)

# id, name, type, allowed in, may repeat in, decode constraint, encode bounds
PROPERTIES = (
    # [MQTT-3.3.2-4]: forwarded unaltered, whatever its value (see above).
    Property(0x01, "payload_format_indicator", BYTE, _MSG, _NONE, None, _U8),
    Property(0x02, "message_expiry_interval", FOUR_BYTE_INT, _MSG, _NONE, None,
             _U32),
    Property(0x03, "content_type", UTF8, _MSG, _NONE, None, None),
    Property(0x08, "response_topic", UTF8, _MSG, _NONE, _TOPIC_NAME, None),
    Property(0x09, "correlation_data", BINARY, _MSG, _NONE, None, None),
    Property(0x0B, "subscription_identifier", VARINT,
             _f({PUBLISH, SUBSCRIBE}), _f({PUBLISH}), _NON_ZERO,
             _NONZERO_VARINT),
    Property(0x11, "session_expiry_interval", FOUR_BYTE_INT,
             _f({CONNECT, CONNACK, DISCONNECT}), _NONE, None, _U32),
    Property(0x12, "assigned_client_identifier", UTF8, _f({CONNACK}), _NONE,
             None, None),
    Property(0x13, "server_keep_alive", TWO_BYTE_INT, _f({CONNACK}), _NONE,
             None, _U16),
    Property(0x15, "authentication_method", UTF8,
             _f({CONNECT, CONNACK, AUTH}), _NONE, None, None),
    Property(0x16, "authentication_data", BINARY,
             _f({CONNECT, CONNACK, AUTH}), _NONE, None, None),
    Property(0x17, "request_problem_information", BYTE, _f({CONNECT}), _NONE,
             _BOOLEAN, _FLAG),
    Property(0x18, "will_delay_interval", FOUR_BYTE_INT,
             _f({WILL_PROPERTIES}), _NONE, None, _U32),
    Property(0x19, "request_response_information", BYTE, _f({CONNECT}),
             _NONE, _BOOLEAN, _FLAG),
    Property(0x1A, "response_information", UTF8, _f({CONNACK}), _NONE, None,
             None),
    Property(0x1C, "server_reference", UTF8, _f({CONNACK, DISCONNECT}),
             _NONE, None, None),
    Property(0x1F, "reason_string", UTF8, _REASON_STRING, _NONE, None, None),
    Property(0x21, "receive_maximum", TWO_BYTE_INT, _f({CONNECT, CONNACK}),
             _NONE, _NON_ZERO, _NONZERO_U16),
    Property(0x22, "topic_alias_maximum", TWO_BYTE_INT,
             _f({CONNECT, CONNACK}), _NONE, None, _U16),
    Property(0x23, "topic_alias", TWO_BYTE_INT, _f({PUBLISH}), _NONE, _ALIAS,
             _NONZERO_U16),
    Property(0x24, "maximum_qos", BYTE, _f({CONNACK}), _NONE, _BOOLEAN, _FLAG),
    Property(0x25, "retain_available", BYTE, _f({CONNACK}), _NONE, _BOOLEAN,
             _FLAG),
    Property(0x26, "user_property", UTF8_PAIR, _ALL_WITH_PROPS,
             _ALL_WITH_PROPS, None, None),
    Property(0x27, "maximum_packet_size", FOUR_BYTE_INT,
             _f({CONNECT, CONNACK}), _NONE, _NON_ZERO, _PACKET_SIZE),
    Property(0x28, "wildcard_subscription_available", BYTE, _f({CONNACK}),
             _NONE, _BOOLEAN, _FLAG),
    Property(0x29, "subscription_identifier_available", BYTE, _f({CONNACK}),
             _NONE, _BOOLEAN, _FLAG),
    Property(0x2A, "shared_subscription_available", BYTE, _f({CONNACK}),
             _NONE, _BOOLEAN, _FLAG),
)

BY_ID = {p.id: p for p in PROPERTIES}
BY_NAME = {p.name: p for p in PROPERTIES}

_READERS = {
    BYTE: wire.read_u8,
    TWO_BYTE_INT: wire.read_u16,
    FOUR_BYTE_INT: wire.read_u32,
    VARINT: wire.read_varint,
    UTF8: wire.read_str,
    BINARY: wire.read_binary,
    UTF8_PAIR: wire.read_pair,
}


def decode_properties(data, pos, end, packet_type):
    """Decode the property block at ``data[pos:]``; return ``(dict, pos)``.

    ``packet_type`` is a packet type number or `WILL_PROPERTIES`.  Unknown
    identifiers and properties not allowed in this packet make the packet
    malformed; a property repeated where it may not repeat is a protocol
    error [MQTT-2.2.2.2].
    """
    length, pos = wire.read_varint(data, pos, end)
    stop = pos + length
    if stop > end:
        raise MalformedPacket("property length overruns the packet")
    props = {}
    while pos < stop:
        prop = BY_ID.get(data[pos])
        if prop is None:
            raise MalformedPacket(f"unknown property identifier 0x{data[pos]:02x}")
        if packet_type not in prop.packets:
            raise MalformedPacket(f"property {prop.name} not allowed here")
        value, pos = _READERS[prop.type](data, pos + 1, stop)
        if prop.constraint is not None and not prop.constraint[0](value):
            raise MqttError(prop.constraint[1],
                            f"invalid value {value!r} for {prop.name}")
        name = prop.name
        if packet_type in prop.repeat_in:
            existing = props.get(name)
            if existing is None:
                props[name] = [value]
            else:
                existing.append(value)
        elif name in props:
            raise ProtocolError(f"property {name} repeated")
        else:
            props[name] = value
    return props, stop


def _write_one(prop, value):
    ident = prop.id
    kind = prop.type
    bounds = prop.bounds
    if bounds is not None and not (
        isinstance(value, int) and bounds[0] <= value <= bounds[1]
    ):
        raise ValueError(
            f"MQTT property {prop.name} = {value!r} is outside "
            f"{bounds[0]}..{bounds[1]}"
        )
    if kind == BYTE:
        return bytes((ident, value))
    if kind == TWO_BYTE_INT:
        return bytes((ident,)) + wire.U16.pack(value)
    if kind == FOUR_BYTE_INT:
        return bytes((ident,)) + wire.U32.pack(value)
    if kind == VARINT:
        return bytes((ident,)) + wire.encode_varint(value)
    if kind == UTF8:
        return bytes((ident,)) + wire.write_str(value)
    if kind == BINARY:
        return bytes((ident,)) + wire.write_binary(value)
    name, text = value
    return bytes((ident,)) + wire.write_str(name) + wire.write_str(text)


def encode_properties(props):
    """Encode a property dict as a block, length prefix included.

    Properties are written in the dict's order, so a decoded block
    re-encodes to the same bytes.  An unknown name, or a value outside the
    property's ``bounds``, is a programming error (``ValueError``), not a
    protocol error.
    """
    if not props:
        return b"\x00"
    parts = []
    for name, value in props.items():
        prop = BY_NAME.get(name)
        if prop is None:
            raise ValueError(f"unknown MQTT property {name!r}")
        if isinstance(value, (list, tuple)) and not (
            prop.type == UTF8_PAIR and len(value) == 2
            and isinstance(value[0], str)
        ):
            # Repeated property (a lone ``(name, value)`` pair is not).
            for item in value:
                parts.append(_write_one(prop, item))
        else:
            parts.append(_write_one(prop, value))
    body = b"".join(parts)
    return wire.encode_varint(len(body)) + body


def is_allowed(name, packet_type):
    """True when property ``name`` may appear in ``packet_type``."""
    prop = BY_NAME.get(name)
    return prop is not None and packet_type in prop.packets


def clamp(name, value):
    """``(value, clamped)``: ``value`` moved into the encoder bounds of
    property ``name``, and whether it had to move.

    For values derived from configuration (``mqtt.max_packet_size = 256MB``
    is one byte more than a Maximum Packet Size may be): the caller logs the
    change once, the encoder never sees an out-of-range value.
    """
    low, high = BY_NAME[name].bounds
    fitted = min(max(value, low), high)
    return fitted, fitted != value
