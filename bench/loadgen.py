"""Multi-process raw-socket MQTT load generator.

Why not paho: a Python MQTT client spends tens of microseconds per message
in its own code, so a paho load generator measures paho.  Here publishers
send pre-encoded batches (hundreds of packets per ``send``) and subscribers
only walk the remaining-length fields of what they receive, so the
generator's cost per message is a small fraction of the broker's.

Publishers and subscribers run in separate processes (``fork``), each
process driving a group of connections with a selector, so the generator can
use more than one core.  All processes connect and subscribe first, report
"ready", then start together at a wall-clock instant chosen by the parent;
each subscriber snapshots its delivered count at the start and the end of
the measuring window, which removes connection setup and warm-up from the
figures.  Everything is bounded by deadlines; nothing waits forever.
"""

import math
import multiprocessing as mp
import queue
import selectors
import struct
import time
import traceback

from mqttwire import DISCONNECT, open_client, publish_header, publish_packet, walk

PAYLOAD = b"x" * 64
DRAIN_IDLE = 0.7      # subscribers stop after this long without data post-window
DRAIN_MAX = 8.0       # ...or at the latest this long after the window


class Timing:
    """Absolute wall-clock instants of one run (shared by all processes)."""

    def __init__(self, start, warmup, window):
        self.start = start
        self.measure_from = start + warmup
        self.measure_to = start + warmup + window


def _wait_go(go, t0, ready, name):
    ready.put(("ready", name))
    if not go.wait(120):
        raise RuntimeError("no start signal")
    return t0.value


# ---------------------------------------------------------------- publishers

def _batches(packets, batch):
    """Cycle ``packets`` into send batches of ``batch`` packets each.

    Returns a list of joined batches covering whole cycles, so sending the
    batches round-robin sends each topic equally often."""
    n = len(packets)
    count = n // math.gcd(n, batch)
    return [b"".join(packets[(i * batch + j) % n] for j in range(batch)) for i in range(count)]


class _PubConn:
    def __init__(self, sock, batches, batch):
        self.sock = sock
        self.batches = batches
        self.batch = batch
        self.next = 0
        self.out = None
        self.sent = 0
        self.acked = 0
        self.rest = b""


def pub_worker(spec, port, tm, go, t0, ready, results):
    """Publisher process: modes ``flood`` (QoS 0 as fast as the broker
    reads), ``window`` (QoS 1 with at most ``window`` unacked per
    connection) and ``rate`` (QoS 0 paced, timestamped payloads)."""
    name = spec["name"]
    try:
        mode = spec["mode"]
        batch = spec.get("batch", 200)
        conns = []
        for cid, topics in spec["conns"]:
            sock = open_client(port, cid)
            if mode == "flood":
                pk = [publish_packet(t, PAYLOAD) for t in topics]
                conns.append(_PubConn(sock, _batches(pk, batch), batch))
            elif mode == "window":
                # pids 1..64000 pre-encoded; with a window far below 64000
                # a pid is never reused while still in flight.
                pk = [publish_packet(topics[i % len(topics)], PAYLOAD, 1, i + 1)
                      for i in range(64000)]
                conns.append(_PubConn(sock, _batches(pk, batch), batch))
            else:
                c = _PubConn(sock, None, 1)
                c.header = publish_header(topics[0], len(PAYLOAD))
                conns.append(c)
        start = _wait_go(go, t0, ready, name)
        t = Timing(start, tm[0], tm[1])
        while time.time() < t.start:
            time.sleep(0.001)
        if mode == "rate":
            _pub_rate(conns, spec["rate"], t)
        else:
            _pub_stream(conns, mode == "window", spec.get("window", 1000), t)
        for c in conns:
            try:
                c.sock.settimeout(1.0)
                c.sock.sendall(DISCONNECT)
                c.sock.close()
            except OSError:
                pass
        results.put(("pub", name, {"ids": [cid for cid, _t in spec["conns"]],
                                   "sent": [c.sent for c in conns],
                                   "acked": [c.acked for c in conns]}))
    except Exception:
        tb = traceback.format_exc()
        ready.put(("error", name + ": " + tb))
        results.put(("error", name, tb))


def _pub_stream(conns, qos1, window, t):
    sel = selectors.DefaultSelector()
    for c in conns:
        c.sock.setblocking(False)
        sel.register(c.sock, selectors.EVENT_WRITE | (selectors.EVENT_READ if qos1 else 0), c)
    stop = t.measure_to
    stopping = False
    drain_until = stop + DRAIN_MAX
    while True:
        now = time.time()
        if now >= stop and not stopping:
            stopping = True
        if stopping:
            busy = [c for c in conns if c.out is not None or (qos1 and c.acked < c.sent)]
            if not busy or now >= drain_until:
                break
        for key, ev in sel.select(0.05):
            c = key.data
            if ev & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(262144)
                except BlockingIOError:
                    data = None
                if data:
                    buf = c.rest + data if c.rest else data
                    pos, _np, nacks = walk(buf)
                    c.rest = buf[pos:]
                    c.acked += nacks
                    if not stopping and c.out is None and c.sent - c.acked + c.batch <= window:
                        sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
                elif data is not None:
                    raise ConnectionError("broker closed publisher connection")
            if ev & selectors.EVENT_WRITE:
                if c.out is None:
                    if stopping or (qos1 and c.sent - c.acked + c.batch > window):
                        sel.modify(c.sock, selectors.EVENT_READ if qos1 else selectors.EVENT_WRITE, c)
                        if not qos1:
                            sel.unregister(c.sock)
                        continue
                    c.out = memoryview(c.batches[c.next])
                    c.next = (c.next + 1) % len(c.batches)
                    c.sent += c.batch
                try:
                    n = c.sock.send(c.out)
                except BlockingIOError:
                    n = 0
                c.out = c.out[n:] if n < len(c.out) else None
    sel.close()
    for c in conns:
        c.sock.setblocking(True)


def _pub_rate(conns, rate, t):
    """Paced QoS 0: ``rate`` messages/s in total, round-robin over the
    connections, each payload starting with the send time (float64)."""
    pad = PAYLOAD[8:]
    pack = struct.Struct("!d").pack
    sent = 0
    k = len(conns)
    start = t.start
    while True:
        now = time.time()
        if now >= t.measure_to:
            break
        due = int((now - start) * rate)
        while sent < due:
            c = conns[sent % k]
            c.sock.sendall(c.header + pack(time.time()) + pad)
            c.sent += 1
            sent += 1
        nxt = start + (sent + 1) / rate - time.time()
        if nxt > 0:
            time.sleep(min(nxt, 0.01))


# --------------------------------------------------------------- subscribers

class _SubConn:
    def __init__(self, sock):
        self.sock = sock
        self.rest = b""
        self.total = 0
        self.at_from = None
        self.at_to = None


def sub_worker(spec, port, tm, go, t0, ready, results):
    """Subscriber process: counts PUBLISHes, acks QoS 1, optionally records
    latency (payload timestamp vs. receive time) inside the window."""
    name = spec["name"]
    try:
        conns = []
        for cid, filters in spec["conns"]:
            conns.append(_SubConn(open_client(port, cid, filters, sub_qos=spec.get("qos", 0))))
        latency = spec.get("latency", False)
        start = _wait_go(go, t0, ready, name)
        t = Timing(start, tm[0], tm[1])
        lat = _sub_loop(conns, latency, t)
        for c in conns:
            try:
                c.sock.close()
            except OSError:
                pass
        results.put(("sub", name, {
            "ids": [cid for cid, _f in spec["conns"]],
            "window": [(c.at_to or c.total) - (c.at_from or 0) for c in conns],
            "total": [c.total for c in conns],
            "latency": lat,
        }))
    except Exception:
        tb = traceback.format_exc()
        ready.put(("error", name + ": " + tb))
        results.put(("error", name, tb))


def _sub_loop(conns, latency, t):
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    lat = []
    unpack = struct.Struct("!d").unpack_from
    now_box = [0.0]
    in_window = [False]

    def on_payload(buf, p, _end):
        if in_window[0]:
            lat.append(now_box[0] - unpack(buf, p)[0])

    cb = on_payload if latency else None
    last_data = time.time()
    while True:
        now = time.time()
        if now >= t.measure_from and conns[0].at_from is None:
            for c in conns:
                c.at_from = c.total
            in_window[0] = True
        if now >= t.measure_to and conns[0].at_to is None:
            for c in conns:
                c.at_to = c.total
            in_window[0] = False
        if now >= t.measure_to and (now - last_data > DRAIN_IDLE or now > t.measure_to + DRAIN_MAX):
            break
        events = sel.select(0.02)
        if events:
            now_box[0] = time.time()
        for key, _ev in events:
            c = key.data
            data = c.sock.recv(262144)
            if not data:
                sel.unregister(c.sock)
                continue
            last_data = now_box[0]
            buf = c.rest + data if c.rest else data
            ack = bytearray()
            pos, npub, _no = walk(buf, ack, cb)
            c.rest = buf[pos:]
            c.total += npub
            if ack:
                c.sock.sendall(ack)
    sel.close()
    return lat


# ------------------------------------------------------------------ parent

def run_load(port, pubs, subs, warmup, window):
    """Run one load shape against the broker on ``port``.

    ``pubs``/``subs`` are lists of process specs (``name``, ``conns``,
    ``mode``...).  Returns the merged per-process results.  Subscribers are
    set up before publishers so no message is published to a missing
    subscription.
    """
    ctx = mp.get_context("fork")
    go = ctx.Event()
    t0 = ctx.Value("d", 0.0)
    ready = ctx.Queue()
    results = ctx.Queue()
    procs = []
    out = {"pub": [], "sub": [], "error": []}
    try:
        for group, target in ((subs, sub_worker), (pubs, pub_worker)):
            for spec in group:
                p = ctx.Process(target=target, args=(spec, port, (warmup, window), go, t0, ready, results),
                                daemon=True)
                p.start()
                procs.append(p)
            for _ in group:
                kind, msg = ready.get(timeout=180)
                if kind == "error":
                    raise RuntimeError("load generator setup failed: " + msg)
        t0.value = time.time() + 0.2
        go.set()
        deadline = time.time() + 0.2 + warmup + window + DRAIN_MAX + 30
        for _ in procs:
            kind, name, data = results.get(timeout=max(1.0, deadline - time.time()))
            out[kind].append(data if kind != "error" else name + ": " + data)
    except queue.Empty:
        out["error"].append("timed out waiting for load generator processes")
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=2)
    return out


def split(items, parts):
    """Split a list into ``parts`` nearly equal, non-empty chunks."""
    parts = max(1, min(parts, len(items)))
    return [items[i::parts] for i in range(parts)]


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]
