# -*- test-case-name: tests.e2e.test_auth -*-
"""
Hot reload of the password and ACL files.

``reload_auth(broker, passwords, config_path)`` re-reads the configuration
file and swaps, each in one assignment, the password table with
``allow_anonymous`` (``passwords``, the ``PasswordAuthenticator``), the ACL
rules with ``no_match`` and the broker's ``deny_action``.  A file that does
not load (syntax, bad rule, malformed hash) changes nothing: the old rules
stay and the reason is logged and returned.  ``http_auth`` is not reloaded
(as in NanoMQ).  It is what ``SIGHUP`` (``SighupReloadService``) and the
REST ``POST /api/v4/reload`` run (through the application object,
app.py).

``FileWatchReloadService`` (our key ``auth.reload_interval``, 0 = off) runs
it too when one of the files the configuration is made of (the file itself
and everything it includes, usually the password and ACL files) changed.

Both services take the reload as a callable returning a ``ReloadResult``,
so they know nothing of what is reloaded.
"""

import os
import signal
import threading

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from ..config import ConfigError, load
from ..core.acl import Acl
from ..core.auth import AllowAll
from ..logging import set_log_level
from .http import HttpAcl

_log = Logger()


class ReloadResult:
    """``ok`` and, when not, ``error`` (the reason, as logged); ``files``:
    after a successful reload, the files the configuration is now made of."""

    def __init__(self, ok, error=None, files=()):
        self.ok = ok
        self.error = error
        self.files = files

    def __bool__(self):
        return self.ok

    def __repr__(self):
        return f"ReloadResult(ok={self.ok!r}, error={self.error!r})"


def reload_auth(broker, passwords, config_path, require_includes=False):
    """Re-read ``config_path`` and swap the password table and the ACL, and
    apply its ``log.level`` (what ``nanomq reload`` changes besides ``mqtt``).

    Returns a ``ReloadResult``; on failure nothing changed.  Synchronous and
    quick (the file is small); call it on the reactor thread.

    ``require_includes`` (the file watch): an included file that does not
    exist fails the reload instead of reading as empty (HOCON's ``include``
    of a missing file), so a file caught between delete and re-create does
    not empty the password table or the ACL.
    """
    try:
        if not config_path:
            raise ConfigError("the broker was not started from a configuration file")
        config = load(config_path)
        if require_includes:
            for path in config.source_files:
                if not os.path.exists(path):
                    raise ConfigError("included file does not exist", path=path)
        auth = config.auth
        acl = Acl.from_config(auth, clock=broker.now)
        passwords.replace(auth.allow_anonymous, auth.password)
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
    return ReloadResult(True, files=config.source_files)


class SighupReloadService(Service):
    """``kill -HUP``: ``reload()`` on the reactor thread.

    The handler is installed when the service starts (main thread only) and
    the previous one restored when it stops.  ``reloaded`` fires with the
    ``ReloadResult`` of each reload, for tests: ``next_reload()``.
    """

    name = "sighup"

    def __init__(self, reload, reactor):
        self._reload = reload
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
        result = self._reload()
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(result)
        return result

    def next_reload(self):
        d = defer.Deferred()
        self._waiters.append(d)
        return d


def _stamp(path):
    """What tells a change of ``path`` apart: (mtime in ns, size, inode), or
    None while the file does not exist (or cannot be read)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class FileWatchReloadService(Service):
    """``auth.reload_interval``: poll the configuration's files, reload on change.

    Every ``interval`` seconds (a ``LoopingCall`` on ``clock``; no thread,
    no inotify) each of ``files`` is ``stat``-ed.  When any stamp (mtime,
    size, inode; a file appearing or disappearing counts) differs from the
    last poll, ``reload(require_includes=True)`` runs once, whatever its
    outcome: an invalid
    file keeps the old rules (logged) and is not retried until it changes
    again; so does a missing included file (``require_includes``), until
    it is back.  After a successful reload the watched set becomes the new
    configuration's files (an include may have been added or removed).

    An editor that writes a file in several steps may be caught in the
    middle; that reload fails and keeps the old rules, and the final write
    is a further change that reloads again.  ``reloaded`` results go to
    ``next_reload()`` waiters, as for ``SighupReloadService``.
    """

    name = "file-watch"

    def __init__(self, reload, files, interval, clock):
        self._reload = reload
        self.files = tuple(files)
        self.interval = interval
        self.clock = clock
        self._stamps = {}
        self._loop = None
        self._waiters = []

    def startService(self):
        Service.startService(self)
        self._stamps = {path: _stamp(path) for path in self.files}
        self._loop = task.LoopingCall(self.poll)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False).addErrback(
            _log.failure, "auth file watch stopped"
        )

    def stopService(self):
        Service.stopService(self)
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    def poll(self):
        """One check; returns the ``ReloadResult`` when it reloaded, else None."""
        stamps = {path: _stamp(path) for path in self.files}
        previous = self._stamps
        if stamps == previous:
            return None
        self._stamps = stamps
        changed = sorted(path for path in stamps if stamps[path] != previous.get(path))
        _log.info("Configuration file changed ({files}): reloading auth",
                  files=", ".join(changed))
        result = self._reload(require_includes=True)
        if result.ok and result.files and tuple(result.files) != self.files:
            self.files = tuple(result.files)
            for path in self.files:
                if path not in stamps:
                    stamps[path] = _stamp(path)
            self._stamps = {path: stamps[path] for path in self.files}
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(result)
        return result

    def next_reload(self):
        d = defer.Deferred()
        self._waiters.append(d)
        return d
