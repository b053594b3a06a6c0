# -*- test-case-name: tests.unit.test_retain -*-
"""
The retained-message store: one message per topic name, looked up by filter.

Design
======

This is the mirror image of the subscription trie.  There the *stored* keys
are filters and the query is a topic name; here the stored keys are topic
names and the query is a filter.  Retained messages are kept in a trie keyed
by topic level, so a new subscription walks only the branches its filter can
reach: a literal level is one dict lookup, ``+`` fans out to the children of
the current nodes, and ``#`` takes a whole subtree.  A filter without
wildcards skips the trie and is answered from a flat ``topic -> entry`` dict,
which also serves ``get``, ``len`` and ``iter_all``.

The ``$`` rule [MQTT-4.7.2-1] is applied at the root only: a leading ``+`` or
``#`` skips root children whose level starts with ``$``.

Expiry
======

The broker passes ``now`` (seconds, any monotonic origin) in; the store never
reads a clock, which keeps it deterministic under test.  A message stored
with a Message Expiry Interval gets a deadline ``now + interval``.  ``match``
skips and deletes entries whose deadline has been reached [MQTT-3.3.2-5] and
reports the remaining whole seconds (rounded up, so a live message never
claims 0) for the broker to send as the adjusted interval [MQTT-3.3.2-6].
Entries with a deadline are also indexed in a separate dict so the periodic
``expire`` sweep costs O(expiring entries), not O(all retained messages).

This module is pure: no I/O, no clock, no Twisted.
"""

from __future__ import annotations

from collections.abc import Iterator
from math import ceil
from typing import Any

__all__ = ["RetainStore"]


class _Entry:
    """A retained message; ``deadline`` is None when it never expires;
    ``size`` is what it is charged against ``max_retained_bytes``."""

    __slots__ = ("deadline", "interval", "message", "size", "stored_at", "topic")

    def __init__(
        self, topic: str, message: Any, now: float, interval: int | None, size: int
    ) -> None:
        self.topic = topic
        self.message = message
        self.stored_at = now
        self.interval = interval
        self.deadline = None if interval is None else now + interval
        self.size = size


class _Node:
    __slots__ = ("children", "entry")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.entry: _Entry | None = None


class RetainStore:
    """Retained messages by topic name (see module doc).

    ``message`` is opaque to the store (the broker's publish record);
    ``bytes`` is the sum of the sizes its callers gave (the quota
    ``max_retained_bytes`` is checked against it by core/quotas.py).
    """

    def __init__(self) -> None:
        self._root = _Node()
        self._by_topic: dict[str, _Entry] = {}
        self._expiring: dict[str, _Entry] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._by_topic)

    def __contains__(self, topic: object) -> bool:
        return topic in self._by_topic

    # -- mutation -------------------------------------------------------

    def set(
        self,
        topic: str,
        message: Any,
        now: float,
        expiry_interval: int | None = None,
        size: int = 0,
    ) -> bool:
        """Retain ``message`` for ``topic``, replacing any previous one.

        ``expiry_interval`` is the publish's Message Expiry Interval in
        seconds, or None for "never expires".  Returns True if a message was
        replaced.  An empty-payload retained publish means delete: the
        broker calls ``delete`` for that instead.  ``size`` is what the
        message is charged (core/quotas.py ``message_size``).
        """
        entry = _Entry(topic, message, now, expiry_interval, size)
        old = self._by_topic.get(topic)
        self.bytes += size
        if old is None:
            node = self._root
            for level in topic.split("/"):
                child = node.children.get(level)
                if child is None:
                    child = node.children[level] = _Node()
                node = child
            node.entry = entry
        else:
            # Same topic, same node: swap the entry in place, no trie walk.
            old.message = message
            old.stored_at = now
            old.interval = expiry_interval
            old.deadline = entry.deadline
            self.bytes -= old.size
            old.size = size
            entry = old
        self._by_topic[topic] = entry
        if entry.deadline is None:
            self._expiring.pop(topic, None)
        else:
            self._expiring[topic] = entry
        return old is not None

    def delete(self, topic: str) -> bool:
        """Forget the retained message of ``topic``; True if there was one.

        Emptied trie nodes are pruned so deleted topics do not leak memory.
        """
        entry = self._by_topic.pop(topic, None)
        if entry is None:
            return False
        self.bytes -= entry.size
        self._expiring.pop(topic, None)
        path: list[tuple[_Node, str]] = []
        node = self._root
        for level in topic.split("/"):
            path.append((node, level))
            node = node.children[level]
        node.entry = None
        while path and node.entry is None and not node.children:
            parent, level = path.pop()
            del parent.children[level]
            node = parent
        return True

    def expire(self, now: float) -> int:
        """Drop every message whose expiry has passed; returns how many."""
        dead = [t for t, e in self._expiring.items() if now >= e.deadline]
        for topic in dead:
            self.delete(topic)
        return len(dead)

    # -- lookup ---------------------------------------------------------

    def size_of(self, topic: str) -> int | None:
        """The size ``topic``'s message was charged, None if it has none."""
        entry = self._by_topic.get(topic)
        return None if entry is None else entry.size

    def get(self, topic: str, now: float | None = None) -> Any:
        """The retained message of ``topic``, or None.

        With ``now`` given, an expired message is deleted and None returned.
        """
        entry = self._by_topic.get(topic)
        if entry is None:
            return None
        deadline = entry.deadline
        if now is not None and deadline is not None and now >= deadline:
            self.delete(topic)
            return None
        return entry.message

    def match(self, topic_filter: str, now: float) -> list[tuple[Any, int | None]]:
        """Retained messages matching ``topic_filter`` (validated).

        Returns ``[(message, remaining_seconds_or_None), ...]`` in no
        particular order.  Expired messages are removed, not returned
        [MQTT-3.3.2-5]; ``remaining`` is the adjusted Message Expiry
        Interval to send [MQTT-3.3.2-6].
        """
        out: list[tuple[Any, int | None]] = []
        expired: list[str] = []

        def emit(entry: _Entry) -> None:
            deadline = entry.deadline
            if deadline is None:
                out.append((entry.message, None))
            elif now >= deadline:
                expired.append(entry.topic)
            else:
                out.append((entry.message, ceil(deadline - now)))

        if "+" not in topic_filter and "#" not in topic_filter:
            entry = self._by_topic.get(topic_filter)
            if entry is not None:
                emit(entry)
        else:
            self._walk(topic_filter.split("/"), emit)

        for topic in expired:
            self.delete(topic)
        return out

    def _walk(self, levels: list[str], emit: Any) -> None:
        """Feed ``emit`` every entry whose topic matches the filter levels."""
        nodes = [self._root]
        at_root = True
        for level in levels:
            if level == "#":
                # Matches the parent level itself and the whole subtree.
                stack: list[_Node] = []
                for node in nodes:
                    if at_root:
                        stack.extend(
                            child
                            for key, child in node.children.items()
                            if key[:1] != "$"
                        )
                    else:
                        if node.entry is not None:
                            emit(node.entry)
                        stack.extend(node.children.values())
                while stack:
                    node = stack.pop()
                    if node.entry is not None:
                        emit(node.entry)
                    stack.extend(node.children.values())
                return
            nxt: list[_Node] = []
            if level == "+":
                for node in nodes:
                    if at_root:
                        nxt.extend(
                            child
                            for key, child in node.children.items()
                            if key[:1] != "$"
                        )
                    else:
                        nxt.extend(node.children.values())
            else:
                for node in nodes:
                    child = node.children.get(level)
                    if child is not None:
                        nxt.append(child)
            if not nxt:
                return
            nodes = nxt
            at_root = False
        for node in nodes:
            if node.entry is not None:
                emit(node.entry)

    # -- inspection -----------------------------------------------------

    def iter_all(self) -> Iterator[tuple[str, Any, float, int | None]]:
        """Yield ``(topic, message, stored_at, expiry_interval)`` for all.

        Raw facts for persistence; expired-but-unswept entries are included
        (call ``expire`` first to skip them).  Do not mutate while iterating.
        """
        for topic, entry in self._by_topic.items():
            yield topic, entry.message, entry.stored_at, entry.interval

    def node_count(self) -> int:
        """Number of trie nodes below the root (diagnostics and tests)."""
        count = 0
        stack = [self._root]
        while stack:
            node = stack.pop()
            count += len(node.children)
            stack.extend(node.children.values())
        return count
