# -*- test-case-name: tests.e2e.test_rules -*-
"""
Rule actions: where a fired rule's row goes.

``RepubAction``
    republishes the row as compact JSON, QoS 0: straight into this broker
    when the address names one of its own listeners, else through a
    `RepubClient`.  The published message carries the action's client id,
    which is also the loop guard (a rule never fires on its own output).
``TableWriter``
    one database (the shared SQLite file, or one MySQL server): rows are
    queued in memory (bounded), written in batches by one job at a time on
    the reactor's thread pool, so a slow or dead database never blocks MQTT.
    Failures and drops are counted and logged once per burst.
``TableAction``
    one rule's table in a ``TableWriter``.
"""

import json
import sqlite3
from collections import deque

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from ..core.message import Message

__all__ = [
    "MysqlBackend",
    "NullAction",
    "RepubAction",
    "SqliteBackend",
    "TableAction",
    "TableWriter",
    "repub_payload",
]

#: Column types of the plain fields (NanoMQ's table layout).
_PLAIN_TYPES = {
    "qos": "INT", "id": "INT", "topic": "TEXT", "clientid": "TEXT",
    "username": "TEXT", "password": "TEXT", "timestamp": "INT", "payload": "TEXT",
    "peerhost": "TEXT",
}
_OMIT_WHEN_NULL = ("username", "password")


def repub_payload(query, row, event):
    """The JSON NanoMQ republishes: a JSON payload is embedded as JSON,
    null username/password and missing payload paths are left out."""
    out = {}
    for column in query.columns:
        value = row[column.key]
        source = column.source
        if value is None and (column.is_path or source in _OMIT_WHEN_NULL):
            continue
        if source == "payload":
            data = event.json
            if isinstance(data, (dict, list)):
                value = data
        out[column.key] = value
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class IRuleAction(Interface):
    """What a rule does with a row its SQL selected."""

    writer = Attribute("the TableWriter rows go to, or None")

    def start():
        """Begin (connect a remote republish client); the rules service
        calls it when it starts, or when the rule is made while running."""

    def fire(rule, row, event, now):
        """Act on ``row`` (never blocks)."""

    def close():
        """Stop; may return a Deferred."""


@implementer(IRuleAction)
class NullAction:
    """An action kind this port does not implement (postgresql,
    timescaledb): the rule exists and keeps its id, its rows are counted."""

    _log = Logger()
    writer = None

    def __init__(self, kind):
        self.kind = kind
        self.dropped = 0

    def start(self):
        pass

    def fire(self, rule, row, event, now):
        if not self.dropped:
            self._log.warn("rule {id}: the {kind} action is not available; rows dropped",
                           id=rule.id, kind=self.kind)
        self.dropped += 1

    def close(self):
        return None


@implementer(IRuleAction)
class RepubAction:
    """``repub``: publish the row to ``topic`` on this or another broker."""

    writer = None

    def __init__(self, broker, topic, client_id, username=None, remote=None):
        self.broker = broker
        self.topic = topic
        self.client_id = client_id
        self.username = username
        self.remote = remote  # a RepubClient, or None for this broker
        self.sent = 0

    def fire(self, rule, row, event, now):
        if event.clientid is not None and event.clientid == self.client_id:
            return  # loop guard: never act on our own output
        payload = repub_payload(rule.query, row, event)
        if self.remote is not None:
            self.remote.publish(self.topic, payload)
            return
        message = Message(self.topic, payload, 0, False, None, now,
                          self.client_id, self.username)
        self.sent += 1
        self.broker.publish(message, now)

    def start(self):
        if self.remote is not None:
            self.remote.start()

    def close(self):
        if self.remote is not None:
            return self.remote.stop()
        return None


# -- tables --------------------------------------------------------------------

def db_value(value):
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bool):
        return int(value)
    return value


@implementer(IRuleAction)
class TableAction:
    """``sqlite``/``mysql``: one row per fired rule into ``table``."""

    def __init__(self, writer, table, query):
        self.writer = writer
        self.table = table
        self.set_query(query)

    def set_query(self, query):
        """(Re)declare the table for ``query``'s columns."""
        self.query = query
        self.names = tuple(column.name for column in query.columns)
        self.writer.declare(self.table, [
            (column.name, None if column.is_path else _PLAIN_TYPES[column.source])
            for column in query.columns
        ])

    def start(self):
        pass

    def fire(self, rule, row, event, now):
        values = tuple(db_value(row[column.key]) for column in self.query.columns)
        self.writer.add(self.table, self.names, values)

    def close(self):
        return None


class TableWriter:
    """Batches rows for one database; see the module docstring.

    ``backend`` does the blocking work in a pool thread: ``create(table,
    coldefs)``, ``insert(table, names, rows, types)``, ``reset()``.
    """

    _log = Logger()

    def __init__(self, reactor, backend, max_pending=10000, batch_size=500):
        self.reactor = reactor
        self.backend = backend
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.written = 0
        self.failed = 0
        self.dropped = 0
        self.errors = 0  # failed jobs (a failed CREATE counts here only)
        self._queue = deque()
        self._pending_rows = 0
        self._busy = None  # the running job's Deferred
        self._scheduled = None
        self._failing = False
        self._dropping = False
        self._closed = False
        self._waiters = []

    def declare(self, table, coldefs):
        self._queue.append(("create", table, tuple(coldefs)))
        self._schedule()

    def add(self, table, names, values):
        if self._pending_rows >= self.max_pending or self._closed:
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                self._log.warn("{db}: {n} rows pending, dropping new rows",
                               db=self.backend.label, n=self._pending_rows)
            return
        self._pending_rows += 1
        self._queue.append(("row", table, names, values))
        self._schedule()

    def _schedule(self):
        if self._busy is None and self._scheduled is None:
            self._scheduled = self.reactor.callLater(0, self._run)

    def _take(self):
        """The next job: consecutive rows for one table, or one create."""
        queue = self._queue
        head = queue.popleft()
        if head[0] == "create":
            return head, 0
        rows = [head[3]]
        while queue and len(rows) < self.batch_size:
            nxt = queue[0]
            if nxt[0] != "row" or nxt[1] != head[1] or nxt[2] != head[2]:
                break
            rows.append(queue.popleft()[3])
        return ("row", head[1], head[2], rows), len(rows)

    def _run(self):
        self._scheduled = None
        if self._busy is not None:
            return
        if not self._queue:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(None)
            return
        job, count = self._take()
        self._pending_rows -= count
        pool = self.reactor.getThreadPool()
        self._busy = deferToThreadPool(self.reactor, pool, self.backend.run, job)
        self._busy.addCallbacks(self._done, self._failed, (count,), None, (job, count))

    def _done(self, _result, count):
        self._busy = None
        self.written += count
        if self._failing:
            self._failing = False
            self._log.info("{db}: writing again", db=self.backend.label)
        self._dropping = False
        self._run()

    def _failed(self, failure, job, count):
        self._busy = None
        self.failed += count
        self.errors += 1
        if not self._failing:
            self._failing = True
            self._log.error("{db}: write failed ({n} rows lost): {error}",
                            db=self.backend.label, n=count, error=failure.getErrorMessage())
        self._run()

    def flush(self):
        """A Deferred fired once everything queued so far has been tried."""
        from twisted.internet.defer import Deferred

        waiter = Deferred()
        self._waiters.append(waiter)
        self._schedule()
        return waiter

    def close(self):
        """Stop accepting rows; write what is queued, then close."""
        self._closed = True
        done = self.flush()
        pool = self.reactor.getThreadPool()
        done.addCallback(lambda _: deferToThreadPool(self.reactor, pool, self.backend.reset))
        return done


# -- backends (run in a pool thread, one job at a time) -----------------------------

def _type_of(value):
    if isinstance(value, (bool, int)):
        return "INT"
    if isinstance(value, float):
        return "REAL"
    return "TEXT"


class _Backend:
    """Shared create/insert logic; subclasses supply the connection."""

    quote = '"'
    key_column = "RowId INTEGER PRIMARY KEY AUTOINCREMENT"
    #: Column types for JSON numbers seen first as an integer or a fraction.
    number_types = (("INT", "INT"), ("REAL", "REAL"))

    def __init__(self):
        self._conn = None
        self._columns = {}  # table -> set of lower-case column names
        self._declared = {}  # table -> coldefs

    def q(self, name):
        return self.quote + name.replace(self.quote, self.quote * 2) + self.quote

    def run(self, job):
        try:
            if self._conn is None:
                self._conn = self.connect()
                self._columns = {}
            if job[0] == "create":
                _, table, coldefs = job
                self._declared[table] = coldefs
                self._ensure_table(table)
                return
            _, table, names, rows = job
            self._ensure_columns(table, names, rows)
            sql = "INSERT INTO {} ({}) VALUES ({})".format(
                self.q(table), ", ".join(self.q(n) for n in names),
                ", ".join([self.placeholder] * len(names)))
            cursor = self._conn.cursor()
            cursor.executemany(sql, rows)
            self._conn.commit()
            return
        except Exception:
            self.reset()
            raise

    def _ensure_table(self, table):
        coldefs = [(n, t) for n, t in self._declared.get(table, ()) if t is not None]
        cols = ", ".join([self.key_column] + [f"{self.q(n)} {t}" for n, t in coldefs])
        cursor = self._conn.cursor()
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {self.q(table)}({cols})")
        self._conn.commit()
        self._columns[table] = self.existing_columns(table)

    def _ensure_columns(self, table, names, rows):
        known = self._columns.get(table)
        if known is None:
            self._ensure_table(table)
            known = self._columns[table]
        missing = [i for i, n in enumerate(names) if n.lower() not in known]
        if not missing:
            return
        cursor = self._conn.cursor()
        for index in missing:
            sample = next((r[index] for r in rows if r[index] is not None), None)
            kind = _type_of(sample)
            if kind != "TEXT":
                kind = dict(self.number_types)[kind]
            cursor.execute(f"ALTER TABLE {self.q(table)} ADD {self.q(names[index])} {kind}")
            known.add(names[index].lower())
        self._conn.commit()

    def reset(self):
        conn, self._conn = self._conn, None
        self._columns = {}
        if conn is not None:
            try:
                conn.close()
            except Exception as error:  # noqa: BLE001 -- a dead link closing badly
                self.close_error = error


class SqliteBackend(_Backend):
    placeholder = "?"

    def __init__(self, path):
        super().__init__()
        self.path = path
        self.label = "sqlite " + path

    def connect(self):
        return sqlite3.connect(self.path, check_same_thread=False, timeout=5)

    def existing_columns(self, table):
        rows = self._conn.execute(f"PRAGMA table_info({self.q(table)})").fetchall()
        return {row[1].lower() for row in rows}


class MysqlBackend(_Backend):
    quote = "`"
    placeholder = "%s"
    key_column = "idx INT PRIMARY KEY AUTO_INCREMENT"
    # A JSON number may be 25 first and 21.5 next: INT would round the latter.
    number_types = (("INT", "DOUBLE"), ("REAL", "DOUBLE"))

    def __init__(self, host, port, user, password, database, connect_timeout=5):
        super().__init__()
        self.params = {"host": host, "port": port, "user": user, "password": password or "",
                           "database": database, "connect_timeout": connect_timeout,
                           "read_timeout": 30, "write_timeout": 30, "charset": "utf8mb4",
                           "autocommit": False}
        self.label = f"mysql {host}:{port}/{database}"

    def connect(self):
        import pymysql

        return pymysql.connect(**self.params)

    def existing_columns(self, table):
        cursor = self._conn.cursor()
        cursor.execute(f"SHOW COLUMNS FROM {self.q(table)}")
        return {row[0].lower() for row in cursor.fetchall()}
