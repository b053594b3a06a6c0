# -*- test-case-name: tests.e2e.test_restart -*-
"""
The persistence service: restore before listening, flush after.

The application object (app.py) starts it before the listeners (only the
log service comes earlier), which gives the ordering a clean restart needs
for free:

- start-up: ``MultiService`` starts children in order, so the store is
  opened and the broker restored (synchronously, before the reactor runs
  under twistd) before any listener binds;
- shutdown: children stop in reverse order, so the listeners have already
  been told to stop listening when ``stopService`` here runs.  It then ends
  every client connection in the core (a v5 client gets DISCONNECT 0x8B,
  "server shutting down"), which settles their sessions -- wills published,
  disconnect times recorded -- and returns the Deferred of the store's final
  flush, which twistd waits for before the process exits.
"""

import os

from twisted.application.service import Service
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from .faults import StoreOpenError
from .sqlite_store import DB_NAME, SqliteStore

__all__ = ["PersistenceService", "build_persistence", "database_path"]

#: How long a batch nobody waits for may gather before it is written (s).
BATCH_DELAY = 0.01
#: How long a batch an acknowledgement waits for may gather when the disk
#: is free (s): 0 = until the end of the current reactor turn, so the
#: PUBLISHes read together share one commit (batching.py).
ACK_DELAY = 0.0

SERVER_SHUTTING_DOWN = 0x8B


def database_path(sqlite_config, cwd=None):
    """``<mounted_file_path>/nano_qos_db.db``; a relative directory is
    taken from the current directory, as NanoMQ does."""
    directory = os.path.expanduser(sqlite_config.mounted_file_path or ".")
    if not os.path.isabs(directory):
        directory = os.path.join(cwd or os.getcwd(), directory)
    return os.path.normpath(os.path.join(directory, DB_NAME))


class PersistenceService(Service):
    """Owns one ``SqliteStore`` for one broker (see the module doc)."""

    _log = Logger()

    def __init__(self, store, broker, clock):
        self.setName("persistence")
        self.store = store
        self.broker = broker
        self.clock = clock
        self._restored = False

    def privilegedStartService(self):
        super().privilegedStartService()
        self._restore()

    def startService(self):
        super().startService()
        self._restore()

    def _restore(self):
        if self._restored:
            return
        self._restored = True
        store = self.store
        try:
            store.open()
        except StoreOpenError as error:
            # Said once, plainly, before twistd prints the traceback and
            # exits: the broker does not run without the persistence it
            # was configured with (docs/durability.md, "Disk faults").
            self._log.critical("{error}; the broker does not start", error=error)
            raise
        retained, sessions, messages = store.restore(self.broker, self.clock.seconds())
        self.broker.set_store(store)
        self._log.info(
            "Restored {retained} retained messages and {sessions} sessions owing "
            "{messages} messages from {path}",
            retained=retained,
            sessions=sessions,
            messages=messages,
            path=store.path,
        )
        if store.saved_bridges() or store.bridge_rows:
            self._log.info(
                "Restored {bridges} bridges changed over REST and {messages} messages "
                "queued for bridges",
                bridges=len(store.saved_bridges()),
                messages=store.bridge_rows,
            )

    def stopService(self):
        super().stopService()
        if not self._restored:
            return None
        self._restored = False
        now = self.clock.seconds()
        for conn in list(self.broker.connections.values()):
            conn.server_disconnect(SERVER_SHUTTING_DOWN, now, "server shutting down")
            conn.connection_lost(now)
        d = self.store.close()

        def closed(result):
            self._log.info(
                "Persistence flushed to {path} ({batches} batches)",
                path=self.store.path,
                batches=self.store.batches,
            )
            return result

        return d.addCallback(closed)


def build_persistence(config, broker, reactor):
    """The persistence service when ``sqlite {}`` is on, else None.

    app.py starts it before the listeners (see the module doc).  The broker
    reports to its store from the first session on (restored ones too)."""
    sqlite = config.sqlite
    if sqlite is None:
        return None

    def run_in_thread(fn, *args):
        # The pool is looked up per call: a MemoryReactorClock has none,
        # and building the application must work on one.
        return deferToThreadPool(reactor, reactor.getThreadPool(), fn, *args)

    store = SqliteStore(
        database_path(sqlite),
        reactor,
        run_in_thread,
        flush_threshold=sqlite.flush_mem_threshold,
        delay=BATCH_DELAY,
        sync_ack=sqlite.sync_ack,
        max_rows=sqlite.disk_cache_size,
        ack_delay=ACK_DELAY,
    )
    broker.set_store(store)
    return PersistenceService(store, broker, reactor)
