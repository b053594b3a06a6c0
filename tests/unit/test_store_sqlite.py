"""
``SqliteStore`` without threads or a reactor: a ``task.Clock`` for the
batch delay and a hand-driven "thread" runner, so the group-commit rules
(threshold, delay, one batch in flight, ``after_commit``) are stepped
exactly; and the core wired to the store, restored into a second broker
as a restart would.
"""

import os
import sqlite3

from twisted.internet import defer, task
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.core.broker import Broker
from nanomq_twisted.core.message import Message
from nanomq_twisted.core.session import Subscription
from nanomq_twisted.mqtt.packets import Puback, Publish, Pubrec, Pubrel
from nanomq_twisted.persistence.service import database_path
from nanomq_twisted.persistence.sqlite_rows import CHUNKS, RowsSql, run_statements
from nanomq_twisted.persistence.sqlite_store import DB_NAME, SqliteStore

from .test_broker import Peer, make_broker, publishes


class ManualRunner:
    """Stands in for ``deferToThreadPool``: jobs wait until ``run_one``."""

    def __init__(self):
        self.jobs = []

    def __call__(self, fn, *args):
        d = defer.Deferred()
        self.jobs.append((fn, args, d))
        return d

    def run_one(self):
        fn, args, d = self.jobs.pop(0)
        d.callback(fn(*args))

    def run_all(self):
        while self.jobs:
            self.run_one()


def rows(path, sql):
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


class StoreTestMixin:
    def make_store(self, threshold=100, sync_ack=False, path=None):
        directory = path or os.path.abspath(self.mktemp())
        self.path = os.path.join(directory, DB_NAME)
        self.clock = task.Clock()
        self.runner = ManualRunner()
        store = SqliteStore(self.path, self.clock, self.runner, flush_threshold=threshold,
                            delay=0.01, sync_ack=sync_ack)
        store.open()
        self.addCleanup(lambda: store._db is not None and store._db.close())
        return store


class RowsSqlTests(SynchronousTestCase):
    """Multi-row statements: every row count is written exactly, whatever
    the chunking and padding (sqlite_rows.RowsSql)."""

    def test_every_row_count_round_trips(self):
        db = sqlite3.connect(":memory:")
        self.addCleanup(db.close)
        db.execute("CREATE TABLE t(a TEXT, b INT, c BLOB, PRIMARY KEY(a, b))")
        put = RowsSql("INSERT OR REPLACE INTO t VALUES ", "(?,?,?)")
        drop = RowsSql("DELETE FROM t WHERE (a, b) IN (VALUES ", "(?,?)", ")")
        for count in (1, 2, 3, 5, 16, 17, 63, 64, 65, 130, 200):
            rows = [(f"k{i % 3}", i, b"%d" % i) for i in range(count)]
            run_statements(db, [(put, rows)])
            self.assertEqual(sorted(db.execute("SELECT a, b, c FROM t")), sorted(rows))
            # Delete every other row by its two-column key.
            run_statements(db, [(drop, [(a, b) for a, b, _c in rows[::2]])])
            self.assertEqual(sorted(db.execute("SELECT a, b, c FROM t")), sorted(rows[1::2]))
            db.execute("DELETE FROM t")
        # A handful of statement texts serve every count.
        self.assertEqual(sorted(put._texts), list(CHUNKS))


class BatchingTests(StoreTestMixin, SynchronousTestCase):
    def test_threshold_closes_batch(self):
        store = self.make_store(threshold=3)
        sub = Subscription("c", "a/#", 1)
        store.subscription_added("c", sub)
        store.subscription_added("c", Subscription("c", "b", 2))
        self.assertEqual(self.runner.jobs, [])
        store.subscription_added("c", Subscription("c", "c", 0))
        # Full, but it closes between reactor turns, not inside this one.
        self.assertEqual(self.runner.jobs, [])
        self.clock.advance(0)
        self.assertEqual(len(self.runner.jobs), 1)
        self.runner.run_all()
        self.assertEqual(len(rows(self.path, "SELECT * FROM subscriptions")), 3)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_delay_closes_batch(self):
        store = self.make_store()
        store.retained_set("t", Message("t", b"x", 1, True), 5.0, None)
        self.assertEqual(self.runner.jobs, [])
        self.clock.advance(0.005)
        self.assertEqual(self.runner.jobs, [])
        self.clock.advance(0.005)
        self.assertEqual(len(self.runner.jobs), 1)
        self.runner.run_one()
        self.assertEqual(rows(self.path, "SELECT topic, payload FROM retained"), [("t", b"x")])

    def test_a_full_batch_never_splits_one_packets_changes(self):
        # A QoS 2 PUBLISH queues the message, then records its packet id:
        # both must commit together, or a kill -9 between two commits
        # would leave the message without the id that stops the resent
        # PUBLISH from being routed again [MQTT-4.3.3].
        store = self.make_store(threshold=1, sync_ack=True)
        store.message_queued("sub", 1, Message("t", b"p", 2), 2, False, None)
        store.rel_awaited("pub", 7, 0.0)
        self.clock.advance(0)
        self.assertEqual(len(self.runner.jobs), 1)
        self.runner.run_one()
        self.assertEqual(rows(self.path, "SELECT client_id, packet_id FROM awaiting_rel"),
                         [("pub", 7)])
        self.assertEqual(rows(self.path, "SELECT client_id, seq FROM deliveries"), [("sub", 1)])
        self.assertEqual(store.batches, 1)

    def test_one_batch_in_flight(self):
        store = self.make_store(threshold=1)
        store.retained_set("a", Message("a", b"1", 0, True), 0.0, None)
        self.clock.advance(0)
        self.assertEqual(len(self.runner.jobs), 1)
        # A second batch gathers while the first is being written...
        store.retained_set("b", Message("b", b"2", 0, True), 0.0, None)
        store.retained_set("c", Message("c", b"3", 0, True), 0.0, None)
        self.assertEqual(len(self.runner.jobs), 1)
        committed = []
        store.after_commit(lambda: committed.append("second"))
        self.runner.run_one()
        # ...and goes as one transaction once the first has committed.
        self.assertEqual(committed, [])
        self.assertEqual(len(self.runner.jobs), 1)
        self.runner.run_one()
        self.assertEqual(committed, ["second"])
        self.assertEqual(store.batches, 2)
        self.assertEqual(len(rows(self.path, "SELECT * FROM retained")), 3)

    def test_waiting_ack_closes_batch_at_end_of_turn(self):
        # Somebody waits and the disk is free: no 10 ms gathering delay,
        # the batch goes once the current reactor turn is over.
        store = self.make_store(sync_ack=True)
        store.retained_set("t", Message("t", b"x", 1, True), 5.0, None)
        store.retained_set("u", Message("u", b"y", 1, True), 5.0, None)
        committed = []
        store.after_commit(lambda: committed.append("t"))
        self.assertEqual(self.runner.jobs, [])
        self.clock.advance(0)
        self.assertEqual(len(self.runner.jobs), 1)
        self.runner.run_one()
        self.assertEqual(committed, ["t"])
        self.assertEqual(store.batches, 1)
        self.assertEqual(len(rows(self.path, "SELECT * FROM retained")), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_waited_batch_goes_as_soon_as_the_previous_commit_finishes(self):
        store = self.make_store(sync_ack=True)
        store.retained_set("a", Message("a", b"1", 1, True), 0.0, None)
        store.after_commit(lambda: None)
        self.clock.advance(0)
        self.assertEqual(len(self.runner.jobs), 1)
        # Arriving while "a" is written: they gather, however many...
        committed = []
        for topic in ("b", "c", "d"):
            store.retained_set(topic, Message(topic, b"2", 1, True), 0.0, None)
            store.after_commit(lambda topic=topic: committed.append(topic))
        self.clock.advance(0)
        self.assertEqual(len(self.runner.jobs), 1)
        self.runner.run_one()
        # ...and go as one transaction the moment the first commit is done,
        # without waiting for any timer.
        self.assertEqual(len(self.runner.jobs), 1)
        self.assertEqual(committed, [])
        self.runner.run_one()
        self.assertEqual(committed, ["b", "c", "d"])
        self.assertEqual(store.batches, 2)

    def test_unwaited_changes_keep_the_gathering_delay(self):
        store = self.make_store(sync_ack=True)
        store.retained_set("a", Message("a", b"1", 1, True), 0.0, None)
        store.after_commit(lambda: None)
        self.clock.advance(0)
        store.subscription_added("c", Subscription("c", "x", 1))
        self.runner.run_one()
        # Nobody waits for the subscription: it gathers for ``delay``.
        self.assertEqual(self.runner.jobs, [])
        self.clock.advance(0.009)
        self.assertEqual(self.runner.jobs, [])
        # An acknowledgement that starts waiting cuts the delay short.
        store.after_commit(lambda: None)
        self.clock.advance(0)
        self.assertEqual(len(self.runner.jobs), 1)

    def test_after_commit_callbacks_fire_in_order_across_batches(self):
        store = self.make_store(sync_ack=True)
        order = []
        store.retained_set("a", Message("a", b"1", 1, True), 0.0, None)
        store.after_commit(lambda: order.append(1))
        self.clock.advance(0)
        # Given while batch 1 is in flight and nothing new is pending: it
        # fires with batch 1, before anything given later.
        store.after_commit(lambda: order.append(2))
        store.retained_set("b", Message("b", b"2", 1, True), 0.0, None)
        store.after_commit(lambda: order.append(3))
        self.runner.run_all()
        self.assertEqual(order, [1, 2, 3])

    def test_after_commit_with_nothing_pending_is_immediate(self):
        store = self.make_store()
        called = []
        store.after_commit(lambda: called.append(1))
        self.assertEqual(called, [1])

    def test_queued_and_acked_in_one_batch_never_written(self):
        store = self.make_store()
        message = Message("t", b"p", 1)
        store.message_queued("c", 1, message, 1, False, None)
        store.message_sent("c", 1, 7)
        store.message_acked("c", 1)
        self.clock.advance(0.01)
        self.assertEqual(self.runner.jobs, [])  # everything cancelled out
        self.assertEqual(store._refs, {})

    def test_message_row_shared_and_released_with_last_delivery(self):
        store = self.make_store()
        message = Message("t", b"p", 2)
        store.message_queued("a", 1, message, 2, False, (4,))
        store.message_queued("b", 1, message, 1, False, None)
        self.clock.advance(0.01)
        self.runner.run_all()
        self.assertEqual(len(rows(self.path, "SELECT * FROM messages")), 1)
        self.assertEqual(
            rows(self.path, "SELECT client_id, qos, sub_ids FROM deliveries ORDER BY 1"),
            [("a", 2, "[4]"), ("b", 1, None)],
        )
        store.message_sent("a", 1, 10)
        store.message_released("a", 1)
        self.clock.advance(0.01)
        self.runner.run_all()
        self.assertEqual(
            rows(self.path, "SELECT packet_id, released FROM deliveries WHERE client_id='a'"),
            [(10, 1)],
        )
        store.message_acked("a", 1)
        store.session_deleted("b")
        self.clock.advance(0.01)
        self.runner.run_all()
        self.assertEqual(rows(self.path, "SELECT * FROM deliveries"), [])
        self.assertEqual(rows(self.path, "SELECT * FROM messages"), [])

    def test_sys_topics_not_persisted(self):
        store = self.make_store()
        store.retained_set("$SYS/broker/uptime", Message("$SYS/broker/uptime", b"1"), 0, None)
        self.clock.advance(1)
        self.assertEqual(self.runner.jobs, [])

    def test_close_flushes(self):
        store = self.make_store()
        store.retained_set("t", Message("t", b"x", 0, True), 0.0, None)
        d = store.close()
        self.assertNoResult(d)
        self.runner.run_all()  # the batch, then the close
        self.successResultOf(d)
        self.assertEqual(len(rows(self.path, "SELECT * FROM retained")), 1)

    def test_relative_mounted_path_resolves_against_cwd(self):
        class Cfg:
            mounted_file_path = "data"

        self.assertEqual(database_path(Cfg, "/srv/mq"), "/srv/mq/data/" + DB_NAME)
        Cfg.mounted_file_path = "/var/lib/nanomq/"
        self.assertEqual(database_path(Cfg, "/srv/mq"), "/var/lib/nanomq/" + DB_NAME)


class RestoreTests(StoreTestMixin, SynchronousTestCase):
    """The core reports to the store; a second broker restores from it."""

    def start(self, directory, sync_ack=False):
        store = self.make_store(path=directory, sync_ack=sync_ack)
        broker = make_broker()
        broker.set_store(store)
        store.restore(broker, 100.0)
        return broker, store

    def commit(self, store):
        d = store.flush()
        self.runner.run_all()
        self.successResultOf(d)

    def test_offline_session_queue_and_retained_survive(self):
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory)
        sub = Peer(broker, "sub", clean=False)
        sub.connect()
        sub.subscribe("q/#", 2)
        sub.lost()
        pub = Peer(broker, "pub")
        pub.connect()
        self.assertEqual(pub.publish("q/1", b"one", 1), [Puback(1)])
        self.assertEqual(pub.publish("q/2", b"two", 2), [Pubrec(2)])
        pub.publish("keep", b"r", 1, retain=True)
        pub.publish("q/0", b"zero", 0)  # QoS 0 is not queued offline
        self.commit(store)
        store._db.close()

        broker2, _store2 = self.start(directory)
        self.assertEqual(set(broker2.sessions), {"sub"})
        sub2 = Peer(broker2, "sub", clean=False)
        got = sub2.connect(now=101.0)
        self.assertTrue(got[0].session_present)
        received = publishes(got)
        self.assertEqual([(p.topic, p.payload, p.qos) for p in received],
                         [("q/1", b"one", 1), ("q/2", b"two", 2)])
        # The restored subscription routes new messages.
        pub2 = Peer(broker2, "pub2")
        pub2.connect(now=101.0)
        pub2.publish("q/3", b"three", 1, now=101.0)
        self.assertEqual([p.topic for p in publishes(sub2.received())], ["q/3"])
        fresh = Peer(broker2, "fresh")
        fresh.connect(now=101.0)
        got = fresh.subscribe("keep", 1, now=101.0)
        self.assertEqual([(p.topic, p.payload, p.retain) for p in publishes(got)],
                         [("keep", b"r", True)])

    def test_inflight_resent_with_same_packet_id_after_restart(self):
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory)
        sub = Peer(broker, "sub", clean=False)
        sub.connect()
        sub.subscribe("t", 2)
        pub = Peer(broker, "pub")
        pub.connect()
        pub.publish("t", b"x", 2)
        pub.send(Pubrel(1))
        (out,) = publishes(sub.received())
        sub.send(Pubrec(out.packet_id))
        self.assertEqual(sub.received(), [Pubrel(out.packet_id)])
        self.commit(store)
        store._db.close()

        broker2, _ = self.start(directory)
        sub2 = Peer(broker2, "sub", clean=False)
        got = sub2.connect(now=101.0)
        self.assertEqual(got[1:], [Pubrel(out.packet_id)])

    def test_acked_messages_and_ended_sessions_are_gone(self):
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory)
        sub = Peer(broker, "sub", clean=False)
        sub.connect()
        sub.subscribe("t", 1)
        pub = Peer(broker, "pub")
        pub.connect()
        pub.publish("t", b"x", 1)
        (out,) = publishes(sub.received())
        self.commit(store)
        self.assertEqual(len(rows(self.path, "SELECT * FROM deliveries")), 1)
        sub.send(Puback(out.packet_id))
        self.commit(store)
        self.assertEqual(rows(self.path, "SELECT * FROM deliveries"), [])
        # A clean start ends the persistent session: its rows go too.
        sub.lost()
        again = Peer(broker, "sub", clean=True)
        again.connect()
        self.commit(store)
        self.assertEqual(rows(self.path, "SELECT * FROM sessions"), [])
        self.assertEqual(rows(self.path, "SELECT * FROM subscriptions"), [])

    def test_v5_session_expiry_rearmed_with_remaining_time(self):
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory)
        sub = Peer(broker, "v5", level=5, clean=False,
                   properties={"session_expiry_interval": 60})
        sub.connect(now=100.0)
        sub.subscribe("t", 1, now=100.0)
        sub.lost(now=100.0)
        self.commit(store)
        store._db.close()
        broker2 = make_broker()
        store2 = self.make_store(path=directory)
        broker2.set_store(store2)
        store2.restore(broker2, 130.0)
        self.assertEqual(broker2.timers.next_deadline(), 160.0)
        broker2.run_timers(160.0)
        self.assertEqual(broker2.sessions, {})

    def test_sync_ack_holds_puback_until_commit(self):
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory, sync_ack=True)
        sub = Peer(broker, "sub", clean=False)
        sub.connect()
        sub.subscribe("t", 1)
        sub.lost()
        self.commit(store)
        pub = Peer(broker, "pub")
        pub.connect()
        self.assertEqual(pub.publish("t", b"1", 1), [])
        # A publish nobody durable wants waits behind it (ack order).
        self.assertEqual(pub.publish("other", b"2", 1), [])
        self.clock.advance(0.01)
        self.runner.run_all()
        self.assertEqual(pub.received(), [Puback(1), Puback(2)])
        self.assertEqual(pub.publish("other", b"3", 1), [Puback(3)])

    def test_no_store_means_no_durable_sessions(self):
        broker = Broker(make_broker().config, sys_events=False)
        sub = Peer(broker, "sub", clean=False)
        sub.connect()
        self.assertFalse(broker.sessions["sub"].durable)

    def test_publish_packet_round_trip_properties(self):
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory)
        sub = Peer(broker, "sub", level=5, clean=False,
                   properties={"session_expiry_interval": 0xFFFFFFFF})
        sub.connect()
        sub.subscribe("t", 1)
        sub.lost()
        pub = Peer(broker, "pub", level=5)
        pub.connect()
        props = {"correlation_data": b"\x00\x01", "user_property": [("k", "v")],
                 "content_type": "text/plain"}
        pub.send(Publish("t", b"x", 1, False, False, 1, props))
        self.commit(store)
        store._db.close()
        broker2, _ = self.start(directory)
        sub2 = Peer(broker2, "sub", level=5, clean=False,
                    properties={"session_expiry_interval": 0xFFFFFFFF})
        (message,) = publishes(sub2.connect(now=101.0))
        self.assertEqual(message.properties["correlation_data"], b"\x00\x01")
        self.assertEqual(message.properties["user_property"], [("k", "v")])
        self.assertEqual(message.properties["content_type"], "text/plain")


class ServiceOrderTests(SynchronousTestCase):
    def test_persistence_restores_before_listeners_and_stops_after(self):
        from twisted.application.service import MultiService
        from twisted.internet.testing import MemoryReactorClock

        from nanomq_twisted.app import BrokerApp
        from nanomq_twisted.config import loads

        directory = os.path.abspath(self.mktemp())
        config = loads(
            'listeners.tcp { bind = "127.0.0.1:0" }\n'
            f'sqlite {{ mounted_file_path = "{directory}" }}\n',
            path="<test>",
        )
        app = BrokerApp(config, MemoryReactorClock())
        children = list(app.service)
        # MultiService starts children in order and stops them in reverse:
        # the store is restored before anything listens, flushed after.
        listeners = [c for c in children
                     if isinstance(c, MultiService) and app.listeners["tcp"] in list(c)]
        self.assertEqual(len(listeners), 1)
        self.assertLess(children.index(app.persistence), children.index(listeners[0]))
        self.assertIsInstance(app.broker.store, SqliteStore)
