"""
The dashboard's gate through ``StubTreq`` on the test clock: which files
are served to whom, logging in and out, the session cookie (and the
header it needs), its expiry and renewal, ``no_auth`` and JWT logins, and
that nothing changes with the dashboard off.
"""

import json
import os
import time

from twisted.trial.unittest import SynchronousTestCase

from .http_support import BASIC, Harness

DASHBOARD = "http_server { dashboard { enable = true, session_ttl = 60s } }\n"
HEADER = {b"X-NanoMQ-Dashboard": [b"1"]}


class DashboardHarness(Harness):
    def __init__(self, conf=DASHBOARD, **kwargs):
        super().__init__(conf, **kwargs)
        self.cookie = None

    def login(self, body=None):
        status, headers, content = self.request(
            "POST", "/api/v4/dashboard/login",
            {"username": "admin", "password": "public"} if body is None else body, auth=None)
        cookies = headers.getRawHeaders(b"set-cookie") or []
        if cookies:
            self.cookie = cookies[0].split(b";")[0]
        return status, json.loads(content), cookies

    def as_browser(self, method, path, body=None, header=True):
        headers = {}
        if self.cookie is not None:
            headers[b"Cookie"] = [self.cookie]
        if header:
            headers.update(HEADER)
        return self.request(method, path, body, auth=None, headers=headers)


class FilesTests(SynchronousTestCase):
    def setUp(self):
        self.h = DashboardHarness()

    def test_root_redirects_to_the_dashboard(self):
        for path in ("/", "/dashboard"):
            status, headers, _ = self.h.request("GET", path, auth=None)
            self.assertEqual((status, headers.getRawHeaders(b"location")),
                             (303, [b"/dashboard/"]), path)

    def test_nothing_but_the_login_page_without_a_login(self):
        status, headers, _ = self.h.request("GET", "/dashboard/", auth=None)
        self.assertEqual((status, headers.getRawHeaders(b"location")),
                         (303, [b"/dashboard/login.html"]))
        self.assertEqual(self.h.request("GET", "/dashboard/app.js", auth=None)[0], 401)
        self.assertEqual(self.h.request("GET", "/dashboard/pages/overview.js", auth=None)[0], 401)
        for public in ("login.html", "login.js", "style.css", "icon.svg"):
            self.assertEqual(self.h.request("GET", "/dashboard/" + public, auth=None)[0], 200,
                             public)

    def test_headers_of_a_page(self):
        status, headers, body = self.h.request("GET", "/dashboard/login.html", auth=None)
        self.assertEqual(status, 200)
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"text/html; charset=utf-8"])
        policy = headers.getRawHeaders(b"content-security-policy")[0]
        self.assertIn(b"default-src 'self'", policy)
        self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])
        self.assertIn(b"<form", body)

    def test_only_existing_files(self):
        for path in ("/dashboard/nope.js", "/dashboard/../setup.py",
                     "/dashboard/%2e%2e/api.py", "/dashboard/pages"):
            self.assertEqual(self.h.request("GET", path, auth=None)[0], 404, path)

    def test_files_with_basic_credentials(self):
        status, _headers, body = self.h.request("GET", "/dashboard/", auth=BASIC)
        self.assertEqual(status, 200)
        self.assertIn(b'src="app.js"', body)

    def test_post_to_a_file_is_405(self):
        self.assertEqual(self.h.request("POST", "/dashboard/login.html", auth=None)[0], 405)


class LoginTests(SynchronousTestCase):
    def setUp(self):
        self.h = DashboardHarness()

    def test_whoami_answers_anyone(self):
        status, body = self.h.json("GET", "/api/v4/dashboard/whoami", auth=None)
        self.assertEqual((status, body["data"]), (200, {
            "logged_in": False, "username": None, "auth_type": "basic", "session_ttl": 60.0}))
        self.h.login()
        status, _headers, body = self.h.as_browser("GET", "/api/v4/dashboard/whoami")
        self.assertEqual(json.loads(body)["data"]["logged_in"], True)

    def test_wrong_password(self):
        status, body, cookies = self.h.login({"username": "admin", "password": "nope"})
        self.assertEqual((status, body, cookies), (401, {"code": 103}, []))

    def test_not_strings(self):
        self.assertEqual(self.h.login({"username": "admin"})[:2], (400, {"code": 109}))
        self.assertEqual(self.h.login([])[:2], (400, {"code": 109}))

    def test_login_sets_a_strict_http_only_cookie(self):
        status, body, cookies = self.h.login()
        self.assertEqual((status, body),
                         (200, {"code": 0, "data": {"username": "admin", "session_ttl": 60.0}}))
        attributes = [part.strip().lower() for part in cookies[0].split(b";")]
        self.assertIn(b"httponly", attributes)
        self.assertIn(b"samesite=strict", attributes)
        self.assertIn(b"path=/", attributes)

    def test_cookie_opens_the_api_and_the_files(self):
        h = self.h
        h.login()
        self.assertEqual(h.as_browser("GET", "/api/v4/stats")[0], 200)
        self.assertEqual(h.as_browser("GET", "/dashboard/app.js", header=False)[0], 200)
        status, _headers, body = h.as_browser("GET", "/api/v4/dashboard/whoami")
        self.assertEqual((status, json.loads(body)["data"]["username"]), (200, "admin"))

    def test_cookie_without_the_header_is_refused(self):
        h = self.h
        h.login()
        status, _headers, body = h.as_browser("DELETE", "/api/v4/clients/x", header=False)
        self.assertEqual((status, json.loads(body)), (401, {"code": 104}))

    def test_forged_cookie_is_refused(self):
        h = self.h
        h.cookie = b"nanomq_session=forged"
        status, _headers, body = h.as_browser("GET", "/api/v4/stats")
        self.assertEqual((status, json.loads(body)), (401, {"code": 116}))

    def test_session_expires_unused_and_is_renewed_by_use(self):
        h = self.h
        h.login()
        for _ in range(3):
            h.clock.advance(59)
            self.assertEqual(h.as_browser("GET", "/api/v4/stats")[0], 200)
        h.clock.advance(60)
        status, _headers, body = h.as_browser("GET", "/api/v4/stats")
        self.assertEqual((status, json.loads(body)), (401, {"code": 116}))
        self.assertEqual(len(h.app.logins), 0)
        # A page load then goes back to the login page.
        status, headers, _ = h.as_browser("GET", "/dashboard/", header=False)
        self.assertEqual((status, headers.getRawHeaders(b"location")),
                         (303, [b"/dashboard/login.html"]))

    def test_logout_ends_the_session(self):
        h = self.h
        h.login()
        status, headers, body = h.as_browser("POST", "/api/v4/dashboard/logout")
        self.assertEqual((status, json.loads(body)), (200, {"code": 0}))
        cleared = headers.getRawHeaders(b"set-cookie")[0].lower()
        self.assertIn(b"max-age=0", cleared)
        self.assertEqual(h.as_browser("GET", "/api/v4/stats")[0], 401)

    def test_sessions_survive_a_new_api(self):
        """The sessions are the application's: a rebuilt HTTP API (what
        ``/ctrl/restart`` does) still knows them."""
        h = self.h
        h.login()
        self.assertIs(h.app.logins, h.api.logins)
        self.assertEqual(len(h.app.logins), 1)

    def test_authorization_header_wins_over_the_cookie(self):
        h = self.h
        h.login()
        status, _headers, body = h.request(
            "GET", "/api/v4/stats", auth=b"Basic bm9wZTpub3Bl",
            headers={b"Cookie": [h.cookie], **HEADER})
        self.assertEqual((status, json.loads(body)), (401, {"code": 103}))


class NoAuthTests(SynchronousTestCase):
    def test_everything_open(self):
        h = DashboardHarness(DASHBOARD + "http_server { auth_type = no_auth }\n")
        self.assertEqual(h.request("GET", "/dashboard/", auth=None)[0], 200)
        status, _headers, body = h.request("GET", "/api/v4/dashboard/whoami", auth=None)
        self.assertEqual((status, json.loads(body)["data"]["auth_type"]), (200, "no_auth"))


class JwtLoginTests(SynchronousTestCase):
    def setUp(self):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        directory = self.mktemp()
        os.makedirs(directory)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        keyfile = os.path.join(directory, "jwtRS256.key.pub")
        with open(keyfile, "wb") as handle:
            handle.write(self.key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        self.h = DashboardHarness(
            DASHBOARD + f'http_server {{ auth_type = jwt, jwt.public.keyfile = "{keyfile}" }}\n')

    def token(self, **claims):
        import jwt

        payload = {"iss": "jwtRS256.key.pub", "exp": int(time.time()) + 3600, "sub": "ops"}
        payload.update(claims)
        return jwt.encode(payload, self.key, algorithm="RS256")

    def test_token_login(self):
        status, body, _cookies = self.h.login({"token": self.token()})
        self.assertEqual((status, body["data"]["username"]), (200, "ops"))
        self.assertEqual(self.h.as_browser("GET", "/api/v4/stats")[0], 200)

    def test_expired_or_foreign_token(self):
        self.assertEqual(self.h.login({"token": self.token(exp=int(time.time()) - 3600)})[:2],
                         (401, {"code": 116}))
        self.assertEqual(self.h.login({"token": self.token(iss="else")})[:2],
                         (401, {"code": 103}))
        self.assertEqual(self.h.login({"username": "admin", "password": "public"})[:2],
                         (400, {"code": 109}))


class DashboardOffTests(SynchronousTestCase):
    def test_nanomq_answers_unchanged(self):
        h = Harness()
        self.assertEqual(h.json("GET", "/", auth=None), (404, {"code": 102}))
        self.assertEqual(h.json("GET", "/dashboard/", auth=None), (404, {"code": 102}))
        self.assertEqual(h.json("POST", "/api/v4/dashboard/login", {}, auth=None),
                         (401, {"code": 104}))
        self.assertEqual(h.json("POST", "/api/v4/dashboard/login", {}), (404, {"code": 102}))
        paths = [item["path"] for item in h.json("GET", "/api/v4")[1]["data"]]
        self.assertNotIn("/dashboard/login", paths)
