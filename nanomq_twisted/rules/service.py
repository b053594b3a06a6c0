# -*- test-case-name: tests.e2e.test_rules -*-
"""
The ``rules`` service: the rule engine wired to the broker and its actions.

``RulesService(rules_config, broker, reactor, local_ports)`` loads the
rules of the ``rules`` config section (ids in NanoMQ's order: sqlite,
repub, mysql, postgresql, timescaledb); app.py builds it.  The rule engine subscribes the FROM filter of every enabled
rule in the broker's routing trie: a message no rule selects never reaches
it, and with no rule the broker's hot path does not see it at all.

``create``/``update``/``delete`` are what the REST API calls; they raise
`RuleRequestError` with NanoMQ's REST code.  Each change is written through
the broker's store (``rule_saved``/``rule_deleted``; a no-op without
``sqlite {}``), and ``startService`` applies the saved changes over the
config-file rules: a rule made or changed over REST comes back with its id
after a restart (or ``/ctrl/restart``), one deleted over REST stays
deleted.  A saved rule that no longer parses is logged and skipped.
"""

from urllib.parse import urlsplit

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from ..config.errors import ConfigError
from ..core.interfaces import IMessageConsumer
from .actions import (
    MysqlBackend,
    NullAction,
    RepubAction,
    SqliteBackend,
    TableAction,
    TableWriter,
)
from .client import RepubClient
from .engine import Rule, RuleEngine
from .sql import Event, RuleSyntaxError

__all__ = ["RuleRequestError", "RulesService"]

DEFAULT_SQLITE_PATH = "/tmp/rule_engine.db"
_LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::")
_REPUB_KEYS = ("topic", "address", "proto_ver", "keepalive", "clientid",
               "username", "password", "clean_start")
_DB_KEYS = ("table", "host", "username", "password", "database", "port")

# NanoMQ REST codes (rest-api.md §3).
MISSING_KEY = 107
BAD_PARAM = 108
UNSUPPORTED = 111


class RuleRequestError(Exception):
    """A refused REST rule request: NanoMQ's ``code``, a message, and the
    ``param`` it is about (an action parameter such as ``topic`` or
    ``table``, or ``rawsql``, ``name``, ``enabled``), or None."""

    def __init__(self, code, message="", param=None):
        super().__init__(message or f"code {code}")
        self.code = code
        self.param = param


def _truthy(value):
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def _number(params, key, default):
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise RuleRequestError(BAD_PARAM, f"{key}: not a number: {value!r}", key)
    return value


def _unknown(params, known):
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise RuleRequestError(BAD_PARAM, f"unknown parameter {unknown[0]!r}", unknown[0])


def normalize_params(kind, params, strict_keys=False):
    """Check and complete one action's params (REST names)."""
    if not isinstance(params, dict):
        raise RuleRequestError(BAD_PARAM, "params must be an object", "params")
    if kind == "repub":
        for key in ("topic", "address"):
            if not isinstance(params.get(key), str) or not params[key]:
                raise RuleRequestError(MISSING_KEY, f"repub needs {key!r}", key)
        if strict_keys:
            _unknown(params, _REPUB_KEYS)
        out = {k: params[k] for k in _REPUB_KEYS if params.get(k) is not None}
        out["proto_ver"] = int(_number(params, "proto_ver", 4))
        out["keepalive"] = _number(params, "keepalive", 60)
        out["clean_start"] = _truthy(params.get("clean_start", True))
        _split_address(out["address"])
        return out
    if kind == "sqlite":
        table = params.get("table")
        if not isinstance(table, str) or not table:
            raise RuleRequestError(MISSING_KEY, "sqlite needs 'table'", "table")
        return {"table": table}
    _unknown(params, _DB_KEYS)
    for key in ("table", "host", "username", "password"):
        if key not in params:
            raise RuleRequestError(MISSING_KEY, f"{kind} needs {key!r}", key)
    out = dict(params)
    out.setdefault("database", "mysql_rule_db")
    return out


def _split_address(address):
    parts = urlsplit(address if "://" in address else "mqtt-tcp://" + address)
    if parts.scheme not in ("mqtt-tcp", "tcp", "mqtt"):
        raise RuleRequestError(BAD_PARAM, f"unsupported repub address {address!r} "
                               "(expected mqtt-tcp://host:port)", "address")
    try:
        port = parts.port or 1883
    except ValueError:
        raise RuleRequestError(BAD_PARAM, f"address: bad port in {address!r}", "address")
    if not parts.hostname:
        raise RuleRequestError(BAD_PARAM, f"address: no host in {address!r}", "address")
    return parts.hostname, port


def _peer_text(peer):
    if isinstance(peer, tuple) and len(peer) == 2:
        return "{}:{}".format(*peer)
    return None if peer is None else str(peer)


@implementer(IMessageConsumer)
class RulesService(MultiService):
    """The rule engine of one broker (see module docstring)."""

    _log = Logger()

    def __init__(self, rules_config, broker, reactor, local_ports=None):
        super().__init__()
        self.setName("rules")
        self.broker = broker
        self.reactor = reactor
        #: ``local_ports()``: the TCP ports this broker listens on, so a
        #: republish to one of them is routed in-process (app.py).
        self.local_ports = local_ports or set
        self.engine = RuleEngine()
        self.actions = {}  # rule id -> action
        self.sqlite_path = DEFAULT_SQLITE_PATH
        self._writers = {}  # backend key -> TableWriter
        self._tapped = False
        self._outbox = []
        self._outbox_call = None
        if rules_config is not None:
            self._load(rules_config)

    # -- config ----------------------------------------------------------

    def _load(self, cfg):
        def add(kind, sql, params, key):
            try:
                self._add(kind, sql, params)
            except RuleSyntaxError as error:
                raise ConfigError(str(error), key=key)
            except RuleRequestError as error:
                raise ConfigError(str(error), key=key)

        if cfg.sqlite is not None:
            self.sqlite_path = cfg.sqlite.path
            for i, rule in enumerate(cfg.sqlite.rules):
                add("sqlite", rule.sql, {"table": rule.table}, f"rules.sqlite.rules[{i}].sql")
        for i, rule in enumerate(cfg.repub):
            params = {
                "address": rule.server, "topic": rule.topic, "proto_ver": rule.proto_ver,
                "clientid": rule.clientid, "username": rule.username,
                "password": rule.password, "keepalive": rule.keepalive,
                "clean_start": rule.clean_start,
            }
            add("repub", rule.sql, params, f"rules.repub.rules[{i}].sql")
        for kind in ("mysql", "postgresql", "timescaledb"):
            for group in {"mysql": cfg.mysql, "postgresql": cfg.postgresql,
                          "timescaledb": cfg.timescaledb}[kind]:
                for i, rule in enumerate(group.rules):
                    params = {"table": rule.table, "host": group.host,
                              "username": group.username, "password": group.password,
                              "database": group.database}
                    add(kind, rule.sql, params,
                        f"rules.{kind}.{group.name}.rules[{i}].sql")

    # -- lifecycle ---------------------------------------------------------

    def startService(self):
        super().startService()
        self._apply_saved()
        for action in self.actions.values():
            action.start()
        self._update_tap()

    def stopService(self):
        self._set_tap(False)
        if self._outbox_call is not None and self._outbox_call.active():
            self._outbox_call.cancel()
        self._outbox_call = None
        waits = [defer.maybeDeferred(super().stopService)]
        for action in self.actions.values():
            waits.append(defer.maybeDeferred(action.close))
        for writer in self._writers.values():
            waits.append(writer.close())
        self._writers = {}
        return defer.DeferredList(waits, consumeErrors=True)

    def _apply_saved(self):
        """Replay the REST changes the store kept (see module docstring)."""
        saved = self.broker.store.saved_rules()
        for rule_id in sorted(saved):
            data = saved[rule_id]
            self.engine.next_id = max(self.engine.next_id, rule_id + 1)
            if self.engine.get(rule_id) is not None:
                self.engine.remove(rule_id)
                action = self.actions.pop(rule_id, None)
                if action is not None:
                    action.close()
            if data is None:
                continue
            try:
                rule = Rule.from_dict(data)
                self.engine.insert(rule)
                try:
                    self.actions[rule.id] = self._make_action(rule)
                except Exception:
                    self.engine.remove(rule.id)
                    raise
            except Exception:  # noqa: BLE001 -- one bad row must not stop the start
                self._log.failure("saved rule {id} cannot be restored", id=rule_id)

    def _save(self, rule):
        self.broker.store.rule_saved(rule.to_dict())

    def _update_tap(self):
        """Subscribe the FROM filter of every enabled rule in the broker's
        routing trie (core/extensions.py), so only messages some rule
        selects reach ``deliver``.  Rule filters see ``$SYS`` topics too,
        as NanoMQ's do (``sees_dollar``)."""
        self._set_tap(False)
        if not self.running:
            return
        extensions = self.broker.extensions
        for topic_filter in dict.fromkeys(r.query.topic for r in self.engine if r.enabled):
            extensions.add(self, topic_filter, sees_dollar=True)
        self._tapped = True

    def _set_tap(self, on):
        if not on and self._tapped:
            self.broker.extensions.remove_consumer(self)
            self._tapped = False

    # -- the rule engine as a consumer of the routing trie -------------------

    consumer_name = "rule engine"

    def deliver(self, message, now):
        rules = self.engine.rules_for(message.topic)
        if not rules:
            return
        sender = message.sender
        event = Event(message.topic, message.payload, message.qos, message.packet_id, sender,
                      message.username, now, lambda: self._lookup(sender))
        actions = self.actions
        for rule in rules:
            try:
                row = rule.query.evaluate(event)
                if row is not None:
                    actions[rule.id].fire(rule, row, event, now)
            except Exception:  # noqa: BLE001 -- never let a rule break routing
                self._log.failure("rule {id} failed on {topic!r}", id=rule.id,
                                  topic=message.topic)

    def _lookup(self, client_id):
        conn = self.broker.connections.get(client_id) if client_id else None
        if conn is None or conn.info is None:
            return None
        password = conn.info.password
        if isinstance(password, (bytes, bytearray)):
            password = bytes(password).decode("utf-8", "replace")
        return password, _peer_text(conn.peer)

    def publish_later(self, message):
        """Local repub: routed after the current message, not inside it."""
        self._outbox.append(message)
        if self._outbox_call is None:
            self._outbox_call = self.reactor.callLater(0, self._drain)

    def _drain(self):
        self._outbox_call = None
        outbox, self._outbox = self._outbox, []
        for message in outbox:
            self.broker.publish(message, self.reactor.seconds())

    # -- actions -------------------------------------------------------------

    def _writer(self, key, make_backend):
        writer = self._writers.get(key)
        if writer is None:
            writer = self._writers[key] = TableWriter(self.reactor, make_backend())
        return writer

    def _make_action(self, rule):
        kind, params = rule.kind, rule.params
        if kind == "sqlite":
            writer = self._writer(("sqlite", self.sqlite_path),
                                  lambda: SqliteBackend(self.sqlite_path))
            return TableAction(writer, params["table"], rule.query)
        if kind == "mysql":
            host = params["host"] or "localhost"
            port = int(params.get("port") or 3306)
            if ":" in host and host.count(":") == 1:
                host, port = host.split(":")[0], int(host.split(":")[1])
            key = ("mysql", host, port, params["username"], params["database"])
            writer = self._writer(key, lambda: MysqlBackend(
                host, port, params["username"], params["password"], params["database"]))
            return TableAction(writer, params["table"], rule.query)
        if kind == "repub":
            client_id = params.get("clientid") or f"nanomq-rule-{rule.id}"
            host, port = _split_address(params["address"])
            action = RepubAction(self.broker, params["topic"], client_id,
                                 params.get("username"))
            if self._is_local(host, port):
                action.broker = _LaterPublisher(self)
            else:
                action.remote = RepubClient(
                    self.reactor, host, port, client_id, params["proto_ver"],
                    params.get("username"), params.get("password"), params["keepalive"],
                    params["clean_start"])
            return action
        return NullAction(kind)

    def _is_local(self, host, port):
        return host in _LOOPBACK and port in self.local_ports()

    def _sqlite_table_taken(self, table, except_id=None):
        return any(rule.kind == "sqlite" and rule.params.get("table") == table
                   and rule.id != except_id for rule in self.engine)

    # -- management (REST) ---------------------------------------------------

    def _add(self, kind, rawsql, params, enabled=True, description=None):
        params = normalize_params(kind, params)
        rule = self.engine.add(kind, rawsql, params, enabled, description)
        try:
            action = self._make_action(rule)
        except Exception:
            self.engine.remove(rule.id)
            raise
        self.actions[rule.id] = action
        if self.running:
            action.start()
        self._update_tap()
        return rule

    def create(self, kind, rawsql, params, enabled=True, description=None):
        """One new rule; RuleRequestError / RuleSyntaxError on bad input."""
        kind = str(kind).lower()
        if kind not in ("repub", "sqlite", "mysql"):
            raise RuleRequestError(UNSUPPORTED, f"unsupported action name {kind!r}", "name")
        if not isinstance(rawsql, str):
            raise RuleRequestError(MISSING_KEY, "rawsql is required", "rawsql")
        if kind == "sqlite" and isinstance(params, dict) and self._sqlite_table_taken(
                params.get("table")):
            raise RuleRequestError(BAD_PARAM, "table {!r} is in use by another rule".format(
                params.get("table")), "table")
        rule = self._add(kind, rawsql, params, enabled, description)
        self._save(rule)
        return rule

    def update(self, rule_id, rawsql=None, enabled=None, actions=None):
        """PUT: new SQL, enabled flag and/or action params of one rule."""
        rule = self.engine.get(rule_id)
        if rule is None:
            raise RuleRequestError(BAD_PARAM, f"no rule {rule_id!r}")
        new_params = None
        if actions:
            last = actions[-1]
            if not isinstance(last, dict) or str(last.get("name", "")).lower() != rule.kind:
                raise RuleRequestError(BAD_PARAM, "the action name (type) cannot change", "name")
            new_params = normalize_params(rule.kind, last.get("params") or {},
                                          strict_keys=True)
            if rule.kind == "sqlite" and self._sqlite_table_taken(new_params["table"],
                                                                  rule.id):
                raise RuleRequestError(BAD_PARAM, "table {!r} is in use by another rule".format(
                    new_params["table"]), "table")
        if enabled is not None and not isinstance(enabled, bool):
            raise RuleRequestError(BAD_PARAM, "enabled must be a boolean", "enabled")
        self.engine.update(rule_id, rawsql, enabled, new_params)
        action = self.actions[rule_id]
        if new_params is not None:
            action.close()
            action = self.actions[rule_id] = self._make_action(rule)
            if self.running:
                action.start()
        elif rawsql is not None and isinstance(action, TableAction):
            action.set_query(rule.query)
        self._update_tap()
        self._save(rule)
        return rule

    def delete(self, rule_id):
        if self.engine.get(rule_id) is None:
            raise RuleRequestError(MISSING_KEY, f"no rule {rule_id!r}")
        self.engine.remove(rule_id)
        action = self.actions.pop(rule_id)
        self.broker.store.rule_deleted(rule_id)
        self._update_tap()
        return defer.maybeDeferred(action.close)

    def stats(self):
        """Counters per database writer (written, failed, dropped)."""
        return {
            writer.backend.label: {"written": writer.written, "failed": writer.failed,
                                   "dropped": writer.dropped, "errors": writer.errors}
            for writer in self._writers.values()
        }

    def flush(self):
        """A Deferred fired when every queued database row has been tried."""
        return defer.DeferredList([w.flush() for w in self._writers.values()])

    def writer_for(self, rule_id):
        action = self.actions.get(rule_id)
        return action.writer if action is not None else None


class _LaterPublisher:
    """Stands in for the broker in a local RepubAction."""

    def __init__(self, service):
        self.service = service

    def publish(self, message, now):
        self.service.publish_later(message)


