"""
Tests for topic name/filter validation, shared subscriptions and matching.

`match` is also checked against paho-mqtt's independent topic matcher.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.mqtt.topics import (
    match,
    parse_shared,
    validate_topic_filter,
    validate_topic_name,
)


class TopicNameTests(SynchronousTestCase):
    def test_valid(self):
        for name in ("a", "/", "a/b/c", "$SYS/x", " ", "sport/tennis/ ",
                     "\u00e9/\u4e2d"):
            self.assertTrue(validate_topic_name(name), name)

    def test_empty_MQTT_4_7_3_1(self):
        self.assertFalse(validate_topic_name(""))

    def test_shared_subscription_prefixes_are_not_names(self):
        """``$share/`` and ``$queue/`` only mean something in filters."""
        for name in ("$share/g/t", "$share/", "$queue/t", "$queue/"):
            self.assertFalse(validate_topic_name(name), name)
        for name in ("$shared/t", "$share", "$queue", "a/$share/g/t", "$SHARE/g/t"):
            self.assertTrue(validate_topic_name(name), name)

    def test_wildcards_MQTT_3_3_2_2(self):
        for name in ("+", "#", "a/+", "a/#", "a+b", "a#"):
            self.assertFalse(validate_topic_name(name), name)

    def test_nul_MQTT_1_5_4_2(self):
        self.assertFalse(validate_topic_name("a\x00b"))

    def test_length_MQTT_4_7_3_3(self):
        self.assertTrue(validate_topic_name("a" * 65535))
        self.assertFalse(validate_topic_name("a" * 65536))
        # 3-byte characters: 21845 * 3 = 65535 bytes fits, one more does not.
        self.assertTrue(validate_topic_name("\u4e2d" * 21845))
        self.assertFalse(validate_topic_name("\u4e2d" * 21846))


class TopicFilterTests(SynchronousTestCase):
    def test_valid(self):
        for f in ("#", "+", "a/#", "a/+/b", "+/+", "/+", "+/", "sport/#",
                  "a//b", "$SYS/#", "$share/g/a/#", "$share/g/#",
                  "$queue/a/+", "$share/g/+/x"):
            self.assertTrue(validate_topic_filter(f), f)

    def test_multi_level_wildcard_last_and_alone_MQTT_4_7_1_2(self):
        for f in ("a/#/b", "#/a", "a#", "a/b#", "##"):
            self.assertFalse(validate_topic_filter(f), f)

    def test_single_level_wildcard_alone_MQTT_4_7_1_3(self):
        for f in ("a+", "a/+b", "++", "+a/b"):
            self.assertFalse(validate_topic_filter(f), f)

    def test_empty_MQTT_4_7_3_1(self):
        self.assertFalse(validate_topic_filter(""))

    def test_nul_and_length(self):
        self.assertFalse(validate_topic_filter("a\x00"))
        self.assertFalse(validate_topic_filter("a" * 65536))

    def test_shared_MQTT_4_8_2_1_and_2(self):
        for f in ("$share/", "$share//a", "$share/g", "$share/g/",
                  "$share/g+/a", "$share/#/a", "$share/+/a", "$share/g/a#",
                  "$queue/", "$queue/a#"):
            self.assertFalse(validate_topic_filter(f), f)

    def test_parse_shared(self):
        self.assertEqual(parse_shared("$share/g/a/b"), ("g", "a/b"))
        self.assertEqual(parse_shared("$share/g/#"), ("g", "#"))
        self.assertEqual(parse_shared("$queue/a/b"), ("$queue", "a/b"))
        self.assertEqual(parse_shared("a/b"), (None, "a/b"))
        self.assertEqual(parse_shared("$share/g"), (None, "$share/g"))
        self.assertEqual(parse_shared("$SYS/x"), (None, "$SYS/x"))


class MatchTests(SynchronousTestCase):
    CASES = (
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/+", "a", False),
        ("a/+", "a/", True),
        ("+/+", "/a", True),
        ("+", "/a", False),
        ("/+", "/a", True),
        ("#", "a/b/c", True),
        ("#", "/", True),
        ("a/#", "a", True),  # [MQTT-4.7.1-2] parent level
        ("a/#", "a/b/c", True),
        ("a/#", "ab", False),
        ("a/+/c/#", "a/b/c", True),
        ("a/+/c/#", "a/b/d", False),
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/+", "sport", False),
        ("+/tennis/#", "sport/tennis/x", True),
        ("a//b", "a//b", True),
        ("a/+/b", "a//b", True),
    )

    def test_examples_MQTT_4_7_1(self):
        for f, t, expected in self.CASES:
            self.assertEqual(match(f, t), expected, (f, t))

    def test_dollar_topics_MQTT_4_7_2_1(self):
        self.assertFalse(match("#", "$SYS/x"))
        self.assertFalse(match("+/x", "$SYS/x"))
        self.assertTrue(match("$SYS/#", "$SYS/x"))
        self.assertTrue(match("$SYS/+", "$SYS/x"))
        self.assertTrue(match("a/#", "a/$b"))

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.sampled_from(["a", "b", "+", "", "$x"]), min_size=1,
                    max_size=4),
           st.booleans(),
           st.lists(st.sampled_from(["a", "b", "", "$x"]), min_size=1,
                    max_size=5))
    def test_agrees_with_paho(self, flevels, hash_tail, tlevels):
        topic_filter = "/".join(flevels + (["#"] if hash_tail else []))
        topic = "/".join(tlevels)
        if not validate_topic_filter(topic_filter):
            return
        self.assertEqual(match(topic_filter, topic),
                         topic_matches_sub(topic_filter, topic),
                         (topic_filter, topic))
