# -*- test-case-name: tests.unit.test_topics -*-
"""
Topic names, topic filters and shared subscriptions, [MQTT-4.7] / [MQTT-4.8].

Pure functions on ``str``.  The decoder only checks that strings are valid
UTF-8; deciding whether a filter is acceptable is left to the broker core,
which answers a bad filter per filter (SUBACK 0x8F) rather than dropping
the connection, and it uses these validators to do so.  `match` is the
reference semantics that a subscription tree must agree with.
"""

MAX_TOPIC_BYTES = 65535

SHARE_PREFIX = "$share/"
QUEUE_PREFIX = "$queue/"
QUEUE_GROUP = "$queue"


def fits_bytes(text, limit=MAX_TOPIC_BYTES):
    """True when ``text`` is at most ``limit`` bytes of UTF-8."""
    # Cheap tests first: a str never encodes to fewer bytes than it has
    # chars, and at most 4 bytes each.
    size = len(text)
    if size * 4 <= limit:
        return True
    if size > limit:
        return False
    return len(text.encode("utf-8", "surrogatepass")) <= limit


def _fits(text):
    return fits_bytes(text, MAX_TOPIC_BYTES)


def is_shared_prefix_name(name):
    """True for a topic *name* starting ``$share/`` or ``$queue/``.

    Those prefixes only mean something in a topic filter; a PUBLISH (or
    will) to such a name is refused with 0x90 Topic Name Invalid (as EMQX
    does), so that nobody can publish to a name that reads like a shared
    subscription and get it past an ACL rule or a rule-engine filter
    written for the filter's real topic (docs/compatibility.md).
    """
    return name.startswith((SHARE_PREFIX, QUEUE_PREFIX))


def validate_topic_name(name):
    """True for a topic name a PUBLISH may carry.

    Non-empty [MQTT-4.7.3-1], no wildcards [MQTT-3.3.2-2], no U+0000
    [MQTT-1.5.4-2], at most 65535 bytes of UTF-8 [MQTT-4.7.3-3], not
    starting with ``$share/`` or ``$queue/`` (``is_shared_prefix_name``).
    """
    if not name or "+" in name or "#" in name or "\x00" in name:
        return False
    if is_shared_prefix_name(name):
        return False
    return _fits(name)


def _valid_plain_filter(topic_filter):
    if not topic_filter or "\x00" in topic_filter:
        return False
    if "+" in topic_filter or "#" in topic_filter:
        levels = topic_filter.split("/")
        last = len(levels) - 1
        for i, level in enumerate(levels):
            if level == "#":
                # [MQTT-4.7.1-2] '#' is the last level and alone in it.
                if i != last:
                    return False
            elif level == "+":
                continue
            elif "+" in level or "#" in level:
                # [MQTT-4.7.1-3] '+' occupies an entire level.
                return False
    return True


def validate_topic_filter(topic_filter):
    """True for a topic filter a SUBSCRIBE or UNSUBSCRIBE may carry.

    Shared subscriptions ``$share/<group>/<filter>`` need a non-empty group
    without ``/``, ``+`` or ``#`` and a valid filter after it [MQTT-4.8.2-1/2];
    ``$queue/<filter>`` (the NanoMQ/EMQX spelling) needs a valid filter.
    """
    if not topic_filter or not _fits(topic_filter):
        return False
    if topic_filter.startswith(SHARE_PREFIX):
        rest = topic_filter[len(SHARE_PREFIX):]
        slash = rest.find("/")
        if slash <= 0:
            return False
        group = rest[:slash]
        if "+" in group or "#" in group:
            return False
        return _valid_plain_filter(rest[slash + 1:])
    if topic_filter.startswith(QUEUE_PREFIX):
        return _valid_plain_filter(topic_filter[len(QUEUE_PREFIX):])
    return _valid_plain_filter(topic_filter)


def parse_shared(topic_filter):
    """Split a filter into ``(group, real_filter)``.

    ``$share/g/f`` gives ``("g", "f")``, ``$queue/f`` gives ``("$queue",
    "f")``, anything else ``(None, topic_filter)``.  A ``$share/`` filter
    without a group and a filter is not shared (and is invalid anyway;
    `validate_topic_filter` says so).
    """
    if topic_filter.startswith(SHARE_PREFIX):
        rest = topic_filter[len(SHARE_PREFIX):]
        slash = rest.find("/")
        if slash > 0:
            return rest[:slash], rest[slash + 1:]
        return None, topic_filter
    if topic_filter.startswith(QUEUE_PREFIX):
        return QUEUE_GROUP, topic_filter[len(QUEUE_PREFIX):]
    return None, topic_filter


def is_shared(topic_filter):
    """True for a ``$share/<group>/<filter>`` or ``$queue/<filter>`` filter
    (whether or not it is otherwise valid)."""
    return topic_filter.startswith((SHARE_PREFIX, QUEUE_PREFIX))


def strip_shared(topic_filter):
    """The real filter of a shared subscription; any other filter as is."""
    return parse_shared(topic_filter)[1]


def shared_text(group, real_filter):
    """The canonical text of a shared subscription: ``$queue/f`` for the
    ``$queue`` group (also when it was written ``$share/$queue/f``),
    ``$share/<group>/<f>`` otherwise."""
    if group == QUEUE_GROUP:
        return QUEUE_PREFIX + real_filter
    return SHARE_PREFIX + group + "/" + real_filter


def match_levels(filter_levels, topic_levels):
    """The level-by-level wildcard match of [MQTT-4.7.1] on split topics,
    without the ``$`` rule (callers that need it use `match`).

    ``#`` matches the rest, including nothing: ``a/#`` matches ``a``
    [MQTT-4.7.1-2]; ``+`` matches exactly one level.  NanoMQ's ACL rules
    and WebHook topic filters use this directly (they have no ``$``
    exception: a rule for ``#`` covers ``$SYS/...``).
    """
    count = len(topic_levels)
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= count:
            return False
        if level != "+" and level != topic_levels[i]:
            return False
    return len(filter_levels) == count


def match(topic_filter, topic_name, dollar_rule=True):
    """True when the (non-shared, valid) filter matches the topic name.

    ``#`` also matches its parent level (``a/#`` matches ``a``)
    [MQTT-4.7.1-2]; a filter starting with a wildcard does not match topic
    names starting with ``$`` [MQTT-4.7.2-1] unless ``dollar_rule`` is
    false.  This is the reference semantics the subscription trie
    (core/subscriptions.py) must agree with.
    """
    if dollar_rule and topic_name.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    if "+" not in topic_filter and "#" not in topic_filter:
        return topic_filter == topic_name
    return match_levels(topic_filter.split("/"), topic_name.split("/"))
