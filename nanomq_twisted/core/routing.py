# -*- test-case-name: tests.unit.test_broker,tests.unit.test_subscriptions -*-
"""
Routing one message: retained state, extensions, subscribers, share groups.

``Router.publish`` is the hot path of the broker.  For one message it

1. updates the retained store when RETAIN is set [MQTT-3.3.1-5..7];
2. hands it to the extensions whose filters match (core/extensions.py) --
   skipped with one truth test when no extension is subscribed at all;
3. asks the subscription trie for the topic (one cached dict lookup when
   the topic was routed before and no subscription changed since);
4. delivers one copy per matching client -- merging overlapping
   subscriptions of one client into one copy at the highest QoS carrying
   each of their identifiers once [MQTT-3.3.4-2, MQTT-3.3.4-3], skipping
   No Local matches [MQTT-3.8.3-3] -- and one copy per share group, round
   robin over its members (`SharedDispatch` below).

Encoding is per wire variant (core/message.py), writing is an append to
each receiver's outbox (core/connection.py); nothing here does I/O.
"""

from .message import Message
from .quotas import message_size, retained_fits
from .shared import SharedDispatch


class Router:
    """Routes messages for one broker (see the module docstring)."""

    def __init__(self, broker):
        self.broker = broker
        self.stats = broker.stats
        self.sessions = broker.sessions
        self.subscriptions = broker.subscriptions
        self.retained = broker.retained
        self.extensions = broker.extensions
        self.shared = SharedDispatch(broker)

    def publish(self, message, now):
        """Route one message; returns whether any client subscription
        matched (extensions do not count: NanoMQ's PUBACK says "no matching
        subscribers" for a message only a bridge forwards, too)."""
        stats = self.stats
        stats.received += 1
        topic = message.topic
        if message.retain:
            self._retain(message, now)
        if self.extensions.active:
            self.extensions.deliver(message, now)
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
        if shared:
            dispatch = self.shared.dispatch
            for group_key, members in shared:
                dispatch(group_key, members, message, now)
        return True

    def retain_refused(self, topic, payload):
        """True when the retained store has no room for ``payload`` on
        ``topic`` (``max_retained_messages``/``_bytes``); an empty payload
        (a delete) always has room."""
        return bool(payload) and not retained_fits(
            self.broker.limits, self.retained, topic, len(topic) + len(payload))

    def _retain(self, message, now):
        stats = self.stats
        stats.retained_received += 1
        topic = message.topic
        store = self.broker.store
        if message.payload:
            size = message_size(message)
            if not retained_fits(self.broker.limits, self.retained, topic, size):
                # Full: the message is routed, its topic not retained (as
                # EMQX does); a 5.0 QoS 1/2 publisher was asked first and
                # told 0x97 instead (core/inbound.py).
                stats.refused_retained += 1
                return
            interval = (
                message.properties.get("message_expiry_interval")
                if message.properties
                else None
            )
            self.retained.set(topic, message, now, interval, size)
            store.retained_set(topic, message, now, interval)
        elif self.retained.delete(topic):
            # [MQTT-3.3.1-6/7]: an empty retained message clears the topic.
            store.retained_deleted(topic)

    def publish_internal(self, topic, payload, now, qos=0, retain=False, properties=None):
        """Publish a broker-made message ($SYS notices, REST, rules)."""
        return self.publish(Message(topic, payload, qos, retain, properties, now), now)
