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

    def statements(self):
        """The gathering batch as ``[(sql, [params, ...]), ...]``, in an
        order that makes the coalesced changes come out right."""
        out = []
        if self.deleted_sessions:
            ids = [(c,) for c in self.deleted_sessions]
            out.append(("DELETE FROM sessions WHERE client_id = ?", ids))
            out.append(("DELETE FROM subscriptions WHERE client_id = ?", ids))
            out.append(("DELETE FROM deliveries WHERE client_id = ?", ids))
            out.append(("DELETE FROM awaiting_rel WHERE client_id = ?", ids))
        if self.sessions:
            out.append(("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)",
                        list(self.sessions.values())))
        removed = [k for k, row in self.subs.items() if row is None]
        if removed:
            out.append(("DELETE FROM subscriptions WHERE client_id = ? AND topic_filter = ?",
                        removed))
        added = [row for row in self.subs.values() if row is not None]
        if added:
            out.append(("INSERT OR REPLACE INTO subscriptions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        added))
        if self.new_messages:
            out.append(("INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        list(self.new_messages.values())))
        inserts, updates, deletes = [], [], []
        for (cid, seq), change in self.deliveries.items():
            if change.insert is not None:
                inserts.append(change.insert + (change.packet_id, int(change.released)))
            elif change.delete:
                deletes.append((cid, seq))
            else:
                updates.append((change.packet_id, int(change.released), cid, seq))
        if inserts:
            out.append(("INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        inserts))
        if updates:
            out.append((("UPDATE deliveries SET packet_id = coalesce(?, packet_id),"
                        " released = max(released, ?) WHERE client_id = ? AND seq = ?"),
                        updates))
        if deletes:
            out.append(("DELETE FROM deliveries WHERE client_id = ? AND seq = ?", deletes))
        if self.dead_messages:
            out.append(("DELETE FROM messages WHERE id = ?",
                        [(m,) for m in self.dead_messages]))
        gone = [(t,) for t, row in self.retained.items() if row is None]
        if gone:
            out.append(("DELETE FROM retained WHERE topic = ?", gone))
        kept = [row for row in self.retained.values() if row is not None]
        if kept:
            out.append(("INSERT OR REPLACE INTO retained VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        kept))
        freed = [k for k, row in self.rels.items() if row is None]
        if freed:
            out.append(("DELETE FROM awaiting_rel WHERE client_id = ? AND packet_id = ?",
                        freed))
        awaited = [row for row in self.rels.values() if row is not None]
        if awaited:
            out.append(("INSERT OR REPLACE INTO awaiting_rel VALUES (?, ?, ?)", awaited))
        if self.rules:
            out.append(("INSERT OR REPLACE INTO rules VALUES (?, ?)",
                        list(self.rules.values())))
        if self.bridges:
            out.append(("INSERT OR REPLACE INTO bridges VALUES (?, ?)",
                        list(self.bridges.values())))
        done = [(seq,) for seq, row in self.bridge_msgs.items() if row is None]
        if done:
            out.append(("DELETE FROM bridge_messages WHERE seq = ?", done))
        owed = [row for row in self.bridge_msgs.values() if row is not None]
        if owed:
            out.append(("INSERT OR REPLACE INTO bridge_messages VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        owed))
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
