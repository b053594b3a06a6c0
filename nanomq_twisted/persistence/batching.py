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
order).

A failed batch (disk full, read-only file system, I/O error) is neither
dropped nor acknowledged.  The subclass folds it back under the gathering
batch (``_requeue``: the older changes first, later changes to the same
key still win), so the backlog is coalesced like any batch -- at most one
row per session, subscription, owed message and retained topic, i.e.
bounded by the state the broker holds in memory anyway, not by traffic.
Its ``after_commit`` callbacks are *held* in front of the newer ones:
PUBACK/PUBREC that promise durability are not sent while nothing can be
made durable, so publishers stop at their Receive Maximum instead of being
told "stored" falsely.  The whole backlog is retried on a timer with
exponential back-off (``retry_initial`` doubling up to ``retry_max``
seconds, on the injected ``clock``); the first retry that commits releases
every held callback in order.  The store's ``health`` says what is wrong
(faults.py); it is logged once when it changes, not once per attempt.

At shutdown (``close``) a failing batch is tried once more and then given
up: its changes are lost (the database keeps its last committed state)
and that is logged, so ``twistd`` can still exit.
"""

import os
import sqlite3

from twisted.internet import defer
from twisted.logger import Logger

from .faults import FAILED, OK, WriteFault, classify

#: Back-off of the retries of a failed batch (s): the first after
#: ``RETRY_INITIAL``, doubling up to ``RETRY_MAX``.
RETRY_INITIAL = 0.5
RETRY_MAX = 10.0


class BatchWriter:
    """Writes the subclass's pending changes to ``self._db`` in batches.

    ``run_in_thread(fn, *args)`` returns a Deferred of ``fn(*args)`` run in
    a worker thread; ``clock`` provides ``callLater``.  ``_db`` is set by
    the subclass when it opens its file; nothing is written before.
    """

    _log = Logger()

    def __init__(self, path, clock, run_in_thread, flush_threshold=100, delay=0.01,
                 ack_delay=0.0, retry_initial=RETRY_INITIAL, retry_max=RETRY_MAX):
        self.path = path
        self.clock = clock
        self.run_in_thread = run_in_thread
        self.flush_threshold = max(1, flush_threshold)
        self.delay = delay
        self.ack_delay = ack_delay
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.batches = 0
        #: Failed batch writes (attempts), ever.
        self.failures = 0
        #: ``faults.OK``, ``DISK_FULL``, ``READ_ONLY`` or ``FAILED``.
        self.health = OK
        #: The error of the last failed attempt while not OK.
        self.fault = None
        self._fault_since = None
        self._attempts = 0  # failed attempts since the last commit
        self._retry = None  # the DelayedCall of the next retry
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
        """Start gathering a new batch (the closed one stays apart until
        it has committed, for ``_requeue``)."""
        raise NotImplementedError

    def _requeue(self):
        """The batch last closed failed: fold it back under the gathering
        one, older changes first."""
        raise NotImplementedError

    def _touch(self):
        self._ops += 1
        if self._busy is not None or self._soon or self._retry is not None:
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
            if self._busy is None and not self._soon and self._retry is None:
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
        if (self._busy is not None or not self._ops or self._db is None
                or self._retry is not None):
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
        """One transaction (worker thread; never touches pending state).
        Any error becomes a ``WriteFault`` naming what went wrong."""
        db = self._db
        try:
            db.execute("BEGIN")
            self._run(db, statements)
            db.execute("COMMIT")
        except (sqlite3.Error, OSError) as error:
            # SQLite may have rolled back already (SQLITE_FULL, IOERR do):
            # a second ROLLBACK would fail and hide the real error.
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            raise WriteFault(classify(error, os.path.dirname(self.path)), str(error)) from error
        except BaseException as error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise WriteFault(FAILED, repr(error)) from error

    def _written(self, _):
        self._busy = None
        if self.health != OK:
            self._recovered()
        self._attempts = 0
        # Taken before any runs: a callback may start the next batch
        # (``flush`` does), which gets a list of its own.
        callbacks, self._busy_callbacks = self._busy_callbacks, []
        self._release(callbacks)
        self._continue()

    def _release(self, callbacks):
        for callback in callbacks:
            try:
                callback()
            except Exception:  # noqa: BLE001 -- one bad callback must not stop the rest
                self._log.failure("after_commit callback failed")

    def _failed(self, failure):
        self._busy = None
        self.failures += 1
        self._attempts += 1
        fault = failure.value
        if not isinstance(fault, WriteFault):
            fault = WriteFault(FAILED, repr(fault))
        held, self._busy_callbacks = self._busy_callbacks, []
        if self._closed:
            self._give_up(fault, held)
            return
        self._requeue()
        self._ops += 1
        # The held acknowledgements go first: they are the older ones.
        self._pending_callbacks[:0] = held
        if fault.state != self.health:
            self._faulted(fault)
        self.fault = fault
        delay = min(self.retry_max, self.retry_initial * 2 ** (self._attempts - 1))
        self._retry = self.clock.callLater(delay, self._retry_fired)

    def _retry_fired(self):
        self._retry = None
        self._kick()

    def _faulted(self, fault):
        """The store went from ``health`` to ``fault.state``: said once."""
        if self.health == OK:
            self._fault_since = self.clock.seconds()
        self.health = fault.state
        self._log.error(
            "SQLite database {path} cannot be written ({state}: {reason}); the broker "
            "keeps serving, holds durable acknowledgements and keeps the unwritten "
            "changes in memory, retrying every {retry_max} s at most until it can "
            "commit",
            path=self.path, state=fault.state, reason=fault.reason,
            retry_max=self.retry_max,
        )

    def _recovered(self):
        self._log.warn(
            "SQLite database {path} is written again after {attempts} failed attempts "
            "over {seconds:.1f} s ({state}); held acknowledgements released",
            path=self.path, attempts=self._attempts, state=self.health,
            seconds=self.clock.seconds() - self._fault_since,
        )
        self.health = OK
        self.fault = None
        self._fault_since = None

    def _give_up(self, fault, held):
        """Shutting down and the disk still fails: lose the unwritten
        changes (the database keeps its last commit) rather than hang."""
        self._log.error(
            "SQLite database {path} cannot be written at shutdown ({fault}); the "
            "changes since its last commit are lost",
            path=self.path, fault=fault,
        )
        self.health = fault.state
        self.fault = fault
        self._reset_pending()
        self._ops = 0
        callbacks, self._pending_callbacks = held + self._pending_callbacks, []
        self._release(callbacks)

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
        """Write everything accepted so far; fires once it has committed
        (while the disk fails, once a retry commits; after ``close``
        began, once the last attempt committed or was given up)."""
        while self._ops or self._busy is not None:
            if self._busy is None:
                if self._closed and self._retry is not None:
                    self._retry.cancel()
                    self._retry = None
                self._kick()
            done = defer.Deferred()
            if self._busy is not None:
                self._busy_callbacks.append(lambda d=done: d.callback(None))
            elif self._ops and self._retry is not None:
                self._pending_callbacks.append(lambda d=done: d.callback(None))
            else:
                break
            yield done

    @defer.inlineCallbacks
    def close(self):
        """Flush, then close the file."""
        self._closed = True
        yield self.flush()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        db, self._db = self._db, None
        if db is not None:
            yield self.run_in_thread(db.close)
