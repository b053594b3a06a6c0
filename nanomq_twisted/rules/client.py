# -*- test-case-name: tests.e2e.test_rules,tests.protocol.test_client -*-
"""
``RepubClient``: the owner of the broker's MQTT client (client/) for a
``repub`` rule aimed at another broker.

One ``ClientService`` per rule keeps a connection up with exponential
backoff; the connection is the shared ``MQTTClientProtocol``, which does
CONNECT, keepalive and everything else of the protocol.  Republished rows
are QoS 0.  While the connection is down they are dropped and counted --
a repub target that is away never makes the broker buffer without bound.
"""

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.endpoints import HostnameEndpoint
from twisted.logger import Logger
from zope.interface import implementer

from ..client.interfaces import IClientOwner
from ..client.options import ClientOptions, OutboundMessage
from ..client.protocol import MQTTClientFactory
from ..client.session import ClientSession

__all__ = ["RepubClient"]


@implementer(IClientOwner)
class RepubClient:
    """A reconnecting QoS 0 publisher to ``host:port``."""

    _log = Logger()

    def __init__(self, reactor, host, port, client_id=None, level=4, username=None,
                 password=None, keepalive=60, clean_start=True, max_backoff=30.0):
        self.clock = reactor
        self.host, self.port = host, port
        self.uri = f"mqtt-tcp://{host}:{port}"
        if isinstance(password, str):
            password = password.encode("utf-8")
        self.session = ClientSession(ClientOptions(
            level=level if level in (3, 4, 5) else 4,
            client_id=client_id or "",
            clean_start=clean_start,
            keepalive=int(keepalive or 0),
            username=username,
            password=password,
            generated_id_prefix="nanomq-rule-",
        ))
        self.protocol = None
        self.sent = 0
        self.dropped = 0
        self._service = ClientService(
            HostnameEndpoint(reactor, host, port, timeout=10),
            MQTTClientFactory(self, self.session, reactor),
            retryPolicy=backoffPolicy(initialDelay=0.5, maxDelay=max_backoff),
            clock=reactor,
        )

    @property
    def client_label(self):
        return "repub " + self.uri

    @property
    def server(self):
        return self.uri

    def start(self):
        self._service.startService()

    def stop(self):
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.disconnect()
        return self._service.stopService()

    def publish(self, topic, payload):
        """Republish one row now; False (counted) while disconnected."""
        protocol = self.protocol
        if protocol is None or not protocol.publish(OutboundMessage(topic, payload)):
            self.dropped += 1
            return False
        self.sent += 1
        return True

    # -- IClientOwner --------------------------------------------------------

    def connected(self, client, connack, unsent):
        self.protocol = client
        self._log.info("repub {uri} connected", uri=self.uri)

    def disconnected(self, client, reason, was_connected):
        if self.protocol is client:
            self.protocol = None

    def message(self, client, topic, publish):
        pass  # a repub client subscribes to nothing

    def delivered(self, client, message):
        pass  # everything it sends is QoS 0

    def gave_up(self, client, message):
        pass

    def writable(self, client):
        pass
