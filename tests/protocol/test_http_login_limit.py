"""
Failed dashboard logins held back per source address: the limiter on a
stepped ``now``, then ``POST /api/v4/dashboard/login`` through
``StubTreq`` on the test clock from several (pretended) peer addresses --
429 with ``Retry-After`` after ``login_attempts`` failures, nobody else
affected, the window's end, one log line per address and window, the
``/prometheus`` counters and the configuration keys.
"""

import json

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource

from nanomq_twisted.config import ConfigError, loads
from nanomq_twisted.http.login_limit import LoginLimiter

from .http_support import Harness

LIMITED = ("http_server { dashboard { enable = true, login_attempts = 3, "
           "login_window = 60s } }\n")
RIGHT = {"username": "admin", "password": "public"}
WRONG = {"username": "admin", "password": "guess"}


class LimiterTests(SynchronousTestCase):
    def test_held_back_after_attempts_until_the_window_closes(self):
        limiter = LoginLimiter()
        now = 100.0
        self.assertEqual([limiter.failed("a", now + i, 3, 60) for i in range(3)],
                         [False, False, True])
        self.assertIsNone(limiter.retry_after("b", now + 3, 3, 60))
        self.assertEqual(limiter.retry_after("a", now + 10, 3, 60), 50)
        self.assertEqual(limiter.retry_after("a", now + 59, 3, 60), 1)
        self.assertIsNone(limiter.retry_after("a", now + 60, 3, 60))
        self.assertEqual((limiter.failures, limiter.refused), (3, 2))
        self.assertEqual(len(limiter), 0)

    def test_the_window_opens_at_the_first_failure(self):
        limiter = LoginLimiter()
        limiter.failed("a", 0, 3, 60)
        limiter.failed("a", 50, 3, 60)
        # A new window: the first failure's window has closed.
        self.assertFalse(limiter.failed("a", 61, 3, 60))
        self.assertIsNone(limiter.retry_after("a", 62, 3, 60))

    def test_success_starts_over(self):
        limiter = LoginLimiter()
        limiter.failed("a", 0, 3, 60)
        limiter.failed("a", 1, 3, 60)
        limiter.succeeded("a")
        self.assertFalse(limiter.failed("a", 2, 3, 60))
        self.assertFalse(limiter.failed("a", 3, 3, 60))

    def test_zero_attempts_is_no_limit(self):
        limiter = LoginLimiter()
        for i in range(10):
            self.assertFalse(limiter.failed("a", i, 0, 60))
        self.assertIsNone(limiter.retry_after("a", 10, 0, 60))
        self.assertEqual(limiter.failures, 10)

    def test_table_is_bounded(self):
        limiter = LoginLimiter(max_addresses=3)
        for n in range(10):
            limiter.failed(f"10.0.0.{n}", 0, 3, 60)
        self.assertEqual(len(limiter), 3)


class _AsPeer(Resource):
    """Sets the request's client address from ``X-Test-Peer`` (what a
    real TCP peer would be), then hands it to the gate."""

    isLeaf = True

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def render(self, request):
        host = request.getHeader(b"x-test-peer")
        if host is not None:
            request.client = IPv4Address("TCP", host.decode("ascii"), 40000)
        return self.inner.render(request)


class LoginEndpointTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(LIMITED)
        self.h.treq = StubTreq(_AsPeer(self.h.api.app.resource()))
        self.logged = []
        observer = self.logged.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def login(self, peer, body):
        status, headers, content = self.h.request(
            "POST", "/api/v4/dashboard/login", body, auth=None,
            headers={b"X-Test-Peer": [peer.encode("ascii")]})
        return status, headers.getRawHeaders(b"retry-after"), json.loads(content)

    def held_back_logs(self):
        return [e for e in self.logged if "failed logins from" in e.get("log_format", "")]

    def test_attacker_held_back_others_not(self):
        for _ in range(3):
            self.assertEqual(self.login("10.0.0.1", WRONG)[::2], (401, {"code": 103}))
        self.h.clock.advance(20)
        # Even the right password waits now, with the time left to wait.
        status, retry, body = self.login("10.0.0.1", RIGHT)
        self.assertEqual((status, retry, body["code"], body["retry_after"]),
                         (429, [b"40"], 103, 40))
        self.assertIn("40 s", body["message"])
        self.assertEqual(self.login("10.0.0.1", WRONG)[0], 429)
        # Another address logs in at once, and can fail on its own count.
        self.assertEqual(self.login("10.0.0.2", RIGHT)[0], 200)
        self.assertEqual(self.login("10.0.0.3", WRONG)[0], 401)
        self.assertEqual(self.login("10.0.0.3", RIGHT)[0], 200)
        self.assertEqual(len(self.held_back_logs()), 1)
        self.assertEqual(self.held_back_logs()[0]["address"], "10.0.0.1")
        # The window closes 60 s after the first failure.
        self.h.clock.advance(39)
        self.assertEqual(self.login("10.0.0.1", RIGHT)[:2], (429, [b"1"]))
        self.h.clock.advance(1)
        self.assertEqual(self.login("10.0.0.1", RIGHT)[0], 200)
        # A new window, a new log line.
        for _ in range(3):
            self.login("10.0.0.1", WRONG)
        self.assertEqual(len(self.held_back_logs()), 2)

        status, _headers, text = self.h.request("GET", "/api/v4/prometheus")
        lines = text.decode().splitlines()
        self.assertIn("nanomq_dashboard_login_failures 7", lines)
        self.assertIn("nanomq_dashboard_login_refused 3", lines)

    def test_survives_a_new_api(self):
        """The count belongs to the application (like the sessions), so a
        ``/ctrl/restart`` rebuilding the HTTP API does not reset it."""
        for _ in range(3):
            self.login("10.0.0.1", WRONG)
        self.assertIs(self.h.app.logins.limiter, self.h.api.logins.limiter)
        self.assertEqual(len(self.h.app.logins.limiter), 1)

    def test_malformed_bodies_do_not_count(self):
        for _ in range(5):
            self.assertEqual(self.login("10.0.0.1", {"username": 1})[0], 400)
        self.assertEqual(self.login("10.0.0.1", RIGHT)[0], 200)


class ConfigTests(SynchronousTestCase):
    def test_defaults_and_keys(self):
        base = 'http_server { port = 8081, dashboard { enable = true %s } }'
        dashboard = loads(base % "", path="<t>").http_server.dashboard
        self.assertEqual((dashboard.login_attempts, dashboard.login_window), (5, 300.0))
        dashboard = loads(base % ", login_attempts = 0, login_window = 2m",
                          path="<t>").http_server.dashboard
        self.assertEqual((dashboard.login_attempts, dashboard.login_window), (0, 120.0))
        for bad, key in (("login_attempts = -1", "login_attempts"),
                         ("login_window = 0s", "login_window")):
            with self.assertRaises(ConfigError) as caught:
                loads(base % (", " + bad), path="<t>")
            self.assertEqual(caught.exception.key, "http_server.dashboard." + key)
