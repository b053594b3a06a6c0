# -*- test-case-name: tests.e2e.test_rules -*-
"""
A minimal publishing MQTT client for ``repub`` rules aimed at another broker.

One ``ClientService`` per rule keeps a connection up with exponential
backoff; the protocol speaks our own codec (``mqtt.codec``): CONNECT, wait
for CONNACK, PINGREQ every keepalive, QoS 0 PUBLISH.  While the connection
is down, messages are dropped and counted -- a repub target that is away
never makes the broker buffer without bound.
"""

from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from ..mqtt.codec import Decoder, encode
from ..mqtt.packets import Connect, Disconnect, Pingreq, Publish

__all__ = ["RepubClient"]


class _RepubProtocol(Protocol):
    _log = Logger()

    def __init__(self, owner):
        self.owner = owner
        self.ready = False
        self._decoder = Decoder(protocol_level=owner.level)
        self._ping = None

    def connectionMade(self):
        owner = self.owner
        password = owner.password
        if isinstance(password, str):
            password = password.encode("utf-8")
        connect = Connect(
            client_id=owner.client_id or "",
            protocol_level=owner.level,
            protocol_name="MQIsdp" if owner.level == 3 else "MQTT",
            clean_start=owner.clean_start,
            keepalive=int(owner.keepalive),
            username=owner.username,
            password=password,
        )
        self.transport.write(encode(connect, owner.level))

    def dataReceived(self, data):
        try:
            for packet in self._decoder.feed(data):
                self._handle(packet)
        except Exception as error:  # noqa: BLE001 -- a broken peer: drop the connection
            self._log.warn("repub {uri}: bad data from broker: {error}",
                           uri=self.owner.uri, error=error)
            self.transport.loseConnection()

    def _handle(self, packet):
        name = type(packet).__name__
        if name == "Connack":
            if packet.reason_code != 0:
                self._log.warn("repub {uri}: CONNACK refused (code {code})",
                               uri=self.owner.uri, code=packet.reason_code)
                self.transport.loseConnection()
                return
            self.ready = True
            self.owner._connected(self)
            if self.owner.keepalive > 0:
                self._ping = self.owner.clock.callLater(self.owner.keepalive, self._send_ping)

    def _send_ping(self):
        self._ping = None
        if self.transport is not None and self.ready:
            self.transport.write(encode(Pingreq(), self.owner.level))
            self._ping = self.owner.clock.callLater(self.owner.keepalive, self._send_ping)

    def publish(self, topic, payload):
        self.transport.write(
            encode(Publish(topic, payload, 0, False, False), self.owner.level))

    def close(self):
        if self.ready:
            self.transport.write(encode(Disconnect(), self.owner.level))
        self.transport.loseConnection()

    def connectionLost(self, reason):
        self.ready = False
        if self._ping is not None and self._ping.active():
            self._ping.cancel()
        self._ping = None
        self.owner._disconnected(self)


class _Factory(Factory):
    def __init__(self, owner):
        self.owner = owner

    def buildProtocol(self, addr):
        return _RepubProtocol(self.owner)


class RepubClient:
    """A reconnecting publisher to ``host:port``."""

    _log = Logger()

    def __init__(self, reactor, host, port, client_id=None, level=4, username=None,
                 password=None, keepalive=60, clean_start=True, max_backoff=30.0):
        self.clock = reactor
        self.host, self.port = host, port
        self.uri = f"mqtt-tcp://{host}:{port}"
        self.client_id = client_id
        self.level = level if level in (3, 4, 5) else 4
        self.username = username
        self.password = password
        self.keepalive = keepalive or 0
        self.clean_start = clean_start
        self.protocol = None
        self.sent = 0
        self.dropped = 0
        self._endpoint = HostnameEndpoint(reactor, host, port, timeout=10)
        self._service = ClientService(
            self._endpoint, _Factory(self),
            retryPolicy=backoffPolicy(initialDelay=0.5, maxDelay=max_backoff),
            clock=reactor,
        )

    def start(self):
        self._service.startService()

    def stop(self):
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            protocol.close()
        return self._service.stopService()

    def _connected(self, protocol):
        self.protocol = protocol
        self._log.info("repub {uri} connected", uri=self.uri)

    def _disconnected(self, protocol):
        if self.protocol is protocol:
            self.protocol = None

    def publish(self, topic, payload):
        protocol = self.protocol
        if protocol is None or not protocol.ready:
            self.dropped += 1
            return False
        protocol.publish(topic, payload)
        self.sent += 1
        return True
