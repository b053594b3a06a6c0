# -*- test-case-name: tests.unit.test_subscriptions -*-
"""
The subscription table: topic filter -> subscribers, answered per topic.

Design
======

Filters are stored in a trie keyed by topic level (the text between ``/``
separators).  Literal levels live in a per-node ``children`` dict; the two
wildcards get dedicated slots (``plus`` and ``hash``) instead of dict keys so
the match loop reads them as attributes and never confuses them with a
literal.  A valid topic *name* can never contain ``+`` or ``#``, so a literal
child can never collide with a wildcard.

Matching a topic walks the levels once, carrying the set of trie nodes whose
path matches the prefix seen so far.  At each level a node contributes at
most three successors (literal child, ``+`` child) and its ``#`` child matches
outright, so a cache miss costs O(levels x matching branches) and never
touches subscriptions that cannot match.  Every node is reached at most once
per match because the trie is a tree, so no de-duplication is needed.

The ``$`` rule [MQTT-4.7.2-1]: a topic whose first level starts with ``$``
skips the root's wildcard slots; only a literal first level can reach it.

Shared subscriptions (``$share/<group>/<filter>`` and NanoMQ's
``$queue/<filter>``, whose group is ``"$queue"``) are stored on the node of
their *real* filter, per group, so they are matched exactly like ordinary
filters but reported separately: the broker picks one member per group.
``$share/$queue/f`` and ``$queue/f`` therefore name the same group; the
canonical text reported back for it is ``$queue/f``.

Routing cache
=============

A broker publishes to a small, hot set of topics far more often than the
subscription table changes.  ``match`` results are cached per topic name in
a plain dict; any ``add``/``remove`` that changes the table drops the whole
cache (a subscribe is rare compared to publishes, and a targeted invalidation
would need the very trie walk the cache is avoiding).  The cache is bounded
by clearing it whole when full: no LRU bookkeeping on the hot path, and a
topic that is actually hot is back in the cache after one miss.

Because results are shared between callers, the ``Match`` objects (and the
dicts/lists inside them) are read-only by contract; they are not copied on
return.

This module is pure: no I/O, no clock, no Twisted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..mqtt.topics import parse_shared, shared_text

__all__ = [
    "DEFAULT_CACHE_SIZE",
    "EMPTY_MATCH",
    "Match",
    "SubscriptionTrie",
]

#: Default bound on the number of cached ``match`` results.
DEFAULT_CACHE_SIZE = 65536


class Match:
    """The subscribers of one topic name.  Read-only: it may be cached.

    ``normal``
        ``{client_id: [value, ...]}`` with one value per matching non-shared
        filter of that client; several entries mean overlapping filters,
        which the broker merges [MQTT-3.3.4-2].
    ``shared``
        ``[((group, real_filter), [(client_id, value), ...]), ...]`` with the
        members of each group in subscription order; the broker delivers to
        one member per group.
    """

    __slots__ = ("normal", "shared")

    def __init__(
        self,
        normal: dict[str, list[Any]],
        shared: list[tuple[tuple[str, str], list[tuple[str, Any]]]],
    ) -> None:
        self.normal = normal
        self.shared = shared

    def __bool__(self) -> bool:
        return bool(self.normal) or bool(self.shared)

    def __repr__(self) -> str:
        return f"Match(normal={self.normal!r}, shared={self.shared!r})"


#: The result for a topic nobody subscribes to; shared, never mutate it.
EMPTY_MATCH = Match({}, [])


class _Node:
    """One trie level.

    ``subs`` maps client id -> value for the plain filter ending here;
    ``groups`` (None until first needed, shared subscriptions are rare) maps
    group -> {client id: value} for shared filters ending here; ``filter`` is
    the real filter text of this node, kept only where ``groups`` needs it to
    build the ``(group, filter)`` key without re-joining levels per match.
    """

    __slots__ = ("children", "filter", "groups", "hash", "plus", "subs")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.plus: _Node | None = None
        self.hash: _Node | None = None
        self.subs: dict[str, Any] = {}
        self.groups: dict[str, dict[str, Any]] | None = None
        self.filter: str | None = None

    def is_empty(self) -> bool:
        return not (
            self.subs
            or self.groups
            or self.children
            or self.plus is not None
            or self.hash is not None
        )


class SubscriptionTrie:
    """All subscriptions of the broker, matched per topic (see module doc).

    ``value`` is opaque: the broker's subscription-options record.
    """

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._root = _Node()
        self._cache: dict[str, Match] = {}
        self._cache_size = max(1, cache_size)
        # client id -> {canonical filter text: None}; an ordered set so a
        # session teardown can remove its subscriptions without a trie scan.
        self._by_client: dict[str, dict[str, None]] = {}
        self._filter_count = 0
        self._subscription_count = 0

    # -- counters -------------------------------------------------------

    @property
    def filter_count(self) -> int:
        """Distinct filters with at least one subscriber.

        Each shared group counts once under its ``$share/g/f`` text.
        """
        return self._filter_count

    @property
    def subscription_count(self) -> int:
        """Total number of (client id, filter) pairs."""
        return self._subscription_count

    def __len__(self) -> int:
        return self._subscription_count

    # -- mutation -------------------------------------------------------

    def add(self, client_id: str, topic_filter: str, value: Any) -> bool:
        """Subscribe ``client_id`` to ``topic_filter`` (already validated).

        Returns True if the client already had this exact filter, in which
        case its value is replaced (the MQTT "replace existing subscription"
        case, which also tells the broker about Retain Handling 1).
        """
        group, real = parse_shared(topic_filter)
        node = self._root
        for level in real.split("/"):
            if level == "+":
                nxt = node.plus
                if nxt is None:
                    nxt = node.plus = _Node()
            elif level == "#":
                nxt = node.hash
                if nxt is None:
                    nxt = node.hash = _Node()
            else:
                nxt = node.children.get(level)
                if nxt is None:
                    nxt = node.children[level] = _Node()
            node = nxt

        if group is None:
            table = node.subs
            text = real
        else:
            groups = node.groups
            if groups is None:
                groups = node.groups = {}
                node.filter = real
            table = groups.get(group)
            if table is None:
                table = groups[group] = {}
            text = shared_text(group, real)

        existed = client_id in table
        if not existed:
            if not table:
                self._filter_count += 1
            self._subscription_count += 1
            mine = self._by_client.get(client_id)
            if mine is None:
                mine = self._by_client[client_id] = {}
            mine[text] = None
        table[client_id] = value
        if self._cache:
            self._cache = {}
        return existed

    def remove(self, client_id: str, topic_filter: str) -> bool:
        """Unsubscribe; True if the subscription existed.

        Nodes left without subscribers or children are pruned bottom-up, so
        a churn of distinct filters does not grow the trie.
        """
        group, real = parse_shared(topic_filter)
        path: list[tuple[_Node, str]] = []
        node = self._root
        for level in real.split("/"):
            if level == "+":
                nxt = node.plus
            elif level == "#":
                nxt = node.hash
            else:
                nxt = node.children.get(level)
            if nxt is None:
                return False
            path.append((node, level))
            node = nxt

        if group is None:
            table = node.subs
            if client_id not in table:
                return False
            del table[client_id]
            if not table:
                self._filter_count -= 1
            text = real
        else:
            groups = node.groups
            table = groups.get(group) if groups else None
            if not table or client_id not in table:
                return False
            del table[client_id]
            if not table:
                self._filter_count -= 1
                del groups[group]  # type: ignore[index]
                if not groups:
                    node.groups = None
                    node.filter = None
            text = shared_text(group, real)

        self._subscription_count -= 1
        mine = self._by_client.get(client_id)
        if mine is not None:
            mine.pop(text, None)
            if not mine:
                del self._by_client[client_id]

        while path and node.is_empty():
            parent, level = path.pop()
            if level == "+":
                parent.plus = None
            elif level == "#":
                parent.hash = None
            else:
                del parent.children[level]
            node = parent

        if self._cache:
            self._cache = {}
        return True

    def remove_client(self, client_id: str) -> int:
        """Drop every subscription of ``client_id``; returns how many."""
        mine = self._by_client.get(client_id)
        if not mine:
            return 0
        count = 0
        for text in list(mine):
            if self.remove(client_id, text):
                count += 1
        return count

    def filters_of(self, client_id: str) -> list[str]:
        """The (canonical) filters ``client_id`` subscribes to, in order."""
        return list(self._by_client.get(client_id, ()))

    # -- matching -------------------------------------------------------

    def match(self, topic: str) -> Match:
        """Subscribers of the topic name ``topic`` (validated, no wildcards).

        The result is cached until the next change to the table and is
        shared between callers: do not mutate it.
        """
        cache = self._cache
        result = cache.get(topic)
        if result is not None:
            return result
        result = self._match(topic)
        if len(cache) >= self._cache_size:
            cache.clear()
        cache[topic] = result
        return result

    def _match(self, topic: str) -> Match:
        levels = topic.split("/")
        if topic[:1] == "$":
            # [MQTT-4.7.2-1]: a leading '+' or '#' must not see $-topics, so
            # start below the root through the literal first level only.
            first = self._root.children.get(levels[0])
            if first is None:
                return EMPTY_MATCH
            nodes = [first]
            del levels[0]
        else:
            nodes = [self._root]

        normal: dict[str, list[Any]] = {}
        shared: list[tuple[tuple[str, str], list[tuple[str, Any]]]] = []

        def collect(node: _Node) -> None:
            for client_id, value in node.subs.items():
                values = normal.get(client_id)
                if values is None:
                    normal[client_id] = [value]
                else:
                    values.append(value)
            groups = node.groups
            if groups:
                real = node.filter
                for group, members in groups.items():
                    shared.append(((group, real), list(members.items())))

        for level in levels:
            nxt = []
            for node in nodes:
                hash_node = node.hash
                if hash_node is not None:
                    # '#' matches this level and everything below it.
                    collect(hash_node)
                child = node.children.get(level)
                if child is not None:
                    nxt.append(child)
                plus = node.plus
                if plus is not None:
                    nxt.append(plus)
            nodes = nxt
            if not nodes:
                break
        for node in nodes:
            collect(node)
            hash_node = node.hash
            if hash_node is not None:
                # 'sport/#' also matches 'sport' itself (the parent level).
                collect(hash_node)

        if not normal and not shared:
            return EMPTY_MATCH
        return Match(normal, shared)

    # -- inspection -----------------------------------------------------

    def _iter_nodes(self) -> Iterator[tuple[str, _Node]]:
        """Depth-first ``(real filter, node)`` for every non-root node."""
        stack: list[tuple[tuple[str, ...], _Node]] = [((), self._root)]
        while stack:
            levels, node = stack.pop()
            if levels:
                yield "/".join(levels), node
            if node.hash is not None:
                stack.append((levels + ("#",), node.hash))
            if node.plus is not None:
                stack.append((levels + ("+",), node.plus))
            for level, child in reversed(node.children.items()):
                stack.append((levels + (level,), child))

    def iter_subscriptions(self) -> Iterator[tuple[str, str, Any]]:
        """Yield ``(client_id, topic_filter, value)`` for every subscription.

        Shared filters come back as ``$share/<group>/<filter>`` (or
        ``$queue/<filter>``).  Do not mutate the table while iterating.
        """
        for real, node in self._iter_nodes():
            for client_id, value in node.subs.items():
                yield client_id, real, value
            if node.groups:
                for group, members in node.groups.items():
                    text = shared_text(group, real)
                    for client_id, value in members.items():
                        yield client_id, text, value

    def walk(self) -> Iterator[tuple[str, list[str]]]:
        """Yield ``(topic_filter, [client_id, ...])`` per subscribed filter.

        Depth-first, parents before children, for the REST ``/topic-tree``
        view; shared groups are reported under their ``$share/g/f`` text.
        """
        for real, node in self._iter_nodes():
            if node.subs:
                yield real, list(node.subs)
            if node.groups:
                for group, members in node.groups.items():
                    yield shared_text(group, real), list(members)

    def node_count(self) -> int:
        """Number of trie nodes below the root (diagnostics and tests)."""
        return sum(1 for _ in self._iter_nodes())
