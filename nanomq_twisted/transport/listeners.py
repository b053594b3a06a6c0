# -*- test-case-name: tests.e2e.test_broker_pubsub,tests.e2e.test_rest -*-
"""
``ListenerService``: a listening socket as a service, that fails loudly.

Twisted's ``StreamServerEndpointService`` only logs a failed ``listen`` and
never exposes the bound port; a broker that silently lacks its listener is
worse than one that does not start, and tests that bind port 0 need to
know the port.  So ``privilegedStartService`` listens, a failure propagates
out of ``twistd`` start-up, and ``listening`` is a Deferred of the
``IListeningPort``.
"""

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from .direct import DirectTCPServerEndpoint


def tcp_endpoint(reactor, host, port, backlog=1024):
    """A TCP server endpoint (IPv6 when ``host`` is an IPv6 address)
    whose connections write at once (transport/direct.py).

    The backlog comes from the listener config: Twisted's default of 50
    overflows under a burst of a few hundred connects.
    """
    host = host or "0.0.0.0"
    return DirectTCPServerEndpoint(reactor, port, backlog=backlog, interface=host)


class ListenerService(Service):
    """Listen on ``endpoint`` with ``factory`` while running."""

    _log = Logger()

    def __init__(self, name, endpoint, factory, description=""):
        self.setName(name)
        self.endpoint = endpoint
        self.factory = factory
        self.description = description
        self.listening = defer.Deferred()
        self.port = None
        self._starting = None

    def privilegedStartService(self):
        super().privilegedStartService()
        self._start_listening()

    def startService(self):
        super().startService()
        self._start_listening()

    def _start_listening(self):
        if self._starting is not None:
            return
        self._starting = self.endpoint.listen(self.factory)

        def listening(port):
            self.port = port
            address = port.getHost()
            self._log.info(
                "{name} listening on {host}:{port} {what}",
                name=self.name,
                host=address.host,
                port=address.port,
                what=self.description,
            )
            self.listening.callback(port)
            return port

        def failed(failure):
            self._log.failure("{name} cannot listen", failure, name=self.name)
            return failure

        self._starting.addCallbacks(listening, failed)
        # Surface a synchronous failure (address in use) to the caller.
        errors = []
        self._starting.addErrback(lambda f: errors.append(f) or None)
        if errors:
            errors[0].raiseException()

    def stopService(self):
        super().stopService()
        starting, self._starting = self._starting, None
        port, self.port = self.port, None
        self.listening = defer.Deferred()
        if port is not None:
            return port.stopListening()
        if starting is not None:
            starting.cancel()
        return None
