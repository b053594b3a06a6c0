"""
Expected MQTT bytes, built by hand from the specification.

This module is deliberately independent of ``nanomq_twisted.mqtt``: it
imports nothing from it and lays packets out with ``struct`` following the
figures of the MQTT 3.1.1 and 5.0 specifications, in the style of
Mosquitto's ``test/mqtt_packets.py``.  Tests compare the codec against
these bytes, so an encoder bug cannot hide behind a matching decoder bug.
"""

import struct

# -- primitives [MQTT-1.5] -----------------------------------------------------


def varint(n):
    """Variable Byte Integer: 7 bits per byte, low bits first [MQTT-1.5.5]."""
    out = b""
    while True:
        n, digit = divmod(n, 128)
        if n:
            out += struct.pack("B", digit + 128)
        else:
            return out + struct.pack("B", digit)


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">L", n)


def string(text):
    """UTF-8 Encoded String [MQTT-1.5.4]."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return u16(len(raw)) + raw


def binary(data):
    return u16(len(data)) + data


def fixed(first, body):
    """Fixed header (type/flags byte, remaining length) then the body."""
    return struct.pack("B", first) + varint(len(body)) + body


# -- properties [MQTT-2.2.2] ---------------------------------------------------

def p_byte(ident, value):
    return struct.pack("BB", ident, value)


def p_u16(ident, value):
    return struct.pack(">BH", ident, value)


def p_u32(ident, value):
    return struct.pack(">BL", ident, value)


def p_varint(ident, value):
    return struct.pack("B", ident) + varint(value)


def p_str(ident, value):
    return struct.pack("B", ident) + string(value)


def p_bin(ident, value):
    return struct.pack("B", ident) + binary(value)


def p_pair(ident, name, value):
    return struct.pack("B", ident) + string(name) + string(value)


def props(*items):
    """A property block: its length then the properties."""
    body = b"".join(items)
    return varint(len(body)) + body


# -- packets ----------------------------------------------------------------------

PINGREQ = b"\xc0\x00"
PINGRESP = b"\xd0\x00"


def connect(client_id, level=4, clean=True, keepalive=60, username=None,
            password=None, will_topic=None, will_payload=b"", will_qos=0,
            will_retain=False, properties=b"\x00", will_properties=b"\x00",
            bridge=False, connect_flags=None, name=None):
    """CONNECT [MQTT-3.1].  ``properties`` blocks are used for level 5."""
    if name is None:
        name = "MQIsdp" if level == 3 else "MQTT"
    flags = 0
    if clean:
        flags |= 0x02
    if will_topic is not None:
        flags |= 0x04 | (will_qos << 3) | (0x20 if will_retain else 0)
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    if connect_flags is not None:
        flags = connect_flags
    body = string(name) + struct.pack("BB", level | (0x80 if bridge else 0),
                                      flags) + u16(keepalive)
    if level == 5:
        body += properties
    body += string(client_id)
    if will_topic is not None:
        if level == 5:
            body += will_properties
        body += string(will_topic) + binary(will_payload)
    if username is not None:
        body += string(username)
    if password is not None:
        body += binary(password)
    return fixed(0x10, body)


def connack(session_present=False, code=0, level=4, properties=b"\x00"):
    body = struct.pack("BB", 1 if session_present else 0, code)
    if level == 5:
        body += properties
    return fixed(0x20, body)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, mid=None,
            level=4, properties=b"\x00"):
    first = 0x30 | (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = string(topic)
    if qos:
        body += u16(mid)
    if level == 5:
        body += properties
    return fixed(first, body + payload)


def _ack(first, mid, code, properties):
    body = u16(mid)
    if code is not None:
        body += struct.pack("B", code)
        if properties is not None:
            body += properties
    return fixed(first, body)


def puback(mid, code=None, properties=None):
    return _ack(0x40, mid, code, properties)


def pubrec(mid, code=None, properties=None):
    return _ack(0x50, mid, code, properties)


def pubrel(mid, code=None, properties=None):
    return _ack(0x62, mid, code, properties)


def pubcomp(mid, code=None, properties=None):
    return _ack(0x70, mid, code, properties)


def subscribe(mid, subscriptions, level=4, properties=b"\x00"):
    """``subscriptions``: (filter, options byte) pairs."""
    body = u16(mid)
    if level == 5:
        body += properties
    for topic_filter, options in subscriptions:
        body += string(topic_filter) + struct.pack("B", options)
    return fixed(0x82, body)


def suback(mid, codes, level=4, properties=b"\x00"):
    body = u16(mid)
    if level == 5:
        body += properties
    return fixed(0x90, body + bytes(codes))


def unsubscribe(mid, filters, level=4, properties=b"\x00"):
    body = u16(mid)
    if level == 5:
        body += properties
    for topic_filter in filters:
        body += string(topic_filter)
    return fixed(0xA2, body)


def unsuback(mid, codes=(), level=4, properties=b"\x00"):
    body = u16(mid)
    if level == 5:
        body += properties + bytes(codes)
    return fixed(0xB0, body)


def disconnect(code=None, properties=None):
    body = b""
    if code is not None:
        body = struct.pack("B", code)
        if properties is not None:
            body += properties
    return fixed(0xE0, body)


def auth(code=None, properties=None):
    body = b""
    if code is not None:
        body = struct.pack("B", code)
        if properties is not None:
            body += properties
    return fixed(0xF0, body)


# -- literal examples from the specifications ------------------------------------

# [MQTT-1.5.5] table 1.1 / 1-5: boundaries of each Variable Byte Integer size.
VARINT_EXAMPLES = [
    (0, b"\x00"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2097151, b"\xff\xff\x7f"),
    (2097152, b"\x80\x80\x80\x01"),
    (268435455, b"\xff\xff\xff\x7f"),
]

# [MQTT-1.5.4] figure 1.3: "A" followed by U+2A6D4.
UTF8_EXAMPLE = ("A\U0002a6d4", b"\x00\x05\x41\xf0\xaa\x9b\x94")

# 3.1.1 CONNECT, clean session, keep alive 10, client "test".
CONNECT_311 = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x0a\x00\x04test"
# 3.1 CONNECT: same, protocol "MQIsdp" level 3.
CONNECT_31 = b"\x10\x12\x00\x06MQIsdp\x03\x02\x00\x0a\x00\x04test"
# 5.0 CONNECT with Session Expiry Interval 10 (the figure 3-6 property).
CONNECT_5 = (b"\x10\x16\x00\x04MQTT\x05\x02\x00\x0a"
             b"\x05\x11\x00\x00\x00\x0a\x00\x04test")
# QoS 1 PUBLISH to "a/b", packet id 10, payload "hi" (3.1.1).
PUBLISH_311_QOS1 = b"\x32\x09\x00\x03a/b\x00\x0ahi"
# The same in 5.0 with an empty property block.
PUBLISH_5_QOS1 = b"\x32\x0a\x00\x03a/b\x00\x0a\x00hi"
