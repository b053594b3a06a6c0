# -*- test-case-name: tests.unit.test_rule_sql,tests.protocol.test_http_rules -*-
"""
The rule table: rules indexed by their FROM topic filter.

Each rule is one SQL statement, one action kind (``sqlite``, ``repub``,
``mysql``, ``postgresql``, ``timescaledb``) with its parameters, and an
``enabled`` flag; ids come from one counter starting at 1, as NanoMQ
assigns them (config rules first, then REST-made ones).

The hot path is ``rules_for(topic)``: one dict lookup in a per-topic cache
of the enabled rules, in evaluation order.  A miss walks a
``SubscriptionTrie`` keyed by rule id.  Rule topic matching has no ``$``
exception in NanoMQ (a ``FROM "#"`` rule sees ``$SYS`` notices), so filters
and topics are stored one level down, under a fixed literal first level,
where the trie's ``$`` rule never applies.  Any change clears the cache.

Pure: no I/O, no clock.
"""

from ..core.subscriptions import SubscriptionTrie
from .sql import parse

__all__ = ["ACTION_KINDS", "Rule", "RuleEngine"]

ACTION_KINDS = ("sqlite", "repub", "mysql", "postgresql", "timescaledb")

_ROOT = "r/"
_CACHE_SIZE = 65536


class Rule:
    """One rule; ``query`` is the parsed ``rawsql``."""

    __slots__ = ("description", "enabled", "id", "kind", "params", "query", "rawsql")

    def __init__(self, rule_id, kind, rawsql, params=None, enabled=True, description=None):
        self.id = rule_id
        self.kind = kind
        self.rawsql = rawsql
        self.query = parse(rawsql)
        self.params = dict(params or {})
        self.enabled = enabled
        self.description = description

    def summary(self, with_name=True):
        """NanoMQ's REST shape (``name`` is the action kind)."""
        out = {"name": self.kind} if with_name else {}
        out.update(rawsql=self.rawsql, id=self.id, enabled=self.enabled)
        return out

    def to_dict(self):
        """Everything needed to rebuild the rule (for persistence)."""
        return {
            "id": self.id,
            "name": self.kind,
            "rawsql": self.rawsql,
            "enabled": self.enabled,
            "params": dict(self.params),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data):
        return cls(
            int(data["id"]), data["name"], data["rawsql"], data.get("params"),
            bool(data.get("enabled", True)), data.get("description"),
        )

    def __repr__(self):
        return f"Rule({self.id}, {self.kind!r}, {self.rawsql!r}, enabled={self.enabled!r})"


class RuleEngine:
    """Rules in evaluation order, indexed by topic filter."""

    def __init__(self, cache_size=_CACHE_SIZE):
        self._rules = {}  # id -> Rule, in evaluation order
        self._trie = SubscriptionTrie(cache_size=1)
        self._cache = {}
        self._cache_size = cache_size
        self.next_id = 1

    # -- table ------------------------------------------------------------

    def __iter__(self):
        return iter(list(self._rules.values()))

    def __len__(self):
        return len(self._rules)

    def get(self, rule_id):
        return self._rules.get(rule_id)

    def last(self):
        """The most recently added or re-parsed rule, or None."""
        return next(reversed(self._rules.values()), None)

    def add(self, kind, rawsql, params=None, enabled=True, description=None):
        """Parse and add a rule (raises `RuleSyntaxError`); returns it."""
        if kind not in ACTION_KINDS:
            raise ValueError(f"unknown action {kind!r}")
        rule = Rule(self.next_id, kind, rawsql, params, enabled, description)
        self.insert(rule)
        return rule

    def insert(self, rule):
        """Add a rule made elsewhere (``Rule.from_dict``), keeping its id."""
        if rule.id in self._rules:
            raise ValueError(f"rule {rule.id} exists")
        self._rules[rule.id] = rule
        self._trie.add(str(rule.id), _ROOT + rule.query.topic, rule)
        self.next_id = max(self.next_id, rule.id + 1)
        self._cache = {}

    def update(self, rule_id, rawsql=None, enabled=None, params=None):
        """Change a rule in place; KeyError if unknown.

        New SQL is parsed first (a bad statement changes nothing), then the
        rule moves to the end of the evaluation order and is enabled unless
        ``enabled`` says otherwise -- NanoMQ's behaviour.
        """
        rule = self._rules[rule_id]
        if rawsql is not None:
            query = parse(rawsql)
            self._trie.remove(str(rule_id), _ROOT + rule.query.topic)
            rule.rawsql, rule.query = rawsql, query
            self._trie.add(str(rule_id), _ROOT + query.topic, rule)
            del self._rules[rule_id]
            self._rules[rule_id] = rule
            rule.enabled = True
        if enabled is not None:
            rule.enabled = bool(enabled)
        if params is not None:
            rule.params = dict(params)
        self._cache = {}
        return rule

    def remove(self, rule_id):
        """Delete a rule; returns it, KeyError if unknown."""
        rule = self._rules.pop(rule_id)
        self._trie.remove(str(rule_id), _ROOT + rule.query.topic)
        self._cache = {}
        return rule

    # -- matching -----------------------------------------------------------

    def rules_for(self, topic):
        """The enabled rules whose filter matches ``topic``, in order."""
        found = self._cache.get(topic)
        if found is None:
            match = self._trie.match(_ROOT + topic)
            if match:
                ids = match.normal
                found = tuple(
                    rule for rule in self._rules.values()
                    if rule.enabled and str(rule.id) in ids
                )
            else:
                found = ()
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[topic] = found
        return found

    def fire(self, event):
        """``[(rule, row)]`` for every rule the event satisfies."""
        fired = []
        for rule in self.rules_for(event.topic):
            row = rule.query.evaluate(event)
            if row is not None:
                fired.append((rule, row))
        return fired
