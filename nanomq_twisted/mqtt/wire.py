# -*- test-case-name: tests.unit.test_codec -*-
"""
The MQTT data representations of [MQTT-1.5]: integers, Variable Byte
Integers, UTF-8 strings and binary data.

Readers take ``(data, pos, end)`` over an immutable ``bytes`` holding one
whole packet and return ``(value, new_pos)``; they never read past ``end``
(the end of the packet, or of a property block inside it) and raise
`MalformedPacket` instead.  Writers return ``bytes``.  Everything here is
shared by `properties.py` and the packet codecs so each rule lives once.
"""

import struct

from nanomq_twisted.mqtt.errors import MalformedPacket

U16 = struct.Struct("!H")
U32 = struct.Struct("!I")

MAX_VARINT = 268435455  # 0xFF 0xFF 0xFF 0x7F, [MQTT-1.5.5]

# Remaining lengths below 128 are the common case: one table lookup.
_SMALL_VARINTS = tuple(bytes((n,)) for n in range(128))


def encode_varint(n):
    """Encode a Variable Byte Integer [MQTT-1.5.5]."""
    if n < 128:
        if n < 0:
            raise ValueError("negative variable byte integer")
        return _SMALL_VARINTS[n]
    if n > MAX_VARINT:
        raise ValueError(f"variable byte integer too large: {n}")
    out = bytearray()
    while True:
        digit = n & 0x7F
        n >>= 7
        if n:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def read_varint(data, pos, end):
    """Decode a Variable Byte Integer of at most four bytes [MQTT-1.5.5]."""
    value = 0
    shift = 0
    for i in range(4):
        if pos >= end:
            raise MalformedPacket("truncated variable byte integer")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            # A non-minimal encoding (trailing 0x80 0x00) is tolerated, as the
            # value is still unambiguous; only length is a hard limit.
            return value, pos
        shift += 7
    raise MalformedPacket("variable byte integer longer than 4 bytes")


def read_u8(data, pos, end):
    if pos >= end:
        raise MalformedPacket("truncated byte")
    return data[pos], pos + 1


def read_u16(data, pos, end):
    if pos + 2 > end:
        raise MalformedPacket("truncated two byte integer")
    return (data[pos] << 8) | data[pos + 1], pos + 2


def read_u32(data, pos, end):
    if pos + 4 > end:
        raise MalformedPacket("truncated four byte integer")
    return U32.unpack_from(data, pos)[0], pos + 4


def read_binary(data, pos, end):
    """Two-byte length then that many bytes [MQTT-1.5.6]."""
    if pos + 2 > end:
        raise MalformedPacket("truncated binary data length")
    stop = pos + 2 + ((data[pos] << 8) | data[pos + 1])
    if stop > end:
        raise MalformedPacket("binary data overruns its packet")
    return data[pos + 2:stop], stop


def decode_utf8(raw):
    """Strictly decode an MQTT UTF-8 string body.

    Python's codec already refuses ill-formed UTF-8 and encoded surrogates
    U+D800..U+DFFF [MQTT-1.5.4-1]; U+0000 is checked here [MQTT-1.5.4-2].
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPacket("invalid UTF-8 string [MQTT-1.5.4-1]") from None
    if "\x00" in text:
        raise MalformedPacket("U+0000 in UTF-8 string [MQTT-1.5.4-2]")
    return text


def read_str(data, pos, end):
    """A UTF-8 Encoded String [MQTT-1.5.4]."""
    if pos + 2 > end:
        raise MalformedPacket("truncated string length")
    stop = pos + 2 + ((data[pos] << 8) | data[pos + 1])
    if stop > end:
        raise MalformedPacket("string overruns its packet")
    return decode_utf8(data[pos + 2:stop]), stop


def read_pair(data, pos, end):
    """A UTF-8 String Pair [MQTT-1.5.7]."""
    name, pos = read_str(data, pos, end)
    value, pos = read_str(data, pos, end)
    return (name, value), pos


def write_binary(value):
    if len(value) > 65535:
        raise ValueError("binary data longer than 65535 bytes")
    return U16.pack(len(value)) + bytes(value)


def write_str(text):
    raw = text.encode("utf-8")
    if len(raw) > 65535:
        raise ValueError("string longer than 65535 bytes")
    return U16.pack(len(raw)) + raw
