# -*- test-case-name: tests.e2e.test_logging -*-
"""
``log { to, level, dir, file, rotation { size, count } }`` on
``twisted.logger``.

``LogService`` adds one observer per sink in ``log.to`` to the global log
publisher while it runs, each behind a ``FilteringLogObserver`` that drops
events below ``log.level``:

- ``file``: ``<dir>/<file>`` through ``twisted.python.logfile.LogFile``,
  rotated when it reaches ``rotation.size`` bytes and keeping
  ``rotation.count`` old files (``<file>.1`` is the newest);
- ``syslog``: ``twisted.python.syslog`` (facility USER, ident ``nanomq``);
- ``console``: under ``twistd -n`` (and ``python -m nanomq_twisted``)
  the console is twistd's own initial observer.  When the command line
  names no ``--logfile`` or ``--logger``, ``tap.Options`` hands twistd
  ``console_observer`` as its logger: stdout filtered by ``log.level``, and
  silent when ``log.to`` lacks ``console`` -- what a NanoMQ user expects
  from the same file.  With an explicit ``--logfile``/``--logger`` (or when
  daemonized) twistd's choice stands and shows everything from info up.
  ``LogService`` adds no second console observer (every line would print
  twice) unless ``LogService(console=True)`` is asked for (an embedding
  program without twistd).
- ``uds``: accepted, ignored with a warning.

NanoMQ's levels map onto Twisted's: trace and debug -> debug, info -> info,
warn -> warn, error -> error, fatal -> critical.  ``set_log_level(name)``
changes the level of every running ``LogService`` at once; it is what the
REST ``/reload`` calls (only the level is hot-reloadable, as in NanoMQ).
"""

import os
import sys

from twisted.application.service import Service
from twisted.logger import (
    FilteringLogObserver,
    LegacyLogObserverWrapper,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    globalLogPublisher,
    textFileLogObserver,
)
from twisted.python.logfile import LogFile

__all__ = [
    "LEVELS",
    "LogService",
    "build_logging",
    "console_observer",
    "set_log_level",
    "twisted_level",
    "use_console_settings",
]

LEVELS = {
    "trace": LogLevel.debug,
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "fatal": LogLevel.critical,
}

#: Running services, for ``set_log_level``.
_running = []

#: The level and on/off switch of ``console_observer``; process-wide like
#: twistd's console itself, set by ``use_console_settings``.
_console_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)
_console = {"enabled": True}


def twisted_level(name):
    """The Twisted level for a NanoMQ level word; unknown words mean
    ``error``, as NanoMQ's parser does."""
    return LEVELS.get(str(name).lower(), LogLevel.error)


def set_log_level(name):
    """Set the level of every running ``LogService`` and of the console;
    returns the Twisted level applied.  For REST ``/reload`` and SIGHUP."""
    level = twisted_level(name)
    _console_predicate.setLogLevelForNamespace(None, level)
    for service in _running:
        service.set_level(level)
    return level


def use_console_settings(log_config):
    """Make ``console_observer`` follow ``log.level`` and ``log.to``."""
    _console_predicate.setLogLevelForNamespace(None, twisted_level(log_config.level))
    _console["enabled"] = "console" in log_config.to


def _nothing(event):
    return PredicateResult.no


def console_observer():
    """twistd's log observer factory (``--logger``) for foreground runs:
    stdout at ``log.level``, or nothing when ``log.to`` lacks ``console``."""
    predicate = _console_predicate if _console["enabled"] else _nothing
    return FilteringLogObserver(textFileLogObserver(sys.stdout), [predicate])


class LogService(Service):
    """Attach the configured log sinks while running (module doc)."""

    def __init__(self, log_config, publisher=None, console=False, stdout=None):
        self.setName("log")
        self.config = log_config
        self.publisher = publisher if publisher is not None else globalLogPublisher
        self.console = console
        self.stdout = stdout
        self.predicate = LogLevelFilterPredicate(defaultLogLevel=twisted_level(log_config.level))
        self.logfile = None
        self._observers = []

    def set_level(self, level):
        if isinstance(level, str):
            level = twisted_level(level)
        self.predicate.setLogLevelForNamespace(None, level)

    @property
    def level(self):
        return self.predicate.logLevelForNamespace(None)

    def _sinks(self):
        config = self.config
        sinks = []
        if "file" in config.to:
            directory = os.path.abspath(config.dir or ".")
            os.makedirs(directory, exist_ok=True)
            self.logfile = LogFile(
                config.file,
                directory,
                rotateLength=config.rotation_size,
                maxRotatedFiles=config.rotation_count,
            )
            sinks.append(textFileLogObserver(self.logfile))
        if "syslog" in config.to:
            from twisted.python import syslog

            sinks.append(LegacyLogObserverWrapper(syslog.SyslogObserver("nanomq").emit))
        if "console" in config.to and self.console:
            sinks.append(textFileLogObserver(self.stdout or sys.stdout))
        return sinks

    def privilegedStartService(self):
        # Before the other services' privileged start (the store restoring,
        # listeners binding) so that what they log reaches the file.
        super().privilegedStartService()
        self._attach()

    def startService(self):
        super().startService()
        self._attach()

    def _attach(self):
        if self in _running:
            return
        for sink in self._sinks():
            observer = FilteringLogObserver(sink, [self.predicate])
            self.publisher.addObserver(observer)
            self._observers.append(observer)
        _running.append(self)

    def stopService(self):
        super().stopService()
        if self in _running:
            _running.remove(self)
        for observer in self._observers:
            self.publisher.removeObserver(observer)
        self._observers = []
        logfile, self.logfile = self.logfile, None
        if logfile is not None:
            logfile.close()


def build_logging(config):
    """A ``LogService`` for ``config.log``."""
    return LogService(config.log)
