# -*- test-case-name: tests.e2e.test_http_auth -*-
"""
``auth.http_auth``: CONNECT, PUBLISH and SUBSCRIBE checked by a web service.

- ``auth_req`` -> ``HttpAuthenticator`` (asked after the password table
  admitted the client): HTTP 200 admits, anything else refuses with CONNACK
  0x86 (3.1.1: 4).  A service that is down, answers 5xx or does not answer
  within ``timeout`` refuses the same way: nothing is admitted unchecked.
- ``%C``/``%d``: the common name and the subject (OpenSSL one-line form,
  ``/O=Org/CN=alice``) of the client certificate OpenSSL verified on a
  TLS/WSS listener (``verify_peer``); omitted without one.  ``%m`` is never
  filled.
- ``super_req``/``acl_req`` -> ``HttpAcl``: 200 from ``super_req`` allows
  (``acl_req`` is then skipped), else 200 from ``acl_req`` allows, anything
  else denies.  The file ACL applies too; its denial needs no request.

Nothing blocks: every request is a treq ``Deferred`` with ``connect_timeout``
for the TCP connect and ``timeout`` for the answer.  For CONNECT the core
already waits on ``PENDING``.  For PUBLISH/SUBSCRIBE the core asks
``acl.prepare(client, action, topics, done)`` first; ``HttpAcl`` answers True
when every decision is known (file ACL denial, ``cache_ttl`` hit) and
otherwise sends the request and returns False: the connection then holds its
packets, in order, until ``done()``, and re-runs them with the decision
pinned for ``check``.  Other connections are never held.

Will messages are published when no request can be awaited: they are
judged by the file ACL and the ``cache_ttl`` cache only, and denied when the
service's answer is not cached (docs/compatibility.md).
"""

import json
from urllib.parse import quote
from weakref import WeakKeyDictionary

import treq
from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool
from zope.interface import implementer

from ..core.acl import client_host
from ..core.auth import PENDING
from ..core.interfaces import IAcl, IAuthenticator
from ..mqtt import reason_codes as rc

#: %A values.
ACCESS = {"subscribe": "1", "publish": "2"}


def _text(value):
    if value is None or isinstance(value, str):
        return value
    return value.decode("utf-8", "replace")


def placeholder_values(info, access=None, topic=None):
    """The value of each ``%x`` placeholder for the client described by
    ``info`` (core/info.py ``ConnectInfo``); None = unavailable, omitted.

    ``%C``/``%d`` are the verified TLS client certificate's common name and
    subject; an empty value is omitted.
    """
    transport = info.transport
    peer = transport.peer
    host = client_host(info) if peer else None
    local_port = transport.local_port
    return {
        "%u": _text(info.username),
        "%c": info.client_id,
        "%P": _text(info.password),
        "%a": host,
        "%p": None if local_port is None else str(local_port),
        "%r": info.protocol_name,
        "%A": access,
        "%t": topic,
        "%C": transport.tls_common_name or None,
        "%d": transport.tls_subject or None,
        # %m (mountpoint) is never filled.
    }


def build_request(req, values):
    """(method, url, headers, body bytes or None) for ``req`` (auth-acl.md
    section 4.2): JSON body for ``content-type: application/json``, a form
    body otherwise; GET puts the form in the query string."""
    params = {}
    for name, placeholder in req.params.items():
        value = values.get(placeholder)
        if value is not None:
            params[name] = value
    headers = {}
    content_type = "application/x-www-form-urlencoded"
    for name, value in req.headers.items():
        if name.lower() == "content-type":
            content_type = value
        headers[name] = value
    method = "GET" if req.method.lower() == "get" else "POST"
    form = "&".join(quote(k, safe="") + "=" + quote(v, safe="") for k, v in params.items())
    url = req.url
    if method == "GET":
        if form:
            url += ("&" if "?" in url else "?") + form
        return method, url, headers, None
    headers.setdefault("content-type", content_type)
    if content_type.split(";")[0].strip().lower() == "application/json":
        return method, url, headers, json.dumps(params).encode("utf-8")
    return method, url, headers, form.encode("ascii")


class HttpAuthClient(Service):
    """One treq client, its connection pool and its timeouts.

    ``ask(req, values)`` fires with True (HTTP 200), False (another status)
    or None (no answer: connect error, timeout).  Stopping the service
    cancels requests in flight and closes pooled connections.
    """

    _log = Logger()

    def __init__(self, config, reactor):
        self.config = config
        self.reactor = reactor
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = config.pool_size
        agent = Agent(reactor, connectTimeout=config.connect_timeout, pool=self.pool)
        self.http = treq.client.HTTPClient(agent)
        self._in_flight = set()

    def ask(self, req, values):
        method, url, headers, body = build_request(req, values)
        d = self.http.request(
            method, url, headers=headers, data=body, reactor=self.reactor,
            timeout=self.config.timeout, allow_redirects=False,
        )
        self._in_flight.add(d)
        d.addBoth(self._settled, d)
        d.addCallbacks(self._answered, self._failed, errbackArgs=(url,))
        return d

    def _settled(self, result, d):
        self._in_flight.discard(d)
        return result

    def _answered(self, response):
        # The body is not used; read and drop it so the connection is reused.
        drain = treq.collect(response, lambda data: None)
        drain.addTimeout(self.config.timeout, self.reactor)
        drain.addErrback(lambda failure: None)
        return response.code == 200

    def _failed(self, failure, url):
        self._log.warn("HTTP auth request to {url} failed: {error}", url=url,
                       error=failure.getErrorMessage())

    def stopService(self):
        Service.stopService(self)
        for d in list(self._in_flight):
            d.cancel()
        return self.pool.closeCachedConnections()


@implementer(IAuthenticator)
class HttpAuthenticator:
    """``auth_req`` as an authenticator of the core (see core/auth.py)."""

    def __init__(self, client, req):
        self.client = client
        self.req = req

    def authenticate(self, info, done):
        values = placeholder_values(info)
        d = self.client.ask(self.req, values)
        d.addCallback(lambda ok: done(rc.SUCCESS if ok else rc.BAD_USER_NAME_OR_PASSWORD))
        d.addErrback(self.client._log.failure, "HTTP auth answer not delivered")
        return PENDING


@implementer(IAcl)
class HttpAcl:
    """``super_req``/``acl_req`` in front of the file ACL (``file_acl``, an
    ``Acl`` or None; reload swaps it)."""

    _log = Logger()
    #: ``prepare`` fetches decisions over HTTP (core/interfaces.py ``IAcl``).
    asynchronous = True

    def __init__(self, client, config, file_acl=None, clock=None):
        self.client = client
        self.config = config
        self.file_acl = file_acl
        self.clock = clock or client.reactor.seconds
        self._pinned = WeakKeyDictionary()  # client -> {(action, topic): bool}
        self._fresh = WeakKeyDictionary()  # answered, awaiting the replay
        self._cache = {}
        self._flush_at = 0.0

    # -- the synchronous side the core calls --------------------------------

    def check(self, client, action, topic):
        file_acl = self.file_acl
        if file_acl is not None and not file_acl.check(client, action, topic):
            return False
        try:
            pinned = self._pinned.get(client)
        except TypeError:
            pinned = None
        if pinned is not None and (action, topic) in pinned:
            return pinned[(action, topic)]
        return self._cached(self._key(client, action, (topic,))) is True

    def prepare(self, client, action, topics, done):
        fresh = self._fresh.pop(client, None)
        if fresh is not None and all((action, t) in fresh for t in topics):
            # The replay of the packet whose answer just arrived.
            self._pinned[client] = fresh
            return True
        file_acl = self.file_acl
        decisions = {}
        asked = []
        for topic in topics:
            if file_acl is not None and not file_acl.check(client, action, topic):
                decisions[(action, topic)] = False
            else:
                asked.append(topic)
        self._pinned[client] = decisions
        if not asked:
            return True
        key = self._key(client, action, asked)
        if self._cached(key):
            decisions.update(((action, t), True) for t in asked)
            return True
        state = {"sync": True, "ready": False}

        def decided(allowed):
            decisions.update(((action, t), bool(allowed)) for t in asked)
            if allowed:
                self._store(key)
            if state["sync"]:
                state["ready"] = True
            else:
                self._fresh[client] = decisions
                done()

        d = self._decide(client, action, asked)
        d.addCallback(decided)
        d.addErrback(self._log.failure, "HTTP ACL answer not delivered")
        state["sync"] = False
        return state["ready"]

    # -- requests ------------------------------------------------------------

    @defer.inlineCallbacks
    def _decide(self, client, action, topics):
        values = placeholder_values(client.info, ACCESS[action], ",".join(topics))
        superuser = self.config.super_req
        if superuser is not None and (yield self.client.ask(superuser, values)):
            return True
        if self.config.acl_req is not None:
            return bool((yield self.client.ask(self.config.acl_req, values)))
        return False

    # -- the allow cache (auth-acl.md section 4.4) ---------------------------

    @staticmethod
    def _key(client, action, topics):
        return (client.client_id, client.username, client.info.password,
                action, tuple(topics), client_host(client))

    def _cached(self, key):
        ttl = self.config.cache_ttl
        if ttl <= 0:
            return False
        now = self.clock()
        if now >= self._flush_at:
            self._cache.clear()
            self._flush_at = now + ttl
        return key in self._cache

    def _store(self, key):
        if self.config.cache_ttl > 0:
            self._cache[key] = True
