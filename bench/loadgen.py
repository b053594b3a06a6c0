"""Single-process epoll MQTT load generator with exact counting.

One process, one ``select.epoll``, non-blocking sockets with TCP_NODELAY.

Sending: every publisher owns a ``Ring`` of ``M`` PUBLISH packets encoded
once at setup.  A send is a ``memoryview`` slice of the ring (zero copy).
Each payload carries (publisher id, epoch, index); ``seq = epoch * M +
index`` is exact and unique.  When a publisher wraps around its ring it
re-stamps the 4 epoch bytes of all ``M`` packets with four strided slice
assignments (C speed); two copies of the ring (epoch parity) mean the copy
being re-stamped is never one a receiver may still compare against.

Bounded in-flight, every QoS:

* end to end (all QoS): a publisher may commit message ``seq`` only if
  ``seq < min(next expected seq of each of its subscribers) + window``, so
  at most ``window`` of its messages are anywhere between the generator's
  send call and a subscriber's receive (socket buffers, broker queues);
  broker queues can never absorb the load;
* QoS 1 additionally: at most ``ack_window`` PUBLISHes without PUBACK.

Receiving, fast path: a subscriber with a single source knows exactly which
bytes it must receive next (the publisher's ring from its next expected
seq).  It checks a received chunk with one ``bytearray.startswith(chunk,
offset)`` (a memcmp), which proves every packet in it arrived complete, in
order, exactly once.  For QoS 1 the broker's packet ids are first copied
out and zeroed with strided slices (compared against a ring copy with
zeroed ids) and the PUBACKs are built from the copied ids with strided
slice assignments.  Publishers check PUBACK streams the same way against
a pre-encoded PUBACK ring.

Slow path: any chunk that does not match (a gap, a duplicate, reordering,
an unexpected packet, an epoch boundary) is parsed packet by packet
(``mqttwire.walk``); each PUBLISH's (publisher id, seq) is accounted
exactly: received once, duplicate, out of order (arrived after a later
seq), and gaps are kept as missing intervals.  After a run
``lost = expected - received`` where expected = sent x matching
subscribers (QoS 1: ``lost`` counts only PUBACKed messages).
"""

import heapq
import os
import resource
import select
import socket
import struct
import time

from mqttwire import (
    HDR,
    OFF_EPOCH,
    OFF_TS,
    PAYLOAD_LEN,
    TS,
    payload,
    puback,
    publish_packet,
    varint,
    walk,
)

EPOLLIN = select.EPOLLIN
EPOLLOUT = select.EPOLLOUT
EPOLLERR = select.EPOLLERR | select.EPOLLHUP
RECV = 262144
MAXN = RECV // 4 + 8
ZEROS = bytes(MAXN)
P40 = b"\x40" * MAXN
P02 = b"\x02" * MAXN


def gen_cpu():
    """CPU seconds (user + system) of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def proc_cpu(pid):
    """CPU seconds (utime + stime, all threads) of another process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Ring:
    """``M`` pre-encoded PUBLISHes of one publisher, round-robin over its
    topics, in two copies (even / odd epochs).

    ``buf[k]``: the packets as sent.  For QoS 1 also ``masked[k]``: the
    same with packet id zeroed, which is what a QoS 1 subscriber's packet
    looks like after its broker-assigned packet id is zeroed.  ``acks``:
    the PUBACKs in order (packet id of index ``i`` is ``i + 1``).
    """

    def __init__(self, pub_id, topics, qos, size_target):
        n = len(topics)
        m = max(n, -(-size_target // n) * n)
        if qos and m > 65535:
            raise ValueError("QoS 1 ring larger than the packet-id space")
        self.M = m
        self.qos = qos
        packets = [publish_packet(topics[i % n], payload(pub_id, 0, i), qos, i + 1 if qos else 0)
                   for i in range(m)]
        self.L = len(packets[0])
        self.uniform = all(len(p) == self.L for p in packets)
        if not self.uniform:
            raise ValueError("all topics of a publisher must have the same length")
        tlen = len(topics[0].encode())
        rl = len(varint(self.L - 1 - len(varint(self.L))))  # length of the remaining-length field
        self.pid_off = 1 + rl + 2 + tlen if qos else None
        self.pay_off = 1 + rl + 2 + tlen + (2 if qos else 0)
        assert self.pay_off + PAYLOAD_LEN == self.L
        base = b"".join(packets)
        self.buf = [bytearray(base), bytearray(base)]
        self.masked = None
        if qos:
            self.masked = [bytearray(base), bytearray(base)]
            z = bytes(m)
            for b in self.masked:
                b[self.pid_off::self.L] = z
                b[self.pid_off + 1::self.L] = z
            self.acks = b"".join(puback(i + 1) for i in range(m))
        self.epoch = [0, 0]
        self.stamp(1)

    def stamp(self, epoch):
        k = epoch & 1
        eb = struct.pack("!I", epoch)
        off = self.pay_off + OFF_EPOCH
        for j in range(4):
            col = bytes([eb[j]]) * self.M
            self.buf[k][off + j::self.L] = col
            if self.masked:
                self.masked[k][off + j::self.L] = col
        self.epoch[k] = epoch


class Stream:
    """What one subscriber got from one publisher, exactly."""

    __slots__ = (
        "dups",
        "floor",
        "lat",
        "missing",
        "next",
        "ooo",
        "pub",
        "received",
        "ring",
        "seen_at",
        "seen_next",
        "stalls",
    )

    def __init__(self, pub):
        self.pub = pub
        self.ring = pub.ring
        self.next = 0          # highest seq seen + 1
        self.received = 0      # distinct seqs received
        self.dups = 0
        self.ooo = 0           # arrived after a higher seq had arrived
        self.missing = []      # sorted [start, end) gaps below ``next``
        self.lat = None
        # credit floor: raised only by the stall guard (see Publisher.check_stall)
        self.floor = 0
        self.stalls = 0
        self.seen_next = -1
        self.seen_at = 0.0

    def account(self, seq):
        nxt = self.next
        if seq == nxt:
            self.next = nxt + 1
            self.received += 1
        elif seq > nxt:
            self.missing.append([nxt, seq])
            self.next = seq + 1
            self.received += 1
        else:
            for k, (a, b) in enumerate(self.missing):
                if a <= seq < b:
                    if a == seq and b == seq + 1:
                        del self.missing[k]
                    elif a == seq:
                        self.missing[k][0] = seq + 1
                    elif b == seq + 1:
                        self.missing[k][1] = seq
                    else:
                        self.missing[k:k + 1] = [[a, seq], [seq + 1, b]]
                    self.received += 1
                    self.ooo += 1
                    return
            self.dups += 1

    def missing_count(self):
        return sum(b - a for a, b in self.missing)


class Engine:
    """The epoll loop: fd -> handler(events), plus a timer heap."""

    def __init__(self):
        self.ep = select.epoll()
        self.handlers = {}
        self.timers = []
        self.errors = []
        #: seconds to sleep after every epoll round that had events (read
        #: coalescing; see README "Read coalescing")
        self.coalesce = 0.0
        self.rounds = 0

    def add(self, sock, handler, mask):
        self.handlers[sock.fileno()] = handler
        self.ep.register(sock.fileno(), mask)

    def modify(self, sock, mask):
        self.ep.modify(sock.fileno(), mask)

    def remove(self, sock):
        fd = sock.fileno()
        if fd in self.handlers:
            del self.handlers[fd]
            self.ep.unregister(fd)

    def call_at(self, t, fn):
        heapq.heappush(self.timers, (t, id(fn), fn))

    def run(self, until, deadline, max_wait=0.01):
        """Run until ``until()`` is true (returns True) or ``deadline``
        (monotonic) passes (returns False)."""
        poll = self.ep.poll
        handlers = self.handlers
        timers = self.timers
        mono = time.monotonic
        sleep = time.sleep
        coalesce = self.coalesce
        while True:
            now = mono()
            while timers and timers[0][0] <= now:
                heapq.heappop(timers)[2]()
            if self.errors:
                raise RuntimeError("; ".join(self.errors[:5]))
            if until():
                return True
            if now >= deadline:
                return False
            wait = max_wait
            if timers:
                wait = min(wait, max(0.0, timers[0][0] - now))
            events = poll(min(wait, max(0.0, deadline - now)))
            for fd, ev in events:
                h = handlers.get(fd)
                if h is not None:
                    h(ev)
            if events:
                self.rounds += 1
                if coalesce:
                    sleep(coalesce)

    def close(self):
        self.ep.close()


class Publisher:
    """One publishing connection: ring, windows, PUBACK tracking."""

    def __init__(self, eng, name, pub_id, sock, ring, window, ack_window=100, min_batch=None):
        self.eng = eng
        self.name = name
        self.pub_id = pub_id
        self.sock = sock
        self.ring = ring
        self.qos = ring.qos
        self.window = window
        self.ack_window = ack_window
        self.min_batch = min_batch or max(1, min(window, ack_window if self.qos else window) // 4)
        self.subs = []             # Streams fed by this publisher
        self.sent = 0              # messages committed to the socket (next seq)
        self.pending = None        # memoryview not yet accepted by send()
        self.running = False
        self.limit = None          # stop after this many (rate mode)
        self.blocked_on = None     # the Stream whose progress would give credit
        self.want_write = False
        self.acked_low = 0         # every seq below is PUBACKed
        self.ooo_acks = set()      # PUBACKed seqs above acked_low
        self.bad_acks = 0
        self.other = 0
        self.rest = b""
        self.rate = None
        self.stamp_time = False    # latency mode: send time into each payload
        #: latency mode, QoS 1: seq -> send time (ns) until its PUBACK, and
        #: (send ns, PUBACK ns) of every acknowledged message
        self.sent_at = {}
        self.ack_lat = []
        self.stalls = 0
        eng.add(sock, self.on_event, EPOLLIN)

    # ---- credit
    def credit(self):
        lim = 1 << 62
        self.blocked_on = None
        subs = self.subs
        if subs:
            low = None
            nl = 1 << 62
            for s in subs:
                x = max(s.floor, s.next)
                if x < nl:
                    low, nl = s, x
            lim = nl + self.window
            self.blocked_on = low
        if self.qos:
            al = self.acked_low + self.ack_window
            if al < lim:
                lim = al
                self.blocked_on = self
        if self.limit is not None and self.limit < lim:
            lim = self.limit
        return lim - self.sent

    def acked(self):
        return self.acked_low + len(self.ooo_acks)

    # ---- sending
    def pump(self):
        ring = self.ring
        sock = self.sock
        while True:
            pend = self.pending
            if pend is not None:
                try:
                    n = sock.send(pend)
                except BlockingIOError:
                    n = 0
                except OSError as exc:
                    self.eng.errors.append(f"{self.name}: send failed: {exc}")
                    return
                if n < len(pend):
                    self.pending = pend[n:]
                    if not self.want_write:
                        self.want_write = True
                        self.eng.modify(sock, EPOLLIN | EPOLLOUT)
                    return
                self.pending = None
            if not self.running:
                break
            c = self.credit()
            if c < self.min_batch:
                break
            seq = self.sent
            e, i = divmod(seq, ring.M)
            k = e & 1
            if ring.epoch[k] != e:
                ring.stamp(e)
            n = min(c, ring.M - i)
            L = ring.L
            if self.stamp_time:
                # latency mode (a few packets per send): the send time
                b = ring.buf[k]
                off = ring.pay_off + OFF_TS
                now_ns = time.perf_counter_ns()
                t = TS.pack(now_ns)
                for j in range(i, i + n):
                    b[j * L + off:j * L + off + 8] = t
                if self.qos:
                    for q in range(seq, seq + n):
                        self.sent_at[q] = now_ns
            self.pending = memoryview(ring.buf[k])[i * L:(i + n) * L]
            self.sent += n
        if self.want_write:
            self.want_write = False
            self.eng.modify(sock, EPOLLIN)

    def on_event(self, ev):
        if ev & EPOLLIN:
            self.on_read()
        if ev & EPOLLOUT:
            self.pump()
        elif ev & EPOLLERR and not ev & EPOLLIN:
            self.eng.errors.append(f"{self.name}: connection error/hangup")

    # ---- PUBACKs
    def on_read(self):
        try:
            data = self.sock.recv(RECV)
        except BlockingIOError:
            return
        except OSError as exc:
            self.eng.errors.append(f"{self.name}: recv failed: {exc}")
            return
        if not data:
            self.eng.errors.append(f"{self.name}: broker closed the connection")
            self.eng.remove(self.sock)
            return
        if self.rest:
            data = self.rest + data
        n = len(data) >> 2
        if self.qos and not self.ooo_acks and n:
            i = self.acked_low % self.ring.M
            if i + n < self.ring.M and self.acked_low + n <= self.sent and self.ring.acks.startswith(data, i * 4):
                if self.sent_at:
                    self._ack_times(range(self.acked_low, self.acked_low + n))
                self.acked_low += n
                self.rest = data[n * 4:]
                if self.blocked_on is self:
                    self.pump()
                return
        self._slow_acks(data)
        if self.blocked_on is self:
            self.pump()

    def _slow_acks(self, data):
        pkts, pos = walk(data)
        self.rest = data[pos:]
        m = self.ring.M
        for first, s, e in pkts:
            if first == 0x40 and e - s == 2 and self.qos:
                pid = (data[s] << 8) | data[s + 1]
                low = self.acked_low
                seq = low + ((pid - 1 - low) % m)
                if seq >= self.sent or seq in self.ooo_acks:
                    self.bad_acks += 1
                    continue
                self.ooo_acks.add(seq)
                if self.sent_at:
                    self._ack_times((seq,))
                while low in self.ooo_acks:
                    self.ooo_acks.discard(low)
                    low += 1
                self.acked_low = low
            else:
                self.other += 1

    def _ack_times(self, seqs):
        """Latency mode: note when the PUBACKs of ``seqs`` arrived."""
        now = time.perf_counter_ns()
        sent_at = self.sent_at
        for seq in seqs:
            t = sent_at.pop(seq, None)
            if t is not None:
                self.ack_lat.append((t, now))

    def check_stall(self, now, timeout):
        """Stall guard.  If the stream this publisher waits for has not
        advanced for ``timeout`` s, the messages in flight to it are
        presumed lost (they will be counted as lost unless they still
        arrive): its credit floor is raised to ``sent`` so the run goes on.
        Never triggers for a broker that delivers; counted in ``stalls``."""
        st = self.blocked_on
        if not self.running or st is None or st is self:
            return
        if st.next != st.seen_next:
            st.seen_next = st.next
            st.seen_at = now
        elif now - st.seen_at >= timeout and st.floor < self.sent:
            st.floor = self.sent
            st.stalls += 1
            self.stalls += 1
            self.pump()

    # ---- rate mode (latency scenario)
    def start_rate(self, rate, t0):
        self.rate = rate
        self.t0 = t0
        self.limit = 0
        self.min_batch = 1
        self.stamp_time = True
        self.running = True
        self.eng.call_at(t0, self._tick)

    def _tick(self):
        if not self.running:
            return
        now = time.monotonic()
        due = int((now - self.t0) * self.rate) + 1
        if due > self.limit:
            self.limit = due
            self.pump()
        self.eng.call_at(self.t0 + self.limit / self.rate, self._tick)


class Subscriber:
    """One subscribing connection; one Stream per source publisher."""

    def __init__(self, eng, name, sock, qos, pubs, latency=False):
        self.eng = eng
        self.name = name
        self.sock = sock
        self.qos = qos
        self.streams = {}
        for p in pubs:
            st = Stream(p)
            p.subs.append(st)
            self.streams[p.pub_id] = st
        self.rest = b""
        self.other = 0
        self.foreign = 0
        self.ack_out = bytearray()
        self.want_write = False
        self.fast = None
        self.latency = latency
        self.slow_chunks = 0
        self.chunks = 0
        only = list(self.streams.values())
        if len(only) == 1 and not latency and min(qos, only[0].ring.qos) == only[0].ring.qos:
            self.fast = only[0]
        if latency:
            for st in self.streams.values():
                st.lat = []
        self.on_read = self._fast_q1 if (self.fast and self.fast.ring.qos) else self._fast_q0
        eng.add(sock, self.on_event, EPOLLIN)

    def on_event(self, ev):
        if ev & EPOLLIN:
            self.on_read()
        if ev & EPOLLOUT:
            self.flush()
        elif ev & EPOLLERR and not ev & EPOLLIN:
            self.eng.errors.append(f"{self.name}: connection error/hangup")

    def _recv(self):
        try:
            data = self.sock.recv(RECV)
        except BlockingIOError:
            return None
        except OSError as exc:
            self.eng.errors.append(f"{self.name}: recv failed: {exc}")
            return None
        if not data:
            self.eng.errors.append(f"{self.name}: broker closed the connection")
            self.eng.remove(self.sock)
            return None
        self.chunks += 1
        if self.rest:
            return self.rest + data
        return data

    def _fast_q0(self):
        data = self._recv()
        if data is None:
            return
        st = self.fast
        if st is not None:
            ring = st.ring
            L = ring.L
            n = len(data) // L
            e, i = divmod(st.next, ring.M)
            if n and i + n < ring.M and ring.epoch[e & 1] == e \
                    and ring.buf[e & 1].startswith(data, i * L):
                st.next += n
                st.received += n
                self.rest = data[n * L:]
                if st.pub.blocked_on is st:
                    st.pub.pump()
                return
            if n == 0 and len(data) < L:
                self.rest = data
                return
        self._slow(data)

    def _fast_q1(self):
        data = self._recv()
        if data is None:
            return
        st = self.fast
        ring = st.ring
        L = ring.L
        n = len(data) // L
        if n == 0:
            self.rest = data
            return
        e, i = divmod(st.next, ring.M)
        if i + n < ring.M and ring.epoch[e & 1] == e:
            po = ring.pid_off
            whole = bytearray(data[:n * L])
            hi = whole[po::L]
            lo = whole[po + 1::L]
            z = ZEROS[:n]
            whole[po::L] = z
            whole[po + 1::L] = z
            if ring.masked[e & 1].startswith(whole, i * L):
                acks = bytearray(4 * n)
                acks[0::4] = P40[:n]
                acks[1::4] = P02[:n]
                acks[2::4] = hi
                acks[3::4] = lo
                st.next += n
                st.received += n
                self.rest = data[n * L:]
                self.send_acks(acks)
                if st.pub.blocked_on is st:
                    st.pub.pump()
                return
        self._slow(data)

    def _slow(self, data):
        """Parse packet by packet; exact accounting of anything unusual."""
        self.slow_chunks += 1
        pkts, pos = walk(data)
        self.rest = data[pos:]
        acks = bytearray()
        now = time.perf_counter_ns() if self.latency else 0
        unpack = HDR.unpack_from
        touched = set()
        for first, s, e in pkts:
            if first >> 4 != 3:
                self.other += 1
                continue
            tlen = (data[s] << 8) | data[s + 1]
            p = s + 2 + tlen
            if first & 0x06:
                acks += b"\x40\x02"
                acks += data[p:p + 2]
                p += 2
            if e - p < PAYLOAD_LEN:
                self.foreign += 1
                continue
            pub_id, epoch, index = unpack(data, p)
            st = self.streams.get(pub_id)
            if st is None:
                self.foreign += 1
                continue
            seq = epoch * st.ring.M + index
            st.account(seq)
            touched.add(st)
            if st.lat is not None:
                st.lat.append((TS.unpack_from(data, p + OFF_TS)[0], now))
        if acks:
            self.send_acks(acks)
        for st in touched:
            if st.pub.blocked_on is st:
                st.pub.pump()

    def send_acks(self, acks):
        if self.ack_out:
            self.ack_out += acks
            return
        try:
            n = self.sock.send(acks)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            self.eng.errors.append(f"{self.name}: send failed: {exc}")
            return
        if n < len(acks):
            self.ack_out += acks[n:]
            if not self.want_write:
                self.want_write = True
                self.eng.modify(self.sock, EPOLLIN | EPOLLOUT)

    def flush(self):
        if self.ack_out:
            try:
                n = self.sock.send(self.ack_out)
            except BlockingIOError:
                n = 0
            del self.ack_out[:n]
        if not self.ack_out and self.want_write:
            self.want_write = False
            self.eng.modify(self.sock, EPOLLIN)


def open_many(port, n, make_connect, max_inflight=64, deadline=None):
    """Open ``n`` connections with at most ``max_inflight`` handshakes
    (TCP connect + CONNECT/CONNACK) outstanding; returns the open sockets
    and the wall time from the first connect() to the last CONNACK.

    connect() is blocking: on loopback the kernel completes the TCP
    handshake inside the call (the SYN-ACK is processed in this process's
    context), and because no more than ``max_inflight`` connections are
    ever un-CONNACKed -- so never more than that many are waiting in the
    broker's accept queue -- it cannot block on a full listen backlog
    (mosquitto listens with 100, nanomq-twisted with 1024).  The CONNECT
    is sent right after; CONNACKs are collected with epoll."""
    ep = select.epoll()
    addr = ("127.0.0.1", port)
    socks, pending = [], {}
    started = done = 0
    t0 = time.monotonic()
    try:
        while done < n:
            while started < n and len(pending) < max_inflight:
                s = socket.socket()
                s.settimeout(10.0)
                s.connect(addr)
                s.setblocking(False)
                s.send(make_connect(started))
                fd = s.fileno()
                ep.register(fd, EPOLLIN)
                pending[fd] = [s, b""]
                started += 1
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"connections: {done}/{n} after deadline")
            for fd, ev in ep.poll(1.0):
                ent = pending[fd]
                s = ent[0]
                buf = ent[1] + s.recv(16)
                if len(buf) < 4:
                    if not buf or ev & EPOLLERR:
                        raise RuntimeError(f"broker closed connection {done}")
                    ent[1] = buf
                    continue
                if buf[0] != 0x20 or buf[3] != 0:
                    raise RuntimeError(f"bad CONNACK {buf!r}")
                ep.unregister(fd)
                del pending[fd]
                socks.append(s)
                done += 1
        return socks, time.monotonic() - t0
    except BaseException:
        for s in socks:
            s.close()
        for s, _b in pending.values():
            s.close()
        raise
    finally:
        ep.close()


def percentile(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]
