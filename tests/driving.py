"""Drive a bare ``Broker`` in protocol-level tests as the running broker
does: its timers and its output outside packet turns go through the real
adapter (``CoreTimerService`` on the test's ``task.Clock``), so output
made by a timer, a bridge or an asynchronous authenticator is flushed at
the next ``clock.advance(0)`` -- which ``iosim``'s pump does on each step.
"""

from nanomq_twisted.transport.timers import CoreTimerService


def drive(testcase, broker, clock):
    """Start a ``CoreTimerService`` for ``broker``; stopped in cleanup."""
    service = CoreTimerService(broker, clock)
    service.startService()
    testcase.addCleanup(service.stopService)
    return broker
