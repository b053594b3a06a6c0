# -*- test-case-name: tests.unit.test_codec -*-
"""
The small packets: publish acknowledgements, (un)subscriptions, ping,
DISCONNECT and AUTH.

Every decoder here has the signature ``(flags, data, pos, end, level)``
over the bytes of one whole packet (``pos`` is the start of the variable
header) and every encoder ``(packet, protocol_level)``.  The fixed-header
flags have already been checked by `codec.py`.  MQTT 5's short forms are
handled in both directions: an acknowledgement with reason 0 and no
properties is sent as just its packet identifier, which is also what most
brokers send and what clients expect.
"""

from nanomq_twisted.mqtt import reason_codes as rc
from nanomq_twisted.mqtt import wire
from nanomq_twisted.mqtt.errors import MalformedPacket, ProtocolError
from nanomq_twisted.mqtt.packets import (
    AUTH,
    DISCONNECT,
    PUBACK,
    PUBCOMP,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    Auth,
    Disconnect,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
)
from nanomq_twisted.mqtt.properties import decode_properties, encode_properties

_PINGREQ_BYTES = b"\xc0\x00"
_PINGRESP_BYTES = b"\xd0\x00"


def _frame(first, body):
    return bytes((first,)) + wire.encode_varint(len(body)) + body


def _packet_id(data, pos, end):
    pid, pos = wire.read_u16(data, pos, end)
    if pid == 0:
        raise ProtocolError("packet identifier 0 [MQTT-2.2.1-3]")
    return pid, pos


def _expect_end(pos, end, what):
    if pos != end:
        raise MalformedPacket("bytes left over at the end of " + what)


# -- PUBACK / PUBREC / PUBREL / PUBCOMP ---------------------------------------

def _pub_ack_codec(cls, ptype, first, codes):
    name = cls.__name__.upper()

    def decode(flags, data, pos, end, level):
        pid, pos = _packet_id(data, pos, end)
        if level != 5 or pos == end:
            # 3.1.1 has exactly two bytes; v5 remaining length 2 means
            # reason 0, no properties [MQTT-3.4.2.1].
            _expect_end(pos, end, name)
            return cls(pid)
        code = data[pos]
        pos += 1
        if code not in codes:
            raise ProtocolError(f"invalid {name} reason 0x{code:02x}")
        if pos == end:
            return cls(pid, code)
        props, pos = decode_properties(data, pos, end, ptype)
        _expect_end(pos, end, name)
        return cls(pid, code, props)

    def encode(packet, level):
        props = packet.properties
        if props and level == 5:
            return _frame(first, wire.U16.pack(packet.packet_id)
                          + bytes((packet.reason_code,)) + encode_properties(props))
        return ack_bytes(first, packet.packet_id, packet.reason_code, level == 5)

    return decode, encode


#: First bytes of PUBACK, PUBREC, PUBREL and PUBCOMP [MQTT-2.1.2].
PUBACK_FIRST, PUBREC_FIRST, PUBREL_FIRST, PUBCOMP_FIRST = 0x40, 0x50, 0x62, 0x70


def ack_bytes(first, packet_id, reason_code=0, v5=False):
    """A publish acknowledgement without properties, straight to bytes:
    the hot path of QoS 1/2 (no packet object).  Reason 0 is the short
    form in 5.0 too [MQTT-3.4.2.1]; 3.x has no reason code."""
    if v5 and reason_code:
        return bytes((first, 3, packet_id >> 8, packet_id & 0xFF, reason_code))
    return bytes((first, 2, packet_id >> 8, packet_id & 0xFF))


decode_puback, encode_puback = _pub_ack_codec(Puback, PUBACK, 0x40,
                                              rc.PUBACK_CODES)
decode_pubrec, encode_pubrec = _pub_ack_codec(Pubrec, PUBREC, 0x50,
                                              rc.PUBREC_CODES)
decode_pubrel, encode_pubrel = _pub_ack_codec(Pubrel, PUBREL, 0x62,
                                              rc.PUBREL_CODES)
decode_pubcomp, encode_pubcomp = _pub_ack_codec(Pubcomp, PUBCOMP, 0x70,
                                                rc.PUBCOMP_CODES)


# -- SUBSCRIBE / SUBACK --------------------------------------------------------

def decode_subscribe(flags, data, pos, end, level):
    pid, pos = _packet_id(data, pos, end)
    props = {}
    if level == 5:
        props, pos = decode_properties(data, pos, end, SUBSCRIBE)
    subs = []
    while pos < end:
        # Filters are only checked as UTF-8 here: the broker answers an
        # invalid filter per filter (SUBACK 0x8F) [MQTT-3.8.3-1].
        topic_filter, pos = wire.read_str(data, pos, end)
        opts, pos = wire.read_u8(data, pos, end)
        qos = opts & 3
        if qos == 3:
            raise MalformedPacket("subscription QoS 3 [MQTT-3.8.3-4]")
        if level != 5:
            if opts & 0xFC:
                raise MalformedPacket(
                    "reserved subscription option bits set [MQTT-3.8.3-4]")
            subs.append(SubscriptionOptions(topic_filter, qos))
            continue
        if opts & 0xC0:
            raise MalformedPacket(
                "reserved subscription option bits set [MQTT-3.8.3-5]")
        retain_handling = (opts >> 4) & 3
        if retain_handling == 3:
            raise ProtocolError("retain handling 3 [MQTT-3.8.3.1]")
        no_local = bool(opts & 0x04)
        if no_local and topic_filter.startswith("$share/"):
            raise ProtocolError("no local on a shared subscription "
                                "[MQTT-3.8.3-4]")
        subs.append(SubscriptionOptions(
            topic_filter, qos, no_local, bool(opts & 0x08), retain_handling))
    if not subs:
        raise ProtocolError("SUBSCRIBE without topic filters [MQTT-3.8.3-3]")
    return Subscribe(pid, tuple(subs), props)


def encode_subscribe(packet, level):
    parts = [wire.U16.pack(packet.packet_id)]
    if level == 5:
        parts.append(encode_properties(packet.properties))
    for sub in packet.subscriptions:
        opts = sub.qos
        if level == 5:
            opts |= ((0x04 if sub.no_local else 0)
                     | (0x08 if sub.retain_as_published else 0)
                     | (sub.retain_handling << 4))
        parts.append(wire.write_str(sub.topic_filter))
        parts.append(bytes((opts,)))
    return _frame(0x82, b"".join(parts))


def decode_suback(flags, data, pos, end, level):
    pid, pos = _packet_id(data, pos, end)
    props = {}
    allowed = rc.SUBACK_CODES_V3
    if level == 5:
        props, pos = decode_properties(data, pos, end, SUBACK)
        allowed = rc.SUBACK_CODES
    codes = tuple(data[pos:end])
    if not codes:
        raise ProtocolError("SUBACK without reason codes")
    for code in codes:
        if code not in allowed:
            raise ProtocolError(f"invalid SUBACK code 0x{code:02x} "
                                "[MQTT-3.9.3-2]")
    return Suback(pid, codes, props)


def encode_suback(packet, level):
    parts = [wire.U16.pack(packet.packet_id)]
    if level == 5:
        parts.append(encode_properties(packet.properties))
        parts.append(bytes(packet.reason_codes))
    else:
        # 3.1.1 knows a single failure code [MQTT-3.9.3].
        parts.append(bytes(min(128, c)
                           for c in packet.reason_codes))
    return _frame(0x90, b"".join(parts))


# -- UNSUBSCRIBE / UNSUBACK ------------------------------------------------------

def decode_unsubscribe(flags, data, pos, end, level):
    pid, pos = _packet_id(data, pos, end)
    props = {}
    if level == 5:
        props, pos = decode_properties(data, pos, end, UNSUBSCRIBE)
    filters = []
    while pos < end:
        topic_filter, pos = wire.read_str(data, pos, end)
        filters.append(topic_filter)
    if not filters:
        raise ProtocolError(
            "UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]")
    return Unsubscribe(pid, tuple(filters), props)


def encode_unsubscribe(packet, level):
    parts = [wire.U16.pack(packet.packet_id)]
    if level == 5:
        parts.append(encode_properties(packet.properties))
    for topic_filter in packet.topic_filters:
        parts.append(wire.write_str(topic_filter))
    return _frame(0xA2, b"".join(parts))


def decode_unsuback(flags, data, pos, end, level):
    pid, pos = _packet_id(data, pos, end)
    if level != 5:
        _expect_end(pos, end, "UNSUBACK")
        return Unsuback(pid)
    props, pos = decode_properties(data, pos, end, UNSUBACK)
    codes = tuple(data[pos:end])
    if not codes:
        raise ProtocolError("UNSUBACK without reason codes")
    for code in codes:
        if code not in rc.UNSUBACK_CODES:
            raise ProtocolError(f"invalid UNSUBACK reason 0x{code:02x}")
    return Unsuback(pid, codes, props)


def encode_unsuback(packet, level):
    head = wire.U16.pack(packet.packet_id)
    if level != 5:
        return b"\xb0\x02" + head
    return _frame(0xB0, head + encode_properties(packet.properties)
                  + bytes(packet.reason_codes))


# -- PINGREQ / PINGRESP ----------------------------------------------------------

def decode_pingreq(flags, data, pos, end, level):
    _expect_end(pos, end, "PINGREQ")
    return Pingreq()


def decode_pingresp(flags, data, pos, end, level):
    _expect_end(pos, end, "PINGRESP")
    return Pingresp()


def encode_pingreq(packet, level):
    return _PINGREQ_BYTES


def encode_pingresp(packet, level):
    return _PINGRESP_BYTES


# -- DISCONNECT / AUTH -----------------------------------------------------------

def _reason_only_codec(cls, ptype, first, codes):
    name = cls.__name__.upper()

    def decode(flags, data, pos, end, level):
        if level != 5 or pos == end:
            # Remaining length 0 means reason 0, no properties
            # [MQTT-3.14.2.1] [MQTT-3.15.2.1].
            _expect_end(pos, end, name)
            return cls()
        code = data[pos]
        pos += 1
        if code not in codes:
            raise ProtocolError(f"invalid {name} reason 0x{code:02x}")
        if pos == end:
            return cls(code)
        props, pos = decode_properties(data, pos, end, ptype)
        _expect_end(pos, end, name)
        return cls(code, props)

    def encode(packet, level):
        if level != 5:
            if ptype == AUTH:
                raise ValueError("AUTH exists only in MQTT 5")
            return bytes((first, 0))
        if packet.properties:
            return _frame(first, bytes((packet.reason_code,))
                          + encode_properties(packet.properties))
        if packet.reason_code:
            return bytes((first, 1, packet.reason_code))
        return bytes((first, 0))

    return decode, encode


decode_disconnect, encode_disconnect = _reason_only_codec(
    Disconnect, DISCONNECT, 0xE0, rc.DISCONNECT_CODES)
decode_auth, encode_auth = _reason_only_codec(Auth, AUTH, 0xF0, rc.AUTH_CODES)
