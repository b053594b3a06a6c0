# -*- test-case-name: tests.protocol.test_quic_driver,tests.e2e.test_quic,tests.e2e.test_bridge_mosquitto -*-
"""
The MQTT-over-QUIC listener (``listeners.quic``, beyond NanoMQ, which only
dials QUIC; EMQX serves it too).

One UDP port serves every connection: ``QuicServerProtocol`` demultiplexes
datagrams by destination connection ID as aioquic's own server does (a new
connection only for an Initial packet in a full-size datagram; every
connection ID issued is mapped, retired ones unmapped), answers unknown
versions with Version Negotiation and drops junk that does not parse as a
QUIC header.  Each connection is a ``QuicDriver`` (``driver.py``) with a
``StreamSession`` (``stream.py``) carrying an unchanged
``MQTTServerProtocol``.  ``QuicServerEndpoint`` is what
``transport/build.py`` listens on; ``QuicListeningPort`` closes every
connection before the UDP port.

Only the listener side lives here, so ``transport/build.py`` imports this
module (and with it aioquic) only when ``listeners.quic`` is configured.
It never imports ``client.py``.
"""

from aioquic.buffer import Buffer
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import (
    QuicPacketType,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from twisted.internet import defer, error
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from ..published_keys import published_material, refusal
from .driver import QuicDriver
from .stream import ALPN, StreamSession


class QuicConfigError(Exception):
    """The QUIC listener's certificate settings cannot be used."""


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
    if not listener.allow_test_certificates:
        found = published_material(listener.keyfile, listener.certfile,
                                   listener.cacertfile, listener.key_password)
        if found is not None:
            raise QuicConfigError(refusal("listeners.quic", found))
    return configuration


class QuicServerProtocol(DatagramProtocol):
    """The UDP side of the QUIC listener: demultiplexes by connection ID."""

    _log = Logger()

    def __init__(self, configuration, protocol_factory, clock, stream_timeout=10.0, stats=None):
        self.configuration = configuration
        self.protocol_factory = protocol_factory
        self.clock = clock
        #: Seconds a new connection has to finish its handshake and open
        #: the MQTT stream (``listeners.handshake_timeout``): a peer that
        #: keeps a QUIC connection alive with PINGs but never opens a
        #: stream would otherwise never meet the CONNECT timeout.
        self.stream_timeout = stream_timeout
        #: The broker's ``Stats`` (``handshake_timeouts``), or None.
        self.stats = stats
        self.connections = {}  # connection id -> StreamSession
        self.sessions = set()
        self.deadlines = {}  # StreamSession without its stream yet -> DelayedCall

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
        self.deadlines[session] = self.clock.callLater(
            self.stream_timeout, self._no_stream, session)
        session.on_cid = lambda cid, issued: self._map(session, cid, issued)
        session.on_open = lambda protocol: self._cancel_deadline(session)
        session.on_terminated = lambda event: self._forget(session)
        session.driver = QuicDriver(quic, self.clock, self.transport.write, session)
        self.sessions.add(session)
        self.connections[original_cid] = session
        self.connections[quic.host_cid] = session
        return session

    def _cancel_deadline(self, session):
        call = self.deadlines.pop(session, None)
        if call is not None and call.active():
            call.cancel()

    def _no_stream(self, session):
        self.deadlines.pop(session, None)
        if session.protocol is not None or session.terminated:
            return
        if self.stats is not None:
            self.stats.handshake_timeouts += 1
        self._log.info("QUIC connection from {host}:{port} opened no MQTT stream in time",
                       host=session.peer[0], port=session.peer[1])
        session.abort("no MQTT stream in time")
        self._forget(session)

    def _map(self, session, cid, issued):
        if issued:
            self.connections[cid] = session
        elif self.connections.get(cid) is session:
            del self.connections[cid]

    def _forget(self, session):
        self._cancel_deadline(session)
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

    def __init__(self, reactor, listener, clock=None, stream_timeout=10.0, stats=None):
        self.reactor = reactor
        self.listener = listener
        self.clock = clock or reactor
        self.stream_timeout = stream_timeout
        self.stats = stats

    def listen(self, factory):
        try:
            configuration = server_configuration(self.listener)
            server = QuicServerProtocol(configuration, factory, self.clock,
                                        self.stream_timeout, self.stats)
            host = self.listener.host or "0.0.0.0"
            udp = self.reactor.listenUDP(self.listener.port, server, interface=host)
        except (QuicConfigError, error.CannotListenError):
            return defer.fail()
        return defer.succeed(QuicListeningPort(udp, server))
