"""Check the generator's exact accounting without a broker.

A fake broker (plain socketpairs, driven by hand) relays what a Publisher
sends to a Subscriber, dropping, duplicating and reordering chosen
messages, re-numbering QoS 1 packet ids the way a broker does; then the
counts must be exactly what was done to the stream, the PUBACKs must carry
the fake broker's packet ids, and clean stretches must take the fast path.

    python bench/selftest.py        # prints "N passed, 0 failed"
"""

import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from loadgen import Engine, Publisher, Ring, Subscriber
from mqttwire import walk


def pair():
    a, b = socket.socketpair()
    for s in (a, b):
        s.setblocking(False)
    return a, b


def drain(sock):
    out = b""
    while True:
        try:
            d = sock.recv(1 << 20)
        except BlockingIOError:
            return out
        if not d:
            return out
        out += d


def relay_case(qos, drop=(), dup=(), swap=(), total=30000):
    # total < 2 ring sizes: this test sends everything before the subscriber
    # reads, which the end-to-end window never allows in a real run; past two
    # epochs the ring copy the subscriber compares against would be re-stamped
    # (still counted exactly, but on the slow path).
    eng = Engine()
    pub_sock, pub_peer = pair()
    sub_sock, sub_peer = pair()
    ring = Ring(7, ["t/x"], qos, 16384)
    pub = Publisher(eng, "p", 7, pub_sock, ring, window=total + 1, ack_window=total + 1, min_batch=1)
    sub = Subscriber(eng, "s", sub_sock, qos, [pub])
    pub.limit = total
    pub.running = True
    rest = b""
    packets = []
    while pub.sent < total or pub.pending is not None:
        pub.pump()
        buf = rest + drain(pub_peer)
        pk, pos = walk(buf)
        for first, s, e in pk:
            packets.append((first, bytes(buf[s:e])))
        rest = buf[pos:]
    # the fake broker: reorder, drop, duplicate, renumber packet ids
    order = list(range(len(packets)))
    for a, b in swap:
        order[a], order[b] = order[b], order[a]
    out = []
    bpid = 0
    for i in order:
        if i in drop:
            continue
        for _ in range(2 if i in dup else 1):
            first, body = packets[i]
            if qos:
                bpid = bpid % 65535 + 1
                tl = struct.unpack_from("!H", body)[0]
                body = body[:2 + tl] + struct.pack("!H", bpid) + body[4 + tl:]
            out.append(bytes([first, len(body)]) + body)
    stream = b"".join(out)
    acks = b""
    for k in range(0, len(stream), 3001):  # odd chunk size: packets split across reads
        sub_peer.send(stream[k:k + 3001])
        sub.on_read()
        acks += drain(sub_peer)
    st = sub.streams[7]
    sent = pub.sent
    res = {"sent": sent, "received": st.received, "lost": sent - st.received, "dup": st.dups,
           "ooo": st.ooo, "slow": sub.slow_chunks, "chunks": sub.chunks}
    if qos:
        pids = [struct.unpack_from("!H", acks, k + 2)[0] for k in range(0, len(acks), 4)]
        res["acks_ok"] = pids == [(n % 65535) + 1 for n in range(len(out))]
    for s in (pub_sock, pub_peer, sub_sock, sub_peer):
        s.close()
    eng.close()
    return res


def main():
    passed = failed = 0

    def check(name, got, want):
        nonlocal passed, failed
        bad = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        if bad:
            failed += 1
            print(f"FAIL {name}: {bad}  (all: {got})")
        else:
            passed += 1
            print(f"ok   {name}: {got}")

    for qos in (0, 1):
        clean = relay_case(qos)
        check(f"qos{qos} clean", clean, {"received": 30000, "lost": 0, "dup": 0, "ooo": 0})
        if clean["slow"] > 8:
            failed += 1
            print(f"FAIL qos{qos} clean: {clean['slow']} slow-path chunks of {clean['chunks']}")
        else:
            passed += 1
        r = relay_case(qos, drop={5, 6, 20000}, dup={10, 29000}, swap=[(100, 101), (25000, 25003)])
        # (100, 101): 1 late; (25000, 25003): 25003 first, then 25001, 25002, 25000 late
        want = {"received": 30000 - 3, "lost": 3, "dup": 2, "ooo": 4}
        if qos:
            want["acks_ok"] = True
        check(f"qos{qos} drop 3, dup 2, reorder 2", r, want)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
