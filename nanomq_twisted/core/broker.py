# -*- test-case-name: tests.unit.test_broker -*-
"""
The broker: the registry of sessions and connections, and the collaborators
everything shared between connections goes through.

Everything shared lives here (the analogue of Mosquitto's ``db``), but as an
instance, not process globals, so tests can run many brokers side by side.
Pure Python: time is passed in as ``now`` and every delayed action goes
through one ``TimerQueue`` that the adapter drives.

This module holds the registry itself -- connecting, takeover, Clean Start,
closing, ending a session, subscribing -- and wires the parts that have a
module of their own:

- ``router`` (routing.py, shared.py): publish, retained state, share groups;
- ``extensions`` (extensions.py): bridges, rules, webhooks as trie subscribers;
- ``lifecycle`` (lifecycle.py): wills, session expiry, 3.x retries;
- ``durability`` (durable.py): durable sessions and the store;
- ``events`` (events.py) and ``guard`` (isolation.py): observers, and the
  isolation of every call into an extension.

Output: connections append to their outbox and report themselves with
``output_pending``; ``flush`` sends every pending outbox.  The adapter calls
``flush`` at the end of each turn; for output made outside one (a timer, an
asynchronous authenticator) ``wake`` -- set by the adapter -- asks for a
turn.
"""

import secrets

from ..mqtt import reason_codes as rc
from ..mqtt.topics import parse_shared
from .admission import Admission
from .auth import AllowAll, PasswordAuthenticator
from .durable import NEVER_EXPIRES, Durability
from .events import EventBus
from .extensions import ExtensionRoutes
from .isolation import Guard
from .lifecycle import SessionLifecycle
from .limits import server_limits
from .metrics import Stats
from .retain import RetainStore
from .routing import Router
from .session import Session, Subscription
from .shared import leftovers
from .store import NullStore
from .subscriptions import SubscriptionTrie
from .sys_topics import client_offline_payload, client_online_payload
from .timers import TimerQueue

CLIENT_STATUS_TOPIC = "$SYS/brokers/client_status"

#: Bytes a connection's outbox may hold before it counts as congested
#: (its client does not read; see connection.py).
OUTBOX_LIMIT = 4 * 1024 * 1024

__all__ = ["CLIENT_STATUS_TOPIC", "NEVER_EXPIRES", "OUTBOX_LIMIT", "Broker"]


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
        admission=None,
    ):
        self.config = config
        self.authenticator = authenticator or PasswordAuthenticator()
        self.acl = acl or AllowAll()
        self.deny_action = deny_action
        self._clock = clock
        self._last_now = 0.0
        self.stats = Stats()
        self.guard = Guard(self.stats)
        self.events = EventBus(self.guard)
        self.timers = TimerQueue()
        self.subscriptions = SubscriptionTrie()
        self.extensions = ExtensionRoutes(self.guard)
        self.retained = RetainStore()
        self.sessions = {}  # client id -> Session
        self.connections = {}  # client id -> ClientConnection (online only)
        self.sys_events = sys_events
        self.started = None
        #: Where durable state is reported (core/store.py).
        self.store = NullStore()
        self.router = Router(self)
        self.lifecycle = SessionLifecycle(self)
        self.durability = Durability(self)
        self.outbox_limit = OUTBOX_LIMIT
        #: Rates and connections per address (core/admission.py).
        self.admission = admission if admission is not None else Admission()
        #: Connections with output to flush, in the order they got it.
        self._dirty = []
        #: True while the adapter is inside a turn that ends with ``flush``.
        self.in_turn = False
        #: Called (by the core) when output is pending outside a turn.
        self.wake = None

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

    # -- output ------------------------------------------------------------

    def output_pending(self, conn):
        """``conn`` has output to flush (called once per flush by it)."""
        dirty = self._dirty
        dirty.append(conn)
        if len(dirty) == 1 and not self.in_turn and self.wake is not None:
            self.wake()

    def flush(self):
        """Hand every pending outbox to its sink."""
        dirty = self._dirty
        while dirty:
            self._dirty = []
            for conn in dirty:
                conn.flush()
            dirty = self._dirty

    # -- connections and sessions ----------------------------------------

    def assign_client_id(self):
        """NanoMQ's shape for server-assigned ids: ``nanomq-`` + 8 hex."""
        while True:
            client_id = "nanomq-" + secrets.token_hex(4)
            if client_id not in self.sessions:
                return client_id

    def attach(self, conn, now):
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
        if session is not None:
            self.lifecycle.reconnected(session, conn.clean_start, now)
            if conn.clean_start:
                self.end_session(session, now)
                session = None
        session_present = session is not None
        if session is None:
            session = Session(client_id, self, self.config.max_mqueue_len,
                              self.limits.max_mqueue_bytes)
            session.created = now
            self.sessions[client_id] = session
        if conn.v5:
            session.expiry_interval = conn.info.properties.get("session_expiry_interval", 0)
        else:
            session.expiry_interval = 0 if conn.clean_start else NEVER_EXPIRES
        session.username = conn.username
        session.info = conn.info
        session.conn = conn
        conn.session = session
        if self.store.enabled or session.durable:
            self.durability.sync(session)
        self.connections[client_id] = conn
        self.stats.connects += 1
        return session_present

    def detach(self, conn, now):
        """The network connection of ``conn`` closed."""
        self._last_now = now
        self._close_connection(conn, now)

    def _close_connection(self, conn, now, taken_over=False, new_clean=False):
        conn.detached()
        session = conn.session
        if session is None or session.conn is not conn:
            return
        session.conn = None
        if self.connections.get(conn.client_id) is conn:
            del self.connections[conn.client_id]
        self.stats.disconnects += 1
        ends = session.expiry_interval == 0 or (taken_over and new_clean)
        self.lifecycle.connection_closed(session, conn, now, ends)
        reason = conn.disconnect_reason
        if reason is None or (conn.graceful and reason < 0x80):
            reason = 0
        self._emit_status_offline(conn, reason, now)
        if ends:
            self.end_session(session, now)
        elif session.durable:
            # The expiry may have changed on DISCONNECT; it counts from now.
            self.store.session_saved(session, now)

    def end_session(self, session, now):
        """Forget a session: its subscriptions leave the routing trie, its
        unfinished shared-group messages go to other members."""
        if session.will_timer is not None:
            # The session ends before the will delay: send it now [MQTT-3.1.3-9].
            self.lifecycle.will_now(session, now)
        session.cancel_timers()
        unfinished = leftovers(session)
        for topic_filter in list(session.subscriptions):
            self.subscriptions.remove(session.client_id, topic_filter)
        session.subscriptions.clear()
        session.clear_messages()
        for group_key, message in unfinished:
            self.router.shared.redispatch(group_key, message, now)
        if session.journal is not None:
            session.journal = None
            self.store.session_deleted(session.client_id)
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]
            events = self.events
            if events.session_terminated:
                events.emit("session_terminated", session=session, now=now)

    # -- what sessions ask of the broker (session.SessionHost) --------------

    def retry_needed(self, session, now):
        self.lifecycle.ensure_retry(session, now)

    def backlog_grew(self, session):
        self.durability.backlog_grew(session)

    # -- timers ------------------------------------------------------------

    def run_timers(self, now):
        """Run every due timer (called by the adapter's one DelayedCall)."""
        self._last_now = now
        return self.timers.run_due(now)

    # -- subscriptions -----------------------------------------------------

    def subscribe(self, session, option, qos, sub_id, now):
        """Add or replace one subscription and send matching retained
        messages per Retain Handling [MQTT-3.3.1-9..11]."""
        topic_filter = option.topic_filter
        share_group, real_filter = parse_shared(topic_filter)
        sub = Subscription(
            session.client_id,
            topic_filter,
            qos,
            option.no_local,
            option.retain_as_published,
            option.retain_handling,
            sub_id,
            share_group,
            real_filter,
        )
        existed = self.subscriptions.add(session.client_id, topic_filter, sub)
        session.subscriptions[topic_filter] = sub
        if session.journal is not None:
            self.store.subscription_added(session.client_id, sub)
        events = self.events
        if events.session_subscribed:
            events.emit("session_subscribed", session=session, subscription=sub, now=now)
        if share_group is not None:
            return  # no retained messages for shared subscriptions [MQTT-4.8.2]
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
        if session.journal is not None:
            self.store.subscription_removed(session.client_id, topic_filter)
        events = self.events
        if events.session_unsubscribed:
            events.emit("session_unsubscribed", session=session, topic_filter=topic_filter)
        return True

    # -- routing -------------------------------------------------------------

    def publish(self, message, now):
        """Route one message (routing.py); returns whether any client
        subscription matched."""
        return self.router.publish(message, now)

    def publish_internal(self, topic, payload, now, qos=0, retain=False, properties=None):
        """Publish a broker-made message ($SYS notices, REST, rules)."""
        return self.router.publish_internal(topic, payload, now, qos, retain, properties)

    # -- persistence -------------------------------------------------------

    def set_store(self, store):
        """Report durable state to ``store`` from now on (core/store.py)."""
        self.store = store

    def restore_session(self, *args, **kwargs):
        """Rebuild a durable session read from the store (durable.py)."""
        return self.durability.restore_session(*args, **kwargs)

    def restore_retained(self, topic, message, stored_at, expiry_interval):
        self.durability.restore_retained(topic, message, stored_at, expiry_interval)

    # -- status notices and events ----------------------------------------

    def on_connected(self, conn, now):
        self._emit_status_online(conn, 0, now)
        events = self.events
        if events.client_connack:
            events.emit("client_connack", conn=conn, code=0, now=now)

    def on_refused(self, conn, code, now):
        self._emit_status_online(conn, code, now)
        events = self.events
        if events.client_connack:
            events.emit("client_connack", conn=conn, code=code, now=now)

    def _emit_status_online(self, conn, code, now):
        if self.sys_events and conn.info is not None:
            payload = client_online_payload(conn.info, code, now)
            self.publish_internal(CLIENT_STATUS_TOPIC, payload, now)

    def _emit_status_offline(self, conn, reason, now):
        if self.sys_events:
            payload = client_offline_payload(conn.info, reason, now)
            self.publish_internal(CLIENT_STATUS_TOPIC, payload, now)
        events = self.events
        if events.client_disconnected:
            events.emit("client_disconnected", conn=conn, reason=reason, now=now)

    # -- gauges ----------------------------------------------------------------

    @property
    def connection_count(self):
        return len(self.connections)

    @property
    def session_count(self):
        return len(self.sessions)
