"""Bridge topic remapping tables (spec/bridges.md §3-§5)."""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.bridge.topics import Outgoing, downward, remap, upward
from nanomq_twisted.config import BridgeForward, BridgeSubscription

FILTER = "X/zb/+/abv/#"
TOPIC = "X/zb/abc/abv/d1/d2"


class RemapTests(SynchronousTestCase):
    def test_spec_table(self):
        table = [
            ("+/abv/#", "abc/abv/d1/d2"),
            ("#", "d1/d2"),
            ("zb/+", "zb/abc"),
            ("+", "abc"),
            ("abc", "abc"),
            ("+/#", None),
        ]
        for template, expected in table:
            self.assertEqual(remap(template, FILTER, TOPIC), expected, template)

    def test_doc_example(self):
        self.assertEqual(remap("#", "+/nanomq/#", "cmd/nanomq/hello/world"), "hello/world")

    def test_hash_must_end_template_and_filter(self):
        self.assertIsNone(remap("#/x", "a/#/x", "a/b/x"))
        self.assertIsNone(remap("b/#", "a/b/+", "a/b/c"))

    def test_nothing_left_is_invalid(self):
        # "a/#" also matches "a"; the remap then selects no level at all.
        self.assertIsNone(remap("#", "a/#", "a"))

    def test_single_level_templates(self):
        self.assertEqual(remap("+/c", "a/+/c", "a/b/c"), "b/c")
        self.assertEqual(remap("a/+", "a/+/c", "a/b/c"), "a/b")


def fwd(local, remote, **kw):
    return BridgeForward(local_topic=local, remote_topic=remote, **kw)


def sub(remote, local, **kw):
    return BridgeSubscription(remote_topic=remote, local_topic=local, **kw)


class UpwardTests(SynchronousTestCase):
    def test_empty_remote_keeps_topic_with_prefix_suffix(self):
        forwards = [fwd("sensors/#", "", prefix="edge1/", suffix="/up")]
        self.assertEqual(
            upward(forwards, "sensors/t/1", 1, False),
            [Outgoing("edge1/sensors/t/1/up", 1, False)],
        )

    def test_literal_and_wildcard_templates(self):
        forwards = [fwd("alarm/+", "cloud/alarm"), fwd("a/+/b/#", "+/b/#")]
        self.assertEqual(upward(forwards, "alarm/x", 0, True), [Outgoing("cloud/alarm", 0, True)])
        self.assertEqual(upward(forwards, "a/k/b/c/d", 2, False), [Outgoing("k/b/c/d", 2, False)])

    def test_every_matching_entry_fires(self):
        forwards = [fwd("a/#", "one"), fwd("a/b", ""), fwd("z", "no")]
        self.assertEqual(
            [o.topic for o in upward(forwards, "a/b", 0, False)], ["one", "a/b"]
        )

    def test_qos_and_retain_overrides(self):
        forwards = [fwd("t", "", qos=2, retain=1), fwd("t", "u", qos=0, retain=0)]
        self.assertEqual(
            upward(forwards, "t", 1, False),
            [Outgoing("t", 2, True), Outgoing("u", 0, False)],
        )

    def test_sys_never_forwarded(self):
        self.assertEqual(upward([fwd("#", ""), fwd("$SYS/#", "")], "$SYS/brokers/x", 0, False), [])

    def test_invalid_template_keeps_topic(self):
        self.assertEqual(
            upward([fwd("a/+", "+/#")], "a/b", 1, False), [Outgoing("a/b", 1, False, True)]
        )

    def test_no_match(self):
        self.assertEqual(upward([fwd("a/+", "")], "a/b/c", 1, False), [])


class DownwardTests(SynchronousTestCase):
    def test_doc_example(self):
        subs = [sub("+/nanomq/#", "#")]
        self.assertEqual(
            downward(subs, "cmd/nanomq/hello/world", False), ("hello/world", False, False)
        )

    def test_first_match_only(self):
        subs = [sub("cmd/#", "#"), sub("cmd/x", "second")]
        self.assertEqual(downward(subs, "cmd/x", False)[0], "x")
        # "first/#" is not in "cmd/#": invalid, original topic kept.
        subs = [sub("cmd/#", "first/#"), sub("cmd/x", "second")]
        self.assertEqual(downward(subs, "cmd/x", False), ("cmd/x", False, True))
        subs = [sub("cmd/#", "local/cmd"), sub("cmd/x", "second")]
        self.assertEqual(downward(subs, "cmd/x", False), ("local/cmd", False, False))

    def test_empty_local_keeps_topic_and_affixes(self):
        subs = [sub("cmd/#", "", prefix="p/", suffix="/s", retain=1)]
        self.assertEqual(downward(subs, "cmd/a", False), ("p/cmd/a/s", True, False))

    def test_retain_override_zero(self):
        self.assertEqual(downward([sub("a", "b", retain=0)], "a", True), ("b", False, False))

    def test_invalid_template_keeps_topic(self):
        self.assertEqual(downward([sub("a/+", "+/#")], "a/b", False), ("a/b", False, True))

    def test_no_entry_matches(self):
        self.assertEqual(downward([sub("a", "b")], "c/d", True), ("c/d", True, False))

    def test_shared_subscription_filter(self):
        subs = [sub("$share/g/cmd/#", "#")]
        self.assertEqual(downward(subs, "cmd/a/b", False)[0], "a/b")
