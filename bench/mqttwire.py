"""Minimal MQTT 3.1.1 wire encoder/decoder for the load generator.

Deliberately independent of ``nanomq_twisted.mqtt``: a benchmark that used
the broker's own codec could not notice when that codec is wrong, and the
project codec is written for correctness, not for pre-encoding millions of
identical packets.  Only what a load generator needs is here: CONNECT,
SUBSCRIBE, PUBLISH (QoS 0/1, retain), PUBACK, DISCONNECT, and a fast
"remaining-length walk" that counts packets in a received byte string
without building objects for them.
"""

import socket
import struct

DISCONNECT = b"\xe0\x00"
PUBACK_HEAD = b"\x40\x02"


def varint(n):
    """MQTT variable-length "remaining length" encoding."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def mqtt_str(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id, keepalive=600, clean=True):
    """CONNECT, protocol level 4 (3.1.1).  A long keepalive so idle
    benchmark connections are never reaped during a run."""
    body = mqtt_str("MQTT") + bytes([4, 0x02 if clean else 0]) + struct.pack("!H", keepalive)
    body += mqtt_str(client_id)
    return b"\x10" + varint(len(body)) + body


def subscribe_packet(pid, filters):
    """SUBSCRIBE with one or more ``(filter, qos)`` pairs."""
    body = struct.pack("!H", pid) + b"".join(mqtt_str(f) + bytes([q]) for f, q in filters)
    return b"\x82" + varint(len(body)) + body


def publish_header(topic, payload_len, qos=0, pid=0, retain=False):
    """Everything of a PUBLISH before the payload, so callers that stamp a
    timestamp into the payload can still pre-encode the header once."""
    first = 0x30 | (qos << 1) | (1 if retain else 0)
    var = mqtt_str(topic) + (struct.pack("!H", pid) if qos else b"")
    return bytes([first]) + varint(len(var) + payload_len) + var


def publish_packet(topic, payload, qos=0, pid=0, retain=False):
    return publish_header(topic, len(payload), qos, pid, retain) + payload


def walk(buf, ack_out=None, on_payload=None):
    """Walk complete packets in ``buf`` (bytes).

    Returns ``(consumed, n_publish, n_other)``.  For QoS 1 PUBLISHes a
    PUBACK is appended to ``ack_out`` (a bytearray) when given;
    ``on_payload(buf, start, end)`` is called per PUBLISH when given (the
    latency scenarios read a timestamp from it).  Incomplete trailing data
    is left for the caller to prepend to the next recv.  Kept as one flat
    loop because it is the generator's hot path.
    """
    pos = 0
    end = len(buf)
    npub = nother = 0
    while end - pos >= 2:
        b0 = buf[pos]
        ln = buf[pos + 1]
        hl = 2
        if ln & 0x80:
            ln &= 0x7F
            shift = 7
            i = pos + 2
            while True:
                if i >= end:
                    return pos, npub, nother
                b = buf[i]
                ln += (b & 0x7F) << shift
                shift += 7
                i += 1
                if not b & 0x80:
                    break
            hl = i - pos
        nxt = pos + hl + ln
        if nxt > end:
            break
        if b0 >> 4 == 3:
            npub += 1
            if b0 & 6 or on_payload is not None:
                p = pos + hl
                p += 2 + ((buf[p] << 8) | buf[p + 1])
                if b0 & 6:
                    if ack_out is not None:
                        ack_out += PUBACK_HEAD
                        ack_out += buf[p:p + 2]
                    p += 2
                if on_payload is not None:
                    on_payload(buf, p, nxt)
        else:
            nother += 1
        pos = nxt
    return pos, npub, nother


def read_packets(sock, count, rest=b""):
    """Blocking read until ``count`` non-PUBLISH packets (CONNACK, SUBACK,
    PUBACK) have arrived; used only during setup.  Returns (first bytes of
    the last one, leftover bytes)."""
    got = 0
    buf = rest
    last = b""
    while got < count:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("broker closed the connection during setup")
        buf += data
        pos, _npub, nother = walk(buf)
        if nother:
            last = buf[:4]
        got += nother
        buf = buf[pos:]
    return last, buf


def open_client(port, client_id, filters=None, timeout=30.0, sub_qos=0):
    """Connect (blocking), wait for CONNACK, optionally subscribe.

    Filters are sent 100 per SUBSCRIBE so 1,000 wildcard filters do not
    need 1,000 round trips.  The socket is returned in timeout mode, which
    is internally non-blocking (usable with selectors) while ``sendall``
    still waits for buffer space.
    """
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(connect_packet(client_id))
    connack, rest = read_packets(s, 1)
    if len(connack) < 4 or connack[0] != 0x20 or connack[3] != 0:
        raise ConnectionError("CONNACK refused for {}: {!r}".format(client_id, connack))
    if filters:
        chunks = [filters[i:i + 100] for i in range(0, len(filters), 100)]
        s.sendall(b"".join(subscribe_packet(n + 1, [(f, sub_qos) for f in chunk])
                           for n, chunk in enumerate(chunks)))
        _last, rest = read_packets(s, len(chunks), rest)
    if rest:
        raise ConnectionError("unexpected data after setup for {}".format(client_id))
    return s
