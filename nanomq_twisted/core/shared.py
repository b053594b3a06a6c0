# -*- test-case-name: tests.unit.test_broker -*-
"""
What a shared-subscription member leaves behind when its session ends.

A message sent to one member of a share group is that member's to finish:
if its connection drops, delivery completes when it reconnects.  But when
its *session* ends first (expiry, a clean-start reconnect, or simply a
clean session disconnecting), the QoS 1/2 messages it never acknowledged
would be lost for the whole group.  [MQTT-4.8.2-5] asks the server to send
them to another member instead; this module finds them.

A session holding a plain subscription that also matches a message may have
received it through that subscription rather than the group; such messages
are not redistributed, so no other member gets a copy the group never owed.
"""

from ..mqtt.topics import match, parse_shared


def shared_leftovers(session):
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
            group, real_filter = parse_shared(sub.topic_filter)
            groups.append(((group, real_filter), real_filter))
    if not groups:
        return []
    messages = [e.message for e in session.inflight.values() if not e.awaiting_pubcomp]
    messages.extend(entry[0] for entry in session.queue if entry[1] > 0)
    leftovers = []
    for message in messages:
        topic = message.topic
        if any(match(topic_filter, topic) for topic_filter in plain):
            continue
        for group_key, real_filter in groups:
            if match(real_filter, topic):
                leftovers.append((group_key, message))
                break
    return leftovers
