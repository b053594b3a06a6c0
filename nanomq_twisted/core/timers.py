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
it comes up, which keeps ``cancel`` O(1).  But its time may be far away --
a keepalive check is due ``keepalive_multiplier`` (1.25 shipped) x the
keepalive after the last packet, almost 23 hours for keepalive 65535 -- so
a broker whose clients come and go
would keep one dead entry per past connection for that long (the soak,
tools/soak.py, saw RSS climb by ~0.5 MiB a minute with 35 connects/s and
keepalive 600).  So once more than half of the heap (and more than
``COMPACT_MIN`` entries) is dead, the heap is rebuilt without them: O(n)
every n/2 cancellations, still O(1) per cancel on average, and memory
bounded by twice the live entries.

Every callback is called as ``fn(now, *args)``: the time it runs at comes
in with the call, as everywhere in the core, so a callback never depends
on some clock being valid "around" it.
"""

import heapq
import itertools

#: Dead entries tolerated before a compaction is considered at all.
COMPACT_MIN = 256


class TimerHandle:
    """A scheduled call; ``cancel()`` it to make it a no-op."""

    __slots__ = ("args", "cancelled", "fn", "queue", "when")

    def __init__(self, when, fn, args, queue):
        self.when = when
        self.fn = fn
        self.args = args
        self.queue = queue
        self.cancelled = False

    def cancel(self):
        if self.cancelled:  # already cancelled, or already ran
            return
        # Let go of what it would call at once, so a closed connection is
        # not kept alive until the entry leaves the heap.
        self.cancelled = True
        self.fn = None
        self.args = ()
        self.queue._dead_entry()


class TimerQueue:
    """A heap of ``TimerHandle`` ordered by deadline (ties: insertion)."""

    def __init__(self):
        self._heap = []
        self._dead = 0  # cancelled entries still in the heap
        self._seq = itertools.count()
        #: Called with the new earliest deadline when it moves earlier.
        self.on_earlier = None

    def call_at(self, when, fn, *args):
        """Run ``fn(now, *args)`` at ``when`` (or the first ``run_due``
        after it)."""
        handle = TimerHandle(when, fn, args, self)
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
            self._dead -= 1
        return heap[0][0] if heap else None

    def _dead_entry(self):
        self._dead += 1
        heap = self._heap
        if self._dead > COMPACT_MIN and self._dead * 2 > len(heap):
            heap[:] = [entry for entry in heap if not entry[2].cancelled]
            heapq.heapify(heap)
            self._dead = 0

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
                self._dead -= 1
                continue
            handle.cancelled = True
            handle.fn(now, *handle.args)
            ran += 1
        return ran

    def __len__(self):
        return len(self._heap) - self._dead

    def entries(self):
        """Entries held, live and dead (what the memory bound is about)."""
        return len(self._heap)
