# -*- test-case-name: tests.protocol.test_protocol,tests.protocol.test_bridge_client -*-
"""
Drives the core outside packet turns: its ``TimerQueue`` with one re-armed
``DelayedCall``, and its output when something other than a client's
``dataReceived`` produced it.

The core never reads a clock; it keeps deadlines (will delays, session
expiry, retransmission) and says when the earliest one moves earlier.
``CoreTimerService`` arms a single DelayedCall at that deadline, runs what
is due, flushes, and re-arms -- the same contract as aioquic's
``get_timer``/``handle_timer``.  It also answers the broker's ``wake``:
output made outside a turn (a REST publish, a bridge's incoming message, an
authenticator answering, a ``$SYS`` tick) is flushed by one
``callLater(0)``, merging everything produced until then into one write per
connection (aioquic's ``_transmit_soon``).
"""

from twisted.application.service import Service
from twisted.logger import Logger


class CoreTimerService(Service):
    """Runs ``broker.run_timers(now)`` whenever a core deadline is due, and
    flushes the broker's output when it asks (``Broker.wake``)."""

    _log = Logger()

    def __init__(self, broker, clock):
        self.broker = broker
        self.clock = clock
        self._call = None
        self._flush_call = None

    def startService(self):
        super().startService()
        self.broker.timers.on_earlier = self._earlier
        self.broker.wake = self._wake
        self._rearm()

    def stopService(self):
        self.broker.timers.on_earlier = None
        self.broker.wake = None
        for call in (self._call, self._flush_call):
            if call is not None and call.active():
                call.cancel()
        self._call = self._flush_call = None
        self.broker.flush()
        return super().stopService()

    def _wake(self):
        if self._flush_call is None:
            self._flush_call = self.clock.callLater(0, self._flush)

    def _flush(self):
        self._flush_call = None
        self.broker.flush()

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
        broker = self.broker
        broker.in_turn = True
        try:
            broker.run_timers(self.clock.seconds())
        except Exception:  # noqa: BLE001 -- logged; the timer must keep running
            self._log.failure("Error in a broker timer")
        finally:
            broker.in_turn = False
            broker.flush()
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
