# -*- test-case-name: tests.unit.test_store_sqlite -*-
"""
The SQLite side of ``SqliteStore`` (`sqlite_store.py`): the schema, how
values become column values and back, and ``Pending`` -- one gathering
batch of coalesced changes and the SQL statements it turns into.

Kept apart from the store so that the table layout and the order the
statements must run in can be read (and changed) in one place, without
the bookkeeping of references, views and counters around them.

Properties are stored as JSON with ``bytes`` values tagged
(``{"$b": hex}``), since JSON has no bytes; ``user_property`` pairs come
back as tuples, as the codec produces them.
"""

import json
from itertools import chain

DB_NAME = "nano_qos_db.db"

SCHEMA = """
CREATE TABLE IF NOT EXISTS retained(
    topic TEXT PRIMARY KEY, payload BLOB, qos INT, props TEXT, stored_at REAL,
    expiry_interval INT, sender TEXT, username TEXT);
CREATE TABLE IF NOT EXISTS sessions(
    client_id TEXT PRIMARY KEY, expiry_interval INT, username TEXT,
    disconnected_at REAL);
CREATE TABLE IF NOT EXISTS subscriptions(
    client_id TEXT, topic_filter TEXT, qos INT, no_local INT, rap INT, rh INT,
    identifier INT, share_group TEXT, PRIMARY KEY(client_id, topic_filter));
CREATE TABLE IF NOT EXISTS messages(
    id INTEGER PRIMARY KEY, topic TEXT, payload BLOB, qos INT, retain INT,
    props TEXT, created REAL, expiry_at REAL, sender TEXT, username TEXT);
CREATE TABLE IF NOT EXISTS deliveries(
    client_id TEXT, seq INT, message_id INT, qos INT, retain INT, sub_ids TEXT,
    packet_id INT, released INT, PRIMARY KEY(client_id, seq));
CREATE TABLE IF NOT EXISTS awaiting_rel(
    client_id TEXT, packet_id INT, received_at REAL, PRIMARY KEY(client_id, packet_id));
CREATE TABLE IF NOT EXISTS rules(id INTEGER PRIMARY KEY, body TEXT);
CREATE TABLE IF NOT EXISTS bridges(name TEXT PRIMARY KEY, body TEXT);
CREATE TABLE IF NOT EXISTS bridge_messages(
    seq INTEGER PRIMARY KEY, bridge TEXT, topic TEXT, payload BLOB, qos INT,
    retain INT, props TEXT, key TEXT);
"""

#: Topics never persisted: the broker republishes them itself.
VOLATILE_PREFIX = "$SYS/"


# -- property (de)serialisation: JSON with bytes tagged ---------------------


def _tag(value):
    if isinstance(value, (bytes, bytearray)):
        return {"$b": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [_tag(v) for v in value]
    return value


def _untag(value):
    if isinstance(value, dict) and "$b" in value:
        return bytes.fromhex(value["$b"])
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


def dump_props(props):
    if not props:
        return None
    return json.dumps({k: _tag(v) for k, v in props.items()})


def load_props(text):
    if not text:
        return None
    props = {k: _untag(v) for k, v in json.loads(text).items()}
    if "user_property" in props:
        props["user_property"] = [tuple(p) for p in props["user_property"]]
    return props


def payload_bytes(payload):
    """``payload`` as ``bytes`` (sqlite3 stores ``bytes`` as a BLOB)."""
    return payload if isinstance(payload, bytes) else bytes(payload or b"")


#: Rows per multi-row statement (``RowsSql``): a few fixed sizes, so that a
#: handful of statement texts serve every batch; 64 rows of the widest row
#: (``messages``, 10 columns) stay under SQLite's historic limit of 999
#: bound variables.
CHUNKS = (1, 4, 16, 64)


class RowsSql:
    """One statement applied to many rows in as few steps as possible:
    ``head`` + ``each`` repeated once per row + ``tail``, with the rows'
    values flattened.

    Why not ``executemany``: it steps SQLite once per row, and every step
    releases and retakes the GIL; under load each retake can wait for the
    reactor thread (and then takes the GIL from it).  Rows go in chunks of
    one of the ``CHUNKS`` sizes, the last chunk padded by repeating its last
    row -- every ``RowsSql`` here is idempotent per row (INSERT OR REPLACE,
    DELETE), so a repeated row changes nothing -- which keeps the number of
    distinct statement texts small enough for sqlite3's statement cache."""

    __slots__ = ("_texts", "each", "head", "tail")

    def __init__(self, head, each, tail=""):
        self.head = head
        self.each = each
        self.tail = tail
        self._texts = {}

    def text(self, size):
        text = self._texts.get(size)
        if text is None:
            text = self._texts[size] = self.head + ",".join([self.each] * size) + self.tail
        return text

    def run(self, db, rows):
        """Apply to ``rows`` (worker thread)."""
        largest = CHUNKS[-1]
        start, count = 0, len(rows)
        while start < count:
            left = count - start
            size = largest if left >= largest else next(c for c in CHUNKS if c >= left)
            chunk = rows[start:start + size]
            if len(chunk) < size:
                chunk = chunk + [chunk[-1]] * (size - len(chunk))
            db.execute(self.text(size), list(chain.from_iterable(chunk)))
            start += size


def run_statements(db, statements):
    """Run what ``Pending.statements`` returned (worker thread, inside
    the batch's transaction)."""
    for target, rows in statements:
        if isinstance(target, RowsSql):
            target.run(db, rows)
        else:
            db.executemany(target, rows)


def _values(table, width):
    return RowsSql(f"INSERT OR REPLACE INTO {table} VALUES ", "(" + ",".join("?" * width) + ")")


def _keys(table, columns):
    if len(columns) == 1:
        return RowsSql(f"DELETE FROM {table} WHERE {columns[0]} IN (VALUES ", "(?)", ")")
    names = ", ".join(columns)
    each = "(" + ",".join("?" * len(columns)) + ")"
    return RowsSql(f"DELETE FROM {table} WHERE ({names}) IN (VALUES ", each, ")")


# The statements a batch is made of (see ``Pending.statements``).
DELETE_SESSION = tuple(_keys(t, ("client_id",))
                       for t in ("sessions", "subscriptions", "deliveries", "awaiting_rel"))
PUT_SESSION = _values("sessions", 4)
DELETE_SUBSCRIPTION = _keys("subscriptions", ("client_id", "topic_filter"))
PUT_SUBSCRIPTION = _values("subscriptions", 8)
PUT_MESSAGE = _values("messages", 10)
PUT_DELIVERY = _values("deliveries", 8)
UPDATE_DELIVERY = ("UPDATE deliveries SET packet_id = coalesce(?, packet_id),"
                   " released = max(released, ?) WHERE client_id = ? AND seq = ?")
DELETE_DELIVERY = _keys("deliveries", ("client_id", "seq"))
DELETE_MESSAGE = _keys("messages", ("id",))
DELETE_RETAINED = _keys("retained", ("topic",))
PUT_RETAINED = _values("retained", 8)
DELETE_REL = _keys("awaiting_rel", ("client_id", "packet_id"))
PUT_REL = _values("awaiting_rel", 3)
PUT_RULE = _values("rules", 2)
PUT_BRIDGE = _values("bridges", 2)
DELETE_BRIDGE_MESSAGE = _keys("bridge_messages", ("seq",))
PUT_BRIDGE_MESSAGE = _values("bridge_messages", 8)


class Delivery:
    """A pending change to one ``deliveries`` row."""

    __slots__ = ("delete", "insert", "packet_id", "released")

    def __init__(self):
        self.insert = None  # full row values when the row is new this batch
        self.packet_id = None
        self.released = False
        self.delete = False


class Pending:
    """The gathering batch: later changes to the same key overwrite
    earlier ones, so only the net effect is written."""

    __slots__ = (
        "bridge_msgs", "bridges", "dead_messages", "deleted_sessions", "deliveries",
        "new_messages", "rels", "retained", "rules", "sessions", "subs",
    )

    def __init__(self):
        self.deleted_sessions = set()
        self.sessions = {}  # client id -> row
        self.subs = {}  # (client id, filter) -> row or None (remove)
        self.new_messages = {}  # message id -> row
        self.dead_messages = set()
        self.deliveries = {}  # (client id, seq) -> Delivery
        self.retained = {}  # topic -> row or None (delete)
        self.rels = {}  # (client id, packet id) -> row or None (delete)
        self.rules = {}  # rule id -> row
        self.bridges = {}  # bridge name -> row
        self.bridge_msgs = {}  # seq -> row or None (delete)

    def absorb(self, newer):
        """Apply ``newer``, the batch gathered after this one, on top of
        this one: the two become one batch with the net effect of both
        (how a failed batch rejoins the next, batching.py).  Each rule is
        the one the store applies within a single batch."""
        for client_id in newer.deleted_sessions:
            # The session ended after this batch: what this batch wrote
            # for it must not survive the delete (statements() runs the
            # deletes first, then the puts).
            self.deleted_sessions.add(client_id)
            self.sessions.pop(client_id, None)
            for table in (self.subs, self.rels, self.deliveries):
                for key in [k for k in table if k[0] == client_id]:
                    del table[key]
        self.sessions.update(newer.sessions)
        self.subs.update(newer.subs)
        self.new_messages.update(newer.new_messages)
        for mid in newer.dead_messages:
            if self.new_messages.pop(mid, None) is None:
                self.dead_messages.add(mid)
        deliveries = self.deliveries
        for key, change in newer.deliveries.items():
            old = deliveries.get(key)
            if old is None or change.insert is not None:
                deliveries[key] = change
            elif change.delete:
                if old.insert is not None:
                    del deliveries[key]  # queued and done: never written
                else:
                    old.delete = True
            else:
                if change.packet_id is not None:
                    old.packet_id = change.packet_id
                old.released = old.released or change.released
        self.retained.update(newer.retained)
        self.rels.update(newer.rels)
        self.rules.update(newer.rules)
        self.bridges.update(newer.bridges)
        for seq, row in newer.bridge_msgs.items():
            if row is None and self.bridge_msgs.get(seq) is not None:
                del self.bridge_msgs[seq]  # queued and done: never written
            else:
                self.bridge_msgs[seq] = row

    def statements(self):
        """The gathering batch as ``[(statement, [params, ...]), ...]`` for
        ``run_statements``, in an order that makes the coalesced changes
        come out right."""
        out = []
        if self.deleted_sessions:
            ids = [(c,) for c in self.deleted_sessions]
            out.extend((statement, ids) for statement in DELETE_SESSION)
        if self.sessions:
            out.append((PUT_SESSION, list(self.sessions.values())))
        removed = [k for k, row in self.subs.items() if row is None]
        if removed:
            out.append((DELETE_SUBSCRIPTION, removed))
        added = [row for row in self.subs.values() if row is not None]
        if added:
            out.append((PUT_SUBSCRIPTION, added))
        if self.new_messages:
            out.append((PUT_MESSAGE, list(self.new_messages.values())))
        inserts, updates, deletes = [], [], []
        for (cid, seq), change in self.deliveries.items():
            if change.insert is not None:
                inserts.append(change.insert + (change.packet_id, int(change.released)))
            elif change.delete:
                deletes.append((cid, seq))
            else:
                updates.append((change.packet_id, int(change.released), cid, seq))
        if inserts:
            out.append((PUT_DELIVERY, inserts))
        if updates:
            out.append((UPDATE_DELIVERY, updates))
        if deletes:
            out.append((DELETE_DELIVERY, deletes))
        if self.dead_messages:
            out.append((DELETE_MESSAGE, [(m,) for m in self.dead_messages]))
        gone = [(t,) for t, row in self.retained.items() if row is None]
        if gone:
            out.append((DELETE_RETAINED, gone))
        kept = [row for row in self.retained.values() if row is not None]
        if kept:
            out.append((PUT_RETAINED, kept))
        freed = [k for k, row in self.rels.items() if row is None]
        if freed:
            out.append((DELETE_REL, freed))
        awaited = [row for row in self.rels.values() if row is not None]
        if awaited:
            out.append((PUT_REL, awaited))
        if self.rules:
            out.append((PUT_RULE, list(self.rules.values())))
        if self.bridges:
            out.append((PUT_BRIDGE, list(self.bridges.values())))
        done = [(seq,) for seq, row in self.bridge_msgs.items() if row is None]
        if done:
            out.append((DELETE_BRIDGE_MESSAGE, done))
        owed = [row for row in self.bridge_msgs.values() if row is not None]
        if owed:
            out.append((PUT_BRIDGE_MESSAGE, owed))
        return out


#: Run at start-up before reading: rows that lost their owner (a crash
#: between statements cannot cause this -- batches are transactions -- but
#: be forgiving).
PRUNE_ORPHANS = (
    "DELETE FROM deliveries WHERE client_id NOT IN (SELECT client_id FROM sessions)",
    "DELETE FROM subscriptions WHERE client_id NOT IN (SELECT client_id FROM sessions)",
    "DELETE FROM messages WHERE id NOT IN (SELECT message_id FROM deliveries)",
    "DELETE FROM awaiting_rel WHERE client_id NOT IN (SELECT client_id FROM sessions)",
)
