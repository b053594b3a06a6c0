# -*- test-case-name: tests.unit.test_isolation -*-
"""
Calls from the core into extensions, isolated.

An extension -- a bridge, the rule engine, a webhook, an event observer --
is someone else's code as far as the routing of a message is concerned.
If it raises, the message must still reach every subscriber, the client
whose packet caused the call must not be disconnected, and the broker must
keep running.  `Guard.call` is the only place those calls are made: an
exception is counted in ``Stats.extension_errors`` and handed to
``report(name, exception)``, which the adapter turns into a log line
(rate-limited there: the core has no clock of its own and no logger).

The cost when nothing raises is a ``try`` block, which CPython 3.11 runs
for free.
"""


class Guard:
    """Runs extension calls; what they raise stops here."""

    __slots__ = ("report", "stats")

    def __init__(self, stats, report=None):
        self.stats = stats
        #: ``report(name, exception)``; set by the adapter (app.py).
        self.report = report

    def call(self, name, fn, *args, **kwargs):
        """``fn(*args, **kwargs)``; None if it raised."""
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 -- the point of this class
            self.failed(name, exc)
            return None

    def failed(self, name, exc):
        """Count and report ``exc`` raised by extension ``name``."""
        self.stats.extension_errors += 1
        report = self.report
        if report is not None:
            try:
                report(name, exc)
            except Exception:  # noqa: BLE001, S110 -- reporting must not fail the caller
                pass
