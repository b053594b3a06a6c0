# -*- test-case-name: tests.e2e.test_auth,tests.e2e.test_http_auth -*-
"""
``build_auth(auth_config, reactor)``: ``cfg.auth`` as the core's
authenticator and ACL -- the password table, the file ACL, and HTTP auth
in front of (or after) them when configured.
"""

from twisted.application.service import MultiService
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from ..core.acl import Acl
from ..core.auth import AllowAll, AuthChain, PasswordAuthenticator
from .http import HttpAcl, HttpAuthClient, HttpAuthenticator

_log = Logger()


class AuthSetup:
    """What ``build_auth`` made: ``authenticator`` and ``acl`` for the
    ``Broker``; ``passwords``, the ``PasswordAuthenticator`` inside it (what
    reloads and the REST API change); ``service`` (a ``MultiService``, may
    be empty) to start and stop with the broker (it owns the HTTP auth
    connection pool)."""

    def __init__(self, authenticator, acl, passwords, service):
        self.authenticator = authenticator
        self.acl = acl
        self.passwords = passwords
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
    return AuthSetup(authenticator, acl, password, service)


