# -*- test-case-name: tests.protocol.test_http_overview -*-
"""
The last quarter of an hour of the broker's counters, for the dashboard's
charts (``GET /api/v4/metrics/history``).

NanoMQ has no history; a chart needs one that exists before anyone opens
the page, so it is kept here, not in the browser: `MetricsHistory` is a
ring of ``SPAN / INTERVAL`` samples, `HistoryService` takes one every
``INTERVAL`` seconds while the broker runs (one ``LoopingCall``, a few
attribute reads per sample).

A sample holds the monotonic counters (messages received, sent and
dropped; bytes received and sent) and the gauges (connections, sessions),
plus each counter's rate per second since the previous sample, so an API
client need not difference them.  Times are the clock's seconds (the
reactor's: Unix time in the product).
"""

from collections import deque

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from .metrics import dropped_total

#: Seconds between samples.
INTERVAL = 5.0
#: Seconds of history kept.
SPAN = 900.0

#: (sample key, rate key) of the counters.
_COUNTERS = (
    ("received", "received_rate"),
    ("sent", "sent_rate"),
    ("dropped", "dropped_rate"),
    ("bytes_received", "bytes_received_rate"),
    ("bytes_sent", "bytes_sent_rate"),
)


def counters(broker):
    """The counters and gauges of one sample, read from the core."""
    stats = broker.stats
    return {
        "connections": len(broker.connections),
        "sessions": len(broker.sessions),
        "received": stats.received,
        "sent": stats.sent,
        "dropped": dropped_total(stats),
        "bytes_received": stats.bytes_received,
        "bytes_sent": stats.bytes_sent,
    }


class MetricsHistory:
    """A ring of samples of one broker (see the module docstring).

    The first sample's rates are taken against the counters' values when
    the history was made (``started``), so a chart has rates from its
    first point on."""

    def __init__(self, broker, started, interval=INTERVAL, span=SPAN):
        self.broker = broker
        self.interval = interval
        self.span = span
        self.samples = deque(maxlen=int(span // interval) + 1)
        self._previous = dict(counters(broker), time=started)

    def sample(self, now):
        """Append the sample for ``now`` (dropping the oldest when full)."""
        current = counters(self.broker)
        current["time"] = now
        previous = self._previous
        elapsed = now - previous["time"]
        for key, rate in _COUNTERS:
            delta = current[key] - previous[key]
            # A counter that went down (a restore) has no meaningful rate.
            current[rate] = round(delta / elapsed, 3) if elapsed > 0 and delta >= 0 else 0
        self._previous = current
        self.samples.append(current)
        return current

    def view(self, since=None):
        """``{"interval", "span", "samples": [...]}``, oldest first; only
        those taken after ``since`` when it is given."""
        samples = list(self.samples)
        if since is not None:
            samples = [sample for sample in samples if sample["time"] > since]
        return {"interval": self.interval, "span": self.span, "samples": samples}


class HistoryService(Service):
    """Samples ``history`` every ``history.interval`` seconds while running,
    the first time at start."""

    def __init__(self, history, clock):
        self.history = history
        self.clock = clock
        self._loop = None

    def startService(self):
        super().startService()
        loop = self._loop = LoopingCall(self._tick)
        loop.clock = self.clock
        loop.start(self.history.interval, now=True)

    def _tick(self):
        self.history.sample(self.clock.seconds())

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
