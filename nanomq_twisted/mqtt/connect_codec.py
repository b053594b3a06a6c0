# -*- test-case-name: tests.unit.test_codec -*-
"""
CONNECT and CONNACK: the two packets whose layout depends on the version.

Split from `codec.py` because CONNECT carries most of the specification's
validation rules (flags, will, credentials) and is decoded once per
connection, so clarity matters more here than speed.  An `MqttError`
raised after the protocol level byte has been read carries that level as
``exc.protocol_level`` so the transport can answer in the client's own
version (a v5 CONNACK with a reason code, or a 3.1.1 return code).
"""

from nanomq_twisted.mqtt import reason_codes, wire
from nanomq_twisted.mqtt.errors import (
    MalformedPacket,
    MqttError,
    ProtocolError,
    TopicNameInvalid,
    UnsupportedProtocolVersion,
)
from nanomq_twisted.mqtt.packets import CONNACK, CONNECT, Connack, Connect, Will
from nanomq_twisted.mqtt.properties import (
    WILL_PROPERTIES,
    decode_properties,
    encode_properties,
)
from nanomq_twisted.mqtt.topics import validate_topic_name

# [MQTT-3.1.2-1] protocol name per level ("MQIsdp" is MQTT 3.1).
PROTOCOL_NAMES = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}

_RESERVED = 0x01
_CLEAN_START = 0x02
_WILL = 0x04
_WILL_QOS_SHIFT = 3
_WILL_RETAIN = 0x20
_PASSWORD = 0x40
_USERNAME = 0x80


def decode_connect(flags, data, pos, end, level):
    """Decode a CONNECT body; ``level`` (the decoder's) is unused."""
    name, pos = wire.read_str(data, pos, end)
    level_byte, pos = wire.read_u8(data, pos, end)
    bridge = bool(level_byte & 0x80)
    level = level_byte & 0x7F
    if PROTOCOL_NAMES.get(level) != name:
        # [MQTT-3.1.2-2] unsupported level: CONNACK 0x84 / return code 1.
        raise UnsupportedProtocolVersion(
            f"unsupported protocol {name!r} level {level}")
    try:
        return _decode_connect_rest(data, pos, end, name, level, bridge)
    except MqttError as exc:
        exc.protocol_level = level
        raise


def _decode_connect_rest(data, pos, end, name, level, bridge):
    cflags, pos = wire.read_u8(data, pos, end)
    if cflags & _RESERVED:
        raise MalformedPacket("reserved CONNECT flag set [MQTT-3.1.2-3]")
    will_qos = (cflags >> _WILL_QOS_SHIFT) & 3
    has_will = cflags & _WILL
    if will_qos == 3:
        raise MalformedPacket("will QoS 3 [MQTT-3.1.2-14]")
    if not has_will and (will_qos or cflags & _WILL_RETAIN):
        raise MalformedPacket(
            "will QoS/retain without will flag [MQTT-3.1.2-11/13/15]")
    if level < 5 and cflags & _PASSWORD and not cflags & _USERNAME:
        raise MalformedPacket("password without user name [MQTT-3.1.2-22]")
    keepalive, pos = wire.read_u16(data, pos, end)
    props = {}
    if level == 5:
        props, pos = decode_properties(data, pos, end, CONNECT)
    client_id, pos = wire.read_str(data, pos, end)
    will = None
    if has_will:
        will_props = {}
        if level == 5:
            will_props, pos = decode_properties(data, pos, end, WILL_PROPERTIES)
        topic, pos = wire.read_str(data, pos, end)
        if not validate_topic_name(topic):
            raise TopicNameInvalid(f"invalid will topic {topic!r}")
        payload, pos = wire.read_binary(data, pos, end)
        will = Will(topic, payload, will_qos, bool(cflags & _WILL_RETAIN),
                    will_props)
    username = password = None
    if cflags & _USERNAME:
        username, pos = wire.read_str(data, pos, end)
    if cflags & _PASSWORD:
        password, pos = wire.read_binary(data, pos, end)
    if pos != end:
        raise MalformedPacket("bytes left over after CONNECT payload")
    return Connect(
        client_id=client_id,
        protocol_level=level,
        protocol_name=name,
        clean_start=bool(cflags & _CLEAN_START),
        keepalive=keepalive,
        username=username,
        password=password,
        will=will,
        properties=props,
        bridge=bridge,
    )


def encode_connect(packet, protocol_level=None):
    """Encode CONNECT at the packet's own ``protocol_level``."""
    level = packet.protocol_level
    name = PROTOCOL_NAMES.get(level)
    if name is None:
        raise ValueError(f"cannot encode CONNECT for level {level!r}")
    cflags = 0
    if packet.clean_start:
        cflags |= _CLEAN_START
    will = packet.will
    if will is not None:
        cflags |= _WILL | (will.qos << _WILL_QOS_SHIFT)
        if will.retain:
            cflags |= _WILL_RETAIN
    if packet.username is not None:
        cflags |= _USERNAME
    if packet.password is not None:
        cflags |= _PASSWORD
    parts = [
        wire.write_str(name),
        bytes((level | (0x80 if packet.bridge else 0), cflags)),
        wire.U16.pack(packet.keepalive),
    ]
    if level == 5:
        parts.append(encode_properties(packet.properties))
    parts.append(wire.write_str(packet.client_id))
    if will is not None:
        if level == 5:
            parts.append(encode_properties(will.properties))
        parts.append(wire.write_str(will.topic))
        parts.append(wire.write_binary(will.payload))
    if packet.username is not None:
        parts.append(wire.write_str(packet.username))
    if packet.password is not None:
        parts.append(wire.write_binary(packet.password))
    body = b"".join(parts)
    return b"\x10" + wire.encode_varint(len(body)) + body


def decode_connack(flags, data, pos, end, level):
    ack_flags, pos = wire.read_u8(data, pos, end)
    code, pos = wire.read_u8(data, pos, end)
    if ack_flags & 0xFE:
        raise MalformedPacket("reserved CONNACK flags set [MQTT-3.2.2-1]")
    session_present = bool(ack_flags & 1)
    props = {}
    if level == 5:
        if code not in reason_codes.CONNACK_CODES:
            raise ProtocolError(f"invalid CONNACK reason 0x{code:02x}")
        props, pos = decode_properties(data, pos, end, CONNACK)
    elif code > 5:
        raise ProtocolError(f"reserved CONNACK return code {code}")
    if session_present and code:
        raise ProtocolError("session present on a refused CONNACK "
                            "[MQTT-3.2.2-4]")
    if pos != end:
        raise MalformedPacket("bytes left over after CONNACK")
    return Connack(session_present, code, props)


def encode_connack(packet, protocol_level=4):
    """``reason_code`` must already be a 3.1.1 return code for levels 3/4
    (see `reason_codes.connack_code_for_v3`)."""
    # MQTT 3.1 has no session present flag: the byte is reserved.
    ack_flags = 1 if packet.session_present and protocol_level != 3 else 0
    if protocol_level == 5:
        body = (bytes((ack_flags, packet.reason_code))
                + encode_properties(packet.properties))
        return b"\x20" + wire.encode_varint(len(body)) + body
    return bytes((0x20, 2, ack_flags, packet.reason_code))

