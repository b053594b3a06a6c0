"""
REST API authentication: HTTP Basic, JWT (RS256) or none, as NanoMQ.

``check(request)`` returns None when the request may proceed, else the
NanoMQ result code for the 401 answer:

- 104: no ``Authorization`` header, another scheme (``basic`` in lower
  case, ``Bearer`` while Basic is configured and vice versa), or nothing
  after the scheme;
- 103: wrong credentials, a token that is not base64, a JWT with a bad
  signature or ``iss``;
- 116: a JWT whose ``exp`` is missing or more than 200 s in the past.

A JWT is verified with RS256 only: ``alg: none``, HS256 signed with the
public key as the HMAC secret (the "algorithm confusion" attack) and any
other algorithm are 103, and so is a token whose ``nbf`` (or ``iat``) is
more than the same 200 s in the future (docs/compatibility.md).

Credentials are read from the ``HttpServerConfig`` the API currently holds,
so ``POST /configuration/http_server`` changes them for the next request.
Basic credentials are compared in constant time (``hmac.compare_digest``).

``default_credentials_exposed(http)`` tells whether the API accepts the
shipped ``admin``/``public`` from beyond loopback: the start-up warning,
``/api/v4/brokers``' ``default_credentials`` and the Prometheus gauge
``nanomq_http_default_credentials`` all ask it.
"""

import base64
import binascii
import hmac
import ipaddress
import os

import jwt

from ..config import HttpServerConfig
from .common import NO_CREDENTIALS, TOKEN_EXPIRED, WRONG_CREDENTIALS

#: NanoMQ accepts a JWT up to 200 s after its ``exp``; we allow the same
#: clock skew for ``nbf``/``iat`` in the future.
JWT_LEEWAY = 200

#: The only algorithm a token may be signed with: the key is an RSA public
#: key, so an HMAC algorithm would take it as a shared secret.
JWT_ALGORITHMS = ("RS256",)

_SHIPPED = HttpServerConfig()


def is_loopback(host):
    """True for an address only this machine can reach (127.0.0.0/8,
    ``::1``, ``localhost``); ``0.0.0.0``, ``::`` and names are not."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or address).is_loopback


def default_credentials_exposed(http):
    """True while ``http`` (an ``HttpServerConfig``) is Basic auth with the
    shipped ``admin``/``public`` on an address beyond loopback."""
    if http is None or http.auth_type != "basic" or is_loopback(http.ip_addr):
        return False
    same_user = hmac.compare_digest(http.username.encode(), _SHIPPED.username.encode())
    same_password = hmac.compare_digest(http.password.encode(), _SHIPPED.password.encode())
    return same_user and same_password


def _header(request):
    value = request.getHeader(b"authorization")
    return value if value is not None else None


def check_basic(request, username, password):
    header = _header(request)
    if header is None or not header.startswith(b"Basic "):
        return NO_CREDENTIALS
    token = header[len(b"Basic ") :].strip()
    if not token:
        return NO_CREDENTIALS
    if len(token) < 4:
        return WRONG_CREDENTIALS
    try:
        decoded = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return WRONG_CREDENTIALS
    expected = (f"{username}:{password}").encode()
    if not hmac.compare_digest(decoded, expected):
        return WRONG_CREDENTIALS
    return None


class JwtVerifier:
    """RS256 tokens signed by the key whose public half is ``keyfile``;
    ``iss`` must be the key file's base name (NanoMQ's rule)."""

    def __init__(self, keyfile):
        self.keyfile = keyfile
        self.issuer = os.path.basename(keyfile) if keyfile else None
        self.key = None
        if keyfile:
            try:
                with open(keyfile, "rb") as handle:
                    self.key = handle.read()
            except OSError:
                self.key = None

    def check(self, request):
        header = _header(request)
        if header is None or not header.startswith(b"Bearer "):
            return NO_CREDENTIALS
        token = header[len(b"Bearer ") :].strip()
        if not token:
            return NO_CREDENTIALS
        return self.verify(token)

    def verify(self, token):
        """None for a good ``token`` (bytes or text), else the 401 code;
        also the dashboard's login check (login.py)."""
        if self.key is None:
            return WRONG_CREDENTIALS
        try:
            jwt.decode(
                token,
                self.key,
                algorithms=list(JWT_ALGORITHMS),
                issuer=self.issuer,
                leeway=JWT_LEEWAY,
                # Spelled out, so that no future default weakens them.
                options={"require": ["exp", "iss"], "verify_signature": True,
                         "verify_exp": True, "verify_nbf": True, "verify_iat": True,
                         "verify_aud": False},
            )
        except jwt.ExpiredSignatureError:
            return TOKEN_EXPIRED
        except jwt.MissingRequiredClaimError as error:
            return TOKEN_EXPIRED if error.claim == "exp" else WRONG_CREDENTIALS
        except (jwt.InvalidTokenError, ValueError, TypeError):
            return WRONG_CREDENTIALS
        return None


class Authenticator:
    """Dispatches on ``http.auth_type`` of the API's current settings."""

    def __init__(self, api):
        self.api = api
        self._jwt = None

    def _verifier(self, keyfile):
        if self._jwt is None or self._jwt.keyfile != keyfile:
            self._jwt = JwtVerifier(keyfile)
        return self._jwt

    def jwt_verifier(self):
        """The `JwtVerifier` of the configured public key."""
        return self._verifier(self.api.http.jwt_public_keyfile)

    def check(self, request):
        http = self.api.http
        if http.auth_type == "no_auth":
            return None
        if http.auth_type == "jwt":
            return self._verifier(http.jwt_public_keyfile).check(request)
        return check_basic(request, http.username, http.password)
