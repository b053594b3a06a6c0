"""The benchmark scenarios.

Each scenario is ``fn(broker, opts) -> {metric: value, ...}`` and runs
against one freshly started broker (``run.py`` starts a new broker process
for every run of every scenario).  ``METRICS`` says, per metric, the unit,
which way is better and the target from issue 13.

Throughput scenarios share ``run_flows``: set up every connection (not
timed), start all publishers, warm up, take snapshot A (exact counters,
generator CPU, broker CPU), run the window, take snapshot B, stop
publishing, then drain until every subscriber has every message it should
have (and every QoS 1 PUBLISH is acked) or a deadline passes.  Counts are
totals over the whole run (warm-up, window, drain); rates are from the
window.
"""

import statistics
import time

from loadgen import (
    Engine,
    Publisher,
    Ring,
    Subscriber,
    gen_cpu,
    open_many,
    percentile,
    proc_cpu,
)
from mqttwire import (
    PAYLOAD_LEN,
    connect_packet,
    open_client,
    payload,
    publish_packet,
    read_until,
    subscribe_packet,
    walk,
)

# metric -> (unit, higher_is_better, target_kind, target, cpu_bound)
#   target_kind "ratio": nanomq / mosquitto >= target (higher is better)
#               "ratio_max": nanomq / mosquitto <= target (lower is better)
#               "max": absolute bound on the nanomq-twisted value
#               "zero": the nanomq-twisted value must be 0
#   cpu_bound: the figure is a rate the generator must be able to drive, so
#   it is "not evidence" unless generator CPU <= broker CPU / 3.
METRICS = {
    "qos0.msgs_s": ("msg/s", True, "ratio", 1.5, True),
    "qos0.lost": ("msgs", False, "zero", 0, False),
    "qos1.msgs_s": ("msg/s", True, "ratio", 1.0, True),
    "qos1.lost": ("msgs", False, "zero", 0, False),
    "fanout.msgs_s": ("msg/s", True, "ratio", 2.5, True),
    "fanout.lost": ("msgs", False, None, None, False),
    "routing.msgs_s": ("msg/s", True, "ratio", 1.2, True),
    "routing.lost": ("msgs", False, None, None, False),
    "latency.p50_us": ("us", False, "ratio_max", 1.2, False),
    "latency.p99_us": ("us", False, "max", 1000.0, False),
    "latency.lost": ("msgs", False, "zero", 0, False),
    "idle.connects_s": ("conn/s", True, "ratio", 1.0, True),
    "idle.rss_kib_per_conn": ("KiB", False, "max", 3.0, False),
    "retained.ms": ("ms", False, None, None, False),
    "durable.msgs_s": ("msg/s", True, "ratio", 0.5, True),
    "durable.lost": ("msgs", False, "zero", 0, False),
    "durable_latency.ack_p50_us": ("us", False, None, None, False),
    "durable_latency.ack_p99_us": ("us", False, None, None, False),
    "durable_latency.p50_us": ("us", False, None, None, False),
    "durable_latency.lost": ("msgs", False, "zero", 0, False),
}

# the figure that goes into the summary table per scenario
HEADLINE = {
    "qos0": ["qos0.msgs_s", "qos0.lost"],
    "qos1": ["qos1.msgs_s", "qos1.lost"],
    "fanout": ["fanout.msgs_s", "fanout.lost"],
    "routing": ["routing.msgs_s", "routing.lost"],
    "latency": ["latency.p50_us", "latency.p99_us", "latency.lost"],
    "idle": ["idle.connects_s", "idle.rss_kib_per_conn"],
    "retained": ["retained.ms"],
    "durable": ["durable.msgs_s", "durable.lost"],
    "durable_latency": ["durable_latency.ack_p50_us", "durable_latency.ack_p99_us",
                        "durable_latency.p50_us", "durable_latency.lost"],
}


class Opts:
    """Run options shared by the scenarios."""

    def __init__(self, quick=False, window=500, ack_window=100, ring=16384, drain=5.0,
                 stall=0.5, idle_n=None, handshakes=64, coalesce=None):
        self.quick = quick
        self.warmup, self.measure = (0.5, 2.0) if quick else (1.0, 5.0)
        self.window = window
        self.ack_window = ack_window
        self.ring = ring
        self.drain = drain
        self.stall = stall
        self.idle_n = idle_n or (2000 if quick else 10000)
        self.handshakes = handshakes
        #: per-scenario read-coalescing sleep (s); None = COALESCE defaults
        self.coalesce = coalesce


class Snap:
    def __init__(self, streams, broker_pid):
        self.t = time.monotonic()
        self.gen = gen_cpu()
        self.broker = proc_cpu(broker_pid)
        self.received = sum(st.received for st in streams)


def cpu_fields(prefix, a, b):
    dt = b.t - a.t
    g = b.gen - a.gen
    br = b.broker - a.broker
    return {
        prefix + "gen_cpu_pct": 100 * g / dt,
        prefix + "broker_cpu_pct": 100 * br / dt,
        prefix + "gen_broker_ratio": g / br if br > 0 else float("inf"),
        prefix + "evidence": bool(br > 0 and g <= br / 3),
    }


def _not_received(st, sent):
    """[a, b) intervals of seqs of ``st``'s publisher never received."""
    out = [list(x) for x in st.missing]
    if st.next < sent:
        out.append([st.next, sent])
    return out


# read coalescing per scenario (seconds slept after each epoll round)
COALESCE = {"qos0": 0.001, "qos1": 0.001, "fanout": 0.02, "routing": 0.001, "latency": 0.0,
            "durable": 0.001, "durable_latency": 0.0}


def run_flows(broker, opts, pubs, subs, name, rate=None, persistent=False):
    """Run one load shape.

    ``pubs``: list of ``(client_id, pub_id, topics, qos)``.
    ``subs``: list of ``(client_id, filters, sub_qos, [pub client ids])``.
    ``rate``: None (windowed flood) or msg/s per publisher (latency).
    ``persistent``: subscribers connect with CleanSession=0, so a
    persisting broker stores what it owes them.
    """
    eng = Engine()
    eng.coalesce = COALESCE.get(name, 0.0) if opts.coalesce is None else opts.coalesce
    if rate is not None:
        eng.coalesce = 0.0
    socks = []
    try:
        rings = {cid: Ring(pid, topics, qos, opts.ring) for cid, pid, topics, qos in pubs}
        sub_socks = []
        for cid, filters, sq, _src in subs:
            s = open_client(broker.port, cid, filters, sq, clean=not persistent)
            socks.append(s)
            sub_socks.append(s)
        publishers = {}
        for cid, pid, _topics, _qos in pubs:
            s = open_client(broker.port, cid)
            socks.append(s)
            publishers[cid] = Publisher(eng, cid, pid, s, rings[cid], opts.window, opts.ack_window)
        subscribers = [Subscriber(eng, cid, s, sq, [publishers[p] for p in src], latency=rate is not None)
                       for (cid, _f, sq, src), s in zip(subs, sub_socks)]
        streams = [st for sb in subscribers for st in sb.streams.values()]
        t0 = time.monotonic() + 0.05

        def stall_check():
            now = time.monotonic()
            for p in publishers.values():
                p.check_stall(now, opts.stall)
            eng.call_at(now + 0.05, stall_check)

        for p in publishers.values():
            if rate is None:
                p.running = True
                p.pump()
            else:
                p.start_rate(rate, t0)
        eng.call_at(time.monotonic() + 0.05, stall_check)
        never = lambda: False
        eng.run(never, t0 + opts.warmup)
        a = Snap(streams, broker.pid)
        eng.run(never, a.t + opts.measure)
        b = Snap(streams, broker.pid)
        for p in publishers.values():
            p.running = False

        def drained():
            for p in publishers.values():
                if p.pending is not None:
                    return False
                if p.qos and p.acked() < p.sent:
                    return False
            for sb in subscribers:
                if sb.ack_out or sb.rest:
                    return False
            return all(st.next >= st.pub.sent and not st.missing for st in streams)

        t_drain = time.monotonic()
        drained_ok = eng.run(drained, t_drain + opts.drain, max_wait=0.005)
        drain_s = time.monotonic() - t_drain
        if not broker.alive():
            raise RuntimeError(f"{broker.name} died during {name}")
        pre = name + "."
        sent = sum(p.sent for p in publishers.values())
        expected = sum(p.sent * len(p.subs) for p in publishers.values())
        received = sum(st.received for st in streams)
        res = {
            pre + "msgs_s": (b.received - a.received) / (b.t - a.t),
            pre + "sent": sent,
            pre + "expected": expected,
            pre + "received": received,
            pre + "lost": expected - received,
            pre + "dup": sum(st.dups for st in streams),
            pre + "out_of_order": sum(st.ooo for st in streams),
            pre + "window_s": b.t - a.t,
            pre + "drained": drained_ok,
            pre + "drain_s": drain_s,
            pre + "stall_guard": sum(st.stalls for st in streams),
            pre + "foreign_pkts": sum(sb.foreign for sb in subscribers),
            pre + "slow_path_chunks": sum(sb.slow_chunks for sb in subscribers),
            pre + "recv_chunks": sum(sb.chunks for sb in subscribers),
            pre + "epoll_rounds": eng.rounds,
            pre + "coalesce_ms": eng.coalesce * 1e3,
        }
        res.update(cpu_fields(pre, a, b))
        if any(p.qos for p in publishers.values()):
            acked = sum(p.acked() for p in publishers.values())
            lost_acked = 0
            for st in streams:
                p = st.pub
                for lo, hi in _not_received(st, p.sent):
                    lost_acked += max(0, min(hi, p.acked_low) - lo)
                    lost_acked += sum(1 for x in p.ooo_acks if lo <= x < hi)
            res[pre + "acked"] = acked
            res[pre + "unacked_at_end"] = sent - acked
            res[pre + "bad_acks"] = sum(p.bad_acks for p in publishers.values())
            # QoS 1: lost = PUBACKed to the publisher, never received
            res[pre + "lost_unacked"] = res[pre + "lost"]
            res[pre + "lost"] = lost_acked
        if rate is not None:
            lat = sorted((rx - tx) / 1e3 for st in streams for tx, rx in st.lat
                         if a.t <= _mono_of(tx) <= b.t)
            res[pre + "p50_us"] = percentile(lat, 0.50)
            res[pre + "p99_us"] = percentile(lat, 0.99)
            res[pre + "max_us"] = lat[-1] if lat else float("nan")
            res[pre + "samples"] = len(lat)
            res[pre + "rate"] = rate
            acks = sorted((rx - tx) / 1e3 for p in publishers.values() for tx, rx in p.ack_lat
                          if a.t <= _mono_of(tx) <= b.t)
            if acks:
                # publisher's PUBLISH send -> its PUBACK received (µs)
                res[pre + "ack_p50_us"] = percentile(acks, 0.50)
                res[pre + "ack_p99_us"] = percentile(acks, 0.99)
                res[pre + "ack_max_us"] = acks[-1]
        return res
    finally:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        eng.close()


_PC_OFFSET = time.monotonic() - time.perf_counter_ns() / 1e9


def _mono_of(perf_ns):
    return perf_ns / 1e9 + _PC_OFFSET


def _pairs(prefix, n, qos):
    pubs = [(f"{prefix}-p{i}", i + 1, [f"{prefix}/{i}"], qos) for i in range(n)]
    subs = [(f"{prefix}-s{i}", [f"{prefix}/{i}"], qos, [f"{prefix}-p{i}"]) for i in range(n)]
    return pubs, subs


def qos0(broker, opts):
    """4 publishers -> 4 subscribers, 1:1 topics q0/<i>, QoS 0."""
    pubs, subs = _pairs("q0", 4, 0)
    return run_flows(broker, opts, pubs, subs, "qos0")


def qos1(broker, opts):
    """Same shape at QoS 1 both ways; subscribers PUBACK everything."""
    pubs, subs = _pairs("q1", 4, 1)
    return run_flows(broker, opts, pubs, subs, "qos1")


def fanout(broker, opts):
    """1 publisher -> 100 subscribers of fan/t, QoS 0."""
    pubs = [("fan-p0", 1, ["fan/t"], 0)]
    subs = [(f"fan-s{i}", ["fan/t"], 0, ["fan-p0"]) for i in range(100)]
    return run_flows(broker, opts, pubs, subs, "fanout")


def routing(broker, opts):
    """10,000 topics dev/<d>/<s>/temp (d < 1000, zero-padded to 3 digits so
    every packet has the same length; s < 10), each published by exactly
    one of 4 publishers, each publisher cycling round-robin through its
    2,500; 4 subscribers hold 250 filters dev/<d>/+/temp each (1,000
    wildcard filters in total), so every message matches exactly one
    filter of one subscriber.  Publisher k owns the topics with
    d = k (mod 4) and subscriber k the filters with d = k (mod 4), so each
    subscriber has a single source and is checked on the fast path."""
    pubs, subs = [], []
    for k in range(4):
        ds = range(k, 1000, 4)
        topics = [f"dev/{d:03d}/{s}/temp" for d in ds for s in range(10)]
        pubs.append((f"rt-p{k}", k + 1, topics, 0))
        subs.append((f"rt-s{k}", [f"dev/{d:03d}/+/temp" for d in ds], 0, [f"rt-p{k}"]))
    return run_flows(broker, opts, pubs, subs, "routing")


def latency(broker, opts):
    """1 -> 1 at 1,000 msg/s QoS 1; the send time (perf_counter ns) is in
    the payload; one-way latency = receive time (taken right after the
    recv() that returned the packet) - send time, in µs, for messages sent
    inside the window."""
    pubs = [("lat-p0", 1, ["lat/t"], 1)]
    subs = [("lat-s0", ["lat/t"], 1, ["lat-p0"])]
    return run_flows(broker, opts, pubs, subs, "latency", rate=1000)


def idle(broker, opts):
    """Open N connections (TCP + CONNECT/CONNACK each), at most
    ``opts.handshakes`` in flight, keep them idle.  connects/s = N / time
    from the first connect() to the last CONNACK; RSS per connection =
    broker VmRSS growth (before the first connection, 1 s after the last)
    / N."""
    n = opts.idle_n
    broker.wait_idle()
    rss0 = broker.rss_kib()
    packets = {}

    def make(i):
        p = packets.get(i)
        return p if p is not None else connect_packet(f"idle-{i}")

    for i in range(n):
        packets[i] = connect_packet(f"idle-{i}")
    g0, b0, t0 = gen_cpu(), proc_cpu(broker.pid), time.monotonic()
    socks, elapsed = open_many(broker.port, n, make, opts.handshakes,
                                           deadline=time.monotonic() + 120)
    g1, b1, t1 = gen_cpu(), proc_cpu(broker.pid), time.monotonic()
    try:
        time.sleep(1.0)
        rss1 = broker.rss_kib()
        alive = broker.alive()
    finally:
        for s in socks:
            s.close()
    if not alive:
        raise RuntimeError("idle: broker died")
    dt = t1 - t0
    g, br = g1 - g0, b1 - b0
    return {
        "idle.connects_s": n / elapsed,
        "idle.rss_kib_per_conn": (rss1 - rss0) / n,
        "idle.n": n,
        "idle.rss_before_mib": rss0 / 1024,
        "idle.rss_after_mib": rss1 / 1024,
        "idle.gen_cpu_pct": 100 * g / dt,
        "idle.broker_cpu_pct": 100 * br / dt,
        "idle.gen_broker_ratio": g / br if br > 0 else float("inf"),
        "idle.evidence": bool(br > 0 and g <= br / 3),
    }


def retained(broker, opts):
    """1,000 retained QoS 1 messages ret/<i> (all PUBACKed), then SUBSCRIBE
    ret/# (QoS 0) on a connected client: ms until the 1,000th retained
    PUBLISH, median of 3 trials.  Informational (no target in issue 13)."""
    deadline = time.monotonic() + 30
    pub = open_client(broker.port, "ret-pub")
    pub.setblocking(True)
    pub.sendall(b"".join(publish_packet(f"ret/{i}", payload(0, 0, i), 1, i + 1, retain=True)
                         for i in range(1000)))
    read_until(pub, 1000, deadline)
    pub.close()
    times, counts = [], []
    for trial in range(3):
        s = open_client(broker.port, f"ret-sub-{trial}")
        s.setblocking(True)
        s.settimeout(3.0)
        got, rest = 0, b""
        t0 = time.perf_counter()
        s.sendall(subscribe_packet(1, [("ret/#", 0)]))
        try:
            while got < 1000:
                data = s.recv(262144)
                if not data:
                    break
                buf = rest + data
                pkts, pos = walk(buf)
                rest = buf[pos:]
                got += sum(1 for f, st, e in pkts if f >> 4 == 3 and e - st >= PAYLOAD_LEN)
        except TimeoutError:
            pass
        if got >= 1000:
            times.append((time.perf_counter() - t0) * 1e3)
        counts.append(got)
        s.close()
    return {"retained.ms": statistics.median(times) if len(times) == 3 else float("nan"),
            "retained.received_min": min(counts)}


def durable(broker, opts):
    """QoS 1 4 -> 4 as ``qos1``, but the subscribers hold persistent
    sessions (CleanSession=0): every message is owed to a durable session,
    so with ``sqlite.sync_ack`` each PUBACK waits for the commit holding
    its message."""
    pubs, subs = _pairs("dq", 4, 1)
    return run_flows(broker, opts, pubs, subs, "durable", persistent=True)


def durable_latency(broker, opts):
    """1 -> 1 at 1,000 msg/s QoS 1 to a persistent subscriber: one-way
    latency as ``latency``, plus the publisher's PUBLISH -> PUBACK time
    (``ack_p50_us``/``ack_p99_us``), which with ``sqlite.sync_ack``
    includes the commit."""
    pubs = [("dl-p0", 1, ["dl/t"], 1)]
    subs = [("dl-s0", ["dl/t"], 1, ["dl-p0"])]
    return run_flows(broker, opts, pubs, subs, "durable_latency", rate=1000, persistent=True)


SCENARIOS = {
    "qos0": qos0,
    "qos1": qos1,
    "fanout": fanout,
    "routing": routing,
    "latency": latency,
    "idle": idle,
    "retained": retained,
    "durable": durable,
    "durable_latency": durable_latency,
}
