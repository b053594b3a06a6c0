"""
Tests for L{nanomq_twisted.core.subscriptions}.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.core.subscriptions import EMPTY_MATCH, SubscriptionTrie


def _matches(topic_filter, topic):
    """Independent reference matcher, straight from MQTT section 4.7."""
    flevels = topic_filter.split("/")
    tlevels = topic.split("/")
    if topic.startswith("$") and flevels[0] in ("+", "#"):
        return False
    for i, flevel in enumerate(flevels):
        if flevel == "#":
            return True
        if i >= len(tlevels):
            return False
        if flevel != "+" and flevel != tlevels[i]:
            return False
    return len(flevels) == len(tlevels)


def _real(topic_filter):
    """(group, real filter) by the reference's own reading of the spec."""
    if topic_filter.startswith("$share/"):
        _, group, real = topic_filter.split("/", 2)
        return group, real
    if topic_filter.startswith("$queue/"):
        return "$queue", topic_filter[len("$queue/") :]
    return None, topic_filter


# (filter, topic, matches) -- MQTT 5.0 section 4.7 examples and the
# boundary cases around them.
MATCH_TABLE = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/tennis/player1/#", "sport/tennis/player2", False),
    ("sport/tennis/player1/#", "sport/tennis", False),
    ("sport/#", "sport", True),
    ("sport/#", "sports", False),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player2", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+", "sport", True),
    ("+", "", True),
    ("#", "sport/tennis", True),
    ("#", "/", True),
    ("#", "$SYS/monitor", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/#", "$SYS", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("+/#", "$SYS/x", False),
    ("a//b", "a//b", True),
    ("a/+/b", "a//b", True),
    ("a/b", "a//b", False),
    ("/#", "/a", True),
    ("/#", "a", False),
    ("+/a", "/a", True),
    ("a/+/#", "a/b", True),
    ("a/+/#", "a", False),
    ("$share/g/+/x", "a/x", True),
    ("$share/g/#", "$SYS/x", False),
    ("$queue/#", "$SYS/x", False),
    ("$queue/a/+", "a/b", True),
]


class MatchTableTests(SynchronousTestCase):
    """The spec's examples, one filter at a time."""

    def assertTableCase(self, topic_filter, topic, expected):
        trie = SubscriptionTrie()
        trie.add("c", topic_filter, "v")
        result = trie.match(topic)
        got = bool(result.normal) or bool(result.shared)
        self.assertEqual(got, expected, f"{topic_filter!r} vs {topic!r}")
        # The reference must agree with the table too.
        self.assertEqual(_matches(_real(topic_filter)[1], topic), expected)

    def test_spec_examples_MQTT_4_7(self):
        for topic_filter, topic, expected in MATCH_TABLE:
            self.assertTableCase(topic_filter, topic, expected)

    def test_dollar_topics_not_matched_by_leading_wildcard_MQTT_4_7_2_1(self):
        trie = SubscriptionTrie()
        trie.add("hash", "#", 1)
        trie.add("plus", "+/monitor/Clients", 2)
        trie.add("sys", "$SYS/#", 3)
        trie.add("mon", "$SYS/monitor/+", 4)
        result = trie.match("$SYS/monitor/Clients")
        self.assertEqual(result.normal, {"sys": [3], "mon": [4]})
        self.assertEqual(
            trie.match("x/monitor/Clients").normal, {"hash": [1], "plus": [2]}
        )

    def test_all_table_filters_together(self):
        trie = SubscriptionTrie()
        filters = sorted({f for f, _, _ in MATCH_TABLE})
        for i, f in enumerate(filters):
            trie.add(f"c{i}", f, f)
        for topic in sorted({t for _, t, _ in MATCH_TABLE}):
            result = trie.match(topic)
            got = sorted(v for vs in result.normal.values() for v in vs)
            got += sorted(members[0][1] for _, members in result.shared)
            want = [f for f in filters if _real(f)[0] is None and _matches(f, topic)]
            want += sorted(
                f
                for f in filters
                if _real(f)[0] is not None and _matches(_real(f)[1], topic)
            )
            self.assertEqual(got, want, topic)


class SubscriptionTrieTests(SynchronousTestCase):
    """Add/remove bookkeeping, shared groups, cache, inspection."""

    def test_add_returns_whether_replaced(self):
        trie = SubscriptionTrie()
        self.assertFalse(trie.add("a", "x/+", 1))
        self.assertTrue(trie.add("a", "x/+", 2))
        self.assertFalse(trie.add("b", "x/+", 3))
        self.assertEqual(trie.match("x/y").normal, {"a": [2], "b": [3]})
        self.assertEqual((len(trie), trie.filter_count), (2, 1))

    def test_overlapping_filters_of_one_client_MQTT_3_3_4_2(self):
        trie = SubscriptionTrie()
        trie.add("a", "s/#", "hash")
        trie.add("a", "s/+", "plus")
        trie.add("a", "s/t", "lit")
        trie.add("a", "+/t", "plus2")
        result = trie.match("s/t")
        self.assertEqual(sorted(result.normal["a"]), ["hash", "lit", "plus", "plus2"])
        self.assertEqual(result.shared, [])

    def test_shared_groups(self):
        trie = SubscriptionTrie()
        trie.add("a", "$share/g1/s/+", 1)
        trie.add("b", "$share/g1/s/+", 2)
        trie.add("c", "$share/g2/s/+", 3)
        trie.add("d", "$share/g1/s/#", 4)
        trie.add("e", "s/+", 5)
        trie.add("a", "$share/g1/s/+", 6)  # replace keeps position
        result = trie.match("s/x")
        self.assertEqual(result.normal, {"e": [5]})
        self.assertEqual(
            sorted(result.shared),
            [
                (("g1", "s/#"), [("d", 4)]),
                (("g1", "s/+"), [("a", 6), ("b", 2)]),
                (("g2", "s/+"), [("c", 3)]),
            ],
        )
        self.assertEqual(trie.filter_count, 4)
        self.assertEqual(trie.subscription_count, 5)

    def test_queue_group(self):
        trie = SubscriptionTrie()
        self.assertFalse(trie.add("a", "$queue/q/1", 1))
        self.assertFalse(trie.add("b", "$queue/q/1", 2))
        self.assertEqual(
            trie.match("q/1").shared, [(("$queue", "q/1"), [("a", 1), ("b", 2)])]
        )
        self.assertEqual(trie.filters_of("a"), ["$queue/q/1"])
        self.assertTrue(trie.remove("a", "$queue/q/1"))
        self.assertEqual(trie.match("q/1").shared, [(("$queue", "q/1"), [("b", 2)])])

    def test_shared_and_plain_are_distinct_subscriptions(self):
        trie = SubscriptionTrie()
        trie.add("a", "t", 1)
        self.assertFalse(trie.add("a", "$share/g/t", 2))
        self.assertEqual(len(trie), 2)
        self.assertFalse(trie.remove("a", "$share/h/t"))
        self.assertTrue(trie.remove("a", "t"))
        self.assertFalse(trie.remove("a", "t"))
        self.assertEqual(trie.match("t").normal, {})
        self.assertEqual(trie.match("t").shared, [(("g", "t"), [("a", 2)])])

    def test_remove_prunes_to_empty(self):
        trie = SubscriptionTrie()
        filters = [
            "a/b/c",
            "a/+/c",
            "a/#",
            "#",
            "+",
            "/",
            "a//b",
            "$share/g/a/b/c",
            "$queue/z/y",
            "$SYS/#",
        ]
        for f in filters:
            trie.add("x", f, f)
            trie.add("y", f, f)
        self.assertGreater(trie.node_count(), 0)
        for f in filters:
            self.assertTrue(trie.remove("x", f))
        self.assertEqual(trie.subscription_count, len(filters))
        self.assertEqual(trie.filter_count, len(filters))
        for f in reversed(filters):
            self.assertTrue(trie.remove("y", f))
        self.assertEqual(trie.node_count(), 0)
        self.assertEqual((len(trie), trie.filter_count), (0, 0))
        self.assertEqual(trie._by_client, {})
        self.assertIs(trie.match("a/b/c"), EMPTY_MATCH)

    def test_remove_unknown(self):
        trie = SubscriptionTrie()
        trie.add("a", "x/y", 1)
        self.assertFalse(trie.remove("a", "x/z"))
        self.assertFalse(trie.remove("a", "x"))
        self.assertFalse(trie.remove("b", "x/y"))
        self.assertFalse(trie.remove("a", "x/y/#"))
        self.assertEqual(trie.node_count(), 2)

    def test_remove_client(self):
        trie = SubscriptionTrie()
        trie.add("a", "x/+", 1)
        trie.add("a", "$share/g/x/#", 2)
        trie.add("b", "x/+", 3)
        self.assertEqual(trie.remove_client("a"), 2)
        self.assertEqual(trie.remove_client("a"), 0)
        self.assertEqual(trie.match("x/y").normal, {"b": [3]})
        self.assertEqual(trie.match("x/y").shared, [])

    def test_cache_hit_returns_same_object(self):
        trie = SubscriptionTrie()
        trie.add("a", "t/+", 1)
        first = trie.match("t/1")
        self.assertIs(trie.match("t/1"), first)

    def test_cache_invalidated_by_add_and_remove(self):
        trie = SubscriptionTrie()
        trie.add("a", "t/+", 1)
        self.assertEqual(trie.match("t/1").normal, {"a": [1]})
        trie.add("b", "t/#", 2)
        self.assertEqual(trie.match("t/1").normal, {"a": [1], "b": [2]})
        trie.add("b", "t/#", 3)
        self.assertEqual(trie.match("t/1").normal, {"a": [1], "b": [3]})
        trie.remove("a", "t/+")
        self.assertEqual(trie.match("t/1").normal, {"b": [3]})
        trie.add("c", "$share/g/t/1", 4)
        self.assertEqual(trie.match("t/1").shared, [(("g", "t/1"), [("c", 4)])])

    def test_cache_bounded(self):
        trie = SubscriptionTrie(cache_size=4)
        trie.add("a", "#", 1)
        for i in range(10):
            self.assertEqual(trie.match(f"t/{i}").normal, {"a": [1]})
            self.assertLessEqual(len(trie._cache), 4)

    def test_iter_subscriptions_and_walk(self):
        trie = SubscriptionTrie()
        trie.add("a", "x/+", 1)
        trie.add("b", "x/+", 2)
        trie.add("a", "$share/g/x/#", 3)
        trie.add("c", "$queue/q", 4)
        trie.add("c", "x", 5)
        self.assertEqual(
            sorted(trie.iter_subscriptions()),
            [
                ("a", "$share/g/x/#", 3),
                ("a", "x/+", 1),
                ("b", "x/+", 2),
                ("c", "$queue/q", 4),
                ("c", "x", 5),
            ],
        )
        walked = list(trie.walk())
        self.assertEqual(
            sorted(walked),
            [
                ("$queue/q", ["c"]),
                ("$share/g/x/#", ["a"]),
                ("x", ["c"]),
                ("x/+", ["a", "b"]),
            ],
        )
        # Parents come before their children.
        names = [f for f, _ in walked]
        self.assertLess(names.index("x"), names.index("x/+"))


# -- property test against the brute-force reference ---------------------

_LEVEL = st.sampled_from(["a", "b", "", "$s"])
_FLEVEL = st.sampled_from(["a", "b", "", "$s", "+"])
_TOPICS = st.lists(_LEVEL, min_size=1, max_size=4).map("/".join)


@st.composite
def _filters(draw):
    levels = draw(st.lists(_FLEVEL, min_size=0, max_size=3))
    if draw(st.booleans()) or not levels:
        levels.append("#")
    real = "/".join(levels)
    kind = draw(st.sampled_from(["plain", "plain", "share", "queue"]))
    if kind == "share":
        group = draw(st.sampled_from(["g", "h"]))
        return f"$share/{group}/{real}"
    if kind == "queue":
        return "$queue/" + real
    return real


_OPS = st.lists(
    st.tuples(st.booleans(), st.sampled_from(["c1", "c2", "c3"]), _filters()),
    min_size=1,
    max_size=40,
)


class PropertyTests(SynchronousTestCase):
    """The trie agrees with the reference for random tables and topics."""

    @settings(max_examples=300, deadline=None)
    @given(ops=_OPS, topics=st.lists(_TOPICS, min_size=1, max_size=8))
    def test_match_agrees_with_brute_force(self, ops, topics):
        trie = SubscriptionTrie()
        model = {}  # (client, group, real) -> value, in insertion order
        for serial, (is_add, client, topic_filter) in enumerate(ops):
            group, real = _real(topic_filter)
            key = (client, group, real)
            if is_add:
                self.assertEqual(trie.add(client, topic_filter, serial), key in model)
                model[key] = serial
            else:
                self.assertEqual(trie.remove(client, topic_filter), key in model)
                model.pop(key, None)
            # Interleave matches so the cache is exercised across changes.
            for topic in topics:
                self.assertMatchesModel(trie, model, topic)
        self.assertEqual(len(trie), len(model))
        self.assertEqual(trie.filter_count, len({(g, r) for (_, g, r) in model}))
        for client, group, real in list(model):
            text = real if group is None else f"$share/{group}/{real}"
            self.assertTrue(trie.remove(client, text))
        self.assertEqual(trie.node_count(), 0)
        self.assertEqual(trie.filter_count, 0)

    def assertMatchesModel(self, trie, model, topic):
        result = trie.match(topic)
        normal = {}
        shared = {}
        for (client, group, real), value in model.items():
            if not _matches(real, topic):
                continue
            if group is None:
                normal.setdefault(client, []).append(value)
            else:
                shared.setdefault((group, real), []).append((client, value))
        got_normal = {c: sorted(vs) for c, vs in result.normal.items()}
        want_normal = {c: sorted(vs) for c, vs in normal.items()}
        self.assertEqual(got_normal, want_normal, topic)
        self.assertEqual(dict(result.shared), shared, topic)
        self.assertEqual(len(result.shared), len(shared))
