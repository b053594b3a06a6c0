# -*- test-case-name: tests.unit.test_codec -*-
"""
Sans-I/O MQTT framing: bytes in, packet objects out, and back.

`Decoder` is fed whatever the socket delivered and yields complete packets;
it knows nothing of sockets, timers or sessions, so the same object serves
TCP, WebSocket and QUIC transports and is tested without a reactor.  The
fixed header is checked as soon as it is complete -- type, flags, the
CONNECT-first rule and the maximum packet size -- so an oversized packet is
refused before its body is buffered; so is a PUBLISH whose topic length
field says more than ``max_topic_length``.

PUBLISH is the hot path in both directions and is handled here with
direct slicing; the other packets are dispatched to `connect_codec` and
`ack_codec`.
"""

from nanomq_twisted.mqtt import ack_codec, connect_codec
from nanomq_twisted.mqtt.errors import (
    MalformedPacket,
    MqttError,
    PacketTooLarge,
    ProtocolError,
    TopicNameInvalid,
)
from nanomq_twisted.mqtt.packets import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    Puback,
    Publish,
)
from nanomq_twisted.mqtt.properties import decode_properties, encode_properties
from nanomq_twisted.mqtt.topics import MAX_TOPIC_BYTES, is_shared_prefix_name
from nanomq_twisted.mqtt.wire import U16, encode_varint

__all__ = ["Decoder", "MqttError", "decode_publish", "encode",
           "encode_publish"]

# 1 byte of type/flags + 4 bytes of remaining length + 268435455.
MAX_PACKET_SIZE = 268435460

_DECODERS = {
    CONNECT: connect_codec.decode_connect,
    CONNACK: connect_codec.decode_connack,
    PUBACK: ack_codec.decode_puback,
    PUBREC: ack_codec.decode_pubrec,
    PUBREL: ack_codec.decode_pubrel,
    PUBCOMP: ack_codec.decode_pubcomp,
    SUBSCRIBE: ack_codec.decode_subscribe,
    SUBACK: ack_codec.decode_suback,
    UNSUBSCRIBE: ack_codec.decode_unsubscribe,
    UNSUBACK: ack_codec.decode_unsuback,
    PINGREQ: ack_codec.decode_pingreq,
    PINGRESP: ack_codec.decode_pingresp,
    DISCONNECT: ack_codec.decode_disconnect,
    AUTH: ack_codec.decode_auth,
}

# Fixed-header flags every non-PUBLISH packet must carry [MQTT-2.2.2-1/2].
_REQUIRED_FLAGS = {ptype: 0 for ptype in _DECODERS}
_REQUIRED_FLAGS[PUBREL] = _REQUIRED_FLAGS[SUBSCRIBE] = 2
_REQUIRED_FLAGS[UNSUBSCRIBE] = 2


class Decoder:
    """Incremental decoder for one connection.

    ``protocol_level`` None means server mode before CONNECT: the first
    packet must be CONNECT [MQTT-3.1.0-1], whose level is then adopted.
    A client (bridge) passes the level it connected with.  After an
    `MqttError` the stream cannot be resynchronised: close the connection.
    In server mode the packets come from a client, which may not put a
    Subscription Identifier in a PUBLISH [MQTT-3.3.4-6].
    """

    def __init__(self, protocol_level=None, max_packet_size=None,
                 max_topic_length=MAX_TOPIC_BYTES):
        self.protocol_level = protocol_level
        self.from_client = protocol_level is None
        # Total packet size limit, fixed header included; may be changed at
        # any time (e.g. once CONNECT negotiated a Maximum Packet Size).
        self.max_packet_size = max_packet_size
        #: Longest topic name (bytes) a PUBLISH may carry: a longer one is
        #: refused as soon as its length field arrives, before the rest of
        #: the packet is buffered (``mqtt.max_topic_length``).
        self.max_topic_length = max_topic_length
        self._buf = bytearray()

    def feed(self, data):
        """Buffer ``data`` and return an iterator of the complete packets.

        The data is buffered immediately; packets are decoded as the
        iterator is consumed, and the first bad packet raises `MqttError`
        at its turn.  Unconsumed packets stay buffered for the next call.
        """
        if data:
            self._buf += data
        return self._packets()

    def _packets(self):
        # Packets are read at an offset and the consumed prefix is deleted
        # once, when the generator ends (also when its consumer stops early
        # and drops it): one bytearray deletion per feed, not per packet.
        buf = self._buf
        pos = 0
        try:
            while True:
                have = len(buf) - pos
                if have < 2:
                    return
                first = buf[pos]
                if first == 0x40 and buf[pos + 1] == 2 and self.protocol_level is not None:
                    # The commonest packet of QoS 1 traffic, a PUBACK with
                    # reason 0 and no properties [MQTT-3.4.2.1], without the
                    # general machinery.
                    if have < 4:
                        return
                    packet_id = buf[pos + 2] << 8 | buf[pos + 3]
                    if not packet_id:
                        raise ProtocolError("packet identifier 0 [MQTT-2.2.1-3]")
                    pos += 4
                    yield Puback(packet_id)
                    continue
                length = 0
                shift = 0
                i = 1
                while True:
                    if i >= have:
                        return
                    byte = buf[pos + i]
                    i += 1
                    length |= (byte & 0x7F) << shift
                    if byte < 0x80:
                        break
                    if i == 5:
                        raise MalformedPacket(
                            "remaining length longer than 4 bytes [MQTT-1.5.5]")
                    shift += 7
                total = i + length
                self._check_header(first, total)
                if (first >> 4 == PUBLISH and have >= i + 2
                        and self.max_topic_length < MAX_TOPIC_BYTES
                        and buf[pos + i] << 8 | buf[pos + i + 1] > self.max_topic_length):
                    raise TopicNameInvalid(
                        f"topic name longer than {self.max_topic_length} bytes")
                if have < total:
                    return
                raw = bytes(buf[pos:pos + total])
                pos += total
                if first >> 4 == PUBLISH:
                    yield decode_publish(first, raw, i, self.protocol_level, self.from_client)
                    continue
                packet = _DECODERS[first >> 4](first & 0x0F, raw, i, total,
                                               self.protocol_level)
                if first >> 4 == CONNECT:
                    self.protocol_level = packet.protocol_level
                yield packet
        finally:
            if pos:
                del buf[:pos]

    def _check_header(self, first, total):
        limit = self.max_packet_size
        if total > (MAX_PACKET_SIZE if limit is None else limit):
            raise PacketTooLarge(f"packet of {total} bytes exceeds {limit!r}")
        ptype = first >> 4
        level = self.protocol_level
        if level is None:
            if ptype != CONNECT:
                raise ProtocolError("first packet is not CONNECT "
                                    "[MQTT-3.1.0-1]")
        elif ptype == CONNECT:
            raise ProtocolError("second CONNECT [MQTT-3.1.0-2]")
        if ptype == PUBLISH:
            return
        required = _REQUIRED_FLAGS.get(ptype)
        if required is None or (ptype == AUTH and level != 5):
            raise MalformedPacket(f"reserved packet type {ptype}")
        if first & 0x0F != required:
            raise MalformedPacket(f"bad fixed header flags 0x{first & 0x0F:x} "
                                  f"for type {ptype} [MQTT-2.2.2-2]")


def decode_publish(first, raw, pos, level, from_client=False):
    """Decode the PUBLISH in ``raw`` (the whole packet) from ``pos``;
    ``from_client``: sent by a client to this server."""
    qos = (first >> 1) & 3
    if qos == 3:
        raise MalformedPacket("PUBLISH QoS 3 [MQTT-3.3.1-4]")
    end = len(raw)
    stop = pos + 2
    if stop > end:
        raise MalformedPacket("truncated PUBLISH topic")
    stop += (raw[pos] << 8) | raw[pos + 1]
    if stop > end:
        raise MalformedPacket("PUBLISH topic overruns the packet")
    try:
        topic = raw[pos + 2:stop].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket("invalid UTF-8 topic [MQTT-1.5.4-1]") from None
    pos = stop
    if qos:
        if pos + 2 > end:
            raise MalformedPacket("truncated PUBLISH packet identifier")
        packet_id = (raw[pos] << 8) | raw[pos + 1]
        if not packet_id:
            raise ProtocolError("QoS>0 PUBLISH with packet identifier 0 "
                                "[MQTT-2.2.1-3]")
        pos += 2
    else:
        packet_id = None
        if first & 0x08 and level == 5:
            raise ProtocolError("DUP set on QoS 0 PUBLISH [MQTT-3.3.1-2]")
    if level == 5:
        if pos < end and raw[pos] == 0:
            props = {}
            pos += 1
        else:
            props, pos = decode_properties(raw, pos, end, PUBLISH)
            if from_client and "subscription_identifier" in props:
                raise ProtocolError("Subscription Identifier in a PUBLISH from a client "
                                    "[MQTT-3.3.4-6]")
    else:
        props = {}
    if "\x00" in topic:
        raise MalformedPacket("U+0000 in topic [MQTT-1.5.4-2]")
    if "+" in topic or "#" in topic:
        raise TopicNameInvalid("wildcard in topic name [MQTT-3.3.2-2]")
    if is_shared_prefix_name(topic):
        raise TopicNameInvalid("$share/ or $queue/ prefix in a topic name")
    if not topic:
        if level != 5:
            raise MalformedPacket("empty topic name [MQTT-4.7.3-1]")
        if "topic_alias" not in props:
            raise ProtocolError("empty topic name without topic alias "
                                "[MQTT-3.3.2-1]")
    return Publish(topic, raw[pos:], qos, bool(first & 1),
                   bool(first & 0x08), packet_id, props, raw)


def encode_publish(topic, payload, qos=0, retain=False, dup=False,
                   packet_id=None, properties=None, protocol_level=4):
    """Encode a PUBLISH; the fast path behind `encode` for `Publish`."""
    t = topic.encode("utf-8")
    first = 0x30 | (qos << 1)
    if retain:
        first |= 1
    if dup:
        first |= 8
    if qos:
        head = U16.pack(len(t)) + t + U16.pack(packet_id)
    else:
        head = U16.pack(len(t)) + t
    if protocol_level == 5:
        head += encode_properties(properties) if properties else b"\x00"
    length = len(head) + len(payload)
    return b"".join((bytes((first,)), encode_varint(length), head, payload))


def _encode_publish_packet(packet, level):
    return encode_publish(packet.topic, packet.payload, packet.qos,
                          packet.retain, packet.dup, packet.packet_id,
                          packet.properties, level)


_ENCODERS = {
    CONNECT: connect_codec.encode_connect,
    CONNACK: connect_codec.encode_connack,
    PUBLISH: _encode_publish_packet,
    PUBACK: ack_codec.encode_puback,
    PUBREC: ack_codec.encode_pubrec,
    PUBREL: ack_codec.encode_pubrel,
    PUBCOMP: ack_codec.encode_pubcomp,
    SUBSCRIBE: ack_codec.encode_subscribe,
    SUBACK: ack_codec.encode_suback,
    UNSUBSCRIBE: ack_codec.encode_unsubscribe,
    UNSUBACK: ack_codec.encode_unsuback,
    PINGREQ: ack_codec.encode_pingreq,
    PINGRESP: ack_codec.encode_pingresp,
    DISCONNECT: ack_codec.encode_disconnect,
    AUTH: ack_codec.encode_auth,
}


def encode(packet, protocol_level=4):
    """Encode any packet for ``protocol_level`` 3, 4 or 5.

    Properties are dropped below 5.  CONNECT uses its own
    ``protocol_level`` whatever is passed here.
    """
    return _ENCODERS[packet.type](packet, protocol_level)
