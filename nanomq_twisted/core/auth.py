# -*- test-case-name: tests.unit.test_broker -*-
"""
The authentication hook of the core, and the password-table authenticator.

The broker asks ``authenticator.authenticate(request, done)``.  A synchronous
authenticator returns a reason code; an asynchronous one (HTTP auth) returns
``PENDING`` and later calls ``done(reason_code)``.  The core never waits on
anything itself, so it stays free of Twisted.
"""

import hmac

from ..mqtt import reason_codes as rc

PENDING = object()


class ConnectRequest:
    """What an authenticator may look at for one CONNECT."""

    __slots__ = ("client_id", "username", "password", "peer", "protocol_level", "listener")

    def __init__(self, client_id, username, password, peer, protocol_level, listener):
        self.client_id = client_id
        self.username = username
        self.password = password
        self.peer = peer
        self.protocol_level = protocol_level
        self.listener = listener


class PasswordAuthenticator:
    """``auth.allow_anonymous`` plus the optional ``auth.password`` table.

    NanoMQ skips every check when ``allow_anonymous`` is true, even for a
    client presenting a wrong password.  We do what the name says: a client
    *without* a username is anonymous and is let in only when anonymous access
    is allowed; a client *with* a username must match the table when there is
    one (docs/compatibility.md).  Comparison is constant-time.
    """

    def __init__(self, allow_anonymous=True, passwords=None):
        self.allow_anonymous = allow_anonymous
        self.passwords = passwords

    def authenticate(self, request, done):
        if request.username is None:
            return rc.SUCCESS if self.allow_anonymous else rc.NOT_AUTHORIZED
        if self.passwords is None:
            return rc.SUCCESS if self.allow_anonymous else rc.BAD_USER_NAME_OR_PASSWORD
        expected = self.passwords.get(request.username)
        given = request.password or b""
        if expected is None:
            hmac.compare_digest(given, given)
            return rc.BAD_USER_NAME_OR_PASSWORD
        if isinstance(expected, str):
            expected = expected.encode("utf-8")
        if hmac.compare_digest(expected, given):
            return rc.SUCCESS
        return rc.BAD_USER_NAME_OR_PASSWORD


class AllowAll:
    """The ACL used until an ACL is configured: everything is permitted."""

    def check(self, client, action, topic):
        return True
