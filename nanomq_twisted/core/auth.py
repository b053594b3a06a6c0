# -*- test-case-name: tests.unit.test_broker -*-
"""
The authentication hook of the core, and the password-table authenticator.

The broker asks ``authenticator.authenticate(info, done)`` with the
client's ``ConnectInfo`` (core/info.py: client id, username, password,
transport, TLS certificate).  A synchronous authenticator returns a reason
code; an asynchronous one (HTTP auth) returns ``PENDING`` and later calls
``done(reason_code)``.  The core never waits on
anything itself, so it stays free of Twisted.
"""

import hmac

from zope.interface import implementer

from ..mqtt import reason_codes as rc
from .interfaces import IAcl, IAuthenticator
from .passwd import DEFAULT_ITERATIONS, HashedPassword, compile_table

PENDING = object()


#: Verified for unknown users, so a miss costs what a hashed hit costs.
_DUMMY_HASH = HashedPassword(DEFAULT_ITERATIONS, b"nanomq-dummy-salt", b"\0" * 32)


@implementer(IAuthenticator)
class PasswordAuthenticator:
    """``auth.allow_anonymous`` plus the optional ``auth.password`` table.

    NanoMQ skips every check when ``allow_anonymous`` is true, even for a
    client presenting a wrong password.  We do what the name says: a client
    *without* a username is anonymous and is let in only when anonymous access
    is allowed; a client *with* a username must match the table when there is
    one (docs/compatibility.md).  Comparison is constant-time.

    Table values are plain-text passwords or ``$pbkdf2-sha256$`` hashes
    (`passwd.py`).  A hash check costs about 0.1 s of CPU, so when
    ``offload(fn, args, done)`` is given (the adapter runs ``fn(*args)`` in a
    thread and calls ``done(result)`` back on the reactor), hashed checks go
    there and ``authenticate`` answers ``PENDING``.

    ``replace(allow_anonymous, passwords)`` swaps the whole table at once
    (hot reload); it raises ``ValueError`` for a malformed hash and then
    keeps the old table.
    """

    def __init__(self, allow_anonymous=True, passwords=None, offload=None):
        self.offload = offload
        self.replace(allow_anonymous, passwords)

    def replace(self, allow_anonymous, passwords):
        table = None if passwords is None else compile_table(passwords)
        self.allow_anonymous = allow_anonymous
        self.passwords = passwords
        self._table = table
        self._any_hashed = table is not None and any(
            isinstance(v, HashedPassword) for v in table.values()
        )

    def authenticate(self, request, done):
        if request.username is None:
            return rc.SUCCESS if self.allow_anonymous else rc.NOT_AUTHORIZED
        table = self._table
        if table is None:
            return rc.SUCCESS if self.allow_anonymous else rc.BAD_USER_NAME_OR_PASSWORD
        expected = table.get(request.username)
        given = request.password or b""
        if isinstance(given, str):
            given = given.encode("utf-8")
        if expected is None:
            if self._any_hashed:
                expected = _DUMMY_HASH
            else:
                hmac.compare_digest(given, given)
                return rc.BAD_USER_NAME_OR_PASSWORD
        if isinstance(expected, HashedPassword):
            if self.offload is None:
                return _code(expected.verify(given) and expected is not _DUMMY_HASH)
            known = expected is not _DUMMY_HASH
            self.offload(
                expected.verify, (given,), lambda ok: done(_code(ok and known))
            )
            return PENDING
        return _code(hmac.compare_digest(expected, given))


def _code(ok):
    return rc.SUCCESS if ok else rc.BAD_USER_NAME_OR_PASSWORD


@implementer(IAuthenticator)
class AuthChain:
    """Ask each authenticator in turn; the first refusal wins.

    Any of them may answer ``PENDING``; the chain then continues when its
    ``done`` is called (NanoMQ asks ``http_auth`` only after the password
    table admitted the client, auth-acl.md section 2.2).
    """

    def __init__(self, *authenticators):
        self.authenticators = authenticators

    def authenticate(self, request, done):
        return self._run(0, request, done)

    def _run(self, index, request, done):
        authenticators = self.authenticators
        while index < len(authenticators):
            following = index + 1

            def resumed(code, following=following):
                if code != rc.SUCCESS:
                    done(code)
                    return
                result = self._run(following, request, done)
                if result is not PENDING:
                    done(result)

            result = authenticators[index].authenticate(request, resumed)
            if result is PENDING:
                return PENDING
            if result != rc.SUCCESS:
                return result
            index = following
        return rc.SUCCESS


@implementer(IAcl)
class AllowAll:
    """The ACL used until an ACL is configured: everything is permitted."""

    #: Synchronous: never needs the connection to wait (``IAcl``).
    asynchronous = False

    def prepare(self, client, action, topics, done):
        return True

    def check(self, client, action, topic):
        return True
