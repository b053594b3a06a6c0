# -*- test-case-name: tests.protocol.test_http_login -*-
"""
Dashboard logins: ``POST /api/v4/dashboard/login``, ``/logout`` and
``GET /api/v4/dashboard/whoami`` (the three answered without
credentials), and the session cookie the gate accepts in place of an
``Authorization`` header.

Why a server-side session and not the Basic header kept in the browser:
a header kept in script-readable storage lives until the tab closes and
cannot be ended from the server, and a JWT pasted once would have to be
re-sent by hand when it runs out.  Logging in checks the same credentials
as every REST request (`auth.py`: the Basic user and password, or a JWT
for ``auth_type = jwt``) and opens a session: a random token in an
``HttpOnly; SameSite=Strict`` cookie, known only to this process
(`LoginSessions`).  A session ends at logout, after
``http_server.dashboard.session_ttl`` without a request (every request
renews it), or when the JWT it was opened with expires.

Failed logins are counted per source address (`login_limit.py`): past
``login_attempts`` within ``login_window`` the address gets 429 with
``Retry-After`` (logged once per address and window); other addresses
are not affected.  The address is the TCP peer's: behind a reverse proxy
every client shares the proxy's (``X-Forwarded-For`` is not trusted).

A request authenticated by the cookie must also carry the header
``X-NanoMQ-Dashboard: 1``: a cross-site page cannot add it without a CORS
preflight this server never grants, so the cookie alone can never act
(SameSite already keeps it off cross-site requests; this is the second
lock).  An ``Authorization`` header, when present, is checked instead of
the cookie, so scripts and ``curl`` behave exactly as before.
"""

import hmac
import math
import secrets

import jwt
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger

from .auth import JWT_LEEWAY
from .common import (
    NO_CREDENTIALS,
    NOT_JSON,
    TOKEN_EXPIRED,
    WRONG_CREDENTIALS,
    ApiError,
    json_body,
    ok,
)
from .login_limit import LoginLimiter

COOKIE = b"nanomq_session"
HEADER = b"x-nanomq-dashboard"

_log = Logger()


class Login:
    """One open session: who, and until when (clock seconds)."""

    __slots__ = ("cap", "deadline", "username")

    def __init__(self, username, deadline, cap):
        self.username = username
        self.deadline = deadline
        #: The JWT's ``exp``, or None: the session never outlives it.
        self.cap = cap


class LoginSessions:
    """Open dashboard sessions by token.  Owned by the application, so a
    ``/ctrl/restart`` (which rebuilds the HTTP listener) keeps them.
    Pure: the time comes in as ``now``.  ``limiter`` counts failed
    logins per address (`LoginLimiter`), kept across restarts with them."""

    def __init__(self, limiter=None):
        self._open = {}
        self.limiter = LoginLimiter() if limiter is None else limiter

    def __len__(self):
        return len(self._open)

    def open(self, username, now, ttl, cap=None):
        """A new session's token (text)."""
        self._drop_expired(now)
        token = secrets.token_urlsafe(32)
        self._open[token] = Login(username, _deadline(now, ttl, cap), cap)
        return token

    def find(self, token, now, ttl):
        """The live `Login` of ``token``, renewed for ``ttl``; else None
        (an expired one is forgotten)."""
        login = self._open.get(token)
        if login is None:
            return None
        if now >= login.deadline:
            del self._open[token]
            return None
        login.deadline = _deadline(now, ttl, login.cap)
        return login

    def close(self, token):
        self._open.pop(token, None)

    def _drop_expired(self, now):
        dead = [token for token, login in self._open.items() if now >= login.deadline]
        for token in dead:
            del self._open[token]


def _deadline(now, ttl, cap):
    deadline = now + ttl
    return deadline if cap is None else min(deadline, cap)


def _token(request):
    value = request.getCookie(COOKIE)
    return value.decode("ascii", "replace") if value else None


def check_cookie(api, request, file_load=False):
    """The gate's check for a request without ``Authorization``: None when
    its session cookie is live (and the header is there), else the 401
    code (104 without a cookie or header, 116 for an ended session).

    ``file_load``: the browser loading one of the dashboard's files, which
    carries the cookie but cannot carry the header (and changes nothing)."""
    token = _token(request)
    if token is None or (not file_load and request.getHeader(HEADER) != b"1"):
        return NO_CREDENTIALS
    login = api.logins.find(token, api.reactor.seconds(), api.http.dashboard.session_ttl)
    return None if login is not None else TOKEN_EXPIRED


def _cookie(request, value, max_age=None):
    """Set (or, with ``max_age=0``, clear) the session cookie.  No
    ``Max-Age`` otherwise: the server decides when a session ends."""
    request.addCookie(COOKIE, value.encode("ascii"), path=b"/",
                      max_age=None if max_age is None else str(max_age),
                      httpOnly=True, sameSite="strict")


def _check_password(http, username, password):
    if not isinstance(username, str) or not isinstance(password, str):
        raise ApiError(400, NOT_JSON)
    given = f"{username}:{password}".encode()
    expected = f"{http.username}:{http.password}".encode()
    if not hmac.compare_digest(given, expected):
        raise ApiError(401, WRONG_CREDENTIALS)
    return username, None


def _check_jwt(api, token):
    if not isinstance(token, str) or not token:
        raise ApiError(400, NOT_JSON)
    code = api.authenticator.jwt_verifier().verify(token)
    if code is not None:
        raise ApiError(401, code)
    claims = jwt.decode(token, options={"verify_signature": False})
    subject = claims.get("sub") or claims.get("username") or "jwt"
    return str(subject), float(claims["exp"]) + JWT_LEEWAY


def _address(request):
    """The TCP peer's address (text), the key failed logins count under."""
    peer = request.getClientAddress()
    return peer.host if isinstance(peer, (IPv4Address, IPv6Address)) else str(peer)


def _checked(api, request, body):
    """``(username, cap)`` of the body's credentials, counting failures
    per address and refusing an address that has had too many (429)."""
    http = api.http
    if http.auth_type == "no_auth":
        return body.get("username") or "", None
    limiter = api.logins.limiter
    address = _address(request)
    now = api.reactor.seconds()
    limits = (http.dashboard.login_attempts, http.dashboard.login_window)
    wait = limiter.retry_after(address, now, *limits)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        request.setHeader(b"retry-after", str(seconds).encode("ascii"))
        # 103 as for wrong credentials (NanoMQ has no code for this); the
        # status, Retry-After and message say why.
        raise ApiError(429, WRONG_CREDENTIALS, retry_after=seconds,
                       message=f"too many failed logins; try again in {seconds} s")
    try:
        if http.auth_type == "jwt":
            found = _check_jwt(api, body.get("token"))
        else:
            found = _check_password(http, body.get("username"), body.get("password"))
    except ApiError as error:
        if error.status == 401 and limiter.failed(address, now, *limits):
            _log.warn(
                "Dashboard login: {attempts} failed logins from {address}; its logins are "
                "refused (429) for {window} s", attempts=limits[0], address=address,
                window=limits[1])
        raise
    limiter.succeeded(address)
    return found


def login(api, request):
    """Check the credentials in the body (``{"username","password"}``, or
    ``{"token"}`` with ``auth_type = jwt``) and open a session."""
    http = api.http
    body = json_body(request)
    username, cap = _checked(api, request, body)
    ttl = http.dashboard.session_ttl
    token = api.logins.open(username, api.reactor.seconds(), ttl, cap)
    _cookie(request, token)
    return ok(data={"username": username, "session_ttl": ttl})


def logout(api, request):
    """End the session of the cookie (if any) and clear the cookie."""
    token = _token(request)
    if token is not None:
        api.logins.close(token)
    _cookie(request, "", max_age=0)
    return ok()


def logged_in(api, request, file_load=False):
    """Whether ``request`` comes from someone logged in: anyone with
    ``no_auth``; else by its ``Authorization`` header when it has one,
    else by its session cookie (see `check_cookie` for ``file_load``)."""
    if api.http.auth_type == "no_auth":
        return True
    if request.getHeader(b"authorization") is not None:
        return api.authenticator.check(request) is None
    return check_cookie(api, request, file_load) is None


def whoami(api, request):
    """Whether the caller is logged in, as whom, and how one logs in here
    (answered without credentials: the login page asks it first)."""
    http = api.http
    username = None
    known = logged_in(api, request)
    if known and request.getHeader(b"authorization") is None:
        token = _token(request)
        login = api.logins.find(token, api.reactor.seconds(), http.dashboard.session_ttl) \
            if token is not None else None
        username = login.username if login is not None else None
    elif known and http.auth_type == "basic":
        username = http.username
    return ok(data={"logged_in": known, "username": username, "auth_type": http.auth_type,
                    "session_ttl": http.dashboard.session_ttl})
