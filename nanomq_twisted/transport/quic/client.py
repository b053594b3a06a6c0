# -*- test-case-name: tests.protocol.test_quic_driver,tests.e2e.test_quic,tests.e2e.test_bridge_mosquitto -*-
"""
Dialling MQTT over QUIC: the client side, used by the bridge's
``mqtt-quic://`` endpoint (``bridge/endpoints.py``) and by the tests.
The stream protocol it carries is whatever the factory builds; for a
bridge that is the broker's one MQTT client (``client/protocol.py``),
unchanged from TCP.

``connect_quic`` resolves the host, then gives every connection attempt a
fresh UDP port and ``QuicConnection`` (a connected UDP port cannot
reconnect), so ``ClientService`` retries exactly as over TCP.  Its
``QuicClientProtocol`` is the ``startProtocol``/``datagramReceived`` end
of the driver contract (``driver.py``): it connects its port, starts the
handshake, and fires once the ``StreamSession`` (``stream.py``) has opened
the stream and the protocol's ``connectionMade`` has run.  Cancelling a
pending attempt, a failed handshake or an ICMP error on the port ends the
attempt and releases the port.

Only the dialling side lives here, imported by the bridge only when a
``mqtt-quic://`` bridge is used.  It never imports ``server.py``.
"""

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from twisted.internet import defer, error
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.protocol import DatagramProtocol

from .driver import QuicDriver
from .stream import ALPN, StreamSession


def client_configuration(server_name=None, cafile=None, verify=True, idle_timeout=60.0, **kwargs):
    """A client ``QuicConfiguration`` with ALPN ``mqtt``."""
    import ssl

    configuration = QuicConfiguration(
        is_client=True, alpn_protocols=list(ALPN), idle_timeout=idle_timeout,
        server_name=server_name, **kwargs,
    )
    if cafile:
        configuration.load_verify_locations(cafile)
    if not verify:
        configuration.verify_mode = ssl.CERT_NONE
    return configuration


class QuicClientProtocol(DatagramProtocol):
    """The UDP side of one client connection (its own port)."""

    def __init__(self, configuration, protocol_factory, clock, address):
        self.address = address
        # Cancelling a pending connect (ClientService stopping, a handshake
        # timeout) aborts the handshake and releases the UDP port.
        self.connected = defer.Deferred(canceller=self._cancel_connect)
        self._pending_connect = True
        self.terminated = defer.Deferred()
        self.session = StreamSession(
            protocol_factory, True, address, None,
            on_open=self._opened, on_terminated=self._ended,
        )
        self.session.driver = QuicDriver(
            QuicConnection(configuration=configuration), clock, self._send, self.session
        )
        self.session.terminated_deferred = self.terminated

    def startProtocol(self):
        self.session.host = self.transport.getHost()
        self.transport.connect(*self.address)
        self.session.driver.connect(self.address)

    def datagramReceived(self, data, addr):
        self.session.driver.datagram_received(data, addr)

    def connectionRefused(self):
        pass  # ICMP: QUIC retransmits, then the idle timeout ends it

    def _send(self, data, addr):
        if self.transport is not None:
            self.transport.write(data)

    def stopProtocol(self):
        # Under epoll an ICMP error on the connected UDP socket (nothing
        # listens on the server's port) is reported as a hang-up and the
        # reactor closes the port: end the connection (attempt) now.
        if self.session.terminated:
            return  # closing it ourselves
        pending, self._pending_connect = self._pending_connect, False
        self.session.abort("UDP port closed")
        if pending:
            self.connected.errback(
                error.ConnectError(string=f"QUIC: {self.address[0]}:{self.address[1]} unreachable")
            )
        if not self.terminated.called:
            self.terminated.callback(None)

    def _opened(self, protocol):
        self._pending_connect = False
        self.connected.callback(protocol)

    def _ended(self, event):
        port = self.transport
        d = defer.maybeDeferred(port.stopListening) if port is not None else defer.succeed(None)
        if self._pending_connect:
            self._pending_connect = False
            self.connected.errback(
                error.ConnectError(
                    f"QUIC handshake failed: 0x{event.error_code:x} {event.reason_phrase}"
                )
            )
        d.addBoth(lambda _: self.terminated.callback(event))

    def _cancel_connect(self, _deferred):
        if not self._pending_connect:
            return
        self._pending_connect = False
        self.stop().addBoth(
            lambda _: None if self.terminated.called else self.terminated.callback(None)
        )

    def stop(self):
        """Abort without the closing period and release the port."""
        self.session.abort("client closing")
        port = self.transport
        return defer.maybeDeferred(port.stopListening) if port is not None else defer.succeed(None)


def connect_quic(reactor, host, port, configuration, protocol_factory, clock=None):
    """Dial MQTT over QUIC: a fresh UDP port and connection per call.

    Fires with the stream protocol built by ``protocol_factory`` once the
    handshake is done and its stream open (its ``connectionMade`` has run);
    errbacks with ``ConnectError`` if the connection ends first.  The
    protocol's ``transport.session.terminated_deferred`` fires with the
    ``ConnectionTerminated`` event after the UDP port is released.
    ``host`` may be a name; it is resolved first.
    """
    clock = clock or reactor
    if isIPAddress(host) or isIPv6Address(host):
        resolved = defer.succeed(host)
    else:
        resolved = reactor.resolve(host)

    def dial(ip):
        client = QuicClientProtocol(configuration, protocol_factory, clock, (ip, port))
        reactor.listenUDP(0, client, interface="::" if ":" in ip else "0.0.0.0")
        return client.connected

    return resolved.addCallback(dial)
