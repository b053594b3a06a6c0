# -*- test-case-name: tests.e2e.test_auth -*-
"""
Authentication wiring and hot reload.

``build_auth(auth_config, reactor)`` turns ``cfg.auth`` into the core's
authenticator and ACL (password table, file ACL, HTTP auth).

``reload_auth(broker, config_path)`` re-reads the configuration file and
swaps, each in one assignment, the password table with ``allow_anonymous``,
the ACL rules with ``no_match`` and the broker's ``deny_action``.  A file that
does not load (syntax, bad rule, malformed hash) changes nothing: the old
rules stay and the reason is logged and returned.  ``http_auth`` is not
reloaded (as in NanoMQ).  It is what ``SIGHUP`` (``SighupReloadService``)
and the REST ``POST /api/v4/reload`` run.
"""

import signal
import threading

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from ..config import ConfigError, load
from ..core.acl import Acl
from ..core.auth import AllowAll, AuthChain, PasswordAuthenticator
from ..logging import set_log_level
from .http_auth import HttpAcl, HttpAuthClient, HttpAuthenticator

_log = Logger()


class AuthSetup:
    """What ``build_auth`` made: ``authenticator`` and ``acl`` for the
    ``Broker``; ``service`` (a ``MultiService``, may be empty) to start and
    stop with the broker (it owns the HTTP auth connection pool)."""

    def __init__(self, authenticator, acl, service):
        self.authenticator = authenticator
        self.acl = acl
        self.service = service


def offload_to_thread(reactor):
    """``offload(fn, args, done)`` for ``PasswordAuthenticator``: hash
    checks run in the reactor's thread pool, ``done`` back on the reactor."""

    def offload(fn, args, done):
        d = deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)
        d.addCallback(done)
        d.addErrback(_log.failure, "password hash check failed")

    return offload


def build_auth(auth, reactor):
    """``AuthSetup`` for an ``AuthConfig``."""
    service = MultiService()
    service.setName("auth")
    password = PasswordAuthenticator(
        auth.allow_anonymous, auth.password, offload=offload_to_thread(reactor)
    )
    file_acl = Acl.from_config(auth, clock=reactor.seconds)
    authenticator = password
    acl = file_acl or AllowAll()
    http = auth.http_auth
    if http is not None and (http.auth_req or http.super_req or http.acl_req):
        client = HttpAuthClient(http, reactor)
        client.setName("http_auth")
        client.setServiceParent(service)
        if http.auth_req is not None:
            authenticator = AuthChain(password, HttpAuthenticator(client, http.auth_req))
        if http.super_req is not None or http.acl_req is not None:
            acl = HttpAcl(client, http, file_acl, clock=reactor.seconds)
    return AuthSetup(authenticator, acl, service)


class ReloadResult:
    """``ok`` and, when not, ``error`` (the reason, as logged)."""

    def __init__(self, ok, error=None):
        self.ok = ok
        self.error = error

    def __bool__(self):
        return self.ok

    def __repr__(self):
        return f"ReloadResult(ok={self.ok!r}, error={self.error!r})"


def _password_authenticator(authenticator):
    if isinstance(authenticator, PasswordAuthenticator):
        return authenticator
    for part in getattr(authenticator, "authenticators", ()):
        found = _password_authenticator(part)
        if found is not None:
            return found
    return None


def reload_auth(broker, config_path):
    """Re-read ``config_path`` and swap the password table and the ACL, and
    apply its ``log.level`` (what ``nanomq reload`` changes besides ``mqtt``).

    Returns a ``ReloadResult``; on failure nothing changed.  Synchronous and
    quick (the file is small); call it on the reactor thread.
    """
    try:
        if not config_path:
            raise ConfigError("the broker was not started from a configuration file")
        config = load(config_path)
        auth = config.auth
        acl = Acl.from_config(auth, clock=broker.now)
        password = _password_authenticator(broker.authenticator)
        if password is not None:
            password.replace(auth.allow_anonymous, auth.password)
    except (ConfigError, ValueError) as error:
        _log.error("Auth reload from {path} failed, keeping the old rules: {error}",
                   path=config_path, error=str(error))
        return ReloadResult(False, str(error))
    current = broker.acl
    if isinstance(current, HttpAcl):
        current.file_acl = acl
    else:
        broker.acl = acl or AllowAll()
    broker.deny_action = auth.deny_action
    # ``log.level`` is the other file setting ``nanomq reload`` applies.
    set_log_level(config.log.level)
    _log.info("Auth reloaded from {path}: {users} users, {rules} ACL rules",
              path=config_path,
              users=0 if auth.password is None else len(auth.password),
              rules=0 if auth.acl is None else len(auth.acl))
    return ReloadResult(True)


class SighupReloadService(Service):
    """``kill -HUP``: ``reload_auth`` on the reactor thread.

    The handler is installed when the service starts (main thread only) and
    the previous one restored when it stops.  ``reloaded`` fires with the
    ``ReloadResult`` of each reload, for tests: ``next_reload()``.
    """

    name = "sighup"

    def __init__(self, broker, config_path, reactor):
        self.broker = broker
        self.config_path = config_path
        self.reactor = reactor
        self._previous = None
        self._installed = False
        self._waiters = []

    def startService(self):
        Service.startService(self)
        sighup = getattr(signal, "SIGHUP", None)
        if sighup is None or threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.signal(sighup, self._on_signal)
        self._installed = True

    def stopService(self):
        Service.stopService(self)
        if self._installed:
            signal.signal(signal.SIGHUP, self._previous or signal.SIG_DFL)
            self._installed = False

    def _on_signal(self, signum, frame):
        self.reactor.callFromThread(self.reload)

    def reload(self):
        result = reload_auth(self.broker, self.config_path)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(result)
        return result

    def next_reload(self):
        d = defer.Deferred()
        self._waiters.append(d)
        return d
