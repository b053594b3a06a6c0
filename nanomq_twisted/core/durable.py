# -*- test-case-name: tests.unit.test_store_sqlite,tests.unit.test_store_limits -*-
"""
Durable sessions: what the core reports to the store, and what it rebuilds
from it.

A session is durable while the store is real (``store.enabled``) and its
Session Expiry Interval is not 0; core/store.py describes the calls.  A
durable session holds a `SessionJournal`, which numbers every QoS 1/2
message entering it (``seq``) and reports the steps of its flow; a clean
session holds none, so persistence costs it nothing.

`Durability` owns the broker's side of it:

- ``sync(session)`` when a connection attaches: a session that became
  durable writes everything it already holds, one that stopped being
  durable is deleted from the store;
- ``restore_session`` / ``restore_retained`` rebuild what the store read
  back at start-up;
- ``backlog_grew`` / ``trim``: ``sqlite.disk_cache_size`` bounds the owed
  messages on disk by dropping the oldest queued message of an *offline*
  durable session (never one in flight, never an online client's).
"""

from .outbound import Flow
from .quotas import message_size
from .session import NO_QUEUE, Session

#: v3.1.1 persistent sessions never expire; v5 uses this value for "never".
NEVER_EXPIRES = 0xFFFFFFFF


class SessionJournal:
    """Reports one durable session's messages to the store."""

    __slots__ = ("client_id", "seq", "store")

    def __init__(self, store, client_id, seq=0):
        self.store = store
        self.client_id = client_id
        #: The last number handed out.
        self.seq = seq

    def queued(self, message, qos, retain, sub_ids):
        """Number a message entering the session and report it."""
        self.seq = seq = self.seq + 1
        self.store.message_queued(self.client_id, seq, message, qos, retain, sub_ids)
        return seq

    def sent(self, seq, packet_id):
        self.store.message_sent(self.client_id, seq, packet_id)

    def released(self, seq):
        self.store.message_released(self.client_id, seq)

    def done(self, seq):
        self.store.message_acked(self.client_id, seq)

    def rel_awaited(self, packet_id, received_at):
        self.store.rel_awaited(self.client_id, packet_id, received_at)

    def rel_done(self, packet_id):
        self.store.rel_done(self.client_id, packet_id)


class Durability:
    """The broker's persistent-session bookkeeping (module docstring)."""

    def __init__(self, broker):
        self.broker = broker
        #: Offline durable sessions that may hold queued messages: where
        #: ``trim`` looks for the oldest one.
        self._backlog = set()

    @property
    def store(self):
        return self.broker.store

    # -- attach --------------------------------------------------------------

    def sync(self, session):
        """A connection attached to ``session``: make the store agree with
        its (possibly new) Session Expiry Interval."""
        store = self.store
        durable = store.enabled and session.expiry_interval != 0
        if durable and session.journal is not None:
            store.session_saved(session, None)
        elif durable:
            self._make_durable(session, store)
        elif session.journal is not None:
            session.journal = None
            store.session_deleted(session.client_id)

    def _make_durable(self, session, store):
        """Newly durable: write everything the session already holds."""
        journal = session.journal = SessionJournal(store, session.client_id)
        store.session_saved(session, None)
        client_id = session.client_id
        for sub in session.subscriptions.values():
            store.subscription_added(client_id, sub)
        for pid, received_at in session.awaiting_rel.items():
            store.rel_awaited(client_id, pid, received_at)
        for flow in session.flows.values():
            flow.seq = journal.queued(flow.message, flow.qos, flow.retain, flow.sub_ids)
            journal.sent(flow.seq, flow.packet_id)
            if flow.released:
                journal.released(flow.seq)
        entries = list(session.queue)
        session.queue = NO_QUEUE
        session.queue_bytes = 0
        for message, qos, retain, sub_ids, _seq in entries:
            seq = journal.queued(message, qos, retain, sub_ids) if qos else None
            session.append_queued((message, qos, retain, sub_ids, seq))

    # -- restore ---------------------------------------------------------------

    def restore_session(self, client_id, expiry_interval, username, disconnected_at,
                        subscriptions, messages, now, awaiting_rel=()):
        """Rebuild a durable session read back from the store.

        ``subscriptions`` are ``Subscription``s; ``messages`` are
        ``(seq, message, qos, retain, sub_ids, packet_id, released)`` in
        ``seq`` order, ``packet_id`` None for queued ones.  The session is
        offline; its expiry counts from ``disconnected_at`` (or ``now`` if
        the broker stopped while it was online).  ``awaiting_rel`` are
        ``(packet_id, received_at)`` of inbound QoS 2 flows awaiting PUBREL.
        """
        broker = self.broker
        session = Session(client_id, broker, broker.config.max_mqueue_len,
                          broker.limits.max_mqueue_bytes)
        session.created = now
        session.expiry_interval = expiry_interval
        session.username = username
        journal = session.journal = SessionJournal(self.store, client_id)
        broker.sessions[client_id] = session
        for sub in subscriptions:
            broker.subscriptions.add(client_id, sub.topic_filter, sub)
            session.subscriptions[sub.topic_filter] = sub
        for seq, message, qos, retain, sub_ids, pid, released in messages:
            journal.seq = max(journal.seq, seq)
            if pid is None:
                session.append_queued((message, qos, retain, sub_ids, seq))
                continue
            flow = Flow(message, qos, retain, sub_ids, 0.0, seq)
            flow.packet_id = pid
            flow.released = released
            session.flows.restore(flow)
        session.awaiting_rel.update(awaiting_rel)
        if session.queue:
            self._backlog.add(session)
        if expiry_interval != NEVER_EXPIRES:
            since = now if disconnected_at is None else min(disconnected_at, now)
            broker.lifecycle.expire_at(session, since + expiry_interval)
        return session

    def restore_retained(self, topic, message, stored_at, expiry_interval):
        """Put back a retained message read from the store."""
        # Restored whatever the quotas say now: they were met when it was
        # stored, and lowering them must not lose what was accepted.
        self.broker.retained.set(topic, message, stored_at, expiry_interval,
                                 message_size(message))

    # -- sqlite.disk_cache_size -----------------------------------------------

    def backlog_grew(self, session):
        if session.conn is None:
            self._backlog.add(session)
        store = self.store
        if store.max_rows and store.rows > store.max_rows:
            self.trim()

    def trim(self):
        """Drop the oldest queued message of an offline durable session,
        counted in ``dropped`` and ``dropped_disk_cache``, until the store
        holds at most ``max_rows``.  Messages in flight and queues of online
        sessions are never dropped here."""
        store = self.store
        backlog = self._backlog
        sessions = self.broker.sessions
        stats = self.broker.stats
        while store.rows > store.max_rows:
            oldest = None
            for candidate in list(backlog):
                if (candidate.conn is not None or not candidate.queue
                        or candidate.journal is None
                        or sessions.get(candidate.client_id) is not candidate):
                    backlog.discard(candidate)
                    continue
                if oldest is None or (candidate.queue[0][0].created
                                      < oldest.queue[0][0].created):
                    oldest = candidate
            if oldest is None:
                return
            seq = oldest.pop_queued()[4]
            stats.dropped += 1
            stats.dropped_disk_cache += 1
            if seq is not None:
                oldest.journal.done(seq)
