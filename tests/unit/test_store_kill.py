"""
``kill -9`` of a persistent broker, modelled without processes or threads:
the core and a ``SqliteStore`` on a temporary file, a ``task.Clock`` for
the batch timers and a hand-driven "thread" runner, so that a *kill* is
exact -- the batches the runner has not run never reach the file, the
broker objects are dropped -- and a *restart* is a new store and broker
restoring from that file, as ``twistd`` would.

Two model clients speak to it the way paho-mqtt does (the clients of
tests/shipped/floods.py and tools/crash_cycles.py): a 3.1.1 publisher with
a persistent session that resends what is unacknowledged (DUP) and its
PUBRELs after a reconnect, and a persistent subscriber that acknowledges
at once and, for QoS 2, delivers on PUBREL from a store of packet ids it
keeps across reconnects (and overwrites when a PUBLISH reuses an id).
Packets written by the broker before a kill are still read by the client
afterwards, as they are from a dead socket.

The oracle for "promised durable": with ``sqlite.sync_ack`` every PUBACK
or first PUBREC the publisher reads; without it, those the broker wrote
before a batch that later committed was closed (``SqliteStore.batches``
when the broker read the PUBLISH: the changes it made are in the next
batch or an earlier one).  Whatever was promised must reach the
subscriber; with ``sync_ack`` QoS 2 exactly once.
"""

import os
import random

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.mqtt.packets import Puback, Pubcomp, Publish, Pubrec, Pubrel
from nanomq_twisted.persistence.sqlite_store import DB_NAME, SqliteStore

from .test_broker import Peer, make_broker, publishes
from .test_store_sqlite import StoreTestMixin

TOPICS = {1: "kill/q1", 2: "kill/q2"}


class CountingRunner:
    """The worker thread, run by hand: jobs wait until ``run_one``;
    ``commits`` counts the batch writes that completed (the store's jobs
    are its batch writes while it is open)."""

    def __init__(self):
        self.jobs = []
        self.commits = 0

    def __call__(self, fn, *args):
        d = defer.Deferred()
        self.jobs.append((fn, args, d))
        return d

    def run_one(self):
        fn, args, d = self.jobs.pop(0)
        d.callback(fn(*args))
        self.commits += 1


class Publisher:
    """paho's outgoing side, for one 3.1.1 persistent session."""

    def __init__(self, window):
        self.window = window
        self.next_seq = 0
        self.next_pid = 1
        self.out = {}  # pid -> [seq, qos, state ("pub" | "rel")]
        self.promised = {}  # seq -> (life, store.batches when the broker read it)
        self.qos_of = {}  # seq -> qos
        self.sent_mark = {}  # pid -> (life, batches) of the PUBLISH the broker read
        self.acked = set()
        self.peer = None

    def _pid(self):
        while self.next_pid in self.out:
            self.next_pid = self.next_pid % 65535 + 1
        pid = self.next_pid
        self.next_pid = pid % 65535 + 1
        return pid

    def publish(self, qos, mark, now):
        pid = self._pid()
        seq = self.next_seq
        self.next_seq += 1
        self.qos_of[seq] = qos
        self.out[pid] = [seq, qos, "pub"]
        self.sent_mark[pid] = mark
        self.peer.send(Publish(TOPICS[qos], b"%d" % seq, qos, False, False, pid), now)

    def resend(self, mark, now):
        """After CONNACK: unacknowledged PUBLISH with DUP, then PUBRELs."""
        for pid, (seq, qos, state) in list(self.out.items()):
            if state == "pub":
                self.sent_mark[pid] = mark
                self.peer.send(Publish(TOPICS[qos], b"%d" % seq, qos, False, True, pid), now)
            else:
                self.peer.send(Pubrel(pid), now)

    def read(self, packet, now):
        flow = self.out.get(packet.packet_id)
        if flow is None:
            return
        seq, qos, state = flow
        if isinstance(packet, Puback) and qos == 1:
            del self.out[packet.packet_id]
            self._promise(seq, packet.packet_id)
            self.acked.add(seq)
        elif isinstance(packet, Pubrec) and qos == 2:
            if state == "pub":
                flow[2] = "rel"
                self._promise(seq, packet.packet_id)
            self.peer.send(Pubrel(packet.packet_id), now)
        elif isinstance(packet, Pubcomp) and qos == 2 and state == "rel":
            del self.out[packet.packet_id]
            self.acked.add(seq)

    def _promise(self, seq, pid):
        self.promised.setdefault(seq, self.sent_mark[pid])


class Subscriber:
    """paho's incoming side: QoS 1 delivered on PUBLISH, QoS 2 on PUBREL
    from ``in_messages`` (kept across reconnects, overwritten by a PUBLISH
    reusing a packet id, as paho 2.x does)."""

    def __init__(self):
        self.received = {1: {}, 2: {}}  # qos -> seq -> times
        self.in_messages = {}  # pid -> (qos, seq)
        self.peer = None

    def _deliver(self, qos, seq):
        self.received[qos][seq] = self.received[qos].get(seq, 0) + 1

    def read(self, packet, now):
        if isinstance(packet, Publish):
            seq = int(packet.payload)
            qos = 1 if packet.topic == TOPICS[1] else 2
            if packet.qos == 1:
                self._deliver(qos, seq)
                self.peer.send(Puback(packet.packet_id), now)
            else:
                self.in_messages[packet.packet_id] = (qos, seq)
                self.peer.send(Pubrec(packet.packet_id), now)
        elif isinstance(packet, Pubrel):
            held = self.in_messages.pop(packet.packet_id, None)
            if held is not None:
                self._deliver(*held)
            self.peer.send(Pubcomp(packet.packet_id), now)


class KillModel:
    """One randomised campaign of floods, kills and restarts."""

    def __init__(self, case, seed, sync_ack, threshold=100, delay=0.01):
        self.case = case
        self.rng = random.Random(seed)
        self.sync_ack = sync_ack
        self.threshold = threshold
        self.delay = delay
        self.directory = os.path.abspath(case.mktemp())
        self.clock = task.Clock()
        self.clock.advance(1000.0)
        self.pub = Publisher(window=self.rng.choice((20, 200)))
        self.sub = Subscriber()
        self.inbox = {"pub": [], "sub": []}
        self.life = -1
        #: per life: batch writes committed before its kill
        self.committed = []
        self.store = self.broker = None
        self.seen = set()  # clients connected before

    # -- the broker's lives ---------------------------------------------

    def start(self):
        self.life += 1
        self.runner = CountingRunner()
        self.store = SqliteStore(os.path.join(self.directory, DB_NAME), self.clock,
                                 self.runner, flush_threshold=self.threshold,
                                 delay=self.delay, sync_ack=self.sync_ack)
        self.store.open()
        # Queues long enough never to drop by policy: a loss is the store's.
        self.broker = make_broker("mqtt { max_mqueue_len = 1000000 }")
        self.broker.set_store(self.store)
        self.store.restore(self.broker, self.clock.seconds())
        self.inbox = {"pub": [], "sub": []}

    def kill(self):
        """SIGKILL: what the runner has not written is gone; what the
        broker wrote to the sockets is still read by the clients."""
        self.case.assertEqual(self.broker.stats.dropped, 0)
        self.committed.append(self.runner.commits)
        for name in ("pub", "sub"):
            self.collect(name)
        self.store._db.close()
        self.store._db = None
        self.broker = self.store = None
        self.pub.peer = self.sub.peer = None
        # The clients read what the dead sockets still hold.
        for name, client in (("pub", self.pub), ("sub", self.sub)):
            client.peer = _Dead()
            for packet in self.inbox[name]:
                client.read(packet, self.now)
            client.peer = None

    @property
    def now(self):
        return self.clock.seconds()

    def mark(self):
        return (self.life, self.store.batches)

    def connect(self, name):
        client = self.pub if name == "pub" else self.sub
        client.peer = Peer(self.broker, f"kill-{name}", clean=False)
        packets = client.peer.connect(now=self.now)
        self.case.assertEqual(packets[0].reason_code, 0)
        # Every persistent session is still there [MQTT-3.2.2-2].
        self.case.assertEqual(packets[0].session_present, name in self.seen)
        self.seen.add(name)
        self.inbox[name] = packets[1:]
        if name == "pub":
            self.pub.resend(self.mark(), self.now)

    def disconnect(self, name):
        client = self.pub if name == "pub" else self.sub
        self.collect(name)
        client.peer.lost(now=self.now)
        # A closed socket: what was not read is gone (resent after the
        # reconnect from the session).
        self.inbox[name] = []
        client.peer = None

    def collect(self, name):
        client = self.pub if name == "pub" else self.sub
        if client.peer is not None:
            self.inbox[name].extend(client.peer.received())

    def read_some(self, name, most):
        client = self.pub if name == "pub" else self.sub
        if client.peer is None:
            return
        self.collect(name)
        inbox = self.inbox[name]
        count = self.rng.randint(0, min(most, len(inbox)))
        for packet in inbox[:count]:
            client.read(packet, self.now)
        del inbox[:count]

    # -- a campaign -----------------------------------------------------

    def step(self):
        rng = self.rng
        pub = self.pub
        roll = rng.random()
        if roll < 0.4 and pub.peer is not None and len(pub.out) < pub.window:
            for _ in range(rng.randint(1, 20)):
                if len(pub.out) >= pub.window:
                    break
                pub.publish(rng.choice((1, 2)), self.mark(), self.now)
        elif roll < 0.6:
            self.read_some("pub", 50)
        elif roll < 0.8:
            self.read_some("sub", 50)
        elif roll < 0.9:
            if self.runner.jobs:
                self.runner.run_one()
        else:
            self.clock.advance(rng.choice((0, 0.002, 0.005, 0.01)))

    def life_once(self, steps):
        self.start()
        if self.life == 0:
            # The subscriptions first, committed (floods.py waits for the
            # SUBACKs before flooding).
            self.connect("sub")
            for qos, topic in TOPICS.items():
                self.sub.peer.subscribe(topic, qos, now=self.now)
            self.store.flush()
            while self.runner.jobs:
                self.runner.run_one()
            self.connect("pub")
        else:
            self.connect("pub")
            if self.rng.random() < 0.6:
                self.connect("sub")
        for _ in range(steps):
            self.step()
            if self.rng.random() < 0.01:
                if self.sub.peer is None:
                    self.connect("sub")
                else:
                    self.disconnect("sub")
        self.kill()

    def drain(self):
        """A last broker, never killed: everything flows to the end."""
        self.start()
        self.connect("pub")
        self.connect("sub")
        for _ in range(10000):
            for name in ("pub", "sub"):
                self.collect(name)
                client = self.pub if name == "pub" else self.sub
                inbox, self.inbox[name] = self.inbox[name], []
                for packet in inbox:
                    client.read(packet, self.now)
            while self.runner.jobs:
                self.runner.run_one()
            self.clock.advance(self.delay)
            self.collect("pub")
            self.collect("sub")
            if not (self.pub.out or self.inbox["pub"] or self.inbox["sub"]
                    or self.runner.jobs or self.clock.getDelayedCalls()):
                break
        self.case.assertEqual(self.pub.out, {}, "the last broker did not finish")

    def run(self, lives, steps):
        for _ in range(lives):
            self.life_once(steps)
        self.drain()
        return self.verdict()

    def verdict(self):
        """``lost``: per QoS, the messages promised durable (a batch
        closed after the promise committed) that the subscriber never
        got; ``window``: those promised but not yet durable at their kill
        that it never got (what ``sync_ack = false`` may lose); ``twice``:
        the QoS 2 messages it got more than once."""
        lost = {1: [], 2: []}
        window = 0
        got = self.sub.received
        for seq, (life, batches) in sorted(self.pub.promised.items()):
            if seq in got[1] or seq in got[2]:
                continue
            if self.sync_ack or life >= len(self.committed) or (
                    self.committed[life] >= batches + 1):
                lost[self.pub.qos_of[seq]].append(seq)
            else:
                window += 1
        twice = sorted(s for s, n in got[2].items() if n > 1)
        return {"lost": lost, "window": window, "twice": twice}


class _Dead:
    """The peer of a client whose broker was killed: sending goes
    nowhere."""

    def send(self, packet, now=0.0):
        pass


class KillTests(SynchronousTestCase):
    """Random campaigns (fixed seeds): nothing promised durable is ever
    lost; with ``sync_ack`` nothing promised at all, and QoS 2 arrives
    exactly once [MQTT-4.3.3]."""

    LIVES = 8
    STEPS = 300

    def campaign(self, sync_ack, seed):
        return KillModel(self, seed, sync_ack).run(self.LIVES, self.STEPS)

    def test_sync_ack_off_loses_only_the_unwritten_batches(self):
        window = 0
        for seed in (1, 2):
            verdict = self.campaign(False, seed)
            self.assertEqual(verdict["lost"], {1: [], 2: []}, f"seed {seed}")
            window += verdict["window"]
        # The kills do land between a promise and its commit: the
        # campaign exercises the window it says nothing beyond is lost.
        self.assertGreater(window, 0)

    def test_sync_ack_on_loses_nothing_acknowledged(self):
        for seed in (1, 2, 3, 4):
            verdict = self.campaign(True, seed)
            self.assertEqual((verdict["lost"], verdict["twice"]), ({1: [], 2: []}, []),
                             f"seed {seed}")


class ChargedToThePromisingBrokerTests(SynchronousTestCase):
    """tools/crash_cycles.py's loss window (tests/shipped/floods.py): a
    message is charged to the broker that promised it durable."""

    def test_answer_read_after_the_kill_is_the_dead_brokers(self):
        # What made sync_ack = false look as if it lost messages
        # acknowledged a whole cycle before the kill: a PUBACK written
        # just before SIGKILL is read from the dead socket after it, and
        # was charged to the next kill (1.2 s later).
        from ..shipped.floods import Campaign

        campaign = Campaign(2048, prefix="windows")
        self.addCleanup(campaign.close)
        campaign.cycles = [{"killed_at": 100.0}, {"killed_at": 101.2}]
        flood = campaign.floods[0]
        flood.promised_at = {7: (0, 99.99), 8: (0, 100.002), 9: (1, 101.1)}
        self.assertEqual(
            [(cycle, lost, round(oldest, 3), round(newest, 3), late)
             for cycle, lost, oldest, newest, late in campaign._windows(flood, [7, 8, 9])],
            [(0, 2, 0.01, 0.0, 1), (1, 1, 0.1, 0.1, 0)])

    def test_qos2_promise_is_the_first_pubrec(self):
        from ..shipped.floods import Flood

        flood = Flood(2, prefix="windows")
        flood.mids[5] = 42
        flood.life = 3
        flood._on_log(None, None, 16, "Received PUBREC (Mid: 5)")
        flood.life = 4
        # The PUBCOMP from the next broker does not move the promise.
        flood._on_publish(None, None, 5, None, None)
        self.assertEqual(flood.promised_at[42][0], 3)
        self.assertEqual(flood.acked, {42})


class ResentPubrelTests(StoreTestMixin, SynchronousTestCase):
    """Found by ``KillTests`` (seed 4): with ``sync_ack`` a PUBREL resent
    on reconnect went out before the PUBREC it answers was committed."""

    def test_pubrel_resent_on_reconnect_waits_for_the_pubrec_commit(self):
        store = self.make_store(sync_ack=True)
        broker = make_broker()
        broker.set_store(store)
        sub = Peer(broker, "sub", clean=False)
        sub.connect()
        sub.subscribe("t", 2)
        pub = Peer(broker, "pub")
        pub.connect()
        pub.publish("t", b"once", 2)
        self.clock.advance(0)
        self.runner.run_all()
        (out,) = publishes(sub.received())
        sub.send(Pubrec(out.packet_id))
        self.assertEqual(sub.received(), [])  # the PUBREL waits for the commit
        # The subscriber comes back before that commit.
        sub.lost()
        sub = Peer(broker, "sub", clean=False)
        self.assertEqual(sub.connect()[1:], [])
        # paho delivers on PUBREL; had it come now, the kill -9 below
        # would make the next broker resend the PUBLISH: twice.
        self.clock.advance(0)
        self.runner.run_all()
        self.assertEqual(sub.received(), [Pubrel(out.packet_id)])
