# -*- test-case-name: tests.e2e.test_twistd,tests.e2e.test_tls -*-
"""
``twistd nanomq``: command-line options and the service tree.

Twisted's ``web/tap.py`` shape: ``Options.postOptions`` loads and
validates the whole configuration, so a bad file stops ``twistd`` with one
clear message before it daemonizes or binds anything; ``makeService``
builds the one application object (app.py ``BrokerApp``), the only
composition root, and returns its service tree.
"""

import gc
import os

from twisted.python import usage

from .app import BrokerApp
from .config import ConfigError, load
from .logging import use_console_settings

DEFAULT_CONF = "etc/nanomq.conf"


class Options(usage.Options):
    """Options of ``twistd nanomq`` and ``python -m nanomq_twisted``."""

    synopsis = "[options]"
    longdesc = (
        "Run a NanoMQ-compatible MQTT broker configured by a NanoMQ HOCON "
        "file (default: $NANOMQ_CONF_PATH, else etc/nanomq.conf)."
    )
    #: Set by usage.Options when this is twistd's subcommand.
    parent = None
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
        parent = self.parent
        if (
            parent is not None
            and parent.get("nodaemon")
            and parent.get("logger") is None
            and not parent.get("logfile")
        ):
            use_console_settings(self["config"].log)
            parent["logger"] = "nanomq_twisted.logging.console_observer"


def make_app(config, reactor):
    """The application object (app.py) for ``config`` on ``reactor``.

    It takes the reactor so tests can build the whole broker on a
    ``MemoryReactorClock``; nothing binds or runs until its ``service``
    starts."""
    return BrokerApp(config, reactor)


def makeService(options):
    """twistd's entry point: the root of the application's service tree."""
    from twisted.internet import reactor

    config = options["config"]
    tune_collector(config.system, reactor)
    return make_app(config, reactor).service


def tune_collector(system, reactor):
    """Make the cyclic garbage collector fit a broker process.

    Python counts container allocations minus deallocations and collects
    its young generation every 700; nearly everything a message allocates
    is freed at once by reference counting, so that count only climbs
    where objects pile up -- acknowledgements held for a commit, the
    store's pending rows.  There, with durable acknowledgements, the
    collector ran about once per hundred messages and took 6% of the
    core's time per message (``python bench/core_path.py --gc-threshold
    0`` against ``20000``; docs/performance.md, "Garbage collection"), and
    each older-generation collection walks every connection, session and
    stored message alive.  With ``system.gc_threshold = 20000``
    young collections are 28x rarer, middle ones come every 50
    and full ones every 100 of those, so cyclic garbage is still
    reclaimed; and once the reactor runs, everything built at start-up --
    modules, the configuration, restored sessions -- is frozen out of the
    walks (``gc.freeze``).  Off by default (0): in a soak with churning
    clients RSS grew about three times as fast with it on in the first
    minutes -- dead connections are reference cycles that reach the old
    generation and wait for a full collection -- and that was not
    measured out.  Only for the twistd process: tests that build a broker
    in their own process keep their interpreter's settings.
    """
    if system.gc_threshold:
        gc.set_threshold(system.gc_threshold, 50, 100)
        reactor.callWhenRunning(gc.freeze)
