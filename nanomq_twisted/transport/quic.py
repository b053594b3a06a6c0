# -*- test-case-name: tests.protocol.test_quic_driver,tests.e2e.test_quic -*-
"""
The one aioquic driver: MQTT over QUIC for the listener and the bridge.

aioquic's ``QuicConnection`` is sans-I/O (inputs ``connect``,
``receive_datagram`` and ``handle_timer``; outputs ``datagrams_to_send``,
``get_timer`` and ``next_event``; time always passed in).  This module is
its Twisted adapter, shaped after aioquic's ``asyncio/protocol.py`` and
dnspython's split of a shared core plus thin adapters:

``QuicDriver``
    drives one ``QuicConnection`` on a ``clock`` with a ``send(data,
    addr)`` callable: receive → drain events → transmit; transmit writes
    every datagram and re-arms the one ``DelayedCall`` from ``get_timer()``;
    the timer calls ``handle_timer(max(t, now))``.  Events go to a handler.
``StreamSession``
    that handler for MQTT: one bidirectional stream carries the bytes of
    one stream protocol (an unchanged ``MQTTServerProtocol`` on the server,
    the bridge's client protocol on the client), through
    ``QuicStreamTransport``, an ``ITransport`` whose writes are merged with
    ``callLater(0)`` into one ``send_stream_data``.  The client opens the
    stream when the handshake completes (so its protocol's
    ``connectionMade`` sends CONNECT); the server adopts the first
    client-initiated bidirectional stream.  ``ConnectionTerminated`` is the
    protocol's ``connectionLost``.
``QuicServerProtocol``/``QuicServerEndpoint``
    the listener: one UDP port, connections demultiplexed by destination
    connection ID as aioquic's own server does (a new connection only for
    an Initial packet of a full-size datagram; every connection ID issued
    is mapped, retired ones unmapped).  Junk that does not parse as a QUIC
    header is dropped.
``connect_quic``
    the client: a fresh UDP port per connection attempt, firing with the
    stream protocol once the handshake is done.

ALPN is ``mqtt`` on both sides.  No ``asyncioreactor``: everything runs on
the injected clock, so tests step it with ``task.Clock``.
"""

from functools import singledispatchmethod

from aioquic.buffer import Buffer
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import (
    QuicErrorCode,
    QuicPacketType,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from twisted.internet import defer, error
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

ALPN = ["mqtt"]


class QuicConfigError(Exception):
    """The QUIC listener's certificate settings cannot be used."""


def _address(addr):
    host, port = addr[0], addr[1]
    if ":" in host:
        return IPv6Address("UDP", host, port)
    return IPv4Address("UDP", host, port)


def server_configuration(listener):
    """``QuicConfiguration`` for a ``QuicListener`` config (certificates
    loaded now: errors raise ``QuicConfigError``)."""
    configuration = QuicConfiguration(
        is_client=False, alpn_protocols=list(ALPN), idle_timeout=listener.idle_timeout
    )
    try:
        configuration.load_cert_chain(listener.certfile, listener.keyfile, listener.key_password)
    except (OSError, ValueError, TypeError) as exc:
        raise QuicConfigError(
            f"quic listener certfile {listener.certfile!r} / keyfile {listener.keyfile!r}: {exc}"
        )
    return configuration


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


@implementer(ITransport, IConsumer, IPushProducer)
class QuicStreamTransport:
    """One QUIC stream as the ``ITransport`` of a stream protocol."""

    disconnecting = False

    def __init__(self, session, stream_id):
        self.session = session
        self.stream_id = stream_id
        self.producer = None
        self._pending = []
        self._paused = False
        self._held = []

    # writes: queued, flushed once per reactor turn into send_stream_data
    def write(self, data):
        if self.disconnecting or not data:
            return
        self._pending.append(bytes(data))
        self.session.driver.transmit_soon(self._flush)

    def writeSequence(self, seq):
        for data in seq:
            self.write(data)

    def _flush(self, end_stream=False):
        data, self._pending = b"".join(self._pending), []
        if data or end_stream:
            self.session.driver.quic.send_stream_data(self.stream_id, data, end_stream)

    def loseConnection(self):
        if not self.disconnecting:
            self.disconnecting = True
            self.session.close_by_application(self)

    abortConnection = loseConnection

    def getPeer(self):
        return _address(self.session.peer)

    def getHost(self):
        return self.session.host

    def setTcpNoDelay(self, enabled):
        pass

    # reading side: pausing holds received data until resumed
    def deliver(self, data):
        if self._paused:
            self._held.append(data)
        else:
            self.session.protocol.dataReceived(data)

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        held, self._held = self._held, []
        for data in held:
            if self.session.protocol is None:
                return
            self.session.protocol.dataReceived(data)

    def stopProducing(self):
        self.loseConnection()


class StreamSession:
    """Event handler of one QUIC connection carrying one stream protocol.

    ``protocol_factory.buildProtocol(peer_address)`` is called once the
    stream exists.  ``on_open(protocol)`` runs then, ``on_terminated(event)``
    when the connection has ended; both are optional.
    """

    _log = Logger()

    def __init__(self, protocol_factory, is_client, peer, host,
                 on_open=None, on_terminated=None, on_cid=None):
        self.protocol_factory = protocol_factory
        self.is_client = is_client
        self.peer = peer
        self.host = host
        self.on_open = on_open
        self.on_terminated = on_terminated
        self.on_cid = on_cid
        self.driver = None
        self.stream = None
        self.protocol = None
        self.terminated = False
        self._lose_call = None

    @singledispatchmethod
    def quic_event(self, event):
        pass

    @quic_event.register
    def _(self, event: HandshakeCompleted):
        if self.is_client:
            self._open(self.driver.quic.get_next_available_stream_id())

    @quic_event.register
    def _(self, event: StreamDataReceived):
        if self.stream is None and not self.is_client and event.stream_id % 4 == 0:
            # The first client-initiated bidirectional stream carries MQTT.
            self._open(event.stream_id)
        if self.stream is None or event.stream_id != self.stream.stream_id:
            return
        if event.data:
            self.stream.deliver(event.data)
        if event.end_stream and self.protocol is not None:
            # The peer will send nothing more: the MQTT connection is over.
            self.stream.loseConnection()

    @quic_event.register
    def _(self, event: StreamReset):
        if self.stream is not None and event.stream_id == self.stream.stream_id:
            self.stream.loseConnection()

    @quic_event.register
    def _(self, event: ConnectionIdIssued):
        if self.on_cid is not None:
            self.on_cid(event.connection_id, True)

    @quic_event.register
    def _(self, event: ConnectionIdRetired):
        if self.on_cid is not None:
            self.on_cid(event.connection_id, False)

    @quic_event.register
    def _(self, event: ConnectionTerminated):
        self.terminated = True
        self.driver.stop()
        self._lose(
            error.ConnectionDone("QUIC connection closed")
            if event.error_code == QuicErrorCode.NO_ERROR
            else error.ConnectionLost(
                f"QUIC connection terminated: 0x{event.error_code:x} {event.reason_phrase}"
            )
        )
        if self.on_terminated is not None:
            self.on_terminated(event)

    def _open(self, stream_id):
        self.stream = QuicStreamTransport(self, stream_id)
        protocol = self.protocol_factory.buildProtocol(_address(self.peer))
        if protocol is None:
            self.driver.close(QuicErrorCode.NO_ERROR, "refused")
            return
        self.protocol = protocol
        protocol.makeConnection(self.stream)
        if self.on_open is not None:
            self.on_open(protocol)

    def close_by_application(self, stream):
        """The stream protocol closed: finish the stream, close the QUIC
        connection, and tell the protocol on the next turn (never
        re-entrantly), without waiting for the closing period."""
        if not self.terminated:
            # FIN first (best effort: the pacer may hold it back), so the
            # peer's protocol can end before its draining period does.
            stream._flush(end_stream=True)
            self.driver.transmit()
            self.driver.close(QuicErrorCode.NO_ERROR, "")
        if self._lose_call is None:
            self._lose_call = self.driver.clock.callLater(
                0, self._lose, error.ConnectionDone("closed")
            )

    def abort(self, reason="server shutting down"):
        """Close now and forget the connection (listener shutdown)."""
        if not self.terminated:
            self.terminated = True
            self.driver.close(QuicErrorCode.NO_ERROR, reason)
        self.driver.stop()
        self._lose(error.ConnectionDone(reason))

    def _lose(self, exc):
        call, self._lose_call = self._lose_call, None
        if call is not None and call.active():
            call.cancel()
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            self.stream.disconnecting = True
            protocol.connectionLost(Failure(exc))


class QuicServerProtocol(DatagramProtocol):
    """The UDP side of the QUIC listener: demultiplexes by connection ID."""

    _log = Logger()

    def __init__(self, configuration, protocol_factory, clock):
        self.configuration = configuration
        self.protocol_factory = protocol_factory
        self.clock = clock
        self.connections = {}  # connection id -> StreamSession
        self.sessions = set()

    def datagramReceived(self, data, addr):
        try:
            header = pull_quic_header(
                Buffer(data=data), host_cid_length=self.configuration.connection_id_length
            )
        except ValueError:
            return  # not QUIC: ignored
        supported = self.configuration.supported_versions
        if (
            header.packet_type != QuicPacketType.VERSION_NEGOTIATION
            and header.version is not None
            and header.version not in supported
        ):
            self.transport.write(
                encode_quic_version_negotiation(
                    source_cid=header.destination_cid,
                    destination_cid=header.source_cid,
                    supported_versions=supported,
                ),
                addr,
            )
            return
        session = self.connections.get(header.destination_cid)
        if (
            session is None
            and header.packet_type == QuicPacketType.INITIAL
            and len(data) >= SMALLEST_MAX_DATAGRAM_SIZE
        ):
            session = self._new_connection(header.destination_cid, addr)
        if session is not None:
            session.driver.datagram_received(data, addr)

    def _new_connection(self, original_cid, addr):
        quic = QuicConnection(
            configuration=self.configuration,
            original_destination_connection_id=original_cid,
        )
        session = StreamSession(
            self.protocol_factory, False, addr, self.transport.getHost(),
        )
        session.on_cid = lambda cid, issued: self._map(session, cid, issued)
        session.on_terminated = lambda event: self._forget(session)
        session.driver = QuicDriver(quic, self.clock, self.transport.write, session)
        self.sessions.add(session)
        self.connections[original_cid] = session
        self.connections[quic.host_cid] = session
        return session

    def _map(self, session, cid, issued):
        if issued:
            self.connections[cid] = session
        elif self.connections.get(cid) is session:
            del self.connections[cid]

    def _forget(self, session):
        self.sessions.discard(session)
        for cid in [cid for cid, s in self.connections.items() if s is session]:
            del self.connections[cid]

    def close_all(self):
        for session in list(self.sessions):
            session.abort()
            self._forget(session)


class QuicListeningPort:
    """``IListeningPort`` of the QUIC listener: closes every connection
    (CONNECTION_CLOSE sent, timers cancelled) before the UDP port."""

    def __init__(self, udp_port, server):
        self.udp_port = udp_port
        self.server = server

    def getHost(self):
        return self.udp_port.getHost()

    def startListening(self):
        self.udp_port.startListening()

    def stopListening(self):
        self.server.close_all()
        return defer.maybeDeferred(self.udp_port.stopListening)


class QuicServerEndpoint:
    """Listens for MQTT over QUIC as configured by a ``QuicListener``:
    ``listen(factory)`` fires with a ``QuicListeningPort``."""

    def __init__(self, reactor, listener, clock=None):
        self.reactor = reactor
        self.listener = listener
        self.clock = clock or reactor

    def listen(self, factory):
        try:
            configuration = server_configuration(self.listener)
            server = QuicServerProtocol(configuration, factory, self.clock)
            host = self.listener.host or "0.0.0.0"
            udp = self.reactor.listenUDP(self.listener.port, server, interface=host)
        except (QuicConfigError, error.CannotListenError):
            return defer.fail()
        return defer.succeed(QuicListeningPort(udp, server))


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
