# -*- test-case-name: tests.protocol.test_quic_driver,tests.e2e.test_quic,tests.e2e.test_bridge_mosquitto -*-
"""
The one aioquic driver, shared by the listener (``server.py``) and the
bridge's dialler (``client.py``).

aioquic's ``QuicConnection`` is sans-I/O: its inputs are ``connect``,
``receive_datagram`` and ``handle_timer``, its outputs
``datagrams_to_send``, ``get_timer`` and ``next_event``, and time is always
passed in.  ``QuicDriver`` is the Twisted adapter around it, shaped after
aioquic's ``asyncio/protocol.py`` and dnspython's ``dns/quic/_common.py``
(one shared core, thin adapters per role).  It lives alone so that both
roles run the very same loop, and so the loop can be tested between two
``QuicConnection`` objects on one ``task.Clock`` with no sockets.

The contract (the STYLE guide's "The QUIC driver"), step by step:

``startProtocol``
    ``transport.connect(ip, port)`` on the client's own UDP port
    (``client.QuicClientProtocol.startProtocol``), then
    ``QuicDriver.connect(addr)``: ``quic.connect(addr, now)``, transmit.
``datagramReceived``
    the UDP protocol (client or server) calls ``datagram_received``:
    ``quic.receive_datagram(data, addr, now)``, drain every event into
    ``handler.quic_event``, transmit.
``_transmit``
    ``transmit()``: write every ``datagrams_to_send(now)`` through
    ``send(data, addr)``, then re-arm the one ``DelayedCall`` at
    ``max(0, get_timer() - now)`` (cancelled first if the deadline moved).
``_on_timer``
    ``quic.handle_timer(max(t, clock.seconds()))``, drain, transmit.

``transmit_soon(hook)`` merges several writes into one ``callLater(0)``
(aioquic's ``_transmit_soon``); ``stop()`` cancels every pending call.
The driver knows no UDP port, no stream and no MQTT: it is given a
``clock``, a ``send`` callable and an event handler (``stream.py``'s
``StreamSession``).  No ``asyncioreactor``: everything runs on the
injected clock.
"""

from aioquic.quic.packet import QuicErrorCode
from twisted.logger import Logger


class QuicDriver:
    """Drives one ``QuicConnection``; see the module docstring.

    ``send(data, addr)`` writes one datagram; ``handler.quic_event(event)``
    receives every event; ``handler`` may call back into the driver.
    """

    _log = Logger()

    def __init__(self, quic, clock, send, handler):
        self.quic = quic
        self.clock = clock
        self.send = send
        self.handler = handler
        self._timer = None
        self._timer_at = None
        self._soon = None
        self._soon_hooks = []
        self.stopped = False

    # -- inputs -------------------------------------------------------------

    def connect(self, addr):
        """Client only: start the handshake towards ``addr``."""
        self.quic.connect(addr, now=self.clock.seconds())
        self.transmit()

    def datagram_received(self, data, addr):
        if self.stopped:
            return
        self.quic.receive_datagram(data, addr, now=self.clock.seconds())
        self._drain()
        self.transmit()

    def close(self, error_code=QuicErrorCode.NO_ERROR, reason=""):
        """Send CONNECTION_CLOSE; ``ConnectionTerminated`` follows after the
        closing period."""
        self.quic.close(error_code=error_code, reason_phrase=reason)
        self.transmit()

    def _on_timer(self):
        timer_at, self._timer, self._timer_at = self._timer_at, None, None
        self.quic.handle_timer(now=max(timer_at, self.clock.seconds()))
        self._drain()
        self.transmit()

    # -- outputs ------------------------------------------------------------

    def transmit(self):
        """Write every pending datagram, then re-arm the one timer."""
        if self.stopped:
            return
        now = self.clock.seconds()
        for data, addr in self.quic.datagrams_to_send(now=now):
            self.send(data, addr)
        timer_at = self.quic.get_timer()
        if self._timer is not None and self._timer_at != timer_at:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if timer_at is not None and self._timer is None:
            self._timer_at = timer_at
            self._timer = self.clock.callLater(max(0.0, timer_at - now), self._on_timer)

    def transmit_soon(self, hook=None):
        """Merge several writes into one transmit on the next turn; ``hook``
        runs first (it queues stream data)."""
        if hook is not None and hook not in self._soon_hooks:
            self._soon_hooks.append(hook)
        if self._soon is None and not self.stopped:
            self._soon = self.clock.callLater(0, self._transmit_now)

    def _transmit_now(self):
        self._soon = None
        hooks, self._soon_hooks = self._soon_hooks, []
        for hook in hooks:
            hook()
        self.transmit()

    def _drain(self):
        while not self.stopped:
            event = self.quic.next_event()
            if event is None:
                return
            self.handler.quic_event(event)

    def stop(self):
        """Cancel every pending call; the driver does nothing afterwards."""
        self.stopped = True
        for call in (self._timer, self._soon):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._soon = None
        self._soon_hooks = []
