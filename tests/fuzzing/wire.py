"""
MQTT wire pieces written from the specification (section 1.5 and 2), for
the fuzzer: encoding what it sends and splitting what it receives.
Deliberately independent of ``nanomq_twisted.mqtt``.
"""

import struct

# Packet types, [MQTT-2.1.2].
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP = 8, 9, 10, 11, 12, 13
DISCONNECT, AUTH = 14, 15

#: The flags nibble each type except PUBLISH must carry [MQTT-2.1.3-1].
FLAGS = {CONNECT: 0, CONNACK: 0, PUBACK: 0, PUBREC: 0, PUBREL: 2, PUBCOMP: 0,
         SUBSCRIBE: 2, SUBACK: 0, UNSUBSCRIBE: 2, UNSUBACK: 0, PINGREQ: 0,
         PINGRESP: 0, DISCONNECT: 0, AUTH: 0}

PINGREQ_BYTES = b"\xc0\x00"


def vbi(n):
    """Variable Byte Integer [MQTT-1.5.5]."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def binary(data):
    """Two-byte length + data [MQTT-1.5.6]."""
    return u16(len(data)) + data


def string(text):
    """UTF-8 string [MQTT-1.5.4]; ``bytes`` pass through unchanged (so
    ill-formed UTF-8 can be sent)."""
    return binary(text if isinstance(text, bytes) else text.encode("utf-8"))


def packet(ptype, body, flags=None):
    first = (ptype << 4) | (FLAGS.get(ptype, 0) if flags is None else flags)
    return bytes([first]) + vbi(len(body)) + body


def properties(items):
    """A property block: ``items`` are already-encoded (id byte + value)."""
    body = b"".join(items)
    return vbi(len(body)) + body


class Incomplete(Exception):
    pass


def split_packets(data):
    """``(packets, rest)``: whole packets at the front of ``data``, each as
    ``(type, flags, body)``."""
    packets = []
    pos = 0
    while True:
        if len(data) - pos < 2:
            return packets, data[pos:]
        length = 0
        shift = 0
        i = pos + 1
        while True:
            if i >= len(data):
                return packets, data[pos:]
            byte = data[i]
            length |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if byte < 0x80:
                break
            if shift > 21:
                raise ValueError(f"bad remaining length from the broker: {data[pos:i]!r}")
        if len(data) - i < length:
            return packets, data[pos:]
        packets.append((data[pos] >> 4, data[pos] & 0x0F, data[i:i + length]))
        pos = i + length
