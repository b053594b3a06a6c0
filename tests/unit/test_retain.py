"""
Tests for L{nanomq_twisted.core.retain}.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.core.retain import RetainStore


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


TOPICS = [
    "sport",
    "sport/",
    "sport/tennis",
    "sport/tennis/player1",
    "sport/tennis/player1/ranking",
    "sport/tennis/player1/score/wimbledon",
    "sport/tennis/player2",
    "/finance",
    "finance",
    "a//b",
    "/",
    "$SYS/monitor/Clients",
    "$SYS",
    "$SYS/broker/uptime",
]

FILTERS = [
    "sport/tennis/player1/#",
    "sport/#",
    "sport/tennis/+",
    "sport/+",
    "+/+",
    "/+",
    "+",
    "#",
    "$SYS/#",
    "+/monitor/Clients",
    "$SYS/monitor/+",
    "a/+/b",
    "a//b",
    "+/#",
    "/#",
    "sport/tennis/player1",
    "nothing/#",
    "$SYS",
    "+/+/+",
]


class RetainMatchTests(SynchronousTestCase):
    """Filter lookups over the spec's example topics."""

    def setUp(self):
        self.store = RetainStore()
        for topic in TOPICS:
            self.assertFalse(self.store.set(topic, "m:" + topic, 0.0, None))

    def test_spec_examples_MQTT_4_7(self):
        for topic_filter in FILTERS:
            got = sorted(m for m, _ in self.store.match(topic_filter, 1.0))
            want = sorted("m:" + t for t in TOPICS if _matches(topic_filter, t))
            self.assertEqual(got, want, topic_filter)

    def test_dollar_topics_not_matched_by_leading_wildcard_MQTT_4_7_2_1(self):
        self.assertNotIn(
            "m:$SYS/monitor/Clients",
            [m for m, _ in self.store.match("#", 0.0)],
        )
        self.assertEqual(self.store.match("+/monitor/Clients", 0.0), [])
        self.assertEqual(
            self.store.match("$SYS/monitor/+", 0.0), [("m:$SYS/monitor/Clients", None)]
        )

    def test_hash_matches_parent_level(self):
        self.assertIn(("m:sport", None), self.store.match("sport/#", 0.0))

    def test_exact_filter(self):
        self.assertEqual(
            self.store.match("sport/tennis", 0.0), [("m:sport/tennis", None)]
        )
        self.assertEqual(self.store.match("sport/tennis/x", 0.0), [])


class RetainStoreTests(SynchronousTestCase):
    """set/get/delete bookkeeping and expiry."""

    def test_set_replaces(self):
        store = RetainStore()
        self.assertFalse(store.set("a/b", 1, 0.0))
        self.assertTrue(store.set("a/b", 2, 0.0))
        self.assertEqual(store.get("a/b"), 2)
        self.assertEqual(len(store), 1)
        self.assertEqual(store.match("a/+", 0.0), [(2, None)])

    def test_delete_prunes(self):
        store = RetainStore()
        for topic in TOPICS:
            store.set(topic, topic, 0.0)
        self.assertGreater(store.node_count(), 0)
        self.assertFalse(store.delete("sport/tennis/nobody"))
        self.assertFalse(store.delete("sport/tennis/player1/ranking/x"))
        for topic in TOPICS:
            self.assertTrue(store.delete(topic), topic)
            self.assertIsNone(store.get(topic))
        self.assertFalse(store.delete("sport"))
        self.assertEqual(store.node_count(), 0)
        self.assertEqual(len(store), 0)
        self.assertEqual(store.match("#", 0.0), [])

    def test_delete_keeps_descendants(self):
        store = RetainStore()
        store.set("a", 1, 0.0)
        store.set("a/b/c", 2, 0.0)
        self.assertTrue(store.delete("a"))
        self.assertEqual(store.match("a/#", 0.0), [(2, None)])
        self.assertTrue(store.delete("a/b/c"))
        self.assertEqual(store.node_count(), 0)

    def test_expiry_with_stepped_now_MQTT_3_3_2_5(self):
        store = RetainStore()
        store.set("t/short", "short", 100.0, 10)
        store.set("t/long", "long", 100.0, 60)
        store.set("t/never", "never", 100.0, None)
        self.assertEqual(
            sorted(store.match("t/#", 100.0)),
            [("long", 60), ("never", None), ("short", 10)],
        )
        self.assertEqual(
            sorted(store.match("t/#", 104.5)),
            [("long", 56), ("never", None), ("short", 6)],
        )
        # At the deadline the message is gone, and removed from the store.
        self.assertEqual(
            sorted(store.match("t/#", 110.0)),
            [("long", 50), ("never", None)],
        )
        self.assertEqual(len(store), 2)
        self.assertIsNone(store.get("t/short"))
        self.assertEqual(store.match("t/long", 159.9), [("long", 1)])
        self.assertEqual(store.match("t/long", 160.0), [])
        self.assertEqual(len(store), 1)

    def test_remaining_interval_is_adjusted_MQTT_3_3_2_6(self):
        store = RetainStore()
        store.set("t", "m", 0.0, 30)
        self.assertEqual(store.match("t", 0.0), [("m", 30)])
        self.assertEqual(store.match("t", 0.1), [("m", 30)])
        self.assertEqual(store.match("+", 29.0), [("m", 1)])

    def test_replace_resets_expiry(self):
        store = RetainStore()
        store.set("t", "old", 0.0, 5)
        store.set("t", "new", 4.0, None)
        self.assertEqual(store.expire(100.0), 0)
        self.assertEqual(store.match("t", 100.0), [("new", None)])
        store.set("t", "newer", 100.0, 5)
        self.assertEqual(store.match("t", 101.0), [("newer", 4)])

    def test_expire_sweep(self):
        store = RetainStore()
        for i in range(10):
            store.set(f"t/{i}", i, 0.0, i)
        store.set("t/x", "x", 0.0)
        self.assertEqual(store.expire(4.0), 5)  # intervals 0..4
        self.assertEqual(len(store), 6)
        self.assertEqual(store.expire(4.0), 0)
        self.assertEqual(store.expire(1000.0), 5)
        self.assertEqual(list(store.iter_all()), [("t/x", "x", 0.0, None)])
        self.assertEqual(store.node_count(), 2)

    def test_get_with_now_expires(self):
        store = RetainStore()
        store.set("t", "m", 0.0, 1)
        self.assertEqual(store.get("t"), "m")
        self.assertEqual(store.get("t", 0.5), "m")
        self.assertIsNone(store.get("t", 1.0))
        self.assertEqual(len(store), 0)
        self.assertNotIn("t", store)

    def test_iter_all(self):
        store = RetainStore()
        store.set("a", 1, 5.0, 7)
        store.set("b/c", 2, 6.0)
        self.assertEqual(
            sorted(store.iter_all()), [("a", 1, 5.0, 7), ("b/c", 2, 6.0, None)]
        )


_LEVEL = st.sampled_from(["a", "b", "", "$s"])
_FLEVEL = st.sampled_from(["a", "b", "", "$s", "+"])
_TOPICS = st.lists(_LEVEL, min_size=1, max_size=4).map("/".join)


@st.composite
def _filters(draw):
    levels = draw(st.lists(_FLEVEL, min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


class RetainPropertyTests(SynchronousTestCase):
    """The trie lookup agrees with a linear scan over all topics."""

    @settings(max_examples=300, deadline=None)
    @given(
        topics=st.lists(_TOPICS, max_size=20),
        deleted=st.lists(_TOPICS, max_size=5),
        filters=st.lists(_filters(), min_size=1, max_size=6),
    )
    def test_match_agrees_with_brute_force(self, topics, deleted, filters):
        store = RetainStore()
        model = {}
        for i, topic in enumerate(topics):
            store.set(topic, i, 0.0, None)
            model[topic] = i
        for topic in deleted:
            self.assertEqual(store.delete(topic), topic in model)
            model.pop(topic, None)
        self.assertEqual(len(store), len(model))
        for topic_filter in filters:
            got = sorted(m for m, _ in store.match(topic_filter, 0.0))
            want = sorted(v for t, v in model.items() if _matches(topic_filter, t))
            self.assertEqual(got, want, topic_filter)
        for topic in list(model):
            store.delete(topic)
        self.assertEqual(store.node_count(), 0)
