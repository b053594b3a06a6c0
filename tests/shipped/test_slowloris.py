# -*- test-case-name: tests.shipped.test_slowloris -*-
"""
Slow and silent peers on every listener of the shipped configuration
(MQTT over TCP, MQTT over WebSocket, the REST API), over real loopback
sockets: each is closed after a bounded time while the broker goes on
serving everybody else, and a flood of 2,000 half-open connections leaves
nothing behind.

The shipped file is used as it is, with only its timeouts shortened
(appended: HOCON merges the blocks) so the tests take a second, not ten.
Every slow peer is a reactor-driven client protocol (``Dribbler``, one
byte per interval); the tests await its ``connectionLost``.  Nothing
sleeps.
"""

import base64
import gc
import os
import urllib.request

import psutil
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

from nanomq_twisted.core.connection import ClientConnection

from .. import packets as P
from ..e2e.support import TIMEOUT, Dribbler, in_thread
from .support import ADMIN, PahoClients, ShippedBroker, shipped_copy, start_config

SHORT_TIMEOUTS = """
# tests/shipped/test_slowloris.py: short deadlines for the test.
listeners { connect_timeout = 500ms, handshake_timeout = 500ms }
http_server { request_timeout = 500ms }
"""

#: One byte per this many seconds: each request below takes several
#: seconds to dribble, far past the 0.5 s deadlines.
INTERVAL = 0.05


@defer.inlineCallbacks
def start_short(testcase):
    workdir = os.path.abspath(testcase.mktemp())
    os.makedirs(workdir)
    path = shipped_copy(workdir)
    with open(path, "a", encoding="utf-8") as f:
        f.write(SHORT_TIMEOUTS)
    app, ports = yield start_config(testcase, path, ("tcp", "ws", "http"))
    return ShippedBroker(app, ports, workdir)


def served_over(clients, transport, name):
    """A paho client subscribes and gets its own QoS 1 message back."""
    client = clients(name, 4, transport=transport)
    client.connect()
    client.subscribe("alive/" + name, 1)
    client.publish("alive/" + name, b"yes", 1)
    assert client.expect().payload == b"yes"
    client.disconnect()


def rest_get(port, path="/api/v4/brokers"):
    token = base64.b64encode(":".join(ADMIN).encode()).decode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": "Basic " + token})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return response.status, response.read()


class SlowPeerTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.shipped = yield start_short(self)
        self.stats = self.shipped.broker.stats
        self.clients = PahoClients(self, self.shipped)

    @defer.inlineCallbacks
    def slow_peers(self, port, data, count=3):
        """``count`` peers dribbling ``data`` and one that sends nothing."""
        peers = [Dribbler(data, INTERVAL) for _ in range(count)] + [Dribbler(b"", 1.0)]
        for peer in peers:
            yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), peer)
        return peers

    @defer.inlineCallbacks
    def test_tcp_connect_dribbled(self):
        """MQTT over TCP: a CONNECT sent a byte at a time is closed at the
        CONNECT deadline (it counts from the accept), without a reply."""
        connect = P.connect("slowloris-" + "x" * 100)
        peers = yield self.slow_peers(self.shipped.port, connect)
        yield in_thread(served_over, self.clients, "tcp", "tcp-meanwhile")
        yield defer.gatherResults([peer.closed for peer in peers])
        for peer in peers:
            self.assertLess(peer.sent, len(connect))
            self.assertEqual(peer.received, b"")
        self.assertGreaterEqual(self.stats.connect_timeouts, 4)
        self.assertEqual(self.shipped.broker.admission.counts, {})

    @defer.inlineCallbacks
    def test_websocket_upgrade_dribbled(self):
        """MQTT over WebSocket: an HTTP upgrade request dribbled (or never
        sent) is dropped at the handshake deadline, before any MQTT
        connection exists."""
        upgrade = (b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n")
        peers = yield self.slow_peers(self.shipped.ports["ws"], upgrade)
        yield in_thread(served_over, self.clients, "ws", "ws-meanwhile")
        yield defer.gatherResults([peer.closed for peer in peers])
        for peer in peers:
            self.assertLess(peer.sent, len(upgrade))
            self.assertEqual(peer.received, b"")
        self.assertGreaterEqual(self.stats.handshake_timeouts, 4)

    @defer.inlineCallbacks
    def test_rest_request_dribbled(self):
        """The REST API: a request whose headers never end is aborted at
        ``http_server.request_timeout``, though every byte would reset
        Twisted's idle timeout; other requests are answered meanwhile."""
        token = base64.b64encode(":".join(ADMIN).encode())
        request = (b"GET /api/v4/brokers HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"Authorization: Basic " + token + b"\r\n\r\n")
        peers = yield self.slow_peers(self.shipped.ports["http"], request)
        status, body = yield in_thread(rest_get, self.shipped.ports["http"])
        self.assertEqual(status, 200)
        self.assertIn(b'"code":0', body.replace(b" ", b""))
        yield defer.gatherResults([peer.closed for peer in peers])
        for peer in peers:
            self.assertLess(peer.sent, len(request))
            self.assertEqual(peer.received, b"")
        self.assertGreaterEqual(self.stats.http_request_timeouts, 4)


class _Silent(protocol.Protocol):
    """A half-open peer: connects, sends nothing, waits to be closed."""

    def __init__(self):
        self.closed = defer.Deferred()

    def connectionLost(self, reason):
        self.closed.callback(None)


class HalfOpenFloodTests(TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_waves_of_2000_half_open_connections(self):
        """Three waves of 2,000 connections that send nothing: each wave is
        closed by the CONNECT deadline, the broker serves a client while
        the first is open, and nothing is left behind (no counted address,
        no timer, no connection object, no open connection): the third
        wave costs no more memory than the second."""
        shipped = yield start_short(self)
        broker = shipped.broker
        factory = shipped.app.listeners["tcp"].factory
        clients = PahoClients(self, shipped)
        process = psutil.Process()
        timers_before = len(broker.timers)
        rss = []
        for wave in range(3):
            peers = [_Silent() for _ in range(2000)]
            connected = [connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", shipped.port),
                                         peer) for peer in peers]
            yield defer.gatherResults(connected)
            if wave == 0:
                yield in_thread(served_over, clients, "tcp", "during-the-flood")
            yield defer.gatherResults([peer.closed for peer in peers])
            del peers, connected
            self.assertEqual(factory.open_connections, 0)
            self.assertEqual(broker.admission.counts, {})
            self.assertEqual(len(broker.timers), timers_before)
            gc.collect()
            left = [o for o in gc.get_objects()
                    if isinstance(o, ClientConnection) and o.broker is broker]
            self.assertEqual(left, [])
            rss.append(process.memory_info().rss)
        self.assertGreaterEqual(broker.stats.connect_timeouts, 6000)
        # Later waves reuse what the first one freed (the test process holds
        # the client side too): 4 MiB is far below 2,000 connections' worth
        # of anything left behind.
        self.assertLess(rss[2] - rss[1], 4 * 1024 * 1024, rss)
