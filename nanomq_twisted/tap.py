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
from twisted.python import usage

from .config import ConfigError, load
from .core.auth import PasswordAuthenticator
from .core.broker import Broker
from .transport.listeners import ListenerService, tcp_endpoint
from .transport.protocol import MQTTServerFactory
from .transport.timers import CoreTimerService, SysTopicsService

DEFAULT_CONF = "etc/nanomq.conf"


class Options(usage.Options):
    """Options of ``twistd nanomq`` and ``python -m nanomq_twisted``."""

    synopsis = "[options]"
    longdesc = (
        "Run a NanoMQ-compatible MQTT broker configured by a NanoMQ HOCON "
        "file (default: $NANOMQ_CONF_PATH, else etc/nanomq.conf)."
    )
    optParameters = [
        ["conf", "c", None, "Path of the HOCON configuration file (nanomq.conf)."],
    ]

    def postOptions(self):
        path = self["conf"] or os.environ.get("NANOMQ_CONF_PATH") or DEFAULT_CONF
        try:
            self["config"] = load(path)
        except ConfigError as error:
            raise usage.UsageError(str(error))
        self["conf"] = path


def make_broker(config, reactor):
    """The pure core, wired with the authenticator the config asks for."""
    auth = config.auth
    return Broker(
        config.mqtt,
        authenticator=PasswordAuthenticator(auth.allow_anonymous, auth.password),
        deny_action=auth.deny_action,
        clock=reactor.seconds,
    )


def make_service(config, reactor, broker=None):
    """Compose the service tree for ``config`` on ``reactor``."""
    if broker is None:
        broker = make_broker(config, reactor)
    root = MultiService()
    root.broker = broker
    root.config = config

    listeners = MultiService()
    listeners.setName("listeners")
    listeners.setServiceParent(root)
    for listener in config.listeners.tcp:
        if not listener.enable:
            continue
        name = "tcp" if listener.name == "default" else "tcp." + listener.name
        factory = MQTTServerFactory(broker, reactor, name)
        endpoint = tcp_endpoint(reactor, listener.host, listener.port, listener.backlog)
        ListenerService(name, endpoint, factory, "(MQTT over TCP)").setServiceParent(
            listeners
        )

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
