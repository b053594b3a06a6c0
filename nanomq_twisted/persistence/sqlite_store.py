# -*- test-case-name: tests.unit.test_store_sqlite -*-
"""
``SqliteStore``: the core's store (core/store.py) on a stdlib ``sqlite3``
file, written off the reactor thread with group commit.

This module keeps what the store *records*: the core's calls, the
reference counts and the in-memory views.  The group commit itself
(batches, the one write in flight, ``after_commit``, ``flush``/``close``)
is `batching.py`'s ``BatchWriter``; the tables, the statements a batch
turns into and the (de)serialisation of rows are `sqlite_rows.py`.
``DB_NAME`` is re-exported from there.

Design
======

Every call from the core lands in a few dicts of *pending* changes
(``sqlite_rows.Pending``), keyed by what they change (a session, a
subscription, one delivery, one retained topic), so later calls overwrite
earlier ones: a delivery queued and acked within one batch cancels out and
never reaches the disk, and a retained topic written a hundred times costs
one row.  A batch closes after ``flush_threshold`` calls or ``delay``
seconds, whichever comes first; it is turned into a list of SQL statements
on the reactor thread and run as one transaction in a worker thread.  At
most one batch is in flight; calls made meanwhile gather in the next one.
A ``kill -9`` therefore loses at most the batch being written and the one
gathering.

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

from ..core.message import Message
from ..core.session import Subscription
from ..core.store import StoreOps
from .batching import BatchWriter
from .faults import StoreOpenError, classify
from .sqlite_rows import (
    DB_NAME,
    PRUNE_ORPHANS,
    SCHEMA,
    VOLATILE_PREFIX,
    Delivery,
    Pending,
    dump_props,
    load_props,
    payload_bytes,
    run_statements,
)

__all__ = ["DB_NAME", "SqliteStore"]


class SqliteStore(BatchWriter, StoreOps):
    """See the module docstring.

    ``run_in_thread(fn, *args)`` returns a Deferred of ``fn(*args)`` run in
    a worker thread (``deferToThreadPool`` in production, a synchronous or
    manual fake in tests); ``clock`` provides ``callLater``.
    """

    enabled = True

    def __init__(self, path, clock, run_in_thread, flush_threshold=100, delay=0.01,
                 sync_ack=False, max_rows=0, ack_delay=0.0):
        super().__init__(path, clock, run_in_thread, flush_threshold, delay, ack_delay)
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
        self._pending = Pending()
        #: The batch being written (or last written): kept apart until it
        #: commits, so that a failure can fold it back (``_requeue``).
        self._writing = None
        #: id(message) -> [message, message_id, references]
        self._refs = {}
        #: client id -> {seq: id(message)}
        self._owed = {}
        self._next_message_id = 1

    # -- opening and restoring -------------------------------------------

    def open(self):
        """Open (creating if needed) the database file; synchronous.

        Raises ``StoreOpenError`` naming the path when the file cannot be
        opened for writing (a read-only or full file system, a directory
        that cannot be made): the broker then does not start, as NanoMQ,
        which panics ("Can't open database"), does not either --
        docs/durability.md, "Disk faults"."""
        directory = os.path.dirname(self.path)
        db = None
        try:
            if directory:
                os.makedirs(directory, exist_ok=True)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=%s" % ("FULL" if self.sync_ack else "NORMAL"))
            db.executescript(SCHEMA)
            # A file SQLite could only open read-only fails here, not at
            # the first batch.
            db.execute("BEGIN IMMEDIATE")
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as error:
            if db is not None:
                db.close()
            raise StoreOpenError(self.path, classify(error, directory), str(error)) from error
        self._db = db

    def restore(self, broker, now):
        """Load retained messages and durable sessions into ``broker``;
        returns ``(retained, sessions, messages)`` counts."""
        db = self._db
        db.execute("BEGIN")
        for sql in PRUNE_ORPHANS:
            db.execute(sql)
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
        self._writing = self._pending
        self._pending = Pending()

    def _requeue(self):
        failed, self._writing = self._writing, None
        failed.absorb(self._pending)
        self._pending = failed

    def _statements(self):
        return self._pending.statements()

    def _run(self, db, statements):
        run_statements(db, statements)

    def session_saved(self, session, disconnected_at):
        self._pending.sessions[session.client_id] = (
            session.client_id, session.expiry_interval, session.username,
            disconnected_at,
        )
        self._touch()

    def session_deleted(self, client_id):
        self._pending.deleted_sessions.add(client_id)
        self._pending.sessions.pop(client_id, None)
        for key in [k for k in self._pending.subs if k[0] == client_id]:
            del self._pending.subs[key]
        for key in [k for k in self._pending.rels if k[0] == client_id]:
            del self._pending.rels[key]
        owed = self._owed.pop(client_id, {})
        self.rows -= len(owed)
        for seq, key in owed.items():
            self._pending.deliveries.pop((client_id, seq), None)
            self._decref(key)
        self._touch()

    def subscription_added(self, client_id, sub):
        self._pending.subs[(client_id, sub.topic_filter)] = (
            client_id, sub.topic_filter, sub.qos, int(sub.no_local),
            int(sub.retain_as_published), sub.retain_handling, sub.identifier,
            sub.share_group,
        )
        self._touch()

    def subscription_removed(self, client_id, topic_filter):
        self._pending.subs[(client_id, topic_filter)] = None
        self._touch()

    def message_queued(self, client_id, seq, message, qos, retain, sub_ids):
        # The hottest call with persistent subscribers: kept flat.
        pending = self._pending
        key = id(message)
        ref = self._refs.get(key)
        if ref is None or ref[0] is not message:
            mid = self._next_message_id
            self._next_message_id = mid + 1
            self._refs[key] = [message, mid, 1]
            payload = message.payload
            properties = message.properties
            pending.new_messages[mid] = (
                mid, message.topic,
                payload if type(payload) is bytes else payload_bytes(payload),
                message.qos, int(message.retain),
                dump_props(properties) if properties else None, message.created,
                message.expiry_at, message.sender, message.username,
            )
        else:
            mid = ref[1]
            ref[2] += 1
        owed = self._owed.get(client_id)
        if owed is None:
            owed = self._owed[client_id] = {}
        owed[seq] = key
        self.rows += 1
        change = Delivery()
        change.insert = (client_id, seq, mid, qos, 1 if retain else 0,
                         json.dumps(list(sub_ids)) if sub_ids else None)
        pending.deliveries[(client_id, seq)] = change
        self.changes += 1
        self._touch()

    def _change(self, client_id, seq):
        change = self._pending.deliveries.get((client_id, seq))
        if change is None:
            change = self._pending.deliveries[(client_id, seq)] = Delivery()
        return change

    def message_sent(self, client_id, seq, packet_id):
        self._change(client_id, seq).packet_id = packet_id
        self._touch()

    def message_released(self, client_id, seq):
        self._change(client_id, seq).released = True
        self._touch()

    def message_acked(self, client_id, seq):
        change = self._pending.deliveries.get((client_id, seq))
        if change is not None and change.insert is not None:
            # Queued and done within one batch: nothing reaches the disk.
            del self._pending.deliveries[(client_id, seq)]
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
            if self._pending.new_messages.pop(mid, None) is None:
                self._pending.dead_messages.add(mid)

    def rel_awaited(self, client_id, packet_id, received_at):
        self._pending.rels[(client_id, packet_id)] = (client_id, packet_id, received_at)
        self.changes += 1
        self._touch()

    def rel_done(self, client_id, packet_id):
        self._pending.rels[(client_id, packet_id)] = None
        self._touch()

    def rule_saved(self, rule):
        self._rule_view[rule["id"]] = rule
        self._pending.rules[rule["id"]] = (rule["id"], json.dumps(rule))
        self._touch()

    def rule_deleted(self, rule_id):
        self._rule_view[rule_id] = None
        self._pending.rules[rule_id] = (rule_id, None)
        self._touch()

    def saved_rules(self):
        return dict(self._rule_view)

    def bridge_saved(self, name, body):
        self._bridge_view[name] = body
        self._pending.bridges[name] = (name, json.dumps(body))
        self._touch()

    def saved_bridges(self):
        return dict(self._bridge_view)

    def bridge_message_queued(self, name, topic, payload, qos, retain, properties, key):
        seq = self._next_bridge_seq
        self._next_bridge_seq += 1
        row = (seq, name, topic, payload_bytes(payload), qos, int(bool(retain)),
               dump_props(properties), key)
        self._bridge_owed.setdefault(name, {})[seq] = row
        self._pending.bridge_msgs[seq] = row
        self.changes += 1
        self._touch()
        return seq

    def bridge_message_done(self, name, seq):
        owed = self._bridge_owed.get(name)
        if owed is None or owed.pop(seq, None) is None:
            return
        if self._pending.bridge_msgs.get(seq) is not None:
            # Queued and done within one batch: nothing reaches the disk.
            del self._pending.bridge_msgs[seq]
        else:
            self._pending.bridge_msgs[seq] = None
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
        self._pending.retained[topic] = (
            topic, payload_bytes(message.payload), message.qos,
            dump_props(message.properties), now, expiry_interval, message.sender,
            message.username,
        )
        self.changes += 1
        self._touch()

    def retained_deleted(self, topic):
        if topic.startswith(VOLATILE_PREFIX):
            return
        self._pending.retained[topic] = None
        self.changes += 1
        self._touch()
