"""The benchmark scenarios.

Each scenario is ``fn(broker, quick) -> {metric: value}`` and runs against
one already-running broker; ``run.py`` calls it for both brokers back to
back, so the two numbers of a row were measured on the same machine
minutes apart.  ``METRICS`` says, per metric, the unit, whether higher is
better, and the target (a ratio to mosquitto or an absolute bound).
Shapes are kept small enough that the whole bench stays a few minutes.
"""

import selectors
import socket
import statistics
import time

from loadgen import PAYLOAD, percentile, run_load, split
from mqttwire import (
    connect_packet,
    open_client,
    publish_packet,
    read_packets,
    subscribe_packet,
    walk,
)

# metric -> (unit, higher_is_better, target_kind, target_value)
#   target_kind "ratio": nanomq/mosquitto (or mosquitto/nanomq for lower-is-better) >= value
#   target_kind "max"/"min": absolute bound on the nanomq-twisted value
METRICS = {
    "qos0.msgs_s": ("msg/s", True, "ratio", 0.5),
    "qos1.msgs_s": ("msg/s", True, "ratio", 0.35),
    "qos1.lost": ("msgs", False, "max", 0),
    "fanout100.msgs_s": ("msg/s", True, "ratio", 0.5),
    "latency.p50_ms": ("ms", False, None, None),
    "latency.p99_ms": ("ms", False, "max", 1.0),
    "idle.connects_s": ("conn/s", True, "min", 10000),
    "idle.rss_kib_per_conn": ("KiB", False, "max", 6.0),
    "routing.msgs_s": ("msg/s", True, "ratio", 0.35),
    "retained.ms": ("ms", False, "max", 50.0),
    "retained.received": ("msgs", True, "min", 1000),
    "retained.qos1_ms": ("ms", False, "max", 50.0),
    "omb_p2p.msgs_s": ("msg/s", True, None, None),
    "omb_p2p.p99_ms": ("ms", False, None, None),
    "omb_fanout1000.msgs_s": ("msg/s", True, None, None),
    "omb_fanout1000.p99_ms": ("ms", False, None, None),
    "omb_shared.msgs_s": ("msg/s", True, None, None),
    "omb_shared.lost": ("msgs", False, None, None),
}


def _timing(quick):
    return (0.5, 2.0) if quick else (1.0, 5.0)


def _check(out):
    if out["error"]:
        raise RuntimeError("; ".join(e[-1500:] for e in out["error"]))


def _delivered_rate(out, window):
    return sum(sum(r["window"]) for r in out["sub"]) / window


def _latencies(out):
    return sorted(x for r in out["sub"] for x in r["latency"])


def _pairs(n, prefix, mode, qos=0, procs=2, **extra):
    """n publishers -> n subscribers on 1:1 topics ``<prefix>/<i>``."""
    pubs = [(f"{prefix}-p{i}", [f"{prefix}/{i}"]) for i in range(n)]
    subs = [(f"{prefix}-s{i}", [f"{prefix}/{i}"]) for i in range(n)]
    pspecs = [dict(name=f"pub{k}", conns=c, mode=mode, **extra) for k, c in enumerate(split(pubs, procs))]
    sspecs = [{"name": f"sub{k}", "conns": c, "qos": qos, "latency": (mode == "rate")}
              for k, c in enumerate(split(subs, procs))]
    return pspecs, sspecs


def qos0(broker, quick):
    """4 publishers -> 4 subscribers, 1:1 topics bench/q0/<i>, 64 B, QoS 0
    flood; delivered msg/s at the subscribers."""
    warm, win = _timing(quick)
    pubs, subs = _pairs(4, "q0", "flood", batch=500)
    out = run_load(broker.port, pubs, subs, warm, win)
    _check(out)
    sent = sum(sum(r["sent"]) for r in out["pub"])
    recv = sum(sum(r["total"]) for r in out["sub"])
    return {"qos0.msgs_s": _delivered_rate(out, win), "qos0.delivered_frac": recv / max(sent, 1)}


def qos1(broker, quick):
    """Same shape at QoS 1 both ways: publishers keep up to 1,000 unacked
    per connection, subscribers PUBACK everything.  Loss = messages the
    broker PUBACKed to a publisher that never reached its subscriber."""
    warm, win = _timing(quick)
    pubs, subs = _pairs(4, "q1", "window", qos=1, batch=100, window=1000)
    out = run_load(broker.port, pubs, subs, warm, win)
    _check(out)
    acked = {}
    for r in out["pub"]:
        for cid, s, a in zip(r["ids"], r["sent"], r["acked"]):
            acked[cid.replace("-p", "-s")] = (s, a)
    received = {cid: t for r in out["sub"] for cid, t in zip(r["ids"], r["total"])}
    lost = sum(max(0, a - received.get(cid, 0)) for cid, (_s, a) in acked.items())
    unacked = sum(s - a for s, a in acked.values())
    res = {"qos1.msgs_s": _delivered_rate(out, win), "qos1.lost": lost}
    if unacked:
        res["qos1.unacked_at_end"] = unacked
    return res


def fanout100(broker, quick):
    """1 publisher -> 100 subscribers of bench/fan, QoS 0 flood; delivered
    msg/s summed over all subscribers."""
    warm, win = _timing(quick)
    subs = [(f"fan-s{i}", ["bench/fan"]) for i in range(100)]
    pubs = [{"name": "pub0", "conns": [("fan-p0", ["bench/fan"])], "mode": "flood", "batch": 100}]
    sspecs = [{"name": f"sub{k}", "conns": c} for k, c in enumerate(split(subs, 2))]
    out = run_load(broker.port, pubs, sspecs, warm, win)
    _check(out)
    sent = sum(sum(r["sent"]) for r in out["pub"])
    recv = sum(sum(r["total"]) for r in out["sub"])
    # sanity: deliveries per published message can never exceed 100
    return {"fanout100.msgs_s": _delivered_rate(out, win), "fanout100.deliveries_per_pub": recv / max(sent, 1)}


def latency(broker, quick):
    """1 publisher -> 1 subscriber at 1,000 msg/s QoS 0; the payload carries
    the send time, the subscriber subtracts it from the receive time."""
    warm, win = _timing(quick)
    pubs = [{"name": "pub0", "conns": [("lat-p0", ["bench/lat"])], "mode": "rate", "rate": 1000}]
    subs = [{"name": "sub0", "conns": [("lat-s0", ["bench/lat"])], "latency": True}]
    out = run_load(broker.port, pubs, subs, warm, win)
    _check(out)
    lat = _latencies(out)
    return {"latency.p50_ms": percentile(lat, 0.50) * 1e3, "latency.p99_ms": percentile(lat, 0.99) * 1e3,
            "latency.samples": len(lat)}


def idle(broker, quick, n=None):
    """Open N connections (CONNECT + CONNACK each), at most 64 handshakes
    in flight (mosquitto listens with a backlog of 100; more in flight
    overflows it and measures SYN retransmits), and keep them idle; report connects/s and the broker's RSS
    growth per connection (VmRSS before vs. after, after a 1 s settle)."""
    n = n or (2000 if quick else 10000)
    broker.wait_idle()
    rss0 = broker.rss_kib()
    addr = ("127.0.0.1", broker.port)
    sel = selectors.DefaultSelector()
    socks, pending = [], {}
    started = done = 0
    t0 = time.perf_counter()
    last_progress = t0
    while done < n:
        while started < n and len(pending) < 64:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(addr)
            sel.register(s, selectors.EVENT_WRITE, started)
            pending[s] = b""
            started += 1
        events = sel.select(1.0)
        now = time.perf_counter()
        if events:
            last_progress = now
        elif now - last_progress > 15:
            raise RuntimeError("idle: stalled at %d/%d connections" % (done, n))
        for key, ev in events:
            s = key.fileobj
            if ev & selectors.EVENT_WRITE:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise RuntimeError("idle: connect failed errno %d at %d" % (err, done))
                s.send(connect_packet(f"idle-{key.data}"))
                sel.modify(s, selectors.EVENT_READ, key.data)
            else:
                buf = pending[s] + s.recv(16)
                if len(buf) < 4:
                    if not buf:
                        raise RuntimeError("idle: broker closed connection %d" % done)
                    pending[s] = buf
                    continue
                if buf[0] != 0x20 or buf[3] != 0:
                    raise RuntimeError("idle: bad CONNACK {!r}".format(buf))
                sel.unregister(s)
                del pending[s]
                socks.append(s)
                done += 1
    elapsed = time.perf_counter() - t0
    time.sleep(1.0)
    rss1 = broker.rss_kib()
    alive = broker.alive()
    for s in socks:
        s.close()
    sel.close()
    if not alive:
        raise RuntimeError("idle: broker died")
    return {"idle.connects_s": n / elapsed, "idle.rss_kib_per_conn": (rss1 - rss0) / n, "idle.n": n,
            "idle.rss_before_mib": rss0 / 1024, "idle.rss_after_mib": rss1 / 1024}


def routing(broker, quick):
    """10,000 topics dev/<d>/<s>/temp (d < 1000, s < 10) published round
    robin by 4 publishers; 4 subscribers hold 250 filters dev/<d>/+/temp
    each (1,000 wildcard filters), so every message matches exactly one
    filter.  QoS 0 flood; delivered msg/s."""
    warm, win = _timing(quick)
    topics = [f"dev/{i // 10}/{i % 10}/temp" for i in range(10000)]
    filters = [f"dev/{d}/+/temp" for d in range(1000)]
    pubs = [(f"rt-p{k}", topics[k::4]) for k in range(4)]
    subs = [(f"rt-s{k}", filters[k::4]) for k in range(4)]
    pspecs = [{"name": f"pub{k}", "conns": c, "mode": "flood", "batch": 500} for k, c in enumerate(split(pubs, 2))]
    sspecs = [{"name": f"sub{k}", "conns": c} for k, c in enumerate(split(subs, 2))]
    out = run_load(broker.port, pspecs, sspecs, warm, win)
    _check(out)
    return {"routing.msgs_s": _delivered_rate(out, win)}


def retained(broker, quick):
    """Publish 1,000 retained QoS 1 messages ret/<i> (wait for all
    PUBACKs), then time SUBSCRIBE ret/# -> 1,000th retained PUBLISH on a
    fresh, already-connected client.  Median of 3 subscribers, once with a
    QoS 0 and once with a QoS 1 subscription; ``*received`` is the fewest
    retained messages any trial got (a trial gives up after 3 s silence)."""
    pub = open_client(broker.port, "ret-pub")
    pub.sendall(b"".join(publish_packet(f"ret/{i}", PAYLOAD, 1, i + 1, retain=True) for i in range(1000)))
    read_packets(pub, 1000)
    pub.close()
    res = {}
    for qos in (0, 1):
        times, counts = [], []
        for trial in range(3):
            s = open_client(broker.port, f"ret-sub{qos}-{trial}")
            s.settimeout(3.0)
            got, rest = 0, b""
            t0 = time.perf_counter()
            s.sendall(subscribe_packet(1, [("ret/#", qos)]))
            try:
                while got < 1000:
                    data = s.recv(262144)
                    if not data:
                        break
                    buf = rest + data
                    ack = bytearray()
                    pos, npub, _n = walk(buf, ack)
                    rest = buf[pos:]
                    got += npub
                    if ack:
                        s.sendall(ack)
            except TimeoutError:
                pass
            if got >= 1000:
                times.append((time.perf_counter() - t0) * 1e3)
            counts.append(got)
            s.close()
        key = "retained.ms" if qos == 0 else "retained.qos1_ms"
        res[key] = statistics.median(times) if len(times) == 3 else float("nan")
        res[key.replace("ms", "received")] = min(counts)
    return res

def omb(broker, quick):
    """Open-MQTT-Benchmark-like shapes, small and rate-limited:
    p2p N pubs -> N subs (1:1, 50 msg/s each), fan-out 1 -> M subscribers
    (20 msg/s), shared fan-in K pubs -> 5 subscribers of $share/g/omb/share
    (10 msg/s each).  All QoS 0 with timestamped payloads."""
    warm, win = _timing(quick)
    n_p2p, n_fan, n_shared = (50, 200, 200) if quick else (200, 1000, 1000)
    res = {}
    pubs, subs = _pairs(n_p2p, "p2p", "rate")
    for spec in pubs:
        spec["rate"] = 50 * len(spec["conns"])
    out = run_load(broker.port, pubs, subs, warm, win)
    _check(out)
    lat = _latencies(out)
    res["omb_p2p.msgs_s"] = _delivered_rate(out, win)
    res["omb_p2p.p99_ms"] = percentile(lat, 0.99) * 1e3
    res["omb_p2p.offered_s"] = 50 * n_p2p

    subs = [(f"of-s{i}", ["omb/fan"]) for i in range(n_fan)]
    sspecs = [{"name": f"sub{k}", "conns": c, "latency": True} for k, c in enumerate(split(subs, 2))]
    pubs = [{"name": "pub0", "conns": [("of-p0", ["omb/fan"])], "mode": "rate", "rate": 20}]
    out = run_load(broker.port, pubs, sspecs, warm, win)
    _check(out)
    lat = _latencies(out)
    res["omb_fanout1000.msgs_s"] = _delivered_rate(out, win)
    res["omb_fanout1000.p99_ms"] = percentile(lat, 0.99) * 1e3
    res["omb_fanout1000.offered_s"] = 20 * n_fan

    pubs = [(f"os-p{i}", ["omb/share"]) for i in range(n_shared)]
    pspecs = [{"name": f"pub{k}", "conns": c, "mode": "rate", "rate": 10 * len(c)} for k, c in enumerate(split(pubs, 2))]
    sspecs = [{"name": "sub0", "conns": [(f"os-s{i}", ["$share/g/omb/share"]) for i in range(5)], "latency": True}]
    out = run_load(broker.port, pspecs, sspecs, warm, win)
    _check(out)
    sent = sum(sum(r["sent"]) for r in out["pub"])
    recv = sum(sum(r["total"]) for r in out["sub"])
    res["omb_shared.msgs_s"] = _delivered_rate(out, win)
    res["omb_shared.lost"] = sent - recv
    res["omb_shared.offered_s"] = 10 * n_shared
    res["omb_shared.per_sub"] = [t for r in out["sub"] for t in r["total"]]
    return res


SCENARIOS = {
    "qos0": qos0,
    "qos1": qos1,
    "fanout": fanout100,
    "latency": latency,
    "idle": idle,
    "routing": routing,
    "retained": retained,
    "omb": omb,
}
