# -*- test-case-name: tests.e2e.test_bridge_mosquitto,tests.protocol.test_bridge_client -*-
"""
Bridges as services: one ``BridgeService`` per ``bridges.mqtt.<name>``
block, all under the ``bridges`` ``MultiService``.

This module holds only the service lifecycle -- start, stop, REST
reconfiguration and the saved-settings round trip; the broker-facing
``Bridge`` and its links are in `bridge.py`, what gets dialled in
`endpoints.py`.  The names callers have always imported from here
(``Bridge``, ``sender_id``, ``HybridEndpoint``, ...) are re-exported.

Each link's connection is a Twisted ``ClientService`` that reconnects
forever with an exponential, jittered back-off capped at ``backoff_max``
(``Bridge.retry_delay``); with ``hybrid_bridging`` its endpoint
(`HybridEndpoint`) dials the next of ``[server] + hybrid_servers`` at
every attempt.

Persistence (with ``sqlite {}``; a no-op with the null store): every REST
change -- ``BridgeService.reconfigure`` (PUT), ``switch``,
``add_subscriptions``/``remove_subscriptions`` -- saves the bridge's whole
effective settings through ``broker.store.bridge_saved`` (`saved.py`).
``BridgesService.create`` (``POST /api/v4/bridges``, ours) saves a new
bridge marked as created and ``remove`` (``DELETE``) leaves a tombstone.
When ``BridgesService`` starts it applies the saved settings over the
configuration file's bridge of the same name (a saved bridge the file no
longer has is ignored unless it was created over REST; a tombstone keeps
the file's bridge of that name from starting) and hands each bridge its
``QueueJournal``: the
QoS 1/2 messages a bridge owes its remote (offline queue and send window)
are written through the store and put back in the queue at the next
start, so a restart while the remote is down loses nothing.
"""

from dataclasses import replace

from twisted.application.internet import ClientService
from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import Logger

from ..transport.interfaces import IReleasable
from .bridge import (
    BRIDGE_OFFLINE_REASON,
    CLIENT_STATUS_TOPIC,
    Bridge,
    QueueJournal,
    backoff_cap,
    link_config,
    sender_id,
)
from .client import BridgeClientFactory
from .endpoints import (
    HybridEndpoint,
    QuicEndpoint,
    client_endpoint,
    server_configs,
    tls_options,
)
from .saved import body_from_service, config_from_dict, deleted_body, is_created, is_deleted

__all__ = [
    "BRIDGE_OFFLINE_REASON",
    "CLIENT_STATUS_TOPIC",
    "Bridge",
    "BridgeService",
    "BridgesService",
    "HybridEndpoint",
    "QueueJournal",
    "QuicEndpoint",
    "backoff_cap",
    "build_bridges_service",
    "client_endpoint",
    "link_config",
    "sender_id",
    "server_configs",
    "tls_options",
]


class BridgeService(Service):
    """Keeps one bridge connected while running and enabled: a
    ``ClientService`` per connection (``parallel_connections``)."""

    _log = Logger()

    def __init__(self, config, broker, reactor, rng=None, endpoint_factory=client_endpoint):
        self.setName(config.name)
        self.reactor = reactor
        self.bridge = Bridge(config, broker, reactor, rng)
        self.endpoint_factory = endpoint_factory
        self.enabled = config.enable
        #: Made over REST (``POST /api/v4/bridges``), not by the file.
        self.created = False
        #: One ``ClientService`` and one endpoint per link, link 0 first.
        self.clients = []
        self.endpoints = []

    @property
    def config(self):
        return self.bridge.config

    @property
    def client(self):
        """Link 0's ``ClientService`` (None while stopped)."""
        return self.clients[0] if self.clients else None

    @property
    def endpoint(self):
        """Link 0's endpoint (None until started)."""
        return self.endpoints[0] if self.endpoints else None

    def startService(self):
        super().startService()
        if self.enabled:
            self._start_client()

    def stopService(self):
        super().stopService()
        return self._stop_client()

    def _start_client(self):
        config = self.bridge.config
        endpoints = []
        try:
            for link in self.bridge.links:
                configs = server_configs(link.config)
                if len(configs) > 1:
                    endpoint = HybridEndpoint(self.reactor, link, configs, self.endpoint_factory)
                else:
                    endpoint = self.endpoint_factory(self.reactor, link.config)
                    link.dialing(link.config)
                endpoints.append(endpoint)
        except Exception:  # noqa: BLE001 -- logged; this bridge stays down
            self._log.failure("Bridge {name}: cannot set up {servers}", name=config.name,
                              servers=", ".join(c.server for c in server_configs(config)))
            self.bridge.detach()
            return
        self.endpoints = endpoints
        self.bridge.attach()
        for link, endpoint in zip(self.bridge.links, endpoints):
            client = ClientService(
                endpoint,
                BridgeClientFactory(link, self.reactor),
                retryPolicy=link.retry_delay,
                clock=self.reactor,
            )
            self.clients.append(client)
            client.startService()

    def _stop_client(self, detach=True):
        clients, self.clients = self.clients, []
        if detach:
            self.bridge.detach()
        waits = []
        for link, client in zip(self.bridge.links, clients):
            proto = link.protocol
            if proto is not None:
                # QUIC: the UDP port is released only after the closing period.
                if IReleasable.providedBy(proto.transport):
                    waits.append(proto.transport.released())
                proto.disconnect()
            waits.append(client.stopService())
        return defer.gatherResults(waits).addCallback(lambda _: None)

    def save(self):
        """Write the current settings through the store (REST changes)."""
        self.bridge.broker.store.bridge_saved(
            self.name, body_from_service(self.bridge.config, self.enabled, self.created)
        )

    def restore(self, body):
        """Take saved settings (``save``'s body) before starting."""
        config = config_from_dict(body["config"])
        if config.name != self.name:
            config = replace(config, name=self.name)
        self.bridge.reconfigure(config)
        self.enabled = bool(body.get("enable", config.enable))
        self.created = is_created(body)

    def add_subscriptions(self, entries, properties=None):
        """REST ``/sub``: ``Bridge.add_subscriptions``, saved."""
        self.bridge.add_subscriptions(entries, properties)
        self.save()

    def remove_subscriptions(self, topics, properties=None):
        """REST ``/unsub``: ``Bridge.remove_subscriptions``, saved."""
        self.bridge.remove_subscriptions(topics, properties)
        self.save()

    @defer.inlineCallbacks
    def reconfigure(self, config):
        """Replace the configuration and reconnect with it (REST PUT).

        The bridge keeps seeing local messages while it reconnects, so
        QoS 1/2 forwards published meanwhile wait in its offline queue
        (``max_send_queue_len``) instead of being missed."""
        yield self._stop_client(detach=False)
        self.bridge.reconfigure(config)
        self.enabled = config.enable
        self.save()
        if self.running and self.enabled:
            self._start_client()
        else:
            self.bridge.detach()

    @defer.inlineCallbacks
    def switch(self, on):
        """Start (``True``) or stop (``False``) connecting (REST switch)."""
        on = bool(on)
        if on == self.enabled:
            return
        self.enabled = on
        self.save()
        if on:
            if self.running:
                self._start_client()
        else:
            yield self._stop_client()


class BridgesService(MultiService):
    """The ``bridges`` service: every ``BridgeService`` by name.  With a
    store, ``startService`` first applies the bridges saved over REST and
    restores the queues (module docstring).  ``factory(config)`` makes the
    ``BridgeService`` of a bridge created over REST."""

    _log = Logger()

    def __init__(self, cache=None, broker=None, factory=None):
        super().__init__()
        self.setName("bridges")
        self.cache = cache
        self.broker = broker
        self.factory = factory

    def create(self, config):
        """A new bridge (REST ``POST``): saved as created and, while this
        service runs, started.  ``KeyError`` if the name is taken."""
        if self.get(config.name) is not None:
            raise KeyError(config.name)
        service = self.factory(config)
        service.created = True
        store = self.broker.store
        if store.enabled:
            service.bridge.persist(store)
        service.save()
        service.setServiceParent(self)
        return service

    @defer.inlineCallbacks
    def remove(self, name):
        """Stop bridge ``name`` (REST ``DELETE``), drop what it still owed
        and leave a tombstone, so neither the file's block of that name
        nor a saved row brings it back at the next start.  ``KeyError``
        if there is no such bridge."""
        service = self.get(name)
        if service is None:
            raise KeyError(name)
        yield defer.maybeDeferred(service.disownServiceParent)
        service.bridge.detach()
        service.bridge.discard()
        self.broker.store.bridge_saved(name, deleted_body())

    def startService(self):
        store = self.broker.store
        if store.enabled:
            self._restore(store)
        super().startService()

    def _restore(self, store):
        for name, body in sorted(store.saved_bridges().items()):
            service = self.get(name)
            if is_deleted(body):
                if service is not None:
                    service.disownServiceParent()
                    self._log.info("Bridge {name} was deleted over REST; not started", name=name)
                continue
            if service is None and not is_created(body):
                self._log.info(
                    "Bridge {name} was saved over REST but is not in the configuration; "
                    "ignored", name=name)
                continue
            try:
                if service is None:
                    service = self.factory(config_from_dict(body["config"]))
                    service.restore(body)
                    service.setServiceParent(self)
                else:
                    service.restore(body)
            except Exception:  # noqa: BLE001 -- one bad row must not stop the start
                self._log.failure("saved bridge {name} cannot be restored", name=name)
                continue
            self._log.info("Bridge {name}: settings saved over REST restored", name=name)
        for service in self:
            count = service.bridge.persist(store)
            if count:
                self._log.info("Bridge {name}: {count} queued messages restored",
                               name=service.name, count=count)

    def get(self, name):
        try:
            return self.getServiceNamed(name)
        except KeyError:
            return None

    def all(self):
        return list(self)

    def metrics(self):
        """``/api/v4/metrics``'s ``metrics`` list: enabled bridges."""
        return [service.bridge.metrics() for service in self if service.enabled]


def build_bridges_service(config, broker, reactor, rng=None):
    """The ``bridges`` MultiService for ``config.bridges`` (app.py)."""
    def factory(bridge_config):
        return BridgeService(bridge_config, broker, reactor, rng)

    service = BridgesService(config.bridge_cache, broker, factory)
    for bridge_config in config.bridges:
        factory(bridge_config).setServiceParent(service)
    return service
