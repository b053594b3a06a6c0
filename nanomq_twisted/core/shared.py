# -*- test-case-name: tests.unit.test_broker -*-
"""
Shared subscriptions [MQTT-4.8.2]: one member of a group gets each message.

`SharedDispatch.dispatch` goes round robin over a group's members, skipping
those offline or congested; a QoS 1/2 message falls back to an offline
member's queue when no member is online (it gets it when it reconnects),
and a QoS 0 message nobody online can take is dropped and counted.

A message sent to one member is that member's to finish: if its connection
drops, delivery completes when it reconnects.  But when its *session* ends
first (expiry, a clean-start reconnect, or simply a clean session
disconnecting), the QoS 1/2 messages it never acknowledged would be lost
for the whole group.  [MQTT-4.8.2-5] asks the server to send them to
another member instead: `leftovers` finds them, `redispatch` sends them on.
A session holding a plain subscription that also matches a message may have
received it through that subscription rather than the group; such messages
are not redistributed, so no other member gets a copy the group never owed.
"""

from ..mqtt.topics import match


class SharedDispatch:
    """Round robin state of one broker's share groups."""

    def __init__(self, broker):
        self.broker = broker
        self.sessions = broker.sessions
        self.stats = broker.stats
        self._cursor = {}  # (group, real filter) -> next member index

    def dispatch(self, group_key, members, message, now):
        """Deliver ``message`` to one of ``members`` (``(client_id,
        Subscription)`` pairs in subscription order)."""
        count = len(members)
        cursor = self._cursor
        start = cursor.get(group_key, 0)
        sessions = self.sessions
        fallback = None
        for step in range(count):
            client_id, sub = members[(start + step) % count]
            session = sessions.get(client_id)
            if session is None:
                continue
            conn = session.conn
            if conn is None or conn.congested:
                if fallback is None:
                    fallback = (session, sub)
                continue
            cursor[group_key] = (start + step + 1) % count
            _deliver_one(session, sub, message, now)
            return
        if fallback is not None and message.qos > 0:
            cursor[group_key] = (start + 1) % count
            _deliver_one(fallback[0], fallback[1], message, now)
        else:
            self.stats.dropped += 1

    def redispatch(self, group_key, message, now):
        """Hand a message an ended member never finished to another member
        of its share group [MQTT-4.8.2-5]; dropped if the group is empty."""
        if message.expired(now):
            self.stats.dropped_expired += 1
            return
        for key, members in self.broker.subscriptions.match(message.topic).shared:
            if key == group_key:
                self.dispatch(key, members, message, now)
                return
        self.stats.dropped += 1


def _deliver_one(session, sub, message, now):
    qos = sub.qos if sub.qos < message.qos else message.qos  # noqa: FURB136
    retain = message.retain and sub.retain_as_published
    sub_ids = None if sub.identifier is None else (sub.identifier,)
    session.deliver(message, qos, retain, sub_ids, now)


def leftovers(session):
    """``[(group_key, message), ...]`` for unfinished QoS 1/2 messages that
    reached ``session`` through a shared subscription, in delivery order.

    ``group_key`` is ``(group, filter)`` as the subscription trie keys share
    groups.  A message whose PUBREL was already sent is finished from the
    receiver's point of view and is not included.
    """
    groups = []
    plain = []
    for sub in session.subscriptions.values():
        if sub.share_group is None:
            plain.append(sub.topic_filter)
        else:
            groups.append(((sub.share_group, sub.real_filter), sub.real_filter))
    if not groups:
        return []
    messages = [flow.message for flow in session.flows.values() if not flow.released]
    messages.extend(entry[0] for entry in session.queue if entry[1] > 0)
    found = []
    for message in messages:
        topic = message.topic
        if any(match(topic_filter, topic) for topic_filter in plain):
            continue
        for group_key, real_filter in groups:
            if match(real_filter, topic):
                found.append((group_key, message))
                break
    return found
