# -*- test-case-name: tests.unit.test_admission,tests.unit.test_broker -*-
"""
The clocks of one connection: the CONNECT timeout, keepalive, and the
inbound rate limit's pauses -- all core timers (core/timers.py), none a
``DelayedCall``, every callback given ``now``.

`Deadlines` is a mixin of `ClientConnection` (connection.py), kept apart
because it is one concern (when a connection is closed or paused for its
silence or its appetite) that the steady-state packet handling does not
need to read around.  It keeps its state in the connection's slots:
``_deadline`` (the one CONNECT-or-keepalive timer), ``last_rx`` (stamped by
the adapter on every read), ``meter`` (the connection's `InboundMeter`,
core/admission.py) and ``address`` (the IP counted by ``Admission``).
"""

from ..mqtt import reason_codes as rc
from .connect import CLOSED, NEW


class Deadlines:
    """CONNECT timeout, keepalive and rate-limit pauses (module docstring)."""

    __slots__ = ()

    def accepted(self, now, connect_timeout):
        """The network connection is open: a CONNECT must come within
        ``connect_timeout`` seconds, or the connection is closed.

        The deadline counts from here, not from the last byte: a CONNECT
        dribbled a byte at a time (slowloris) is closed on time too.  The
        connection is counted under its IP address; one over
        ``max_connections_per_address`` is refused at its CONNECT
        (core/admission.py)."""
        self.last_rx = now
        broker = self.broker
        admission = broker.admission
        self.meter = admission.meter(now)
        if not self.over_limit:
            peer = self.transport.peer
            host = peer[0] if peer else None
            if admission.admit(host):
                self.address = host
            else:
                self.over_limit = True
                broker.stats.refused_per_address += 1
        self._deadline = broker.timers.call_at(
            now + connect_timeout, self._connect_deadline
        )

    def _connect_deadline(self, now):
        self._deadline = None
        if self.state == NEW:
            self.broker.stats.connect_timeouts += 1
            self.sink.timed_out("CONNECT")

    # -- inbound rate limit (core/admission.py) --------------------------------

    def input_received(self, nbytes, now):
        """The adapter read ``nbytes`` (and handed over their packets):
        charge them; over the budget, stop reading until it is back."""
        meter = self.meter
        if meter is None or self.state == CLOSED:
            return
        wait = meter.charge(nbytes, now)
        if wait > 0 and meter.timer is None:
            self.broker.stats.rate_limited += 1
            self.sink.pause_input()
            meter.timer = self.broker.timers.call_at(now + wait, self._input_due)

    def _input_due(self, now):
        meter = self.meter
        meter.timer = None
        if self.state == CLOSED:
            return
        wait = meter.wait(now)
        if wait > 0:
            meter.timer = self.broker.timers.call_at(now + wait, self._input_due)
            return
        # Its silence while we did not read is ours: keepalive counts anew.
        self.last_rx = now
        self.sink.resume_input()

    @property
    def throttled(self):
        """Reading is paused by the rate limit."""
        return self.meter is not None and self.meter.timer is not None

    def start_keepalive(self, now):
        """The CONNECT arrived: keepalive counts from it [MQTT-3.1.2-24].

        One core timer per connection, checked at most once per timeout:
        rather than pushing a deadline back on every packet, the check
        compares with ``last_rx`` and re-arms for the rest."""
        deadline = self._deadline
        if deadline is not None:
            deadline.cancel()
            self._deadline = None
        timeout = self.keepalive_timeout
        if timeout:
            self._deadline = self.broker.timers.call_at(
                self.last_rx + timeout, self._keepalive_deadline
            )

    def _keepalive_deadline(self, now):
        self._deadline = None
        if self.state == CLOSED:
            return
        if self.throttled:
            # Not reading is our doing, not the client's silence.
            self._deadline = self.broker.timers.call_at(
                now + self.keepalive_timeout, self._keepalive_deadline)
            return
        due = self.last_rx + self.keepalive_timeout
        if now >= due:
            self.keepalive_expired(now)
        else:
            self._deadline = self.broker.timers.call_at(due, self._keepalive_deadline)

    def keepalive_expired(self, now):
        """No packet within keepalive × multiplier [MQTT-3.1.2-22]."""
        self.server_disconnect(rc.KEEP_ALIVE_TIMEOUT, now, "keep alive timeout")
