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

Credentials are read from the ``HttpServerConfig`` the API currently holds,
so ``POST /configuration/http_server`` changes them for the next request.
"""

import base64
import binascii
import hmac
import os

import jwt

from .common import NO_CREDENTIALS, TOKEN_EXPIRED, WRONG_CREDENTIALS

#: NanoMQ accepts a JWT up to 200 s after its ``exp``.
JWT_LEEWAY = 200


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
                algorithms=["RS256"],
                issuer=self.issuer,
                leeway=JWT_LEEWAY,
                options={"require": ["exp", "iss"], "verify_aud": False},
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
