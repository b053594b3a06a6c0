# -*- test-case-name: tests.unit.test_acl -*-
"""
NanoMQ's file ACL: ``auth.acl.rules`` evaluated top to bottom.

A rule applies to a request when its ``action`` covers the operation, its
one "who" selector matches the client and (if it has ``topics``) one of its
topic patterns matches; the first rule that applies decides (``permit``).
When none applies, ``no_match`` decides.  docs/spec: auth-acl.md section 3.

The selector is chosen as NanoMQ does, in the priority ``ipaddr``,
``ipaddrs``, ``username``, ``clientid``, ``and``, ``or``: a rule naming both
a username and a client id checks only the username.

Topic patterns:

- a plain filter is matched level by level against the requested topic, or
  against the requested *filter* for SUBSCRIBE: a rule ``+`` matches any one
  requested level (a literal ``+``/``#`` too), a rule ``#`` the rest.  No
  ``$`` exception: ``#`` covers ``$SYS/...``;
- ``@text`` must equal the request exactly (``@#`` is only the filter ``#``);
- ``${clientid}``/``${username}`` are replaced by the client's values; a
  value holding ``+``, ``#`` or ``/`` makes the whole check fail (deny),
  whatever the rule's permit, so nobody widens a rule with a crafted id.
  Without a username, ``${username}`` stays literal.

Our extensions (docs/compatibility.md): ``ipaddr``/``ipaddrs`` accept CIDR
ranges (``10.0.0.0/8``); ``ipaddrs`` means "any of" (NanoMQ parses it but
never matches); a SUBSCRIBE to ``$share/<group>/f`` or ``$queue/f`` is judged
on ``f``, so a share prefix cannot dodge a rule.

Decisions are cached per client (``cache_max_size`` entries, least
recently used first out, each valid ``cache_ttl`` seconds).  Pure: time is
passed in as ``now`` (or read from the ``clock`` callable given at
construction); without either, nothing is cached.
"""

import ipaddress
from collections import OrderedDict
from weakref import WeakKeyDictionary

from zope.interface import implementer

from ..mqtt.topics import match_levels, strip_shared
from .interfaces import IAcl

PUBLISH = "publish"
SUBSCRIBE = "subscribe"
PUBSUB = "pubsub"

_UNSAFE = frozenset("+#/")
_PLACEHOLDERS = ("${clientid}", "${username}")


class UnsafePlaceholder(Exception):
    """A placeholder value would widen the pattern: deny outright."""


def client_host(client):
    """The client's IP address as text (IPv4-mapped IPv6 unwrapped), or None."""
    peer = client.peer
    if not peer:
        return None
    host = peer[0]
    if host and host.startswith("::ffff:") and "." in host:
        return host[7:]
    return host


def _address_matcher(text):
    """``#`` (anyone), an exact address, or a CIDR range."""
    if text == "#":
        return lambda host: True
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return lambda host: False

        def in_network(host):
            if host is None:
                return False
            try:
                return ipaddress.ip_address(host) in network
            except ValueError:
                return False

        return in_network
    return lambda host: host == text


def _username_matcher(expected):
    if expected == "#":
        return lambda client, host: True
    return lambda client, host: client.username == expected


def _client_id_matcher(expected):
    if expected == "#":
        return lambda client, host: True
    return lambda client, host: client.client_id == expected


def _selector(who):
    """The one selector of ``who`` (an AclRule or AclWho), or None."""
    if who.ipaddr is not None:
        match = _address_matcher(who.ipaddr)
        return lambda client, host: match(host)
    if who.ipaddrs is not None:
        matchers = [_address_matcher(text) for text in who.ipaddrs]
        return lambda client, host: any(m(host) for m in matchers)
    if who.username is not None:
        return _username_matcher(who.username)
    if who.clientid is not None:
        return _client_id_matcher(who.clientid)
    return None


def _who(rule):
    selector = _selector(rule)
    if selector is not None:
        return selector
    if rule.and_ is not None:
        parts = [s for s in map(_selector, rule.and_) if s is not None]
        return lambda client, host: all(p(client, host) for p in parts)
    if rule.or_ is not None:
        parts = [s for s in map(_selector, rule.or_) if s is not None]
        return lambda client, host: any(p(client, host) for p in parts)
    return lambda client, host: True


class _Pattern:
    __slots__ = ("dynamic", "levels", "literal", "text")

    def __init__(self, text):
        self.literal = text.startswith("@")
        self.text = text[1:] if self.literal else text
        self.dynamic = any(p in self.text for p in _PLACEHOLDERS)
        self.levels = None if self.dynamic else self.text.split("/")

    def matches(self, client, requested, requested_levels):
        text = self.text
        levels = self.levels
        if self.dynamic:
            text = _substitute(text, client)
            levels = text.split("/")
        if self.literal:
            return text == requested
        return match_levels(levels, requested_levels)


def _substitute(text, client):
    for placeholder, value in (
        ("${clientid}", client.client_id),
        ("${username}", client.username),
    ):
        if placeholder not in text or value is None:
            continue
        if not _UNSAFE.isdisjoint(value):
            raise UnsafePlaceholder(placeholder)
        text = text.replace(placeholder, value)
    return text


class _Rule:
    __slots__ = ("actions", "allow", "patterns", "who")

    def __init__(self, rule):
        self.allow = rule.permit == "allow"
        if rule.action == PUBSUB:
            self.actions = (PUBLISH, SUBSCRIBE)
        else:
            self.actions = (rule.action,)
        self.who = _who(rule)
        self.patterns = None if rule.topics is None else [_Pattern(t) for t in rule.topics]


@implementer(IAcl)
class Acl:
    """The compiled rule list of ``auth.acl`` plus ``no_match``.

    ``check(client, action, topic, now=None) -> bool``; ``client`` needs
    ``client_id``, ``username`` and ``peer`` ((host, port) or None).
    """

    #: This ACL always answers synchronously (core/interfaces.py ``IAcl``).
    asynchronous = False

    def prepare(self, client, action, topics, done):
        return True

    def __init__(self, rules=(), no_match="allow", cache_max_size=32, cache_ttl=60.0,
                 clock=None):
        self.rules = tuple(_Rule(rule) for rule in rules or ())
        self.no_match_allows = no_match == "allow"
        self.cache_max_size = cache_max_size
        self.cache_ttl = cache_ttl
        self.clock = clock
        self._cache = WeakKeyDictionary()

    @classmethod
    def from_config(cls, auth, clock=None):
        """From an ``AuthConfig``; None when no ACL is configured (NanoMQ
        checks nothing then, ``no_match`` included)."""
        if auth.acl is None:
            return None
        return cls(auth.acl, auth.no_match, auth.cache_max_size, auth.cache_ttl, clock)

    def check(self, client, action, topic, now=None):
        if now is None and self.clock is not None:
            now = self.clock()
        if now is None or self.cache_ttl <= 0 or self.cache_max_size <= 0:
            return self.evaluate(client, action, topic)
        try:
            entries = self._cache.get(client)
        except TypeError:  # not weak-referenceable: no cache for it
            return self.evaluate(client, action, topic)
        key = (action, topic)
        if entries is None:
            entries = self._cache[client] = OrderedDict()
        else:
            hit = entries.get(key)
            if hit is not None:
                allowed, expires = hit
                if now < expires:
                    entries.move_to_end(key)
                    return allowed
                del entries[key]
        allowed = self.evaluate(client, action, topic)
        entries[key] = (allowed, now + self.cache_ttl)
        while len(entries) > self.cache_max_size:
            entries.popitem(last=False)
        return allowed

    def evaluate(self, client, action, topic):
        """The uncached decision."""
        if action == SUBSCRIBE:
            topic = strip_shared(topic)
        host = client_host(client)
        levels = topic.split("/")
        try:
            for rule in self.rules:
                if action not in rule.actions or not rule.who(client, host):
                    continue
                patterns = rule.patterns
                if patterns is not None and not any(
                    p.matches(client, topic, levels) for p in patterns
                ):
                    continue
                return rule.allow
        except UnsafePlaceholder:
            return False
        return self.no_match_allows
