# -*- test-case-name: tests.unit.test_timers -*-
"""
One deadline queue for everything in the core that happens "later".

Will delays, session expiry, QoS retransmission and keepalive checks all
need a wake-up at some absolute time.  Rather than one reactor timer per
client (thousands of DelayedCalls), the core keeps a heap here and exposes
only ``next_deadline()`` and ``run_due(now)``, the shape aioquic uses
(``get_timer()``/``handle_timer(now)``).  The Twisted adapter arms one
DelayedCall at the earliest deadline; ``on_earlier`` tells it when a new
entry moves that deadline forward.

Cancelling is lazy: a cancelled entry stays in the heap and is skipped when
it comes up, which keeps ``cancel`` O(1).

Every callback is called as ``fn(now, *args)``: the time it runs at comes
in with the call, as everywhere in the core, so a callback never depends
on some clock being valid "around" it.
"""

import heapq
import itertools


class TimerHandle:
    """A scheduled call; ``cancel()`` it to make it a no-op."""

    __slots__ = ("args", "cancelled", "fn", "when")

    def __init__(self, when, fn, args):
        self.when = when
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self):
        # The heap keeps the entry until its time comes; let go of what it
        # would call so a closed connection is not kept alive until then.
        self.cancelled = True
        self.fn = None
        self.args = ()


class TimerQueue:
    """A heap of ``TimerHandle`` ordered by deadline (ties: insertion)."""

    def __init__(self):
        self._heap = []
        self._seq = itertools.count()
        #: Called with the new earliest deadline when it moves earlier.
        self.on_earlier = None

    def call_at(self, when, fn, *args):
        """Run ``fn(now, *args)`` at ``when`` (or the first ``run_due``
        after it)."""
        handle = TimerHandle(when, fn, args)
        earliest = self.next_deadline()
        heapq.heappush(self._heap, (when, next(self._seq), handle))
        if self.on_earlier is not None and (earliest is None or when < earliest):
            self.on_earlier(when)
        return handle

    def next_deadline(self):
        """The earliest live deadline, or None when nothing is scheduled."""
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def run_due(self, now):
        """Run every live entry whose deadline is at or before ``now``.

        Entries scheduled by the callbacks themselves for a time not after
        ``now`` run in the same pass, so a zero delay never needs a second
        wake-up.
        """
        heap = self._heap
        ran = 0
        while heap and heap[0][0] <= now:
            _, _, handle = heapq.heappop(heap)
            if handle.cancelled:
                continue
            handle.cancelled = True
            handle.fn(now, *handle.args)
            ran += 1
        return ran

    def __len__(self):
        return sum(1 for entry in self._heap if not entry[2].cancelled)
