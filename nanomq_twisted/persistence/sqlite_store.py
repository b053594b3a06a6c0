# -*- test-case-name: tests.unit.test_store_sqlite -*-
"""
``SqliteStore``: the core's store (core/store.py) on a stdlib ``sqlite3``
file, written off the reactor thread with group commit.

Design
======

Every call from the core lands in a few dicts of *pending* changes, keyed by
what they change (a session, a subscription, one delivery, one retained
topic), so later calls overwrite earlier ones: a delivery queued and acked
within one batch cancels out and never reaches the disk, and a retained
topic written a hundred times costs one row.  A batch closes after
``flush_threshold`` calls or ``delay`` seconds, whichever comes first; it is
turned into a list of SQL statements on the reactor thread and run as one
transaction in a worker thread.  At most one batch is in flight; calls made
meanwhile gather in the next one.  A ``kill -9`` therefore loses at most the
batch being written and the one gathering.

Messages are stored once however many sessions they are owed to: the store
counts references per ``Message`` object (``_refs``) and deletes the row with
the last delivery that used it.

``after_commit(fn)`` calls ``fn`` once everything accepted so far has
committed; the connection uses it to hold PUBACK/PUBREC with
``sqlite.sync_ack``.

``restore(broker, now)`` reads everything back synchronously; it runs once
at start-up, before any listener accepts a connection.

Also kept: the inbound QoS 2 packet ids a durable session has PUBREC'd
(``awaiting_rel``), and REST-made rules (``rules``: one JSON body per id,
NULL for a rule deleted over REST, so a deleted config-file rule stays
deleted; ``saved_rules()`` is the current view the rules service applies
when it starts), bridges changed over REST (``bridges``: one JSON body per
name, the whole effective settings) and the QoS 1/2 messages bridges owe
their remotes (``bridge_messages``, numbered by the store with one
increasing ``seq``; a message queued and done within one batch is never
written).  ``saved_bridges()`` and ``saved_bridge_messages(name)`` are
current views, kept in memory, that ``BridgesService`` reads when it starts
(at start-up or on ``/ctrl/restart``).

``max_rows`` is ``sqlite.disk_cache_size``; ``rows`` counts the deliveries
(messages owed to durable sessions) the store holds, for the broker's trim.

Time: rows keep the core's times (``reactor.seconds()``, wall-clock seconds),
so deadlines survive a restart as absolute times.
"""

import json
import os
import sqlite3

from twisted.internet import defer
from twisted.logger import Logger

from ..core.message import Message
from ..core.session import Subscription
from ..core.store import StoreOps

__all__ = ["DB_NAME", "SqliteStore"]

DB_NAME = "nano_qos_db.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS retained(
    topic TEXT PRIMARY KEY, payload BLOB, qos INT, props TEXT, stored_at REAL,
    expiry_interval INT, sender TEXT, username TEXT);
CREATE TABLE IF NOT EXISTS sessions(
    client_id TEXT PRIMARY KEY, expiry_interval INT, username TEXT,
    disconnected_at REAL);
CREATE TABLE IF NOT EXISTS subscriptions(
    client_id TEXT, topic_filter TEXT, qos INT, no_local INT, rap INT, rh INT,
    identifier INT, share_group TEXT, PRIMARY KEY(client_id, topic_filter));
CREATE TABLE IF NOT EXISTS messages(
    id INTEGER PRIMARY KEY, topic TEXT, payload BLOB, qos INT, retain INT,
    props TEXT, created REAL, expiry_at REAL, sender TEXT, username TEXT);
CREATE TABLE IF NOT EXISTS deliveries(
    client_id TEXT, seq INT, message_id INT, qos INT, retain INT, sub_ids TEXT,
    packet_id INT, released INT, PRIMARY KEY(client_id, seq));
CREATE TABLE IF NOT EXISTS awaiting_rel(
    client_id TEXT, packet_id INT, received_at REAL, PRIMARY KEY(client_id, packet_id));
CREATE TABLE IF NOT EXISTS rules(id INTEGER PRIMARY KEY, body TEXT);
CREATE TABLE IF NOT EXISTS bridges(name TEXT PRIMARY KEY, body TEXT);
CREATE TABLE IF NOT EXISTS bridge_messages(
    seq INTEGER PRIMARY KEY, bridge TEXT, topic TEXT, payload BLOB, qos INT,
    retain INT, props TEXT, key TEXT);
"""

#: Topics never persisted: the broker republishes them itself.
VOLATILE_PREFIX = "$SYS/"


# -- property (de)serialisation: JSON with bytes tagged ---------------------


def _tag(value):
    if isinstance(value, (bytes, bytearray)):
        return {"$b": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [_tag(v) for v in value]
    return value


def _untag(value):
    if isinstance(value, dict) and "$b" in value:
        return bytes.fromhex(value["$b"])
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def dump_props(props):
    if not props:
        return None
    return json.dumps({k: _tag(v) for k, v in props.items()})


def load_props(text):
    if not text:
        return None
    props = {k: _untag(v) for k, v in json.loads(text).items()}
    if "user_property" in props:
        props["user_property"] = [tuple(p) for p in props["user_property"]]
    return props


def _payload(payload):
    return payload if isinstance(payload, bytes) else bytes(payload or b"")


class _Delivery:
    """A pending change to one ``deliveries`` row."""

    __slots__ = ("delete", "insert", "packet_id", "released")

    def __init__(self):
        self.insert = None  # full row values when the row is new this batch
        self.packet_id = None
        self.released = False
        self.delete = False


class SqliteStore(StoreOps):
    """See the module docstring.

    ``run_in_thread(fn, *args)`` returns a Deferred of ``fn(*args)`` run in
    a worker thread (``deferToThreadPool`` in production, a synchronous or
    manual fake in tests); ``clock`` provides ``callLater``.
    """

    enabled = True
    _log = Logger()

    def __init__(self, path, clock, run_in_thread, flush_threshold=100, delay=0.01,
                 sync_ack=False, max_rows=0):
        self.path = path
        self.clock = clock
        self.run_in_thread = run_in_thread
        self.flush_threshold = max(1, flush_threshold)
        self.delay = delay
        self.sync_ack = sync_ack
        self.max_rows = max_rows
        self.rows = 0
        #: rule id -> Rule.to_dict() or None (deleted over REST)
        self._rule_view = {}
        #: bridge name -> saved body
        self._bridge_view = {}
        #: bridge name -> {seq: bridge_messages row}, what bridges owe
        self._bridge_owed = {}
        self._next_bridge_seq = 1
        self.changes = 0
        self.batches = 0
        self.failures = 0
        self._db = None
        self._reset_pending()
        self._ops = 0
        self._timer = None
        self._busy = None  # the Deferred of the batch being written
        self._busy_callbacks = []
        self._pending_callbacks = []
        self._closed = False
        #: id(message) -> [message, message_id, references]
        self._refs = {}
        #: client id -> {seq: id(message)}
        self._owed = {}
        self._next_message_id = 1

    # -- opening and restoring -------------------------------------------

    def open(self):
        """Open (creating if needed) the database file; synchronous."""
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=%s" % ("FULL" if self.sync_ack else "NORMAL"))
        db.executescript(SCHEMA)
        self._db = db

    def restore(self, broker, now):
        """Load retained messages and durable sessions into ``broker``;
        returns ``(retained, sessions, messages)`` counts."""
        db = self._db
        # Rows that lost their owner (a crash between statements cannot
        # cause this -- batches are transactions -- but be forgiving).
        db.execute("BEGIN")
        db.execute("DELETE FROM deliveries WHERE client_id NOT IN"
                   " (SELECT client_id FROM sessions)")
        db.execute("DELETE FROM subscriptions WHERE client_id NOT IN"
                   " (SELECT client_id FROM sessions)")
        db.execute("DELETE FROM messages WHERE id NOT IN"
                   " (SELECT message_id FROM deliveries)")
        db.execute("DELETE FROM awaiting_rel WHERE client_id NOT IN"
                   " (SELECT client_id FROM sessions)")
        db.execute("COMMIT")
        for rule_id, body in db.execute("SELECT id, body FROM rules"):
            self._rule_view[rule_id] = json.loads(body) if body else None
        for name, body in db.execute("SELECT name, body FROM bridges"):
            self._bridge_view[name] = json.loads(body)
        for row in db.execute(
            "SELECT seq, bridge, topic, payload, qos, retain, props, key"
            " FROM bridge_messages ORDER BY seq"
        ):
            row = row[:3] + (bytes(row[3]),) + row[4:]
            self._bridge_owed.setdefault(row[1], {})[row[0]] = row
            self._next_bridge_seq = max(self._next_bridge_seq, row[0] + 1)
        retained = 0
        for topic, payload, qos, props, stored_at, interval, sender, username in db.execute(
            "SELECT topic, payload, qos, props, stored_at, expiry_interval, sender,"
            " username FROM retained"
        ):
            message = Message(topic, bytes(payload), qos, True, load_props(props),
                              stored_at, sender, username)
            if interval is not None and stored_at + interval <= now:
                continue
            broker.restore_retained(topic, message, stored_at, interval)
            retained += 1
        messages = {}
        for row in db.execute(
            "SELECT id, topic, payload, qos, retain, props, created, expiry_at, sender,"
            " username FROM messages"
        ):
            mid, topic, payload, qos, retain, props, created, expiry_at, sender, user = row
            message = Message(topic, bytes(payload), qos, bool(retain), load_props(props),
                              created, sender, user)
            message.expiry_at = expiry_at
            messages[mid] = message
            self._next_message_id = max(self._next_message_id, mid + 1)
        subs = {}
        for row in db.execute(
            "SELECT client_id, topic_filter, qos, no_local, rap, rh, identifier,"
            " share_group FROM subscriptions"
        ):
            cid, topic_filter, qos, no_local, rap, rh, identifier, group = row
            subs.setdefault(cid, []).append(
                Subscription(cid, topic_filter, qos, bool(no_local), bool(rap), rh,
                             identifier, group)
            )
        owed = {}
        for row in db.execute(
            "SELECT client_id, seq, message_id, qos, retain, sub_ids, packet_id, released"
            " FROM deliveries ORDER BY client_id, seq"
        ):
            cid, seq, mid, qos, retain, sub_ids, pid, released = row
            message = messages.get(mid)
            if message is None:
                continue
            ids = tuple(json.loads(sub_ids)) if sub_ids else None
            owed.setdefault(cid, []).append(
                (seq, message, qos, bool(retain), ids, pid, bool(released))
            )
            self._owed.setdefault(cid, {})[seq] = id(message)
            ref = self._refs.get(id(message))
            if ref is None:
                self._refs[id(message)] = [message, mid, 1]
            else:
                ref[2] += 1
        rels = {}
        for cid, pid, received_at in db.execute(
            "SELECT client_id, packet_id, received_at FROM awaiting_rel"
        ):
            rels.setdefault(cid, []).append((pid, received_at))
        count = 0
        for cid, expiry, username, disconnected_at in db.execute(
            "SELECT client_id, expiry_interval, username, disconnected_at FROM sessions"
        ):
            broker.restore_session(cid, expiry, username, disconnected_at,
                                   subs.get(cid, ()), owed.get(cid, ()), now,
                                   awaiting_rel=rels.get(cid, ()))
            count += 1
        self.rows = sum(len(v) for v in owed.values())
        return retained, count, self.rows

    # -- the core's calls (reactor thread) ---------------------------------

    def _reset_pending(self):
        self._deleted_sessions = set()
        self._sessions = {}  # client id -> row
        self._subs = {}  # (client id, filter) -> row or None (remove)
        self._new_messages = {}  # message id -> row
        self._dead_messages = set()
        self._deliveries = {}  # (client id, seq) -> _Delivery
        self._retained = {}  # topic -> row or None (delete)
        self._rels = {}  # (client id, packet id) -> row or None (delete)
        self._rules = {}  # rule id -> row
        self._bridges = {}  # bridge name -> row
        self._bridge_msgs = {}  # seq -> row or None (delete)

    def _touch(self):
        self._ops += 1
        if self._ops >= self.flush_threshold:
            self._kick()
        elif self._timer is None and self._busy is None:
            self._timer = self.clock.callLater(self.delay, self._timer_fired)

    def session_saved(self, session, disconnected_at):
        self._sessions[session.client_id] = (
            session.client_id, session.expiry_interval, session.username,
            disconnected_at,
        )
        self._touch()

    def session_deleted(self, client_id):
        self._deleted_sessions.add(client_id)
        self._sessions.pop(client_id, None)
        for key in [k for k in self._subs if k[0] == client_id]:
            del self._subs[key]
        for key in [k for k in self._rels if k[0] == client_id]:
            del self._rels[key]
        owed = self._owed.pop(client_id, {})
        self.rows -= len(owed)
        for seq, key in owed.items():
            self._deliveries.pop((client_id, seq), None)
            self._decref(key)
        self._touch()

    def subscription_added(self, client_id, sub):
        self._subs[(client_id, sub.topic_filter)] = (
            client_id, sub.topic_filter, sub.qos, int(sub.no_local),
            int(sub.retain_as_published), sub.retain_handling, sub.identifier,
            sub.share_group,
        )
        self._touch()

    def subscription_removed(self, client_id, topic_filter):
        self._subs[(client_id, topic_filter)] = None
        self._touch()

    def message_queued(self, client_id, seq, message, qos, retain, sub_ids):
        key = id(message)
        ref = self._refs.get(key)
        if ref is None or ref[0] is not message:
            mid = self._next_message_id
            self._next_message_id += 1
            self._refs[key] = [message, mid, 1]
            self._new_messages[mid] = (
                mid, message.topic, _payload(message.payload), message.qos,
                int(message.retain), dump_props(message.properties), message.created,
                message.expiry_at, message.sender, message.username,
            )
        else:
            mid = ref[1]
            ref[2] += 1
        self._owed.setdefault(client_id, {})[seq] = key
        self.rows += 1
        change = _Delivery()
        change.insert = (client_id, seq, mid, qos, int(retain),
                         json.dumps(list(sub_ids)) if sub_ids else None)
        self._deliveries[(client_id, seq)] = change
        self.changes += 1
        self._touch()

    def _change(self, client_id, seq):
        change = self._deliveries.get((client_id, seq))
        if change is None:
            change = self._deliveries[(client_id, seq)] = _Delivery()
        return change

    def message_sent(self, client_id, seq, packet_id):
        self._change(client_id, seq).packet_id = packet_id
        self._touch()

    def message_released(self, client_id, seq):
        self._change(client_id, seq).released = True
        self._touch()

    def message_acked(self, client_id, seq):
        change = self._deliveries.get((client_id, seq))
        if change is not None and change.insert is not None:
            # Queued and done within one batch: nothing reaches the disk.
            del self._deliveries[(client_id, seq)]
        else:
            self._change(client_id, seq).delete = True
        owed = self._owed.get(client_id)
        key = owed.pop(seq, None) if owed is not None else None
        if key is not None:
            self.rows -= 1
            self._decref(key)
        self._touch()

    def _decref(self, key):
        ref = self._refs.get(key)
        if ref is None:
            return
        ref[2] -= 1
        if ref[2] <= 0:
            del self._refs[key]
            mid = ref[1]
            if self._new_messages.pop(mid, None) is None:
                self._dead_messages.add(mid)

    def rel_awaited(self, client_id, packet_id, received_at):
        self._rels[(client_id, packet_id)] = (client_id, packet_id, received_at)
        self.changes += 1
        self._touch()

    def rel_done(self, client_id, packet_id):
        self._rels[(client_id, packet_id)] = None
        self._touch()

    def rule_saved(self, rule):
        self._rule_view[rule["id"]] = rule
        self._rules[rule["id"]] = (rule["id"], json.dumps(rule))
        self._touch()

    def rule_deleted(self, rule_id):
        self._rule_view[rule_id] = None
        self._rules[rule_id] = (rule_id, None)
        self._touch()

    def saved_rules(self):
        return dict(self._rule_view)

    def bridge_saved(self, name, body):
        self._bridge_view[name] = body
        self._bridges[name] = (name, json.dumps(body))
        self._touch()

    def saved_bridges(self):
        return dict(self._bridge_view)

    def bridge_message_queued(self, name, topic, payload, qos, retain, properties, key):
        seq = self._next_bridge_seq
        self._next_bridge_seq += 1
        row = (seq, name, topic, _payload(payload), qos, int(bool(retain)),
               dump_props(properties), key)
        self._bridge_owed.setdefault(name, {})[seq] = row
        self._bridge_msgs[seq] = row
        self.changes += 1
        self._touch()
        return seq

    def bridge_message_done(self, name, seq):
        owed = self._bridge_owed.get(name)
        if owed is None or owed.pop(seq, None) is None:
            return
        if self._bridge_msgs.get(seq) is not None:
            # Queued and done within one batch: nothing reaches the disk.
            del self._bridge_msgs[seq]
        else:
            self._bridge_msgs[seq] = None
        self._touch()

    @property
    def bridge_rows(self):
        """How many messages bridges owe (all bridges)."""
        return sum(len(owed) for owed in self._bridge_owed.values())

    def saved_bridge_messages(self, name):
        owed = self._bridge_owed.get(name, {})
        return [
            (seq, row[2], row[3], row[4], bool(row[5]), load_props(row[6]), row[7])
            for seq, row in sorted(owed.items())
        ]

    def retained_set(self, topic, message, now, expiry_interval):
        if topic.startswith(VOLATILE_PREFIX):
            return
        self._retained[topic] = (
            topic, _payload(message.payload), message.qos,
            dump_props(message.properties), now, expiry_interval, message.sender,
            message.username,
        )
        self.changes += 1
        self._touch()

    def retained_deleted(self, topic):
        if topic.startswith(VOLATILE_PREFIX):
            return
        self._retained[topic] = None
        self.changes += 1
        self._touch()

    def after_commit(self, callback):
        if self._ops:
            self._pending_callbacks.append(callback)
        elif self._busy is not None:
            self._busy_callbacks.append(callback)
        else:
            callback()

    # -- batching -----------------------------------------------------------

    def _timer_fired(self):
        self._timer = None
        self._kick()

    def _kick(self):
        """Close the gathering batch and write it, unless one is in flight
        (then it goes as soon as that one commits)."""
        if self._busy is not None or not self._ops or self._db is None:
            return
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        statements = self._statements()
        self._reset_pending()
        self._ops = 0
        callbacks, self._pending_callbacks = self._pending_callbacks, []
        if not statements:
            # Everything cancelled out: already as durable as it gets.
            for callback in callbacks:
                callback()
            return
        self._busy_callbacks = callbacks
        self.batches += 1
        self._busy = d = self.run_in_thread(self._write, statements)
        d.addCallbacks(self._written, self._failed)

    def _statements(self):
        """The gathering batch as ``[(sql, [params, ...]), ...]``, in an
        order that makes the coalesced changes come out right."""
        out = []
        if self._deleted_sessions:
            ids = [(c,) for c in self._deleted_sessions]
            out.append(("DELETE FROM sessions WHERE client_id = ?", ids))
            out.append(("DELETE FROM subscriptions WHERE client_id = ?", ids))
            out.append(("DELETE FROM deliveries WHERE client_id = ?", ids))
            out.append(("DELETE FROM awaiting_rel WHERE client_id = ?", ids))
        if self._sessions:
            out.append(("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)",
                        list(self._sessions.values())))
        removed = [k for k, row in self._subs.items() if row is None]
        if removed:
            out.append(("DELETE FROM subscriptions WHERE client_id = ? AND topic_filter = ?",
                        removed))
        added = [row for row in self._subs.values() if row is not None]
        if added:
            out.append(("INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        added))
        if self._new_messages:
            out.append(("INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        list(self._new_messages.values())))
        inserts, updates, deletes = [], [], []
        for (cid, seq), change in self._deliveries.items():
            if change.insert is not None:
                inserts.append(change.insert + (change.packet_id, int(change.released)))
            elif change.delete:
                deletes.append((cid, seq))
            else:
                updates.append((change.packet_id, int(change.released), cid, seq))
        if inserts:
            out.append(("INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        inserts))
        if updates:
            out.append((("UPDATE deliveries SET packet_id = coalesce(?, packet_id),"
                        " released = max(released, ?) WHERE client_id = ? AND seq = ?"),
                        updates))
        if deletes:
            out.append(("DELETE FROM deliveries WHERE client_id = ? AND seq = ?", deletes))
        if self._dead_messages:
            out.append(("DELETE FROM messages WHERE id = ?",
                        [(m,) for m in self._dead_messages]))
        gone = [(t,) for t, row in self._retained.items() if row is None]
        if gone:
            out.append(("DELETE FROM retained WHERE topic = ?", gone))
        kept = [row for row in self._retained.values() if row is not None]
        if kept:
            out.append(("INSERT OR REPLACE INTO retained VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        kept))
        freed = [k for k, row in self._rels.items() if row is None]
        if freed:
            out.append(("DELETE FROM awaiting_rel WHERE client_id = ? AND packet_id = ?",
                        freed))
        awaited = [row for row in self._rels.values() if row is not None]
        if awaited:
            out.append(("INSERT OR REPLACE INTO awaiting_rel VALUES (?, ?, ?)", awaited))
        if self._rules:
            out.append(("INSERT OR REPLACE INTO rules VALUES (?, ?)",
                        list(self._rules.values())))
        if self._bridges:
            out.append(("INSERT OR REPLACE INTO bridges VALUES (?, ?)",
                        list(self._bridges.values())))
        done = [(seq,) for seq, row in self._bridge_msgs.items() if row is None]
        if done:
            out.append(("DELETE FROM bridge_messages WHERE seq = ?", done))
        owed = [row for row in self._bridge_msgs.values() if row is not None]
        if owed:
            out.append(("INSERT OR REPLACE INTO bridge_messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        owed))
        return out

    def _write(self, statements):
        """One transaction (worker thread; never touches pending state)."""
        db = self._db
        db.execute("BEGIN")
        try:
            for sql, rows in statements:
                db.executemany(sql, rows)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _written(self, _):
        self._busy = None
        callbacks, self._busy_callbacks = self._busy_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 -- one bad callback must not stop the rest
                self._log.failure("after_commit callback failed")
        self._continue()

    def _failed(self, failure):
        self._busy = None
        self.failures += 1
        self._log.failure("SQLite batch write to {path} failed", failure, path=self.path)
        # Nothing better to do for the waiting acks than to release them:
        # holding them forever would stall the publishers.
        self._written(None)

    def _continue(self):
        if not self._ops:
            return
        if self._ops >= self.flush_threshold or self._closed:
            self._kick()
        elif self._timer is None:
            self._timer = self.clock.callLater(self.delay, self._timer_fired)

    # -- shutdown ------------------------------------------------------------

    @defer.inlineCallbacks
    def flush(self):
        """Write everything accepted so far; fires once it has committed."""
        while self._ops or self._busy is not None:
            if self._busy is None:
                self._kick()
            busy = self._busy
            if busy is None:
                break
            done = defer.Deferred()
            self._busy_callbacks.append(lambda d=done: d.callback(None))
            yield done

    @defer.inlineCallbacks
    def close(self):
        """Flush, then close the file."""
        self._closed = True
        yield self.flush()
        db, self._db = self._db, None
        if db is not None:
            yield self.run_in_thread(db.close)
