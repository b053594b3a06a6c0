# -*- test-case-name: tests.protocol.test_http_deadline -*-
"""
``DeadlineSite`` (http/deadline.py) on a ``StringTransport`` with a
``task.Clock``: a request must be complete -- request line, headers, body
-- within ``request_timeout`` of the connection opening or of the previous
response, however its bytes trickle in; an ordinary request is answered,
and a kept-alive connection gets the deadline again for its next request.
"""

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from nanomq_twisted.core.metrics import Stats
from nanomq_twisted.http.deadline import DeadlineSite

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


class Ok(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"ok"


class DeadlineTests(SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.stats = Stats()
        self.site = DeadlineSite(Ok(), self.clock, 2.0, self.stats)
        self.site.doStart()
        self.addCleanup(self.site.doStop)

    def connection(self):
        channel = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5000))
        transport = StringTransport()
        channel.makeConnection(transport)
        self.addCleanup(channel.connectionLost, None)
        return channel, transport

    def test_headers_dribbled_byte_by_byte_are_cut_off(self):
        channel, transport = self.connection()
        # One byte every 0.1 s resets Twisted's idle timeout every time.
        for byte in REQUEST[:19]:
            channel.dataReceived(bytes([byte]))
            self.clock.advance(0.1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.stats.http_request_timeouts, 1)

    def test_silent_connection_is_cut_off(self):
        _channel, transport = self.connection()
        self.clock.advance(2.0)
        self.assertTrue(transport.disconnecting)

    def test_slow_body_is_cut_off(self):
        channel, transport = self.connection()
        channel.dataReceived(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        for _ in range(19):
            channel.dataReceived(b"a")
            self.clock.advance(0.1)
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)

    def test_request_in_time_is_answered_and_the_next_one_gets_a_deadline(self):
        channel, transport = self.connection()
        self.clock.advance(1.9)
        channel.dataReceived(REQUEST)
        self.assertIn(b"200 OK", transport.value())
        self.assertIn(b"ok", transport.value())
        self.clock.advance(1.9)
        self.assertFalse(transport.disconnecting)  # counts from the response
        channel.dataReceived(REQUEST[:10])
        self.clock.advance(0.1)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.stats.http_request_timeouts, 1)
