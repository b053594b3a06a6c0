# -*- test-case-name: tests.unit.test_interfaces,tests.protocol.test_http_api,tests.protocol.test_auth_reload,tests.e2e.test_rest -*-
"""
The application object: the one place where the broker is put together.

``BrokerApp(config, reactor)`` builds every part of a running broker and
hands each the collaborators it needs, explicitly, as tahoe-lafs's
``HTTPServer(reactor, storage, ...)`` is built:

=================  ========================================================
``broker``         the pure core (core/broker.py), with the authenticator
                   and ACL of ``auth`` (auth/build.py)
``persistence``    the SQLite store and its service, or None
``bridges``        the ``BridgesService`` (bridge/service.py)
``rules``          the ``RulesService`` (rules/service.py)
``webhook``        the ``WebhookService``, or None
``listeners``      ``{name: ListenerService}``: every MQTT listener
                   (transport/build.py) and the HTTP API's (http/)
``api``            the REST API (``RootAPI``), or None
``history``        the ``MetricsHistory`` of the counters (http/history.py)
``logins``         the dashboard's ``LoginSessions`` (http/login.py)
=================  ========================================================

It is also what the REST API controls (``IControl``, http/control.py):
``set_config`` (hot settings), ``reload_auth`` (``/reload``, ``SIGHUP``, the
file watch), ``restart`` (``/ctrl/restart``) and ``add_bridge`` /
``remove_bridge`` (our ``POST``/``DELETE /bridges``) change the running broker
through it, because only it knows how the parts depend on each other.

``service`` is the root of the Twisted service tree, for start/stop order
only -- log, persistence (restores before anything binds), auth, bridges,
rules, webhook, timers, listeners; stopping runs it backwards, so the
listeners close first and the store flushes last.  Nothing is found by
walking it: the parts are attributes of this object.
"""

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .auth.build import build_auth
from .auth.reload import FileWatchReloadService, SighupReloadService, reload_auth
from .bridge.service import build_bridges_service
from .core.broker import Broker
from .http.control import IControl
from .http.history import HistoryService, MetricsHistory
from .http.login import LoginSessions
from .http.service import build_http_listener
from .logging import build_logging
from .persistence.service import build_persistence
from .rules.service import RulesService
from .transport.build import build_listeners
from .transport.timers import CoreTimerService, SysTopicsService
from .webhook import build_webhook

__all__ = ["BrokerApp"]

#: Extension errors logged in full per extension; later ones are counted.
_ERRORS_LOGGED = 10


def configure_admission(broker, config):
    """``rate_limit`` and ``listeners.max_connections_per_address`` of
    ``config`` into the broker's `Admission` (core/admission.py)."""
    broker.admission.configure(
        messages_in=config.rate_limit.conn_messages_in,
        bytes_in=config.rate_limit.conn_bytes_in,
        per_address=config.listeners.max_connections_per_address,
    )


@implementer(IControl)
class BrokerApp:
    """A whole broker for ``config`` on ``reactor`` (see the module doc)."""

    _log = Logger()

    def __init__(self, config, reactor, broker=None):
        self.reactor = reactor
        self.config = config
        self.auth = build_auth(config.auth, reactor)
        if broker is None:
            broker = Broker(
                config.mqtt,
                authenticator=self.auth.authenticator,
                acl=self.auth.acl,
                deny_action=config.auth.deny_action,
                clock=reactor.seconds,
            )
        self.broker = broker
        configure_admission(broker, config)
        self._errors = {}
        broker.guard.report = self._extension_failed
        for note in broker.limits.notes:
            self._log.warn("{note}", note=note)

        self.service = root = MultiService()
        self.logging = build_logging(config)
        self.logging.setServiceParent(root)
        self.persistence = build_persistence(config, broker, reactor)
        if self.persistence is not None:
            self.persistence.setServiceParent(root)
        self._add_auth_services(config)
        self.api = None
        self.listeners = {}
        self.bridges = self._build_bridges(config)
        self.bridges.setServiceParent(root)
        self.rules = self._build_rules(config)
        self.rules.setServiceParent(root)
        self.webhook = build_webhook(config, broker, reactor)
        if self.webhook is not None:
            self.webhook.setServiceParent(root)
        CoreTimerService(broker, reactor).setServiceParent(root)
        SysTopicsService(broker, reactor).setServiceParent(root)
        #: The last 15 minutes of counters and the dashboard's sessions:
        #: made once, so a restart of the HTTP API keeps them.
        self.history = MetricsHistory(broker, reactor.seconds())
        HistoryService(self.history, reactor).setServiceParent(root)
        self.logins = LoginSessions()
        self._listeners = self._build_listeners(config)
        self._listeners.setServiceParent(root)

    # -- building the parts ------------------------------------------------

    def _add_auth_services(self, config):
        auth_service = self.auth.service
        auth_service.setServiceParent(self.service)
        self.sighup = SighupReloadService(self.reload_auth, self.reactor)
        self.sighup.setServiceParent(auth_service)
        #: ``auth.reload_interval``'s file watch, or None.
        self.file_watch = None
        if config.auth.reload_interval > 0 and config.source_path:
            self.file_watch = FileWatchReloadService(
                self.reload_auth, config.source_files, config.auth.reload_interval,
                self.reactor,
            )
            self.file_watch.setServiceParent(auth_service)

    def _build_bridges(self, config):
        return build_bridges_service(config, self.broker, self.reactor)

    def _build_rules(self, config):
        return RulesService(config.rules, self.broker, self.reactor, self.tcp_ports)

    def _build_listeners(self, config):
        """A ``MultiService`` of every listener of ``config``; sets
        ``self.listeners`` and ``self.api``."""
        group = MultiService()
        listeners = build_listeners(config, self.broker, self.reactor)
        api = None
        if config.http_server is not None:
            api, http = build_http_listener(self, self.reactor)
            listeners["http"] = http
        for service in listeners.values():
            service.setServiceParent(group)
        self.listeners = listeners
        self.api = api
        return group

    def tcp_ports(self):
        """The TCP ports MQTT clients can reach this broker on: the bound
        ones, and the configured ones of listeners not bound (yet)."""
        ports = set()
        for listener in self.config.listeners.tcp:
            if listener.enable and listener.port:
                ports.add(listener.port)
        for name, service in self.listeners.items():
            if name.startswith("tcp") and service.port is not None:
                ports.add(service.port.getHost().port)
        return ports

    # -- extension errors --------------------------------------------------

    def _extension_failed(self, name, exc):
        """``Guard.report``: log an extension's exception with its
        traceback, the first few times per extension; count the rest."""
        count = self._errors[name] = self._errors.get(name, 0) + 1
        if count <= _ERRORS_LOGGED:
            self._log.failure(
                "{name} raised (error {count}); the message went on without it",
                Failure(exc, type(exc), exc.__traceback__), name=name, count=count,
            )
        elif count == _ERRORS_LOGGED + 1:
            self._log.error(
                "{name} keeps raising; further errors are only counted "
                "(extension_errors)", name=name,
            )

    # -- IControl ----------------------------------------------------------

    @property
    def passwords(self):
        return self.auth.passwords

    def set_config(self, config):
        """Make ``config`` the one in force; its ``mqtt`` section applies to
        the broker at once (queues of existing sessions included)."""
        broker = self.broker
        before = broker.limits.notes
        old = broker.config
        self.config = config
        broker.config = config.mqtt
        configure_admission(broker, config)
        if config.mqtt.max_mqueue_len != old.max_mqueue_len:
            for session in broker.sessions.values():
                session.max_queue = config.mqtt.max_mqueue_len
        for note in broker.limits.notes:
            if note not in before:
                self._log.warn("{note}", note=note)

    def reload_auth(self, require_includes=False):
        return reload_auth(self.broker, self.auth.passwords, self.config.source_path,
                           require_includes)

    def stop(self):
        self.reactor.stop()

    def add_bridge(self, config):
        """A new bridge in the running bridges service (saved, started)."""
        service = self.bridges.create(config)
        self._log.info("Bridge {name} created over REST ({server})", name=config.name,
                       server=config.server)
        return service

    @defer.inlineCallbacks
    def remove_bridge(self, name):
        """Stop and forget bridge ``name``."""
        yield self.bridges.remove(name)
        self._log.info("Bridge {name} deleted over REST", name=name)

    @defer.inlineCallbacks
    def restart(self, config):
        """Swap listeners (the HTTP API's included), bridges and rules for
        ones built from ``config``, keeping the ``Broker``: sessions,
        subscriptions, queued and retained messages survive; the ``mqtt``
        section and the password table of ``config`` are applied.  Built
        before anything stops, so a failure leaves the broker as it was."""
        bridges = self._build_bridges(config)
        rules = self._build_rules(config)
        old_parts = (self._listeners, self.bridges, self.rules)
        for part in old_parts:
            yield defer.maybeDeferred(part.disownServiceParent)
        self.set_config(config)
        self.auth.passwords.replace(config.auth.allow_anonymous, config.auth.password)
        self.bridges = bridges
        self.rules = rules
        self._listeners = self._build_listeners(config)
        for part in (bridges, rules, self._listeners):
            part.setServiceParent(self.service)
        self._log.info("listeners, bridges and rules restarted from {path}",
                       path=config.source_path or "the running configuration")

    # -- for tests and tools -----------------------------------------------

    def port(self, name="tcp"):
        """A Deferred of the bound port number of listener ``name``."""
        service = self.listeners[name]
        if service.port is not None:
            return defer.succeed(service.port.getHost().port)
        bound = defer.Deferred()

        def listening(port):
            bound.callback(port.getHost().port)
            return port

        service.listening.addCallback(listening)
        return bound
