# -*- test-case-name: tests.protocol.test_services -*-
"""
Drives the core's ``TimerQueue`` with one re-armed ``DelayedCall``.

The core never reads a clock; it keeps deadlines (will delays, session
expiry, retransmission) and says when the earliest one moves earlier.  This
service arms a single DelayedCall at that deadline, runs what is due, and
re-arms -- the same contract as aioquic's ``get_timer``/``handle_timer``.
"""

from twisted.application.service import Service
from twisted.logger import Logger


class CoreTimerService(Service):
    """Runs ``broker.run_timers(now)`` whenever a core deadline is due."""

    _log = Logger()

    def __init__(self, broker, clock):
        self.broker = broker
        self.clock = clock
        self._call = None

    def startService(self):
        super().startService()
        self.broker.timers.on_earlier = self._earlier
        self._rearm()

    def stopService(self):
        self.broker.timers.on_earlier = None
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        return super().stopService()

    def _earlier(self, when):
        if not self.running:
            return
        call = self._call
        if call is not None and call.active() and call.getTime() <= when:
            return
        delay = max(0.0, when - self.clock.seconds())
        if call is not None and call.active():
            call.reset(delay)
        else:
            self._call = self.clock.callLater(delay, self._fire)

    def _fire(self):
        self._call = None
        try:
            self.broker.run_timers(self.clock.seconds())
        except Exception:  # noqa: BLE001 -- logged; the timer must keep running
            self._log.failure("Error in a broker timer")
        self._rearm()

    def _rearm(self):
        deadline = self.broker.timers.next_deadline()
        if deadline is not None:
            self._earlier(deadline)


class SysTopicsService(Service):
    """Publishes the ``$SYS/broker/...`` statistics every ``interval`` s."""

    def __init__(self, broker, clock, interval=10.0):
        self.broker = broker
        self.clock = clock
        self.interval = interval
        self._loop = None

    def startService(self):
        from twisted.internet.task import LoopingCall

        from ..core.sys_topics import statistics

        super().startService()
        if self.broker.started is None:
            self.broker.started = self.clock.seconds()

        def publish():
            now = self.clock.seconds()
            for topic, payload in statistics(self.broker, now):
                self.broker.publish_internal(topic, payload, now, retain=True)

        self._loop = LoopingCall(publish)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stopService(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return super().stopService()
