"""Minimal MQTT 3.1.1 wire code for the load generator.

Deliberately independent of ``nanomq_twisted.mqtt`` (a benchmark that used
the broker's own codec could not notice when that codec is wrong) and of
paho (a paho generator measures paho).  Only what a generator needs:
CONNECT, SUBSCRIBE, PUBLISH (QoS 0/1/2, retain), PUBACK, PUBREC, PUBREL,
PUBCOMP, DISCONNECT, a blocking setup helper, and ``walk``, the slow-path
parser that splits a byte string into packets by their fixed headers and
remaining lengths.  ``version=5`` gives the 5.0 forms with no properties
except a Session Expiry Interval on CONNECT (the soak, tools/soak.py, needs
5.0 sessions); the benchmark itself speaks 3.1.1.

The hot path does not parse at all: see ``loadgen.Ring`` (packets are
encoded once into a ring buffer; receivers compare what they get against
the bytes they expect).

Payload layout of every benchmark PUBLISH (``PAYLOAD_LEN`` bytes)::

    0..1   publisher id        u16 big-endian
    2..5   epoch               u32   seq = epoch * ring_size + index
    6..9   index in the ring   u32
    10..17 send time, ns       u64   (latency scenario only, else 0)
    18..   padding  b"x"
"""

import socket
import struct
import time

DISCONNECT = b"\xe0\x00"
PINGREQ = b"\xc0\x00"
PAYLOAD_LEN = 64
HDR = struct.Struct("!HII")     # publisher id, epoch, index
TS = struct.Struct("!Q")
OFF_EPOCH = 2
OFF_INDEX = 6
OFF_TS = 10


def varint(n):
    """MQTT "remaining length" encoding."""
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


def connect_packet(client_id, keepalive=600, clean=True, version=4, session_expiry=None):
    """CONNECT, protocol level 4 (3.1.1) or 5.  A long keepalive so idle
    benchmark connections are never reaped during a run.  In 5.0 ``clean``
    is Clean Start and ``session_expiry`` (seconds) the Session Expiry
    Interval property (absent: 0, the session ends with the connection)."""
    body = mqtt_str("MQTT") + bytes([version, 0x02 if clean else 0]) + struct.pack("!H", keepalive)
    if version == 5:
        props = b"" if session_expiry is None else b"\x11" + struct.pack("!I", session_expiry)
        body += varint(len(props)) + props
    body += mqtt_str(client_id)
    return b"\x10" + varint(len(body)) + body


def subscribe_packet(pid, filters, version=4):
    """SUBSCRIBE with one or more ``(filter, qos)`` pairs."""
    body = struct.pack("!H", pid) + (b"\x00" if version == 5 else b"")
    body += b"".join(mqtt_str(f) + bytes([q]) for f, q in filters)
    return b"\x82" + varint(len(body)) + body


def publish_packet(topic, payload, qos=0, pid=0, retain=False, version=4):
    first = 0x30 | (qos << 1) | (1 if retain else 0)
    var = mqtt_str(topic) + (struct.pack("!H", pid) if qos else b"")
    if version == 5:
        var += b"\x00"
    return bytes([first]) + varint(len(var) + len(payload)) + var + payload


#: First bytes of the acknowledgements [MQTT-3.6.1-1: PUBREL has flags 0010].
PUBACK, PUBREC, PUBREL, PUBCOMP = 0x40, 0x50, 0x62, 0x70


def ack_packet(first, pid):
    """PUBACK/PUBREC/PUBREL/PUBCOMP with reason Success (the two-byte form
    is valid in 3.1.1 and 5.0 alike)."""
    return bytes([first, 2]) + struct.pack("!H", pid)


def payload(pub_id, epoch, index, ts=0, size=PAYLOAD_LEN):
    head = HDR.pack(pub_id, epoch, index) + TS.pack(ts)
    return head + b"x" * (size - len(head))


def puback(pid):
    return b"\x40\x02" + struct.pack("!H", pid)


def walk(buf, pos=0):
    """Split ``buf[pos:]`` into complete packets.

    Returns ``(packets, consumed)`` where each packet is ``(first_byte,
    body_start, body_end)`` (offsets into ``buf``) and ``consumed`` is the
    offset after the last complete packet.  Used on the slow path only (an
    unexpected byte sequence, setup, latency samples).
    """
    out = []
    end = len(buf)
    while end - pos >= 2:
        ln = 0
        shift = 0
        i = pos + 1
        while True:
            if i >= end:
                return out, pos
            b = buf[i]
            ln |= (b & 0x7F) << shift
            shift += 7
            i += 1
            if not b & 0x80:
                break
            if shift > 21:
                raise ValueError("malformed remaining length")
        nxt = i + ln
        if nxt > end:
            break
        out.append((buf[pos], i, nxt))
        pos = nxt
    return out, pos


def publish_fields(buf, first, start, end, version=4):
    """``(topic, packet_id or None, payload_start)`` of a PUBLISH body
    (5.0: the properties are skipped)."""
    tlen = (buf[start] << 8) | buf[start + 1]
    p = start + 2
    topic = bytes(buf[p:p + tlen])
    p += tlen
    pid = None
    if first & 0x06:
        pid = (buf[p] << 8) | buf[p + 1]
        p += 2
    if version == 5:
        plen = shift = 0
        while True:
            b = buf[p]
            p += 1
            plen |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        p += plen
    return topic, pid, p


def read_until(sock, want, deadline, rest=b""):
    """Blocking setup read: until ``want`` non-PUBLISH packets (CONNACK,
    SUBACK, PUBACK) arrived.  Returns (list of their bytes, leftover)."""
    got = []
    buf = rest
    while len(got) < want:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"setup: timed out waiting for {want} packets (got {len(got)})")
        sock.settimeout(left)
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("broker closed the connection during setup")
        buf += data
        pkts, pos = walk(buf)
        for first, s, e in pkts:
            if first >> 4 != 3:
                got.append(bytes([first]) + bytes(buf[s:e]))
        buf = buf[pos:]
    return got, buf


def open_client(port, client_id, filters=(), sub_qos=0, timeout=20.0, host="127.0.0.1",
                clean=True):
    """Connect (blocking), wait for CONNACK, optionally subscribe (100
    filters per SUBSCRIBE), then return the socket non-blocking with
    TCP_NODELAY set.  Setup is never inside a measuring window.
    ``clean=False``: a persistent session (CleanSession=0), which a
    persisting broker keeps on disk."""
    deadline = time.monotonic() + timeout
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(connect_packet(client_id, clean=clean))
        (connack,), rest = read_until(s, 1, deadline)
        if connack[0] != 0x20 or len(connack) < 3 or connack[2] != 0:
            raise ConnectionError(f"CONNACK refused for {client_id}: {connack!r}")
        filters = list(filters)
        if filters:
            chunks = [filters[i:i + 100] for i in range(0, len(filters), 100)]
            s.sendall(b"".join(subscribe_packet(n + 1, [(f, sub_qos) for f in chunk])
                               for n, chunk in enumerate(chunks)))
            subacks, rest = read_until(s, len(chunks), deadline, rest)
            for sa in subacks:
                if sa[0] != 0x90 or any(c == 0x80 for c in sa[3:]):
                    raise ConnectionError(f"SUBACK refused for {client_id}: {sa!r}")
        if rest:
            raise ConnectionError(f"unexpected data after setup for {client_id}")
        s.setblocking(False)
        return s
    except BaseException:
        s.close()
        raise
