# -*- test-case-name: tests.unit.test_store_sqlite -*-
"""
``BatchWriter``: group commit for ``SqliteStore`` (`sqlite_store.py`).

Separate from the store because it is pure scheduling -- when a batch
closes, that only one is in flight, when ``after_commit`` callbacks fire
-- and knows nothing of what the statements say; the store subclasses it
and supplies ``_statements()`` (the gathering batch), ``_run(db,
statements)`` (apply them, in the worker thread) and ``_reset_pending()``
(start a new batch), and calls ``_touch()`` for every change it accepts.

When a batch closes.  Nobody waiting (``sqlite.sync_ack = false``, or
changes no acknowledgement depends on): after ``flush_threshold`` changes
or ``delay`` seconds, whichever comes first -- few, large transactions.
Never in the middle of a reactor turn: the changes one packet makes (a
QoS 2 PUBLISH: the message for its subscribers, then its packet id) always
commit together.
Somebody waiting (``after_commit`` called while changes are pending): the
batch closes as soon as the disk is free -- at once when the previous
commit finishes, and after ``ack_delay`` seconds (0: the end of the
current reactor turn, so that every PUBLISH read in one turn shares the
commit) when nothing is being written.  So under load the commits run back
to back, each covering everything that arrived during the one before (group
commit: one transaction, one ``fsync``, however many messages), and the
disk is never idle while acknowledgements wait.

The statements are built on the reactor thread and run as one transaction
in a worker thread (``run_in_thread``); the reactor never waits for the
disk.  At most one batch is in flight; changes made meanwhile gather in the
next one.  ``after_commit`` callbacks fire in the order they were given
(they ride the batch gathering when they were given, and batches commit in
order).  A failed batch is logged and counted, and its waiting callbacks
are released anyway: holding acks forever would stall the publishers.
"""

from twisted.internet import defer
from twisted.logger import Logger


class BatchWriter:
    """Writes the subclass's pending changes to ``self._db`` in batches.

    ``run_in_thread(fn, *args)`` returns a Deferred of ``fn(*args)`` run in
    a worker thread; ``clock`` provides ``callLater``.  ``_db`` is set by
    the subclass when it opens its file; nothing is written before.
    """

    _log = Logger()

    def __init__(self, path, clock, run_in_thread, flush_threshold=100, delay=0.01,
                 ack_delay=0.0):
        self.path = path
        self.clock = clock
        self.run_in_thread = run_in_thread
        self.flush_threshold = max(1, flush_threshold)
        self.delay = delay
        self.ack_delay = ack_delay
        self.batches = 0
        self.failures = 0
        self._db = None
        self._ops = 0
        self._timer = None
        #: True while ``_timer`` is the short one (``_close_soon``): the
        #: gathering batch is already due, further changes need no check.
        self._soon = False
        self._busy = None  # the Deferred of the batch being written
        self._busy_callbacks = []
        self._pending_callbacks = []
        self._closed = False

    def _statements(self):
        """The gathering batch, as ``_run`` takes it; empty when nothing
        is left to write."""
        raise NotImplementedError

    def _run(self, db, statements):
        """Apply ``statements`` to ``db`` (worker thread, inside the
        transaction)."""
        raise NotImplementedError

    def _reset_pending(self):
        """Start gathering a new batch."""
        raise NotImplementedError

    def _touch(self):
        self._ops += 1
        if self._busy is not None or self._soon:
            return
        if self._ops >= self.flush_threshold:
            # Not now: the call that brought us here may be one of several
            # a single packet makes (a QoS 2 PUBLISH queues the message,
            # then records its packet id), and a batch must never split
            # them -- a kill -9 between the two commits would route the
            # resent PUBLISH again.  Batches close between reactor turns.
            self._close_soon()
        elif self._timer is None:
            self._timer = self.clock.callLater(self.delay, self._timer_fired)

    def after_commit(self, callback):
        if self._ops:
            self._pending_callbacks.append(callback)
            if self._busy is None and not self._soon:
                self._close_soon()
        elif self._busy is not None:
            self._busy_callbacks.append(callback)
        else:
            callback()

    def _close_soon(self):
        """Somebody waits for the gathering batch (or it is full) and the
        disk is free: close it within ``ack_delay``, never within the
        current reactor turn."""
        self._soon = True
        timer = self._timer
        if timer is None:
            self._timer = self.clock.callLater(self.ack_delay, self._timer_fired)
        elif timer.getTime() > self.clock.seconds() + self.ack_delay:
            timer.reset(self.ack_delay)

    # -- batching -----------------------------------------------------------

    def _timer_fired(self):
        self._timer = None
        self._soon = False
        self._kick()

    def _kick(self):
        """Close the gathering batch and write it, unless one is in flight
        (then it goes as soon as that one commits)."""
        if self._busy is not None or not self._ops or self._db is None:
            return
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        self._soon = False
        statements = self._statements()
        self._reset_pending()
        self._ops = 0
        callbacks, self._pending_callbacks = self._pending_callbacks, []
        if not statements:
            # Everything cancelled out: already as durable as it gets.
            for callback in callbacks:
                callback()
            return
        self._busy_callbacks = callbacks
        self.batches += 1
        self._busy = d = self.run_in_thread(self._write, statements)
        d.addCallbacks(self._written, self._failed)

    def _write(self, statements):
        """One transaction (worker thread; never touches pending state)."""
        db = self._db
        db.execute("BEGIN")
        try:
            self._run(db, statements)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _written(self, _):
        self._busy = None
        callbacks, self._busy_callbacks = self._busy_callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 -- one bad callback must not stop the rest
                self._log.failure("after_commit callback failed")
        self._continue()

    def _failed(self, failure):
        self._busy = None
        self.failures += 1
        self._log.failure("SQLite batch write to {path} failed", failure, path=self.path)
        # Nothing better to do for the waiting acks than to release them:
        # holding them forever would stall the publishers.
        self._written(None)

    def _continue(self):
        if not self._ops:
            return
        if self._pending_callbacks or self._ops >= self.flush_threshold or self._closed:
            self._kick()
        elif self._timer is None:
            self._timer = self.clock.callLater(self.delay, self._timer_fired)

    # -- shutdown ------------------------------------------------------------

    @defer.inlineCallbacks
    def flush(self):
        """Write everything accepted so far; fires once it has committed."""
        while self._ops or self._busy is not None:
            if self._busy is None:
                self._kick()
            busy = self._busy
            if busy is None:
                break
            done = defer.Deferred()
            self._busy_callbacks.append(lambda d=done: d.callback(None))
            yield done

    @defer.inlineCallbacks
    def close(self):
        """Flush, then close the file."""
        self._closed = True
        yield self.flush()
        db, self._db = self._db, None
        if db is not None:
            yield self.run_in_thread(db.close)
