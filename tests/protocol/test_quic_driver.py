"""
The aioquic driver (``transport/quic/``) between a client and a server
``QuicConnection`` over in-memory datagram transports on one ``task.Clock``:
no sockets, no wall-clock time.
"""

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
)
from twisted.internet import error, task
from twisted.internet.address import IPv4Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import FakeDatagramTransport
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.transport.quic.client import (
    QuicClientProtocol,
    client_configuration,
)
from nanomq_twisted.transport.quic.driver import QuicDriver
from nanomq_twisted.transport.quic.server import QuicServerProtocol

from ..certs import make_certs

CLIENT_ADDR = ("10.0.0.1", 40000)
SERVER_ADDR = ("10.0.0.2", 14567)
IDLE = 30.0
#: Clock step while pumping datagrams: aioquic paces sends a few
#: microseconds apart, as on a real network.
TICK = 0.001


class FakeUDP(FakeDatagramTransport):
    """What the driver uses of a UDP port."""

    def __init__(self, addr):
        super().__init__()
        self.addr = addr
        self.peer = None
        self.stopped = False

    def getHost(self):
        return IPv4Address("UDP", *self.addr)

    def connect(self, host, port):
        self.peer = (host, port)

    def stopListening(self):
        self.stopped = True

    def take(self):
        written, self.written[:] = list(self.written), []
        return written


class Recorder(Protocol):
    """A stream protocol that records everything; ``greeting`` is written
    on connect."""

    def __init__(self, greeting=b""):
        self.greeting = greeting
        self.received = b""
        self.lost = None
        self.made = False

    def connectionMade(self):
        self.made = True
        if self.greeting:
            self.transport.write(self.greeting)

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost = reason


class RecorderFactory(Factory):
    def __init__(self, greeting=b""):
        self.greeting = greeting
        self.built = []

    def buildProtocol(self, addr):
        protocol = Recorder(self.greeting)
        protocol.addr = addr
        self.built.append(protocol)
        return protocol


class EventLog:
    """A driver handler that only records events."""

    def __init__(self):
        self.events = []

    def quic_event(self, event):
        self.events.append(event)

    def of(self, kind):
        return [e for e in self.events if isinstance(e, kind)]


class DriverTestBase(SynchronousTestCase):
    def setUp(self):
        self.certs = make_certs(self.mktemp())
        self.clock = task.Clock()

    def server_configuration(self):
        configuration = QuicConfiguration(
            is_client=False, alpn_protocols=["mqtt"], idle_timeout=IDLE
        )
        configuration.load_cert_chain(self.certs.server_cert, self.certs.server_key)
        return configuration

    def client_configuration(self):
        return client_configuration(
            server_name="localhost", cafile=self.certs.ca, idle_timeout=IDLE
        )


class QuicDriverTests(DriverTestBase):
    """``QuicDriver`` alone, two connections joined by a list."""

    def setUp(self):
        super().setUp()
        self.wire = []
        client_quic = QuicConnection(configuration=self.client_configuration())
        server_quic = QuicConnection(
            configuration=self.server_configuration(),
            original_destination_connection_id=client_quic.original_destination_connection_id,
        )
        self.client_log, self.server_log = EventLog(), EventLog()
        self.client = QuicDriver(
            client_quic, self.clock, lambda d, a: self.wire.append(("server", d)), self.client_log
        )
        self.server = QuicDriver(
            server_quic, self.clock, lambda d, a: self.wire.append(("client", d)), self.server_log
        )

    def pump(self):
        quiet = 0
        for _ in range(200):
            self.clock.advance(TICK)
            if not self.wire:
                quiet += 1
                if quiet == 3:
                    return
                continue
            quiet = 0
            wire, self.wire[:] = list(self.wire), []
            for to, data in wire:
                if to == "server":
                    self.server.datagram_received(data, CLIENT_ADDR)
                else:
                    self.client.datagram_received(data, SERVER_ADDR)
        self.fail("datagrams kept flowing")

    def test_handshake_and_stream(self):
        self.client.connect(SERVER_ADDR)
        self.pump()
        self.assertEqual(len(self.client_log.of(HandshakeCompleted)), 1)
        self.assertEqual(self.client_log.of(HandshakeCompleted)[0].alpn_protocol, "mqtt")
        self.assertEqual(len(self.server_log.of(HandshakeCompleted)), 1)
        stream = self.client.quic.get_next_available_stream_id()
        self.client.quic.send_stream_data(stream, b"\x10\x00")
        self.client.transmit_soon()
        self.client.transmit_soon()  # merged: one transmit
        self.pump()
        data = [e for e in self.server_log.of(StreamDataReceived) if e.stream_id == stream]
        self.assertEqual(b"".join(e.data for e in data), b"\x10\x00")

    def test_one_timer_per_driver(self):
        """Each driver keeps at most one DelayedCall from ``get_timer()``."""
        self.client.connect(SERVER_ADDR)
        self.pump()
        calls = self.clock.getDelayedCalls()
        self.assertEqual(len(calls), 2)
        self.assertEqual(
            sorted(c.getTime() for c in calls),
            sorted([self.client.quic.get_timer(), self.server.quic.get_timer()]),
        )

    def test_idle_timeout(self):
        """Silence past the idle timeout terminates both ends, from the
        re-armed timer alone."""
        self.client.connect(SERVER_ADDR)
        self.pump()
        for _ in range(10):
            self.clock.advance(IDLE / 4)
            self.wire[:] = []  # everything is lost from now on
        self.assertEqual(len(self.client_log.of(ConnectionTerminated)), 1)
        self.assertEqual(len(self.server_log.of(ConnectionTerminated)), 1)
        self.assertEqual(self.client.quic.get_timer(), None)

    def test_close(self):
        """``close`` sends CONNECTION_CLOSE; both ends terminate after the
        closing period."""
        self.client.connect(SERVER_ADDR)
        self.pump()
        self.client.close(reason="bye")
        self.pump()
        self.clock.advance(IDLE)
        self.assertEqual(self.server_log.of(ConnectionTerminated)[0].reason_phrase, "bye")
        self.assertEqual(len(self.client_log.of(ConnectionTerminated)), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class QuicListenerTests(DriverTestBase):
    """``QuicServerProtocol`` and ``QuicClientProtocol`` on fake UDP ports."""

    def setUp(self):
        super().setUp()
        self.server_factory = RecorderFactory()
        self.server = QuicServerProtocol(self.server_configuration(), self.server_factory, self.clock)
        self.server.makeConnection(FakeUDP(SERVER_ADDR))

    def connect(self, greeting=b"CONNECT"):
        self.client_factory = RecorderFactory(greeting)
        client = QuicClientProtocol(
            self.client_configuration(), self.client_factory, self.clock, SERVER_ADDR
        )
        client.makeConnection(FakeUDP(CLIENT_ADDR))
        self.assertEqual(client.transport.peer, SERVER_ADDR)
        return client

    def pump(self, client):
        quiet = 0
        for _ in range(200):
            self.clock.advance(TICK)
            to_server = client.transport.take()
            to_client = self.server.transport.take()
            if not to_server and not to_client:
                quiet += 1
                if quiet == 3:
                    return
                continue
            quiet = 0
            for data, _ in to_server:
                self.server.datagramReceived(data, CLIENT_ADDR)
            for data, addr in to_client:
                self.assertEqual(addr, CLIENT_ADDR)
                client.datagramReceived(data, SERVER_ADDR)
        self.fail("datagrams kept flowing")

    def test_stream_carries_bytes_both_ways(self):
        client = self.connect(b"\x10\x0c")
        connected = client.connected
        self.pump(client)
        protocol = self.successResultOf(connected)
        self.assertTrue(protocol.made)
        [server_side] = self.server_factory.built
        self.assertEqual(server_side.received, b"\x10\x0c")
        self.assertEqual(server_side.addr, IPv4Address("UDP", *CLIENT_ADDR))
        self.assertEqual(server_side.transport.getPeer(), IPv4Address("UDP", *CLIENT_ADDR))
        server_side.transport.write(b"\x20\x02")
        server_side.transport.write(b"\x00\x00")
        self.pump(client)
        self.assertEqual(protocol.received, b"\x20\x02\x00\x00")

    def test_connection_ids_mapped_and_forgotten(self):
        client = self.connect()
        self.pump(client)
        [session] = self.server.sessions
        self.assertGreater(len(self.server.connections), 2)
        self.assertEqual(set(self.server.connections.values()), {session})
        protocol = self.successResultOf(client.connected)
        protocol.transport.loseConnection()
        self.pump(client)
        self.clock.advance(0)
        self.assertIsInstance(protocol.lost.value, error.ConnectionDone)
        [server_side] = self.server_factory.built
        self.clock.advance(IDLE)
        # At the latest when the server's draining period ends.
        self.assertIsNotNone(server_side.lost)
        self.assertEqual(self.server.connections, {})
        self.assertEqual(self.server.sessions, set())
        self.assertTrue(client.transport.stopped)
        self.successResultOf(client.terminated)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_idle_timeout_loses_both_protocols(self):
        client = self.connect()
        self.pump(client)
        protocol = self.successResultOf(client.connected)
        [server_side] = self.server_factory.built
        self.clock.advance(IDLE + 1)
        self.clock.advance(IDLE + 1)
        self.assertIsInstance(server_side.lost.value, error.ConnectionLost)
        self.assertIsInstance(protocol.lost.value, error.ConnectionLost)
        self.assertEqual(self.server.sessions, set())
        self.successResultOf(client.terminated)

    def test_handshake_timeout_fails_connect(self):
        """No answer at all: the connect Deferred fails after the idle
        timeout and the client's port is released."""
        client = self.connect()
        client.transport.take()
        for _ in range(20):
            self.clock.advance(IDLE / 4)
            client.transport.take()
        self.failureResultOf(client.connected, error.ConnectError)
        self.assertTrue(client.transport.stopped)

    def test_junk_ignored(self):
        for junk in (b"", b"\x00", b"\x40" + b"\x99" * 30, b"GET / HTTP/1.1\r\n\r\n"):
            self.server.datagramReceived(junk, CLIENT_ADDR)
        self.assertEqual(self.server.sessions, set())
        self.assertEqual(self.server.transport.written, [])
        # A well-formed long header of an unknown version: version negotiation.
        unknown = b"\xc0" + b"\x0a\x0a\x0a\x0a" + b"\x08" + b"D" * 8 + b"\x08" + b"S" * 8
        self.server.datagramReceived(unknown + b"\x00" * 1200, CLIENT_ADDR)
        [(reply, addr)] = self.server.transport.take()
        self.assertEqual((reply[1:5], addr), (b"\x00\x00\x00\x00", CLIENT_ADDR))
        self.assertEqual(self.server.sessions, set())
        # Then a real client still connects.
        client = self.connect()
        self.pump(client)
        self.successResultOf(client.connected)

    def test_close_all(self):
        """Listener shutdown: every connection gets CONNECTION_CLOSE, every
        protocol its connectionLost, no timer is left."""
        client = self.connect()
        self.pump(client)
        [server_side] = self.server_factory.built
        self.server.close_all()
        self.assertIsNotNone(server_side.lost)
        self.assertEqual(len(self.server.transport.written), 1)
        self.pump(client)
        self.clock.advance(IDLE)
        self.successResultOf(client.terminated)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_wrong_alpn_refused(self):
        configuration = self.client_configuration()
        configuration.alpn_protocols = ["h3"]
        client = QuicClientProtocol(configuration, RecorderFactory(), self.clock, SERVER_ADDR)
        client.makeConnection(FakeUDP(CLIENT_ADDR))
        self.pump(client)
        self.clock.advance(IDLE)
        self.failureResultOf(client.connected, error.ConnectError)
        self.assertEqual(self.server_factory.built, [])
