# -*- test-case-name: tests.unit.test_bridge_topics -*-
"""
Bridge topic mapping: which local messages go up, under which remote topic,
and under which local topic a message from the remote comes down.

Pure (stdlib + ``mqtt.topics``), so it is tested with plain tables.  The
rules are NanoMQ's (spec/bridges.md §3-§5):

* upward (forwards), **every** entry whose ``local_topic`` filter matches
  fires; ``$SYS`` topics never go up;
* downward (subscription), only the **first** entry whose ``remote_topic``
  filter matches applies; no match leaves the topic unchanged;
* a template with ``+``/``#`` is remapped from the matching filter by
  `remap`; a template without wildcards is used literally; ``""`` keeps the
  original topic; ``prefix``/``suffix`` are plain string concatenation.

NanoMQ crashes on an invalid upward template (null topic); we keep the
original topic instead, as it does downward, and the caller logs it.

With ``parallel_connections`` (our key) the forwards of one bridge are
spread over several connections by `shard`, a stable hash of the *local*
topic, so every message of one local topic takes the same connection and
keeps its order.
"""

import zlib

from ..mqtt.topics import match, parse_shared

__all__ = [
    "Outgoing",
    "downward",
    "matching_filter",
    "remap",
    "shard",
    "upward",
]


def remap(template, source_filter, topic):
    """Cut ``topic`` (which matched ``source_filter``) down to the levels
    that ``template`` selects; None when the template is invalid.

    ``template`` must occur in ``source_filter`` as a substring; the levels
    of ``topic`` before that occurrence are dropped, and the result keeps as
    many levels as the template has (or all remaining ones when the
    template runs to the end of the filter)::

        remap("+/abv/#", "X/zb/+/abv/#", "X/zb/abc/abv/d1/d2") == "abc/abv/d1/d2"
        remap("zb/+",    "X/zb/+/abv/#", "X/zb/abc/abv/d1/d2") == "zb/abc"
    """
    if "+" not in template and "#" not in template:
        return template
    if "#" in template and (not template.endswith("#") or not source_filter.endswith("#")):
        return None
    at = source_filter.find(template)
    if at < 0:
        return None
    skip = source_filter.count("/", 0, at)
    levels = topic.split("/")[skip:]
    if at + len(template) != len(source_filter):
        levels = levels[: template.count("/") + 1]
    if not levels:
        return None
    return "/".join(levels)


def shard(topic, count):
    """The connection (0 .. ``count`` - 1) that carries the forwards of
    local ``topic``: CRC-32 of its UTF-8 bytes modulo ``count``, the same
    in every process and run (unlike ``hash``)."""
    if count <= 1:
        return 0
    return zlib.crc32(topic.encode("utf-8")) % count


def matching_filter(topic_filter):
    """The plain filter a (possibly ``$share/...``) subscription matches."""
    return parse_shared(topic_filter)[1]


def _wrap(entry, topic):
    return "".join((entry.prefix or "", topic, entry.suffix or ""))


class Outgoing:
    """One upward copy of a local message: the remote topic, QoS, retain
    and whether the remap template was invalid (the caller warns)."""

    __slots__ = ("invalid", "qos", "retain", "topic")

    def __init__(self, topic, qos, retain, invalid=False):
        self.topic = topic
        self.qos = qos
        self.retain = retain
        self.invalid = invalid

    def __eq__(self, other):
        return isinstance(other, Outgoing) and (
            (self.topic, self.qos, self.retain, self.invalid)
            == (other.topic, other.qos, other.retain, other.invalid)
        )

    # Compared by value, so not hashable (as a dataclass with eq would be).
    __hash__ = None

    def __repr__(self):
        invalid = ", invalid" if self.invalid else ""
        return f"Outgoing({self.topic!r}, qos={self.qos}, retain={self.retain!r}{invalid})"


def upward(forwards, topic, qos, retain):
    """The copies of a local message (``topic``/``qos``/``retain``) that
    ``forwards`` (a sequence of ``BridgeForward``) send to the remote."""
    if topic.startswith("$SYS"):
        return []
    out = []
    for entry in forwards:
        if not match(entry.local_topic, topic):
            continue
        invalid = False
        template = entry.remote_topic
        if not template:
            remote = topic
        else:
            remote = remap(template, entry.local_topic, topic)
            if remote is None:
                remote, invalid = topic, True
        out.append(
            Outgoing(
                _wrap(entry, remote),
                qos if entry.qos is None else entry.qos,
                retain if entry.retain is None else bool(entry.retain),
                invalid,
            )
        )
    return out


def downward(subscriptions, topic, retain):
    """``(local_topic, retain, invalid)`` for a message received from the
    remote on ``topic``, per the first matching ``subscription`` entry."""
    for entry in subscriptions:
        source = matching_filter(entry.remote_topic)
        if not match(source, topic):
            continue
        invalid = False
        template = entry.local_topic
        if not template:
            local = topic
        else:
            local = remap(template, source, topic)
            if local is None:
                local, invalid = topic, True
        if entry.retain is not None:
            retain = bool(entry.retain)
        return _wrap(entry, local), retain, invalid
    return topic, retain, False
