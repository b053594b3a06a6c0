# -*- test-case-name: tests.unit.test_timers -*-
"""
``core/timers.py``: the core's one deadline queue, driven by a stepped
``now`` as the adapter's DelayedCall drives it.
"""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.core.timers import COMPACT_MIN, TimerQueue

TICK = 0.25


class TimerQueueTests(SynchronousTestCase):
    def setUp(self):
        self.timers = TimerQueue()
        self.calls = []

    def record(self, name):
        def fn(now, *args):
            self.calls.append((name, now, args))

        return fn

    def test_callback_gets_now_and_its_arguments(self):
        """The time of the run comes in with the call, not the deadline."""
        self.timers.call_at(1.0, self.record("a"), "x", 2)
        self.assertEqual(self.timers.run_due(1.0 + TICK), 1)
        self.assertEqual(self.calls, [("a", 1.0 + TICK, ("x", 2))])

    def test_not_before_its_deadline(self):
        self.timers.call_at(1.0, self.record("a"))
        self.assertEqual(self.timers.run_due(1.0 - TICK), 0)
        self.assertEqual(self.calls, [])
        self.assertEqual(self.timers.run_due(1.0), 1)
        self.assertEqual([c[0] for c in self.calls], ["a"])

    def test_runs_once(self):
        self.timers.call_at(1.0, self.record("a"))
        self.timers.run_due(1.0)
        self.assertEqual(self.timers.run_due(2.0), 0)
        self.assertEqual(len(self.calls), 1)
        self.assertEqual(len(self.timers), 0)

    def test_deadline_order(self):
        for name, when in (("c", 3.0), ("a", 1.0), ("b", 2.0)):
            self.timers.call_at(when, self.record(name))
        self.timers.run_due(5.0)
        self.assertEqual([c[0] for c in self.calls], ["a", "b", "c"])

    def test_same_deadline_in_insertion_order(self):
        for name in "xyzw":
            self.timers.call_at(2.0, self.record(name))
        self.timers.run_due(2.0)
        self.assertEqual([c[0] for c in self.calls], list("xyzw"))

    def test_only_due_ones_run(self):
        self.timers.call_at(1.0, self.record("a"))
        self.timers.call_at(2.0, self.record("b"))
        self.assertEqual(self.timers.run_due(1.5), 1)
        self.assertEqual(self.timers.next_deadline(), 2.0)
        self.assertEqual(len(self.timers), 1)

    def test_cancel(self):
        handle = self.timers.call_at(1.0, self.record("a"))
        self.timers.call_at(2.0, self.record("b"))
        handle.cancel()
        self.assertEqual(len(self.timers), 1)
        self.assertEqual(self.timers.next_deadline(), 2.0)
        self.assertEqual(self.timers.run_due(3.0), 1)
        self.assertEqual([c[0] for c in self.calls], ["b"])

    def test_cancel_after_running_is_harmless(self):
        handle = self.timers.call_at(1.0, self.record("a"))
        self.timers.run_due(1.0)
        handle.cancel()
        self.assertEqual(len(self.calls), 1)

    def test_next_deadline(self):
        self.assertIsNone(self.timers.next_deadline())
        first = self.timers.call_at(5.0, self.record("a"))
        self.timers.call_at(7.0, self.record("b"))
        self.assertEqual(self.timers.next_deadline(), 5.0)
        first.cancel()
        self.assertEqual(self.timers.next_deadline(), 7.0)
        self.timers.run_due(7.0)
        self.assertIsNone(self.timers.next_deadline())

    def test_rearm_inside_a_callback(self):
        """A callback scheduling itself again (a retry timer): a later
        deadline waits for a later run; one at or before ``now`` runs in
        the same pass, so a zero delay needs no second wake-up."""
        timers = self.timers

        def retry(now, left):
            self.calls.append(("retry", now, left))
            if left:
                timers.call_at(now + 1.0, retry, left - 1)

        def soon(now):
            self.calls.append(("soon", now, ()))
            timers.call_at(now, self.record("zero-delay"))

        timers.call_at(1.0, retry, 2)
        timers.call_at(1.0, soon)
        self.assertEqual(timers.run_due(1.0), 3)
        self.assertEqual([c[0] for c in self.calls], ["retry", "soon", "zero-delay"])
        self.assertEqual(timers.next_deadline(), 2.0)
        timers.run_due(2.0)
        timers.run_due(3.0)
        self.assertEqual([c[1:] for c in self.calls if c[0] == "retry"],
                         [(1.0, 2), (2.0, 1), (3.0, 0)])
        self.assertIsNone(timers.next_deadline())

    def test_callback_cancels_a_later_entry(self):
        later = self.timers.call_at(1.0, self.record("later"))
        self.timers.call_at(0.5, lambda now: later.cancel())
        self.assertEqual(self.timers.run_due(1.0), 1)
        self.assertEqual(self.calls, [])

    def test_on_earlier(self):
        """The adapter is told only when the earliest deadline moves
        earlier (it then re-arms its one DelayedCall)."""
        moved = []
        self.timers.on_earlier = moved.append
        self.timers.call_at(5.0, self.record("a"))
        self.timers.call_at(7.0, self.record("b"))
        self.timers.call_at(5.0, self.record("c"))
        self.timers.call_at(3.0, self.record("d"))
        self.assertEqual(moved, [5.0, 3.0])

    def test_on_earlier_after_the_earliest_was_cancelled(self):
        moved = []
        self.timers.on_earlier = moved.append
        first = self.timers.call_at(2.0, self.record("a"))
        self.timers.call_at(8.0, self.record("b"))
        first.cancel()
        self.timers.call_at(5.0, self.record("c"))
        self.assertEqual(moved, [2.0, 5.0])


class CompactionTests(SynchronousTestCase):
    """Cancelled entries far in the future do not pile up (found by the
    soak, tools/soak.py: one dead keepalive check per past connection,
    each due 1.5 x keepalive later, made RSS climb while clients churned)."""

    def setUp(self):
        self.timers = TimerQueue()
        self.calls = []

    def test_churn_of_far_deadlines_stays_bounded(self):
        live = [self.timers.call_at(10_000.0 + i, self.calls.append, i) for i in range(10)]
        for i in range(20_000):
            # a client connects (keepalive check due in 750 s) and leaves
            self.timers.call_at(i * 0.01 + 750.0, self.calls.append, i).cancel()
            self.assertLessEqual(self.timers.entries(), 2 * len(live) + COMPACT_MIN + 1)
        self.assertEqual(len(self.timers), len(live))
        self.assertEqual(self.timers.next_deadline(), 10_000.0)

    def test_compaction_keeps_every_live_entry_in_order(self):
        keep = []
        for i in range(3 * COMPACT_MIN):
            handle = self.timers.call_at(float(3 * COMPACT_MIN - i), self.record, i)
            if i % 3 == 0:
                keep.append(i)
            else:
                handle.cancel()
        self.assertLess(self.timers.entries(), 3 * COMPACT_MIN)
        self.assertEqual(self.timers.run_due(10.0 * COMPACT_MIN), len(keep))
        self.assertEqual(self.calls, sorted(keep, reverse=True))
        self.assertEqual(self.timers.entries(), 0)
        self.assertEqual(len(self.timers), 0)

    def record(self, _now, i):
        self.calls.append(i)

    def test_cancel_twice_counts_once(self):
        handle = self.timers.call_at(1.0, self.record, 1)
        self.timers.call_at(2.0, self.record, 2)
        handle.cancel()
        handle.cancel()
        self.assertEqual(len(self.timers), 1)
        self.assertEqual(self.timers.run_due(3.0), 1)
        self.assertEqual(len(self.timers), 0)
