# -*- test-case-name: tests.protocol.test_http_deadline,tests.shipped.test_slowloris -*-
"""
The REST API's HTTP server with a deadline per request (slowloris).

Twisted's ``HTTPChannel`` has an idle timeout only (``Site(timeout=)``),
reset by every byte: a client that sends its headers one byte every few
seconds keeps a connection, and a worker slot of ``limit_conn``'s kind,
for hours (16 KiB of headers at one byte per 59 s is eleven days).
`DeadlineHTTPChannel` adds what nginx calls ``client_header_timeout`` and
``client_body_timeout`` in one: from the moment the connection opens, or
the previous response was finished, the whole next request -- request
line, headers and body -- must have arrived within
``http_server.request_timeout`` seconds; otherwise the connection is
aborted (no response: the request is not complete, and a slow peer would
only read it slowly).  The same value is the idle timeout of a kept-alive
connection.  Handling a request is not bounded here: that time is ours.
"""

from twisted.logger import Logger
from twisted.web.http import HTTPChannel
from twisted.web.server import Site


class DeadlineHTTPChannel(HTTPChannel):
    """``HTTPChannel`` whose requests must arrive within the site's
    ``request_timeout``."""

    _log = Logger()
    _request_deadline = None

    def connectionMade(self):
        super().connectionMade()
        self._arm()

    def _arm(self):
        self._cancel()
        self._request_deadline = self.callLater(self.site.request_timeout, self._too_slow)

    def _cancel(self):
        call, self._request_deadline = self._request_deadline, None
        if call is not None and call.active():
            call.cancel()

    def allContentReceived(self):
        self._cancel()
        super().allContentReceived()

    def requestDone(self, request):
        # Armed first: a pipelined request buffered meanwhile is parsed by
        # the call below and may complete (and cancel it) at once.
        self._arm()
        super().requestDone(request)

    def connectionLost(self, reason):
        self._cancel()
        super().connectionLost(reason)

    def _too_slow(self):
        self._request_deadline = None
        stats = self.site.stats
        if stats is not None:
            stats.http_request_timeouts += 1
        self._log.info("HTTP request from {peer} not complete in {seconds} s: closing",
                       peer=self.transport.getPeer(), seconds=self.site.request_timeout)
        self.transport.abortConnection()


class DeadlineSite(Site):
    """A ``Site`` of `DeadlineHTTPChannel`s (plain HTTP/1.1: the REST API
    has no TLS, so there is no HTTP/2 to negotiate).

    ``request_timeout`` is both the deadline of each request and the idle
    timeout; ``stats`` (the broker's ``Stats``) counts the requests that
    missed it (``http_request_timeouts``)."""

    protocol = DeadlineHTTPChannel

    def __init__(self, resource, reactor, request_timeout, stats=None, **kwargs):
        super().__init__(resource, reactor=reactor, timeout=request_timeout, **kwargs)
        self.request_timeout = request_timeout
        self.stats = stats
