# -*- test-case-name: tests.unit.test_isolation -*-
"""
Extensions as subscribers of the routing trie.

Bridges, the rule engine, webhooks (and the cluster link) consume
messages by topic, exactly as clients do -- Mosquitto's bridges are
contexts in ``subs.c``'s trie too.  `ExtensionRoutes` keeps their filters
in a `SubscriptionTrie` keyed by consumer (an `IMessageConsumer`), so the
broker asks one cached per-topic question, "which consumers want this
topic?", and a message no extension filter matches costs each extension
nothing at all; with no extension subscribed, routing does not even ask.

A consumer is delivered a matching message once, however many of its
filters match (it knows its own filters, e.g. a bridge's forwards), before
the message's client subscribers.  Delivery goes through the broker's
`Guard`: a consumer that raises is counted and logged, and the publisher
and the other receivers never see it.

The ``$`` rule [MQTT-4.7.2-1] keeps ``+``/``#`` filters away from
``$SYS/...`` topics.  NanoMQ's rule engine and WebHook filters have no such
rule (a rule ``FROM "#"`` sees ``$SYS`` notices), so a filter may be added
with ``sees_dollar=True``: those live in a second trie under one fixed
literal first level, where the rule never applies.
"""

from .subscriptions import SubscriptionTrie

#: First level under which ``sees_dollar`` filters and topics are matched.
_ANY = "any/"


class ExtensionRoutes:
    """Which extensions consume which topics (see the module docstring)."""

    def __init__(self, guard, cache_size=65536):
        self._guard = guard
        self._mqtt = SubscriptionTrie(cache_size=1)
        self._any = SubscriptionTrie(cache_size=1)
        self._cache = {}
        self._cache_size = cache_size
        #: Some route exists: the router's one test per message (a plain
        #: attribute, not ``__bool__``, which costs a call on the hot path).
        self.active = False

    def __bool__(self):
        return self.active

    def _changed(self):
        self._cache = {}
        self.active = bool(self._mqtt) or bool(self._any)

    def __len__(self):
        return len(self._mqtt) + len(self._any)

    def add(self, consumer, topic_filter, sees_dollar=False):
        """Route messages on ``topic_filter`` (a valid plain filter) to
        ``consumer`` as well.  Adding the same pair twice is one route."""
        if sees_dollar:
            self._any.add(consumer, _ANY + topic_filter, True)
        else:
            self._mqtt.add(consumer, topic_filter, True)
        self._changed()

    def remove(self, consumer, topic_filter, sees_dollar=False):
        if sees_dollar:
            removed = self._any.remove(consumer, _ANY + topic_filter)
        else:
            removed = self._mqtt.remove(consumer, topic_filter)
        self._changed()
        return removed

    def remove_consumer(self, consumer):
        """Drop every route of ``consumer``; how many there were."""
        count = self._mqtt.remove_client(consumer) + self._any.remove_client(consumer)
        self._changed()
        return count

    def filters_of(self, consumer):
        """``[(topic_filter, sees_dollar), ...]`` routed to ``consumer``."""
        plain = [(f, False) for f in self._mqtt.filters_of(consumer)]
        anyf = [(f[len(_ANY):], True) for f in self._any.filters_of(consumer)]
        return plain + anyf

    def consumers(self, topic):
        """The consumers of ``topic`` (each once, in a stable order);
        cached until the routes change."""
        found = self._cache.get(topic)
        if found is None:
            seen = dict.fromkeys(self._mqtt.match(topic).normal)
            if self._any:
                seen.update(dict.fromkeys(self._any.match(_ANY + topic).normal))
            found = tuple(seen)
            cache = self._cache
            if len(cache) >= self._cache_size:
                cache.clear()
            cache[topic] = found
        return found

    def deliver(self, message, now):
        """Hand ``message`` to every consumer of its topic, each isolated."""
        consumers = self.consumers(message.topic)
        if consumers:
            call = self._guard.call
            for consumer in consumers:
                call(consumer.consumer_name, consumer.deliver, message, now)
