"""
The store on a failing disk, without threads or a reactor: a ``task.Clock``
and a hand-driven "thread" runner whose commits can be made to fail with
the errors SQLite really raises (``database or disk is full``, ``attempt
to write a readonly database``, ``disk I/O error``).

What is checked (docs/durability.md, "Disk faults"): a failed batch is
kept and retried with back-off, durable acknowledgements are held until a
retry commits, the fault is logged once per change of state, nothing
accepted meanwhile is lost or reordered, shutdown does not hang, and a
database that cannot be opened stops the start with its path named.
"""

import errno
import os
import sqlite3

from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.core.message import Message
from nanomq_twisted.mqtt.packets import Puback, Pubcomp, Pubrec, Pubrel
from nanomq_twisted.persistence import faults
from nanomq_twisted.persistence.faults import StoreOpenError, classify
from nanomq_twisted.persistence.sqlite_store import DB_NAME, SqliteStore

from .test_broker import Peer, make_broker, publishes
from .test_store_sqlite import ManualRunner, StoreTestMixin, rows

FULL = "database or disk is full"
READ_ONLY = "attempt to write a readonly database"
IO_ERROR = "disk I/O error"

TABLES = ("sessions", "subscriptions", "messages", "deliveries", "retained",
          "awaiting_rel", "bridge_messages")


class FailingCommit:
    """The store's connection, except that COMMIT fails as SQLite fails
    it on a full disk: the transaction is rolled back, then the error is
    raised."""

    def __init__(self, db, error):
        self.db = db
        self.error = error

    @property
    def in_transaction(self):
        return self.db.in_transaction

    def execute(self, sql, *args):
        if sql == "COMMIT":
            self.db.execute("ROLLBACK")
            raise self.error
        return self.db.execute(sql, *args)

    def executemany(self, sql, rows):
        return self.db.executemany(sql, rows)

    def close(self):
        self.db.close()


class FaultyRunner(ManualRunner):
    """``ManualRunner`` whose jobs run against a failing connection while
    ``error`` is set (an ``sqlite3.OperationalError``)."""

    def __init__(self):
        super().__init__()
        self.error = None
        self.store = None

    def run_one(self):
        if self.error is None:
            return super().run_one()
        real = self.store._db
        proxy = self.store._db = FailingCommit(real, self.error)
        try:
            fn, args, d = self.jobs.pop(0)
            try:
                result = fn(*args)
            except Exception as error:  # noqa: BLE001 -- handed to the Deferred, as a thread would
                d.errback(error)
            else:
                d.callback(result)
        finally:
            # (Unless the job's outcome closed the store meanwhile.)
            if self.store._db is proxy:
                self.store._db = real
        return None


class RealErrorStringTests(SynchronousTestCase):
    """The texts ``classify`` relies on are SQLite's own."""

    def test_a_full_database_says_database_or_disk_is_full(self):
        path = os.path.join(os.path.abspath(self.mktemp()))
        db = sqlite3.connect(path, isolation_level=None)
        self.addCleanup(db.close)
        db.execute("CREATE TABLE t(a BLOB)")
        db.execute("PRAGMA max_page_count = 3")
        with self.assertRaises(sqlite3.OperationalError) as caught:
            db.execute("INSERT INTO t VALUES (zeroblob(100000))")
        self.assertEqual(str(caught.exception), FULL)
        self.assertEqual(caught.exception.sqlite_errorname, "SQLITE_FULL")
        self.assertEqual(classify(caught.exception, "/nonexistent"), faults.DISK_FULL)

    def test_a_read_only_database_says_attempt_to_write_a_readonly_database(self):
        path = os.path.abspath(self.mktemp())
        sqlite3.connect(path).execute("CREATE TABLE t(a)").connection.close()
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        self.addCleanup(db.close)
        with self.assertRaises(sqlite3.OperationalError) as caught:
            db.execute("INSERT INTO t VALUES (1)")
        self.assertEqual(str(caught.exception), READ_ONLY)
        self.assertEqual(caught.exception.sqlite_errorname, "SQLITE_READONLY")
        self.assertEqual(classify(caught.exception, "/nonexistent"), faults.READ_ONLY)


class ClassifyTests(SynchronousTestCase):
    """An I/O error is named by what the file system says to a probe."""

    def test_io_error_is_named_by_the_probe(self):
        error = sqlite3.OperationalError(IO_ERROR)
        for probed, state in ((errno.ENOSPC, faults.DISK_FULL),
                              (errno.EROFS, faults.READ_ONLY),
                              (errno.EIO, faults.FAILED),
                              (0, faults.FAILED)):
            self.assertEqual(classify(error, "d", probe=lambda _d, e=probed: e), state)

    def test_os_errors_by_errno(self):
        self.assertEqual(classify(OSError(errno.EROFS, "Read-only file system"), "d",
                                  probe=lambda _d: 0), faults.READ_ONLY)
        self.assertEqual(classify(OSError(errno.ENOSPC, "No space left"), "d",
                                  probe=lambda _d: 0), faults.DISK_FULL)

    def test_probe_of_a_writable_directory_leaves_nothing(self):
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        self.assertEqual(faults.probe(directory), 0)
        self.assertEqual(os.listdir(directory), [])
        self.assertEqual(faults.probe(os.path.join(directory, "missing")), errno.ENOENT)


class FaultyStoreMixin(StoreTestMixin):
    def make_faulty(self, sync_ack=True, path=None):
        directory = path or os.path.abspath(self.mktemp())
        store = self.make_store(sync_ack=sync_ack, path=directory)
        self.runner = store.run_in_thread = FaultyRunner()
        self.runner.store = store
        self.events = []
        store._log = Logger(observer=self.events.append)
        broker = make_broker()
        broker.set_store(store)
        store.restore(broker, 100.0)
        return broker, store

    def logged(self, level):
        return [e for e in self.events if e["log_level"].name == level]

    def write_due(self):
        """End the turn and run the batch that is then due."""
        self.clock.advance(0)
        self.runner.run_all()


class RetryTests(FaultyStoreMixin, SynchronousTestCase):
    def offline_subscriber(self, broker, store, qos=1):
        sub = Peer(broker, "sub", clean=False)
        sub.connect()
        sub.subscribe("t", qos)
        sub.lost()
        self.write_due()
        d = store.flush()
        self.runner.run_all()
        self.successResultOf(d)
        return sub

    def test_disk_full_holds_the_puback_and_a_retry_releases_it(self):
        broker, store = self.make_faulty()
        self.offline_subscriber(broker, store)
        pub = Peer(broker, "pub")
        pub.connect()
        self.runner.error = sqlite3.OperationalError(FULL)
        self.assertEqual(pub.publish("t", b"1", 1), [])
        self.write_due()
        # Failed: not durable, so not acknowledged; kept for a retry.
        self.assertEqual(pub.received(), [])
        self.assertEqual(store.health, faults.DISK_FULL)
        self.assertEqual(store.failures, 1)
        self.assertEqual(rows(self.path, "SELECT * FROM deliveries"), [])
        # Later publishes wait behind it (ack order [MQTT-4.6.0-2]) and
        # do not trigger writes of their own before the retry is due.
        self.assertEqual(pub.publish("t", b"2", 1), [])
        self.assertEqual(pub.publish("other", b"3", 1), [])
        self.clock.advance(0)
        self.assertEqual(self.runner.jobs, [])
        # The retry after 0.5 s fails too: still held, logged only once.
        self.clock.advance(0.5)
        self.runner.run_all()
        self.assertEqual(store.failures, 2)
        self.assertEqual(pub.received(), [])
        self.assertEqual(len(self.logged("error")), 1)
        self.assertIn("disk_full", self.logged("error")[0]["state"])
        # Space returns: the next retry (1 s later) commits everything,
        # and the three acks go out in order.
        self.runner.error = None
        self.clock.advance(0.99)
        self.assertEqual(self.runner.jobs, [])
        self.clock.advance(0.01)
        self.runner.run_all()
        self.assertEqual(pub.received(), [Puback(1), Puback(2), Puback(3)])
        self.assertEqual(store.health, faults.OK)
        self.assertEqual(len(rows(self.path, "SELECT * FROM deliveries")), 2)
        self.assertEqual(sorted(r[0] for r in rows(self.path, "SELECT payload FROM messages")),
                         [b"1", b"2"])
        self.assertEqual(len(self.logged("warn")), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # Healthy again: acks follow their commit at once.
        self.assertEqual(pub.publish("t", b"4", 1), [])
        self.write_due()
        self.assertEqual(pub.received(), [Puback(4)])

    def test_retries_back_off_to_the_maximum(self):
        broker, store = self.make_faulty()
        self.offline_subscriber(broker, store)
        pub = Peer(broker, "pub")
        pub.connect()
        self.runner.error = sqlite3.OperationalError(READ_ONLY)
        pub.publish("t", b"1", 1)
        self.write_due()
        delays = []
        for _ in range(7):
            (call,) = self.clock.getDelayedCalls()
            delays.append(call.getTime() - self.clock.seconds())
            self.clock.advance(delays[-1])
            self.runner.run_all()
        self.assertEqual(delays, [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0])
        self.assertEqual(store.health, faults.READ_ONLY)
        self.assertEqual(len(self.logged("error")), 1)
        self.assertEqual(pub.received(), [])

    def test_a_change_of_fault_is_logged_again(self):
        broker, store = self.make_faulty()
        self.offline_subscriber(broker, store)
        pub = Peer(broker, "pub")
        pub.connect()
        self.runner.error = sqlite3.OperationalError(FULL)
        pub.publish("t", b"1", 1)
        self.write_due()
        self.runner.error = sqlite3.OperationalError(READ_ONLY)
        self.clock.advance(0.5)
        self.runner.run_all()
        self.assertEqual(store.health, faults.READ_ONLY)
        self.assertEqual([e["state"] for e in self.logged("error")],
                         [faults.DISK_FULL, faults.READ_ONLY])

    def test_qos2_pubrec_held_and_exactly_once_after_recovery(self):
        broker, store = self.make_faulty()
        self.offline_subscriber(broker, store, qos=2)
        pub = Peer(broker, "pub", clean=False)
        pub.connect()
        self.write_due()
        self.runner.error = sqlite3.OperationalError(FULL)
        self.assertEqual(pub.publish("t", b"x", 2), [])
        self.write_due()
        # The publisher resends (DUP) while the disk is full: not routed
        # twice [MQTT-4.3.3-10], still not acknowledged.
        self.runner.error = None
        self.clock.advance(0.5)
        self.runner.run_all()
        self.assertEqual(pub.received(), [Pubrec(1)])
        pub.send(Pubrel(1))
        self.write_due()
        self.assertEqual(pub.received(), [Pubcomp(1)])
        self.assertEqual(len(rows(self.path, "SELECT * FROM deliveries")), 1)

    def test_shutdown_while_failing_gives_up_and_does_not_hang(self):
        broker, store = self.make_faulty()
        self.offline_subscriber(broker, store)
        pub = Peer(broker, "pub")
        pub.connect()
        self.runner.error = sqlite3.OperationalError(FULL)
        pub.publish("t", b"1", 1)
        self.write_due()
        d = store.close()
        self.runner.run_all()  # the last attempt fails too
        self.runner.run_all()  # closing the file
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertIn("at shutdown", self.logged("error")[-1]["log_format"])
        self.assertEqual(rows(self.path, "SELECT * FROM deliveries"), [])


class FlushTests(FaultyStoreMixin, SynchronousTestCase):
    def test_flush_over_two_batches_fires(self):
        # Regression: flush() starts the next batch from inside the
        # callbacks of the one that committed; that batch's waiters must
        # not be dropped (a shutdown hung on it).
        _broker, store = self.make_faulty(sync_ack=False)
        store.retained_set("a", Message("a", b"1", 1, True), 100.0, None)
        self.clock.advance(0.01)
        self.assertEqual(len(self.runner.jobs), 1)  # in flight
        store.retained_set("b", Message("b", b"2", 1, True), 100.0, None)
        d = store.flush()
        self.runner.run_all()
        self.successResultOf(d)
        self.assertEqual(len(rows(self.path, "SELECT * FROM retained")), 2)


class BacklogTests(FaultyStoreMixin, SynchronousTestCase):
    """A failed batch folded into the next one writes what the two would
    have written one after the other: the same tables in the end."""

    def interleave(self):
        """Run the batch that went to the "thread" at the previous call,
        then let the next one go: the actions in between happen while a
        batch is in flight, so a failure has newer changes to absorb."""
        self.runner.run_all()
        self.clock.advance(20)

    def scenario(self, fail):
        """Sessions, messages, acks, retained topics, a session ended and
        made again, with the disk failing from the first publish to the
        last step when ``fail``; returns every table afterwards."""
        directory = os.path.abspath(self.mktemp())
        broker, store = self.make_faulty(sync_ack=False, path=directory)
        error = sqlite3.OperationalError(FULL) if fail else None
        a = Peer(broker, "a", clean=False)
        a.connect()
        a.subscribe("t/#", 1)
        b = Peer(broker, "b", clean=False)
        b.connect()
        b.subscribe("t/#", 2)
        b.lost()
        self.interleave()
        self.runner.error = error
        pub = Peer(broker, "pub")
        pub.connect()
        for i in range(5):
            pub.publish(f"t/{i}", b"%d" % i, 1, retain=i % 2 == 0)
            self.interleave()
        # a acks some (queued and done across failed batches).
        for out in publishes(a.received())[:3]:
            a.send(Puback(out.packet_id))
        self.interleave()
        pub.publish("t/0", b"", 1, retain=True)  # retained deleted
        # b's session ends and a new one starts with the same id.
        fresh = Peer(broker, "b", clean=True)
        fresh.connect()
        fresh.lost()
        again = Peer(broker, "b", clean=False)
        again.connect()
        again.subscribe("t/9", 1)
        pub.publish("t/9", b"nine", 1)
        self.interleave()
        self.runner.error = None
        self.clock.advance(20)
        self.runner.run_all()
        d = store.flush()
        self.runner.run_all()
        self.successResultOf(d)
        self.assertEqual(store.health, faults.OK)
        self.failed = store.failures
        path = os.path.join(directory, DB_NAME)
        return {t: sorted(rows(path, f"SELECT * FROM {t}")) for t in TABLES}

    def test_backlog_commits_the_same_state_as_no_fault(self):
        healthy = self.scenario(fail=False)
        recovered = self.scenario(fail=True)
        self.assertEqual(recovered, healthy)
        self.assertGreater(self.failed, 5)
        # a owes t/3, t/4, the empty t/0 and t/9; the new b owes t/9.
        self.assertEqual(len(healthy["deliveries"]), 5)
        self.assertEqual([r[0] for r in healthy["retained"]], ["t/2", "t/4"])

    def test_backlog_is_coalesced_not_appended(self):
        _broker, store = self.make_faulty(sync_ack=False)
        self.runner.error = sqlite3.OperationalError(FULL)
        for i in range(50):
            store.retained_set("r", Message("r", b"%d" % i, 1, True), 100.0 + i, None)
            self.write_due()
            self.clock.advance(20)
            self.runner.run_all()
        self.assertEqual(store.failures, 50)
        self.assertEqual(list(store._pending.retained), ["r"])
        self.runner.error = None
        self.clock.advance(20)
        self.runner.run_all()
        self.assertEqual(rows(self.path, "SELECT topic, payload FROM retained"), [("r", b"49")])


class OpenTests(SynchronousTestCase):
    """A database that cannot be opened stops the start, naming its path."""

    def test_path_that_cannot_be_made_names_the_path(self):
        blocker = os.path.abspath(self.mktemp())
        with open(blocker, "w"):
            pass
        path = os.path.join(blocker, "data", DB_NAME)
        store = SqliteStore(path, None, ManualRunner())
        with self.assertRaises(StoreOpenError) as caught:
            store.open()
        self.assertIn(path, str(caught.exception))
        self.assertIn("sqlite.enable = false", str(caught.exception))
        self.assertIsNone(store._db)
