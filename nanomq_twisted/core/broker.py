# -*- test-case-name: tests.unit.test_broker -*-
"""
The broker: client registry, sessions, routing, retained messages, wills.

Everything shared between connections lives here (the analogue of
Mosquitto's ``db``), but as an instance, not process globals, so tests can
run many brokers side by side.  Pure Python: time is passed in as ``now``
and every delayed action goes through one ``TimerQueue`` that the Twisted
adapter drives (see `transport/timers.py`).

The routing hot path is ``publish``: one cached trie lookup per topic, one
encode per wire variant (`message.py`), one ``sink.write`` per subscriber.
"""

import secrets

from ..mqtt import reason_codes as rc
from .auth import AllowAll, PasswordAuthenticator
from .limits import server_limits
from .message import Message
from .metrics import Stats
from .retain import RetainStore
from .session import Inflight, Session, Subscription
from .shared import shared_leftovers
from .store import NullStore
from .subscriptions import SubscriptionTrie
from .sys_topics import client_offline_payload, client_online_payload
from .timers import TimerQueue

#: v3.1.1 persistent sessions never expire; v5 uses this value for "never".
NEVER_EXPIRES = 0xFFFFFFFF

CLIENT_STATUS_TOPIC = "$SYS/brokers/client_status"


class Broker:
    """The broker domain.

    ``config`` is the ``mqtt`` section (``MqttConfig``); ``clock`` a callable
    returning the current time, used only to stamp events that arrive from
    outside the packet flow (an asynchronous authenticator answering).
    """

    def __init__(
        self,
        config,
        authenticator=None,
        acl=None,
        deny_action="ignore",
        clock=None,
        sys_events=True,
    ):
        self.config = config
        self.authenticator = authenticator or PasswordAuthenticator()
        self.acl = acl or AllowAll()
        self.deny_action = deny_action
        self._clock = clock
        self._last_now = 0.0
        self.stats = Stats()
        self.timers = TimerQueue()
        self.subscriptions = SubscriptionTrie()
        self.retained = RetainStore()
        self.sessions = {}  # client id -> Session
        self.connections = {}  # client id -> ClientConnection (online only)
        self.sys_events = sys_events
        self._shared_cursor = {}
        self.started = None
        #: Observers of broker events (webhooks, rules, metrics): callables
        #: ``fn(event_name, **fields)``; kept out of the hot path when empty.
        self.observers = []
        #: Called with every routed message (rule engine, bridges).
        self.message_taps = []
        #: Where durable state is reported (core/store.py).
        self.store = NullStore()
        #: Offline durable sessions that may hold queued messages: where
        #: ``trim_store`` looks for the oldest one (``sqlite.disk_cache_size``).
        self._store_backlog = set()

    def now(self):
        return self._clock() if self._clock is not None else self._last_now

    @property
    def config(self):
        """The ``mqtt`` section in force; setting it (start-up, REST
        ``/configuration``, ``/ctrl/restart``) re-derives ``limits``."""
        return self._config

    @config.setter
    def config(self, config):
        self._config = config
        #: What CONNACK advertises (core/limits.py); ``limits.notes`` says
        #: which configured values had to be moved into range.
        self.limits = server_limits(config)

    # -- connections and sessions ----------------------------------------

    def assign_client_id(self):
        """NanoMQ's shape for server-assigned ids: ``nanomq-`` + 8 hex."""
        while True:
            client_id = "nanomq-" + secrets.token_hex(4)
            if client_id not in self.sessions:
                return client_id

    def attach(self, conn, connect, now):
        """Bind ``conn`` to its session; returns Session Present.

        Handles takeover [MQTT-3.1.4-3] and Clean Start [MQTT-3.1.2-4/5].
        """
        self._last_now = now
        client_id = conn.client_id
        session = self.sessions.get(client_id)
        if session is not None and session.conn is not None:
            old = session.conn
            old.server_disconnect(rc.SESSION_TAKEN_OVER, now, "session taken over")
            self._close_connection(old, now, taken_over=True, new_clean=conn.clean_start)
            session = self.sessions.get(client_id)
        if session is not None and session.will_timer is not None:
            # A new connection before the will delay passed: no will
            # [MQTT-3.1.3-9] -- unless the session ends right now.
            if conn.clean_start:
                self._will_now(session, now)
            else:
                session.will_timer.cancel()
                session.will_timer = None
        if session is not None and conn.clean_start:
            self._end_session(session, now)
            session = None
        session_present = session is not None
        if session is None:
            session = Session(client_id, self.stats, self.config.max_mqueue_len)
            session.owner = self
            session.created = now
            self.sessions[client_id] = session
        elif session.expiry_timer is not None:
            session.expiry_timer.cancel()
            session.expiry_timer = None
        if conn.v5:
            session.expiry_interval = conn._connect.properties.get(
                "session_expiry_interval", 0
            )
        else:
            session.expiry_interval = 0 if conn.clean_start else NEVER_EXPIRES
        session.username = conn.username
        session.conn = conn
        conn.session = session
        if self.store.enabled or session.durable:
            self._sync_durable(session)
        self.connections[client_id] = conn
        self.stats.connects += 1
        return session_present

    def detach(self, conn, now):
        """The network connection of ``conn`` closed."""
        self._last_now = now
        self._close_connection(conn, now)

    def _close_connection(self, conn, now, taken_over=False, new_clean=False):
        from .connection import CLOSED

        conn.state = CLOSED
        session = conn.session
        if session is None or session.conn is not conn:
            return
        session.conn = None
        if self.connections.get(conn.client_id) is conn:
            del self.connections[conn.client_id]
        self.stats.disconnects += 1
        if session.retry_timer is not None:
            session.retry_timer.cancel()
            session.retry_timer = None
        will = conn.will
        conn.will = None
        ends = session.expiry_interval == 0 or (taken_over and new_clean)
        if will is not None:
            delay = conn.will_delay if conn.v5 else 0
            if ends or delay == 0:
                self._publish_will(will, conn.client_id, conn.username, now)
            else:
                if session.expiry_interval != NEVER_EXPIRES:
                    delay = min(delay, session.expiry_interval)
                session.will_timer = self.timers.call_at(
                    now + delay, self._will_due, session, will, conn.username
                )
        reason = conn.disconnect_reason
        if reason is None or (conn.graceful and reason < 0x80):
            reason = 0
        self._emit_status_offline(conn, reason, now)
        if ends:
            self._end_session(session, now)
            return
        if session.durable:
            # The expiry may have changed on DISCONNECT; it counts from now.
            self.store.session_saved(session, now)
        if session.expiry_interval != NEVER_EXPIRES:
            session.expiry_timer = self.timers.call_at(
                now + session.expiry_interval, self._expire_session, session
            )

    def _will_due(self, session, will, username):
        session.will_timer = None
        self._publish_will(will, session.client_id, username, self.timers_now)

    def _will_now(self, session, now):
        """Publish a delayed will ahead of its timer, stamped with ``now``:
        ``timers_now`` is only current inside ``run_timers``, and a stale
        stamp would shorten the will's Message Expiry Interval."""
        handle = session.will_timer
        session.will_timer = None
        handle.cancel()
        _session, will, username = handle.args
        self._publish_will(will, session.client_id, username, now)

    def _expire_session(self, session):
        session.expiry_timer = None
        if session.conn is None and self.sessions.get(session.client_id) is session:
            self._end_session(session, self.timers_now)

    def _end_session(self, session, now):
        """Forget a session: its subscriptions leave the routing trie."""
        if session.will_timer is not None:
            # The session ends before the will delay: send it now [MQTT-3.1.3-9].
            self._will_now(session, now)
        session.cancel_timers()
        leftovers = shared_leftovers(session)
        for topic_filter in list(session.subscriptions):
            self.subscriptions.remove(session.client_id, topic_filter)
        session.subscriptions.clear()
        session.clear_messages()
        for group_key, message in leftovers:
            self._redispatch_shared(group_key, message, now)
        if session.durable:
            session.durable = False
            self.store.session_deleted(session.client_id)
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            if self.observers:
                self.notify("session_terminated", session=session, now=now)

    def _publish_will(self, will, client_id, username, now):
        if not self.acl.check(_WillClient(client_id, username), "publish", will.topic):
            return
        message = Message(
            will.topic,
            will.payload,
            will.qos,
            will.retain,
            {
                k: v
                for k, v in will.properties.items()
                if k != "will_delay_interval"
            }
            or None,
            now,
            client_id,
            username,
        )
        self.publish(message, now)

    def ensure_retry(self, session, now):
        """Arm the 3.1.1 retransmission timer for ``session``.

        MQTT 5 forbids resending except on reconnect [MQTT-4.4.0-1], so only
        3.x connections get a timer (see docs/compatibility.md).
        """
        if session.retry_timer is None:
            session.retry_timer = self.timers.call_at(
                now + self.config.retry_interval, self._retry_due, session
            )

    def _retry_due(self, session):
        session.retry_timer = None
        now = self.timers_now
        if session.conn is None or not session.inflight:
            return
        session.resend_inflight(now, older_than=now - self.config.retry_interval)
        self.ensure_retry(session, now)

    def run_timers(self, now):
        """Run every due timer (called by the adapter's one DelayedCall)."""
        self._last_now = now
        self.timers_now = now
        return self.timers.run_due(now)

    timers_now = 0.0

    # -- subscriptions -----------------------------------------------------

    def subscribe(self, session, option, qos, sub_id, now):
        """Add or replace one subscription and send matching retained
        messages per Retain Handling [MQTT-3.3.1-9..11]."""
        topic_filter = option.topic_filter
        share_group = None
        real_filter = topic_filter
        if topic_filter.startswith("$share/"):
            _, share_group, real_filter = topic_filter.split("/", 2)
        elif topic_filter.startswith("$queue/"):
            share_group, real_filter = "$queue", topic_filter[7:]
        sub = Subscription(
            session.client_id,
            topic_filter,
            qos,
            option.no_local,
            option.retain_as_published,
            option.retain_handling,
            sub_id,
            share_group,
        )
        existed = self.subscriptions.add(session.client_id, topic_filter, sub)
        session.subscriptions[topic_filter] = sub
        if session.durable:
            self.store.subscription_added(session.client_id, sub)
        if self.observers:
            self.notify("session_subscribed", session=session, subscription=sub, now=now)
        if share_group is not None:
            return  # no retained messages for shared subscriptions [MQTT-4.8.2-?]
        handling = option.retain_handling
        if handling == 2 or (handling == 1 and existed):
            return
        sub_ids = (sub_id,) if sub_id is not None else None
        for message, _remaining in self.retained.match(real_filter, now):
            session.deliver(message, min(qos, message.qos), True, sub_ids, now)

    def unsubscribe(self, session, topic_filter):
        if session.subscriptions.pop(topic_filter, None) is None:
            return False
        self.subscriptions.remove(session.client_id, topic_filter)
        if session.durable:
            self.store.subscription_removed(session.client_id, topic_filter)
        if self.observers:
            self.notify(
                "session_unsubscribed", session=session, topic_filter=topic_filter
            )
        return True

    # -- routing -------------------------------------------------------------

    def publish(self, message, now, origin=None):
        """Route one message; returns whether any subscriber matched."""
        stats = self.stats
        stats.received += 1
        topic = message.topic
        if message.retain:
            stats.retained_received += 1
            if message.payload:
                interval = (
                    message.properties.get("message_expiry_interval")
                    if message.properties
                    else None
                )
                self.retained.set(topic, message, now, interval)
                self.store.retained_set(topic, message, now, interval)
            else:
                # [MQTT-3.3.1-6/7]: an empty retained message clears the topic.
                if self.retained.delete(topic):
                    self.store.retained_deleted(topic)
        for tap in self.message_taps:
            tap(message, now)
        match = self.subscriptions.match(topic)
        normal = match.normal
        shared = match.shared
        if not normal and not shared:
            stats.dropped_no_subscriber += 1
            return False
        sessions = self.sessions
        sender = message.sender
        msg_qos = message.qos
        msg_retain = message.retain
        for client_id, subs in normal.items():
            session = sessions.get(client_id)
            if session is None:
                continue
            if len(subs) == 1:
                sub = subs[0]
                if sub.no_local and client_id == sender:
                    continue  # [MQTT-3.8.3-3]
                qos = sub.qos if sub.qos < msg_qos else msg_qos  # noqa: FURB136 (no call: hot path)
                retain = msg_retain and sub.retain_as_published
                sub_ids = None if sub.identifier is None else (sub.identifier,)
            else:
                # Overlapping subscriptions: one copy at the highest QoS with
                # every identifier [MQTT-3.3.4-2, MQTT-3.3.4-3] -- each once,
                # however many of the filters share it.
                subs = [s for s in subs if not (s.no_local and client_id == sender)]
                if not subs:
                    continue
                qos = min(max(s.qos for s in subs), msg_qos)
                retain = msg_retain and any(s.retain_as_published for s in subs)
                ids = tuple(dict.fromkeys(
                    s.identifier for s in subs if s.identifier is not None
                ))
                sub_ids = ids or None
            session.deliver(message, qos, retain, sub_ids, now)
        for group_key, members in shared:
            self._deliver_shared(group_key, members, message, now)
        return True

    def _deliver_shared(self, group_key, members, message, now):
        """Round robin over a share group's members, skipping those that
        are offline or congested; QoS 1/2 falls back to an offline member's
        queue when nobody is online (it gets them when it reconnects)."""
        count = len(members)
        start = self._shared_cursor.get(group_key, 0)
        sessions = self.sessions
        fallback = None
        for step in range(count):
            client_id, sub = members[(start + step) % count]
            session = sessions.get(client_id)
            if session is None:
                continue
            conn = session.conn
            if conn is None or conn.sink.congested:
                if fallback is None:
                    fallback = (session, sub)
                continue
            self._shared_cursor[group_key] = (start + step + 1) % count
            self._deliver_one(session, sub, message, now)
            return
        if fallback is not None and message.qos > 0:
            self._shared_cursor[group_key] = (start + 1) % count
            self._deliver_one(fallback[0], fallback[1], message, now)
        else:
            self.stats.dropped += 1

    def _redispatch_shared(self, group_key, message, now):
        """Hand a message an ended member never finished to another member
        of its share group [MQTT-4.8.2-5]; dropped if the group is empty."""
        if message.expired(now):
            self.stats.dropped_expired += 1
            return
        for key, members in self.subscriptions.match(message.topic).shared:
            if key == group_key:
                self._deliver_shared(key, members, message, now)
                return
        self.stats.dropped += 1

    @staticmethod
    def _deliver_one(session, sub, message, now):
        qos = sub.qos if sub.qos < message.qos else message.qos  # noqa: FURB136
        retain = message.retain and sub.retain_as_published
        sub_ids = None if sub.identifier is None else (sub.identifier,)
        session.deliver(message, qos, retain, sub_ids, now)

    def publish_internal(self, topic, payload, now, qos=0, retain=False, properties=None):
        """Publish a broker-made message ($SYS notices, REST, rules)."""
        return self.publish(Message(topic, payload, qos, retain, properties, now), now)

    # -- persistence -------------------------------------------------------

    def set_store(self, store):
        """Report durable state to ``store`` from now on (core/store.py)."""
        self.store = store

    def _sync_durable(self, session):
        """A connection attached to ``session``: make the store agree with
        its (possibly new) Session Expiry Interval."""
        store = self.store
        durable = store.enabled and session.expiry_interval != 0
        if durable and session.durable:
            store.session_saved(session, None)
        elif durable:
            # Newly durable: write everything it already holds.
            session.durable = True
            session.store = store
            store.session_saved(session, None)
            for sub in session.subscriptions.values():
                store.subscription_added(session.client_id, sub)
            for pid, received_at in session.awaiting_rel.items():
                store.rel_awaited(session.client_id, pid, received_at)
            entries = [
                (e.message, e.qos, e.retain, e.sub_ids, pid, e)
                for pid, e in session.inflight.items()
            ]
            entries += [(m, q, r, i, None, None) for m, q, r, i, _ in session.queue]
            queue = session.queue
            queue.clear()
            for message, qos, retain, sub_ids, pid, entry in entries:
                seq = session._new_seq(message, qos, retain, sub_ids)
                if entry is None:
                    queue.append((message, qos, retain, sub_ids, seq))
                else:
                    entry.seq = seq
                    store.message_sent(session.client_id, seq, pid)
                    if entry.awaiting_pubcomp:
                        store.message_released(session.client_id, seq)
        elif session.durable:
            session.durable = False
            store.session_deleted(session.client_id)

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
        session = Session(client_id, self.stats, self.config.max_mqueue_len)
        session.owner = self
        session.created = now
        session.expiry_interval = expiry_interval
        session.username = username
        session.durable = True
        session.store = self.store
        self.sessions[client_id] = session
        for sub in subscriptions:
            self.subscriptions.add(client_id, sub.topic_filter, sub)
            session.subscriptions[sub.topic_filter] = sub
        top_pid = 0
        for seq, message, qos, retain, sub_ids, pid, released in messages:
            session.seq = max(session.seq, seq)
            if pid is None:
                session.queue.append((message, qos, retain, sub_ids, seq))
                continue
            entry = Inflight(message, qos, retain, sub_ids, 0.0, seq)
            entry.awaiting_pubcomp = released
            session.inflight[pid] = entry
            top_pid = max(top_pid, pid)
        session._next_pid = top_pid % 65535 + 1
        session.awaiting_rel.update(awaiting_rel)
        if session.queue:
            self._store_backlog.add(session)
        if expiry_interval != NEVER_EXPIRES:
            since = now if disconnected_at is None else min(disconnected_at, now)
            session.expiry_timer = self.timers.call_at(
                since + expiry_interval, self._expire_session, session
            )
        return session

    def trim_store(self):
        """A durable session just queued a message and the store holds
        more than ``max_rows``: drop the oldest queued message of an offline
        durable session, counted in ``dropped`` and ``dropped_disk_cache``,
        until it fits.  Messages in flight and queues of online sessions
        are never dropped here."""
        store = self.store
        backlog = self._store_backlog
        sessions = self.sessions
        while store.rows > store.max_rows:
            oldest = None
            for candidate in list(backlog):
                if (candidate.conn is not None or not candidate.queue
                        or not candidate.durable
                        or sessions.get(candidate.client_id) is not candidate):
                    backlog.discard(candidate)
                    continue
                if oldest is None or (candidate.queue[0][0].created
                                      < oldest.queue[0][0].created):
                    oldest = candidate
            if oldest is None:
                return
            seq = oldest.queue.popleft()[4]
            self.stats.dropped += 1
            self.stats.dropped_disk_cache += 1
            oldest._forget(seq)

    def restore_retained(self, topic, message, stored_at, expiry_interval):
        """Put back a retained message read from the store."""
        self.retained.set(topic, message, stored_at, expiry_interval)

    # -- events ---------------------------------------------------------------

    def notify(self, event, **fields):
        """Tell every observer about ``event`` (callers check
        ``self.observers`` first so that no observer costs nothing)."""
        for observer in self.observers:
            observer(event, **fields)

    def on_connected(self, conn, now):
        self._emit_status_online(conn, 0, now)
        for observer in self.observers:
            observer("client_connack", conn=conn, code=0, now=now)

    def on_refused(self, conn, code, now):
        self._emit_status_online(conn, code, now)
        for observer in self.observers:
            observer("client_connack", conn=conn, code=code, now=now)

    def _emit_status_online(self, conn, code, now):
        if self.sys_events:
            payload = client_online_payload(conn, code, now)
            self.publish_internal(CLIENT_STATUS_TOPIC, payload, now)

    def _emit_status_offline(self, conn, reason, now):
        if self.sys_events:
            payload = client_offline_payload(conn, reason, now)
            self.publish_internal(CLIENT_STATUS_TOPIC, payload, now)
        for observer in self.observers:
            observer("client_disconnected", conn=conn, reason=reason, now=now)

    # -- gauges ----------------------------------------------------------------

    @property
    def connection_count(self):
        return len(self.connections)

    @property
    def session_count(self):
        return len(self.sessions)


class _WillClient:
    """Stands in for a connection when the ACL judges a delayed will."""

    def __init__(self, client_id, username):
        self.client_id = client_id
        self.username = username
        self.peer = None
