# -*- test-case-name: tests.protocol.test_services -*-
"""
``twistd nanomq``: command-line options and the service tree.

``Options.postOptions`` loads and validates the whole configuration, so a
bad file stops ``twistd`` with one clear message before it daemonizes or
binds anything.  ``make_service(config, reactor)`` is the only function
that composes adapters; it takes the reactor as an argument so tests can
build the whole tree on a ``MemoryReactorClock``.
"""

import os

from twisted.application.service import MultiService
from twisted.logger import Logger
from twisted.python import usage

from .bridge.service import build_bridges_service
from .config import ConfigError, load
from .core.broker import Broker
from .logging import build_logging, use_console_settings
from .persistence.service import build_persistence
from .rules.service import RulesService, build_rules_service
from .transport.build import add_secure_and_ws_listeners
from .transport.listeners import ListenerService, tcp_endpoint
from .transport.protocol import MQTTServerFactory
from .transport.reload import (
    FileWatchReloadService,
    SighupReloadService,
    build_auth,
    reload_auth,
)
from .transport.timers import CoreTimerService, SysTopicsService
from .webhook import build_webhook

DEFAULT_CONF = "etc/nanomq.conf"

_log = Logger()


class Options(usage.Options):
    """Options of ``twistd nanomq`` and ``python -m nanomq_twisted``."""

    synopsis = "[options]"
    longdesc = (
        "Run a NanoMQ-compatible MQTT broker configured by a NanoMQ HOCON "
        "file (default: $NANOMQ_CONF_PATH, else etc/nanomq.conf)."
    )
    optParameters = (
        ["conf", "c", None, "Path of the HOCON configuration file (nanomq.conf)."],
    )

    def postOptions(self):
        path = self["conf"] or os.environ.get("NANOMQ_CONF_PATH") or DEFAULT_CONF
        try:
            self["config"] = load(path)
        except ConfigError as error:
            raise usage.UsageError(str(error))
        self["conf"] = path
        # In the foreground with no log destination on the command line, the
        # console follows ``log.level``/``log.to`` (see logging.py).
        parent = getattr(self, "parent", None)
        if (
            parent is not None
            and parent.get("nodaemon")
            and parent.get("logger") is None
            and not parent.get("logfile")
        ):
            use_console_settings(self["config"].log)
            parent["logger"] = "nanomq_twisted.logging.console_observer"


def make_broker(config, reactor):
    """The pure core, wired with the authenticator and ACL the config asks
    for.  ``broker.auth_service`` (HTTP auth's connection pool) is started
    and stopped by ``make_service``."""
    auth = build_auth(config.auth, reactor)
    broker = Broker(
        config.mqtt,
        authenticator=auth.authenticator,
        acl=auth.acl,
        deny_action=config.auth.deny_action,
        clock=reactor.seconds,
    )
    broker.auth_service = auth.service
    return broker


def build_listeners(config, broker, reactor, root):
    """The ``listeners`` service: every MQTT listener of ``config`` (TCP,
    TLS, WebSocket, QUIC) and the HTTP API, sharing one broker."""
    listeners = MultiService()
    listeners.setName("listeners")
    for listener in config.listeners.tcp:
        if not listener.enable:
            continue
        name = "tcp" if listener.name == "default" else "tcp." + listener.name
        factory = MQTTServerFactory(broker, reactor, name, listener.max_connections)
        endpoint = tcp_endpoint(reactor, listener.host, listener.port, listener.backlog)
        ListenerService(name, endpoint, factory, "(MQTT over TCP)").setServiceParent(
            listeners
        )
    add_secure_and_ws_listeners(listeners, config, broker, reactor)
    if config.http_server is not None:
        from .http.service import build_http_service

        build_http_service(config, broker, reactor, root).setServiceParent(listeners)
    return listeners


def make_service(config, reactor, broker=None):
    """Compose the service tree for ``config`` on ``reactor``."""
    if broker is None:
        broker = make_broker(config, reactor)
    root = MultiService()
    root.broker = broker
    root.config = config
    # Configured values that no MQTT 5 property can carry (core/limits.py).
    for note in broker.limits.notes:
        _log.warn("{note}", note=note)
    build_logging(config, root)
    # Restores before listeners start, flushes after they stop.
    build_persistence(config, broker, reactor, root)
    #: Re-read the password and ACL files (REST ``POST /api/v4/reload``).
    root.reload_auth = lambda: reload_auth(broker, config.source_path)
    auth_service = getattr(broker, "auth_service", None)
    if auth_service is not None:
        auth_service.setServiceParent(root)
        SighupReloadService(broker, config.source_path, reactor).setServiceParent(
            auth_service
        )
        if config.auth.reload_interval > 0 and config.source_path:
            FileWatchReloadService(
                broker, config.source_path, config.source_files,
                config.auth.reload_interval, reactor,
            ).setServiceParent(auth_service)

    #: Build fresh, unattached ``listeners``, ``bridges`` and ``rules``
    #: services from a configuration (REST ``/ctrl/restart`` swaps them).
    root.build_listeners = lambda cfg: build_listeners(cfg, broker, reactor, root)
    root.build_bridges = lambda cfg: build_bridges_service(cfg, broker, reactor)
    root.build_rules = lambda cfg: RulesService(
        getattr(cfg, "rules", None), broker, reactor, root
    )
    # ``root.bridges`` is set before the listeners are built so that the
    # REST API (part of ``listeners``) mounts ``/api/v4/bridges``; the
    # service is attached after them, keeping the start order.
    bridges = root.bridges = root.build_bridges(config)
    build_listeners(config, broker, reactor, root).setServiceParent(root)
    bridges.setServiceParent(root)
    build_rules_service(config, broker, reactor, root)
    build_webhook(config, broker, reactor, root)

    timers = MultiService()
    timers.setName("timers")
    timers.setServiceParent(root)
    CoreTimerService(broker, reactor).setServiceParent(timers)
    SysTopicsService(broker, reactor).setServiceParent(timers)
    return root


def makeService(options):
    """twistd's entry point."""
    from twisted.internet import reactor

    return make_service(options["config"], reactor)
