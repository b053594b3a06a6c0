# -*- test-case-name: tests.shipped.test_kill9,tests.unit.test_store_kill -*-
"""
QoS 1/2 floods from real paho clients into persistent subscribers, and
``kill -9`` of the broker in the middle: the harness shared by
`test_kill9` (five fixed cycles, in the suite) and ``tools/crash_cycles.py``
(twenty random ones, for docs/reliability.md).

Everything here is plain, reactor-free Python: the clients are driven from
one thread with ``select`` over their sockets (paho's own external-loop
calls), so the caller decides exactly when a packet is read and when the
broker dies, and nothing sleeps.  ``kill`` is the caller's: a function
that sends SIGKILL to the broker.

What is checked, per publisher, once the last broker has drained
(`Campaign.verdict`):

- every message acknowledged to the publisher -- before any kill too --
  reached the subscriber (nothing acknowledged was lost);
- QoS 2: every message arrived exactly once [MQTT-4.3.3];
- QoS 1: every message arrived at least once [MQTT-4.3.2];
- retained: for every retained topic, the message a new subscriber gets
  is the last one acknowledged for it or a later one (never an older one,
  never none) [MQTT-3.3.1-5].
"""

import os
import select
import shutil
import sqlite3
import tempfile
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

#: Messages a publisher keeps unacknowledged (paho's in-flight window, as
#: in issue 18's measurement) and at most queued in paho beyond it.
INFLIGHT = 200
AHEAD = 400
#: Seconds any one wait (CONNACK, SUBACK, the final drain) may take.
WAIT = 30.0
#: Reads per readable client in one round of ``pump``.
READ_BURST = 256
#: Retained topics the retained writer cycles through.
RETAINED_TOPICS = 20
#: How paho 2.x logs a PUBREC it read ("Received PUBREC (Mid: 7)").
PUBREC_LOG = "Received PUBREC (Mid: "


def _client(client_id, connacks, clean_session=False):
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv311, clean_session=clean_session)
    client.on_connect = lambda c, u, flags, rc, p: connacks.append(
        (c, flags.session_present, rc))
    return client


class Flood:
    """One publisher and its persistent subscriber at one QoS, both paho
    3.1.1 clients with CleanSession=0, reused across broker restarts."""

    def __init__(self, qos, prefix="kill9"):
        self.qos = qos
        self.topic = f"{prefix}/q{qos}"
        self.next_seq = 0
        self.mids = {}  # paho mid -> seq
        self.acked = set()  # seqs acknowledged to the publisher
        #: seq -> (life, time.monotonic()) of the acknowledgement that
        #: promised it durable: the PUBACK (QoS 1) or the *first* PUBREC
        #: (QoS 2; the PUBCOMP that ``acked`` counts may come from the next
        #: broker, answering the PUBREL paho resends after a reconnect).
        #: ``life`` is the cycle whose broker sent it: the acknowledgements
        #: read from a killed broker's socket after the kill are still its.
        self.promised_at = {}
        #: Set by the campaign at each connect: which broker we talk to.
        self.life = 0
        self.acked_since_start = 0
        self.received = {}  # seq -> times received by the subscriber
        self.connacks = []
        self.pub = _client(f"{prefix}-pub-{qos}", self.connacks)
        self.pub.max_inflight_messages_set(INFLIGHT)
        self.pub.on_publish = self._on_publish
        if qos == 2:
            # paho has no PUBREC callback; its debug log names every one.
            self.pub.on_log = self._on_log
        self.sub = _client(f"{prefix}-sub-{qos}", self.connacks)
        self.sub.on_message = self._on_message
        self.subscribed = False
        self.sub.on_subscribe = self._on_subscribe

    def _on_publish(self, _client, _userdata, mid, _rc, _props):
        seq = self.mids.pop(mid)
        self.acked.add(seq)
        if seq not in self.promised_at:
            self.promised_at[seq] = (self.life, time.monotonic())
        self.acked_since_start += 1

    def _on_log(self, _client, _userdata, _level, text):
        if text.startswith(PUBREC_LOG):
            seq = self.mids.get(int(text[len(PUBREC_LOG):].rstrip(")")))
            if seq is not None and seq not in self.promised_at:
                self.promised_at[seq] = (self.life, time.monotonic())

    def _on_message(self, _client, _userdata, message):
        seq = int(message.payload)
        self.received[seq] = self.received.get(seq, 0) + 1

    def _on_subscribe(self, *_args):
        self.subscribed = True

    def subscribe(self):
        self.sub.subscribe(self.topic, self.qos)

    @property
    def clients(self):
        return (self.pub, self.sub)

    def publish_one(self):
        info = self.pub.publish(self.topic, b"%d" % self.next_seq, self.qos)
        self.mids[info.mid] = self.next_seq
        self.next_seq += 1
        return self.next_seq - 1

    def top_up(self):
        """Keep the flood going: at most ``AHEAD`` unacknowledged."""
        while self.next_seq - len(self.acked) < AHEAD:
            self.publish_one()

    def unacked(self):
        return self.next_seq - len(self.acked)

    def owed(self, acked):
        """Of ``acked``, how many the broker may still hold for the
        subscriber: those above the newest it received (one publisher,
        order kept [MQTT-4.6.0-6]).  Older ones missing are lost (or
        about to be resent from flight), not queued."""
        newest = max(self.received, default=-1)
        return sum(1 for seq in acked if seq > newest)

    def state(self):
        """For failure messages."""
        return {"qos": self.qos, "published": self.next_seq, "acked": len(self.acked),
                "received": len(self.received),
                "connected": [c.is_connected() for c in self.clients]}


class RetainedWriter:
    """One persistent QoS 1 publisher of retained messages over
    ``RETAINED_TOPICS`` topics, payloads counting up; remembers the last
    acknowledged payload of each topic."""

    qos = 1

    def __init__(self, prefix="kill9"):
        self.prefix = prefix
        self.next_seq = 0
        self.mids = {}  # mid -> (topic, seq)
        self.acked = {}  # topic -> highest acknowledged seq
        self.acked_count = 0
        self.connacks = []
        self.pub = _client(f"{prefix}-retain", self.connacks)
        self.pub.max_inflight_messages_set(20)
        self.pub.on_publish = self._on_publish

    def _on_publish(self, _client, _userdata, mid, _rc, _props):
        topic, seq = self.mids.pop(mid)
        if seq > self.acked.get(topic, -1):
            self.acked[topic] = seq
        self.acked_count += 1

    @property
    def clients(self):
        return (self.pub,)

    def top_up(self):
        while len(self.mids) < 40:
            seq = self.next_seq
            topic = f"{self.prefix}/retained/{seq % RETAINED_TOPICS}"
            info = self.pub.publish(topic, b"%d" % seq, self.qos, retain=True)
            self.mids[info.mid] = (topic, seq)
            self.next_seq += 1

    def unacked(self):
        return len(self.mids)

    def state(self):
        return {"retained": self.next_seq, "acked": self.acked_count}


def pump(clients, timeout=0.05):
    """One round of paho's external loop over ``clients``.

    ``loop_read`` reads at most as many packets as the client has flows
    open, and one when it has none -- so a subscriber would read one
    PUBLISH per round while its publisher reads hundreds of PUBACKs, and
    the broker's queue for it would grow past ``max_mqueue_len``.  A
    readable client reads until its socket has nothing more (or
    ``READ_BURST`` rounds of it)."""
    socks = {}
    for client in clients:
        sock = client.socket()
        if sock is not None:
            socks[sock] = client
    want = [s for s, c in socks.items() if c.want_write()]
    readable, writable, _ = select.select(list(socks), want, [], timeout)
    for sock in readable:
        client = socks[sock]
        for _ in range(READ_BURST):
            client.loop_read()
            if client.socket() is not sock or not select.select([sock], [], [], 0)[0]:
                break
    for sock in writable:
        socks[sock].loop_write()
    for client in clients:
        client.loop_misc()


def connected(clients):
    return all(c.is_connected() for c in clients)


def wait_until(clients, condition, what, parts=()):
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            states = [p.state() for p in parts]
            raise AssertionError(f"timed out waiting for {what} ({states!r})")
        pump(clients)


class PremiseError(AssertionError):
    """The campaign offered more than the broker is configured to hold, so
    a loss would say nothing about the store."""


class Campaign:
    """A QoS 1 flood, a QoS 2 flood and a retained writer against one
    broker address after another (the same data folder, restarted)."""

    def __init__(self, max_mqueue_len, prefix="kill9"):
        self.max_mqueue_len = max_mqueue_len
        self.floods = [Flood(1, prefix), Flood(2, prefix)]
        self.retained = RetainedWriter(prefix)
        self.parts = self.floods + [self.retained]
        #: per cycle: {"kill_at", "offline", "acked": [n per flood], ...}
        self.cycles = []
        self._acked_before_kill = [set(), set()]

    def close(self):
        for part in self.parts:
            for client in part.clients:
                sock = client.socket()
                if sock is not None:
                    sock.close()

    def _connect(self, port, first, subscribers=True):
        clients = [f.pub for f in self.floods] + [self.retained.pub]
        if subscribers:
            clients += [f.sub for f in self.floods]
        for part in self.parts:
            part.connacks.clear()
        for flood in self.floods:
            flood.acked_since_start = 0
            flood.life = len(self.cycles)
        for client in clients:
            client.connect("127.0.0.1", port, keepalive=60)
        wait_until(clients, lambda: connected(clients)
                   and sum(len(p.connacks) for p in self.parts) == len(clients),
                   "CONNACKs", self.parts)
        for part in self.parts:
            for _client, session_present, rc in part.connacks:
                if rc != 0:
                    raise AssertionError(f"CONNACK {rc}")
                # A restarted broker still has every persistent session.
                if session_present != (not first):
                    raise AssertionError(f"session present {session_present} on "
                                         f"{'first' if first else 'a later'} connect")
        if first:
            for flood in self.floods:
                flood.subscribe()
            wait_until(clients, lambda: all(f.subscribed for f in self.floods), "SUBACKs",
                       self.parts)
        return clients

    def room(self):
        """How many more messages an offline subscriber could be owed
        before its queue (``max_mqueue_len``) is full, at the least."""
        return self.max_mqueue_len - max(f.owed(f.acked) for f in self.floods)

    def flood_and_kill(self, port, kill, kill_at, first, subscribers, before_kill=None):
        """Connect, flood both QoS (and retained messages) until each
        publisher has ``kill_at`` acknowledgements from this broker, then
        ``kill()`` it and read what its sockets still hold.
        ``before_kill()``, if given, returns what to record about the
        broker just before it dies (its counters, say)."""
        clients = self._connect(port, first, subscribers)
        floods = self.floods
        while not all(f.acked_since_start >= kill_at for f in floods):
            for flood in floods:
                # A flood that has its acknowledgements for this cycle
                # waits for the other one: otherwise the fast QoS 1 flood
                # would offer an offline subscriber more than its queue
                # holds while the QoS 2 flood catches up.
                if flood.acked_since_start < kill_at:
                    flood.top_up()
            self.retained.top_up()
            pump(clients)
        broker = before_kill() if before_kill is not None else None
        kill()
        killed_at = time.monotonic()
        acked = [set(f.acked) for f in floods]
        for before, now in zip(self._acked_before_kill, acked):
            before.update(now)
        self.cycles.append({"kill_at": kill_at, "offline": not subscribers,
                            "acked": [len(a) for a in acked], "killed_at": killed_at,
                            "broker": broker})
        for flood, seqs in zip(floods, acked):
            # The premise: the broker was never owed more than its queue
            # holds, so every loss is the store's, not the drop policy's.
            owed = flood.owed(seqs)
            if owed > self.max_mqueue_len:
                raise PremiseError(f"QoS {flood.qos}: {owed} messages owed to the "
                                   f"subscriber, more than mqtt.max_mqueue_len")
        # Read what the dead broker's sockets still hold, until every
        # client sees its connection gone.
        wait_until(clients, lambda: not any(c.is_connected() for c in clients),
                   "the connections to drop", self.parts)

    def drain(self, port):
        """Reconnect to the last broker, let paho finish every flow, then
        send one last message per publisher: once it arrives, everything
        routed before it has been delivered (one publisher, one
        subscriber: order is kept [MQTT-4.6.0-6]), so what is missing then
        is lost.  Then a new clean subscriber reads the retained messages."""
        clients = self._connect(port, False)
        wait_until(clients, lambda: all(p.unacked() == 0 for p in self.parts),
                   "paho to finish every flow", self.parts)
        last = [flood.publish_one() for flood in self.floods]
        wait_until(clients, lambda: all(s in f.received for f, s in zip(self.floods, last)),
                   "the last messages", self.parts)
        self.retained_seen = self._read_retained(port)
        for client in clients:
            client.disconnect()
        wait_until(clients, lambda: not any(c.is_connected() for c in clients),
                   "DISCONNECT", self.parts)

    def _read_retained(self, port):
        connacks = []
        seen = {}
        reader = _client(f"{self.retained.prefix}-retained-reader", connacks,
                         clean_session=True)
        subscribed = []
        reader.on_message = lambda c, u, m: seen.__setitem__(m.topic, int(m.payload))
        reader.on_subscribe = lambda *a: subscribed.append(True)
        reader.connect("127.0.0.1", port, keepalive=60)
        clients = [reader]
        wait_until(clients, lambda: connacks, "the retained reader's CONNACK")
        reader.subscribe(f"{self.retained.prefix}/retained/#", 1)
        wait_until(clients, lambda: subscribed, "the retained reader's SUBACK")
        wanted = set(self.retained.acked)
        wait_until(clients, lambda: wanted <= set(seen), "every retained topic")
        reader.disconnect()
        wait_until(clients, lambda: not reader.is_connected(), "the reader's DISCONNECT")
        return seen

    def verdict(self):
        """What was lost, duplicated or stale, per check; empty lists when
        all is well.  ``window`` is, per cycle, how long before that
        cycle's kill its broker had acknowledged the lost messages
        (seconds; see ``_windows``)."""
        result = {}
        for flood, before in zip(self.floods, self._acked_before_kill):
            lost = sorted(before.difference(flood.received))
            result[f"lost_q{flood.qos}"] = lost
            result[f"missing_q{flood.qos}"] = sorted(
                set(range(flood.next_seq)).difference(flood.received))
            result[f"window_q{flood.qos}"] = self._windows(flood, lost)
        result["twice_q2"] = sorted(s for s, n in self.floods[1].received.items() if n != 1)
        result["stale_retained"] = sorted(
            topic for topic, seq in self.retained.acked.items()
            if self.retained_seen.get(topic, -1) < seq)
        return result

    def _windows(self, flood, lost):
        """For each cycle with losses: (cycle, lost, seconds between the
        oldest lost promise and that cycle's kill, the same for the newest
        one, how many of the promises paho read only after the kill).

        A message is charged to the broker that promised it (``Flood.
        promised_at``), not to the next kill after paho noticed: a PUBACK
        the broker wrote just before SIGKILL is read from the dead socket
        after it, and a QoS 2 PUBCOMP comes from the next broker.  Promises
        read after the kill count as 0 s before it."""
        windows = []
        kills = [c["killed_at"] for c in self.cycles]
        by_cycle = {}
        for seq in lost:
            life, at = flood.promised_at[seq]
            by_cycle.setdefault(life, []).append(kills[life] - at)
        for cycle, ages in sorted(by_cycle.items()):
            windows.append((cycle, len(ages), max(0.0, *ages), max(0.0, min(ages)),
                            sum(1 for age in ages if age < 0)))
        return windows


def integrity(db_path):
    """``PRAGMA integrity_check`` of the database a killed broker left
    (``"ok"`` when sound), run on a copy of the file and its WAL so that
    the check's own recovery never touches what the next broker opens."""
    if not os.path.exists(db_path):
        raise AssertionError(f"no database at {db_path}")
    with tempfile.TemporaryDirectory() as folder:
        copy = os.path.join(folder, os.path.basename(db_path))
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db_path + suffix):
                shutil.copyfile(db_path + suffix, copy + suffix)
        db = sqlite3.connect(copy)
        try:
            return "; ".join(row[0] for row in db.execute("PRAGMA integrity_check"))
        finally:
            db.close()
