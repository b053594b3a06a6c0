# -*- test-case-name: tests.unit.test_quotas -*-
"""
The state quotas: how much a client can make the broker remember.

A broker that keeps whatever it is asked to keep lets one client exhaust
the memory of all: a hundred thousand subscriptions, a million retained
topics, a topic of 32,768 levels (a trie node each, in the subscription
trie and the retained store), a queue of 256 MB messages for a session
that never comes back.  Each quota below has a key in the ``mqtt`` section
(`ServerLimits` carries them), an answer the client can read, and a
counter in `Stats`:

=========================  ===========================  =====================
quota                      over it                      counter
=========================  ===========================  =====================
``max_subscriptions``      SUBACK 0x97 (3.1.1: 0x80)    refused_subscriptions
``max_topic_length``,      SUBACK 0x8F (3.1.1: 0x80);   refused_topics
``max_topic_levels``       PUBLISH: 0x90 (inbound.py)
``max_retained_messages``, v5 QoS 1/2: PUBACK/PUBREC    refused_retained
``max_retained_bytes``     0x97, not routed; others:
                           routed, not retained
``max_mqueue_bytes``       the queue-full drop          dropped_queue_bytes
=========================  ===========================  =====================

Sizes are the topic's and the payload's lengths (what the broker must keep
of a message whatever else it caches); a count or byte quota of 0 means no
limit.  Pure functions of the limits and the state they are asked about.
"""

from ..mqtt.topics import fits_bytes


def message_size(message):
    """The bytes a queued or retained ``message`` is charged with."""
    return len(message.topic) + len(message.payload)


def topic_too_big(limits, topic):
    """True when a topic name or filter has more bytes or levels than the
    quotas allow (a shared filter's ``$share/<group>/`` counts too: it is
    stored as written)."""
    if not fits_bytes(topic, limits.max_topic_length):
        return True
    return topic.count("/") >= limits.max_topic_levels


def retained_fits(limits, store, topic, size):
    """Whether the retained store may take ``size`` bytes for ``topic``:
    replacing a topic's message is charged only the difference, and a new
    topic needs room under both the count and the byte quota."""
    old = store.size_of(topic)
    if old is None:
        most = limits.max_retained_messages
        if most and len(store) >= most:
            return False
        old = 0
    most_bytes = limits.max_retained_bytes
    return not most_bytes or store.bytes - old + size <= most_bytes


def subscriptions_left(limits, session):
    """How many new filters ``session`` may still subscribe to (a very
    large number when there is no limit)."""
    most = limits.max_subscriptions
    if not most:
        return 1 << 62
    return most - len(session.subscriptions)
