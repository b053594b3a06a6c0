# -*- test-case-name: tests.protocol.test_bridge_client,tests.e2e.test_bridge_mosquitto -*-
"""
``Bridge``: one bridge's broker-facing half, apart from the services that
connect it (`service.py`) and the endpoints they dial (`endpoints.py`),
because everything here is plain state driven by the broker and by the
events of its MQTT client connection (client/protocol.py, whose
`IClientOwner` a ``Bridge`` is) -- testable without a reactor or a socket.

A ``Bridge`` is a subscriber of the broker's routing trie for the
``local_topic`` filters of its forwards (``Broker.extensions``):
``deliver`` sees only the messages they match and sends what they select; messages from the remote are published
locally as if a client had sent them, with ``Message.sender`` set to the
bridge's internal id so that they are never forwarded back by *this*
bridge (NanoMQ has no such guard; other bridges still forward them, as
NanoMQ does).  Connecting and losing the remote publishes the bridge's
``$SYS/brokers/client_status`` notices, as for a client.

``parallel_connections = N`` (our key, default 1) opens N connections to
the remote, each a ``Bridge`` *link* with its own ``ClientService``,
session (offline queue of up to ``max_send_queue_len`` and in-flight
window), back-off and counters.  Link 0 is the bridge itself: it keeps the
configured client id, the will and every remote subscription (configured
or added through REST), and its ``tap`` sends each forwarded message on
link ``topics.shard(local topic, N)``, so one local topic always takes the
same connection and keeps its order.  Links 1..N-1 connect as
``<clientid>-<n>`` (or with an id of their own when none is configured),
only forward, and publish their own ``$SYS`` status notices.  NanoMQ's
``max_parallel_processes`` sizes its downward work contexts, not
connections; it is kept for REST display only (docs/compatibility.md).

``Bridge.persist`` hands the links a ``QueueJournal`` so the QoS 1/2
messages they owe the remote go through the store (`service.py`'s
docstring has the persistence story).
"""

import random
from dataclasses import replace

from twisted.application.internet import backoffPolicy
from twisted.logger import Logger
from zope.interface import implementer

from ..client.interfaces import IClientOwner
from ..core.info import ConnectInfo
from ..core.interfaces import IMessageConsumer
from ..core.message import Message, forwarded_properties
from ..core.sys_topics import client_offline_payload, client_online_payload
from .client import client_options, subscribe_properties, subscription_options
from .session import BridgeSession, BridgeStats, Outgoing
from .topics import downward, shard, upward

CLIENT_STATUS_TOPIC = "$SYS/brokers/client_status"

#: ``reason_code`` of a bridge's offline notice (0x8B, server shutting down).
BRIDGE_OFFLINE_REASON = 0x8B


def sender_id(name):
    """``Message.sender`` of messages that came down through bridge
    ``name``; not a client id any local client can hold in practice."""
    return "$bridge/" + name


def backoff_cap(config):
    # NanoMQ replaces a back-off cap above 10 minutes with 6 minutes.
    cap = config.backoff_max
    return 360.0 if cap > 600 else max(cap, 0.01)


#: ``BridgeStats`` fields summed over a bridge's links.
_COUNTERS = (
    "sent", "received", "sent_bytes", "received_bytes", "connects", "dropped",
    "downlink_dropped", "cancelled", "queued", "inflight",
)


def link_config(config, index):
    """The configuration link ``index`` of a bridge connects with: link 0
    uses ``config`` as is; the others ``<clientid>-<index>`` (no id when
    none is configured: each gets its own), without subscriptions or
    will, which belong to link 0 alone."""
    if index == 0:
        return config
    clientid = f"{config.clientid}-{index}" if config.clientid else None
    return replace(config, clientid=clientid, subscription=(), will=None)


class QueueJournal:
    """A bridge's ``BridgeSession.journal``: reports its owed QoS 1/2
    messages to the store under the bridge's name."""

    __slots__ = ("name", "store")

    def __init__(self, store, name):
        self.store = store
        self.name = name

    def added(self, item):
        return self.store.bridge_message_queued(
            self.name, item.topic, item.payload, item.qos, item.retain, item.properties,
            item.key,
        )

    def removed(self, item):
        self.store.bridge_message_done(self.name, item.seq)


def _status_info(config, client_id):
    """The ``ConnectInfo`` a bridge's ``$SYS`` status notices describe."""
    return ConnectInfo(
        client_id, config.username, None, config.proto_ver,
        "MQIsdp" if config.proto_ver == 3 else "MQTT", config.clean_start,
        int(config.keepalive), {},
    )


@implementer(IMessageConsumer, IClientOwner)
class Bridge:
    """One bridge's broker side: forwards, downward delivery, status."""

    _log = Logger()

    def __init__(self, config, broker, clock, rng=None, index=0):
        self.index = index
        self.config = config = link_config(config, index)
        self.broker = broker
        self.clock = clock
        self.rng = rng or random.Random()
        #: This link's counters; ``totals()`` sums every link's.
        self.stats = BridgeStats()
        self.session = BridgeSession(client_options(config), config.max_send_queue_len,
                                     self.stats)
        self.sender = sender_id(config.name)
        self.protocol = None
        #: The configuration of the server being dialled or connected
        #: (differs from ``config`` only with ``hybrid_bridging``).
        self.current = config
        self._failures = 0
        self._tapped = False
        #: Every connection of this bridge, this one (link 0) first; the
        #: other links' own ``links`` is empty.
        self.links = []
        #: Counters of links removed by a reconfiguration.
        self._retired = BridgeStats()
        if index == 0:
            self.links = [self] + [
                Bridge(config, broker, clock, self.rng, n)
                for n in range(1, max(config.parallel_connections, 1))
            ]

    @property
    def name(self):
        return self.config.name

    @property
    def label(self):
        """The bridge name, with ``#<n>`` for links other than 0 (logs)."""
        return self.name if self.index == 0 else f"{self.name}#{self.index}"

    @property
    def client_label(self):
        return "Bridge " + self.label

    @property
    def server(self):
        """The server being dialled or connected (logs)."""
        return self.current.server

    # -- wiring ------------------------------------------------------------

    @property
    def consumer_name(self):
        return "bridge " + self.name

    def attach(self):
        """Subscribe this bridge's forwards in the broker's routing trie
        (core/extensions.py): only matching messages reach ``deliver``."""
        self._tapped = True
        self._route()

    def detach(self):
        if self._tapped:
            self._tapped = False
            self.broker.extensions.remove_consumer(self)

    def _route(self):
        extensions = self.broker.extensions
        extensions.remove_consumer(self)
        for forward in self.config.forwards:
            extensions.add(self, forward.local_topic)

    def reconfigure(self, config):
        """Take a new configuration (the bridge is disconnected).  On link 0
        this also reconfigures the other links; when the number of
        ``parallel_connections`` changes, links are added or removed and
        every pending QoS 1/2 message is moved to the link its topic now
        maps to (in-flight ones as new messages), in order."""
        self.config = link_config(config, self.index)
        self.current = self.config
        self.session.capacity = config.max_send_queue_len
        self.session.client.options = client_options(self.config)
        self.sender = sender_id(config.name)
        if self.index != 0:
            return
        if self._tapped:
            self._route()
        count = max(config.parallel_connections, 1)
        for link in self.links[1:count]:
            link.reconfigure(config)
        if count == len(self.links):
            return
        pending = []
        for link in self.links:
            pending.extend(link.session.drain())
        for link in self.links[count:]:
            for name in _COUNTERS[:-2]:
                setattr(self._retired, name, getattr(self._retired, name) + getattr(link.stats, name))
        del self.links[count:]
        while len(self.links) < count:
            link = Bridge(config, self.broker, self.clock, self.rng, len(self.links))
            link.session.journal = self.session.journal
            self.links.append(link)
        for item in pending:
            self.links[shard(item.key, count)].session.enqueue(item)

    def persist(self, store):
        """Report this bridge's owed messages to ``store`` from now on,
        and queue the ones it kept from before (on the link each topic
        maps to, oldest first); returns how many."""
        journal = QueueJournal(store, self.name)
        for link in self.links:
            link.session.journal = journal
        count = len(self.links)
        restored = [[] for _ in self.links]
        saved = store.saved_bridge_messages(self.name)
        for seq, topic, payload, qos, retain, props, key in saved:
            item = Outgoing(topic, payload, qos, retain, props, key)
            item.seq = seq
            restored[shard(item.key, count) if count > 1 else 0].append(item)
        for link, items in zip(self.links, restored):
            if items:
                link.session.restore(items)
        return len(saved)

    def discard(self):
        """Drop every QoS 1/2 message this bridge still owes (all links),
        reporting each to the journal: the bridge is being deleted, and
        its messages must not come back under the same name later."""
        for link in self.links:
            for item in link.session.drain():
                link.session.finished(item)

    def totals(self):
        """The bridge's counters: every link's, summed (``connected`` when
        all links are)."""
        total = BridgeStats()
        for name in _COUNTERS:
            setattr(total, name, sum(getattr(link.stats, name) for link in self.links)
                    + getattr(self._retired, name))
        total.connected = all(link.stats.connected for link in self.links)
        return total

    def dialing(self, config):
        """The next connection attempt goes to ``config.server``."""
        if config.server != self.current.server:
            self._log.info(
                "Bridge {name}: trying {server} (hybrid bridging)",
                name=self.label,
                server=config.server,
            )
        self.current = config

    def retry_delay(self, _attempt=None):
        """ClientService's retry policy.  Counts failures itself: Twisted
        resets its count whenever TCP connects, even if CONNACK then fails."""
        attempt = self._failures
        self._failures += 1
        cap = backoff_cap(self.config)
        jitter_max = min(1.0, cap)
        policy = backoffPolicy(
            initialDelay=min(0.5, cap),
            maxDelay=cap,
            factor=2.0,
            jitter=lambda: self.rng.random() * jitter_max,
        )
        return policy(attempt)

    # -- upward --------------------------------------------------------------

    def deliver(self, message, now):
        """A local message matching one of the forwards (IMessageConsumer)."""
        if message.sender == self.sender:
            return  # it came from this bridge: never send it back
        topic = message.topic
        if topic[:4] == "$SYS":
            return
        copies = upward(self.config.forwards, topic, message.qos, message.retain)
        if not copies:
            return
        props = None
        if self.config.proto_ver == 5:
            props = forwarded_properties(message.properties)
        links = self.links
        link = links[shard(topic, len(links))] if len(links) > 1 else self
        for copy in copies:
            if copy.invalid:
                self._log.warn(
                    "Bridge {name}: invalid remote_topic template for {topic}; "
                    "forwarding it unchanged",
                    name=self.name,
                    topic=topic,
                )
            link.forward(
                Outgoing(copy.topic, message.payload, copy.qos, copy.retain, props, topic), now
            )

    def forward(self, item, now):
        """Send one upward message now, queue it, or drop it (counted)."""
        client = self.protocol
        session = self.session
        if item.qos == 0:
            if client is None or not client.writable() or not client.publish(item, now):
                self.stats.dropped += 1
            return
        if client is not None and client.writable() and not session.queue and client.has_room():
            session.remember(item)
            if not client.publish(item, now):
                session.finished(item)
                self.stats.dropped += 1
            return
        session.enqueue(item, connected=client is not None)

    def pump(self):
        """Move queued messages into flight while the window allows."""
        client = self.protocol
        if client is None:
            return
        session = self.session
        while session.queue and client.writable() and client.has_room():
            item = session.pop()
            if not client.publish(item):
                session.finished(item)
                self.stats.dropped += 1

    # -- IClientOwner: events of the connection (client/protocol.py) --------

    def connected(self, client, connack, unsent):
        self.protocol = client
        self._failures = 0
        now = self.clock.seconds()
        self.stats.connects += 1
        self.stats.connected = True
        self._log.info(
            "Bridge {name} connected to {server} (session present: {present})",
            name=self.label,
            server=self.current.server,
            present=connack.session_present,
        )
        self._status(client, True, 0, now)
        # The remote kept no session: what was in flight is sent again as new.
        self.session.requeue(unsent)
        if self.config.subscription:
            props = subscribe_properties(self.config.sub_properties) if client.v5 else None
            client.subscribe(subscription_options(self.config.subscription), props)
        self.pump()

    def disconnected(self, client, reason, was_connected):
        if self.protocol is client:
            self.protocol = None
        if was_connected:
            self.stats.connected = False
            self._log.info(
                "Bridge {name} lost its connection to {server}: {reason}",
                name=self.label,
                server=self.current.server,
                reason=reason.getErrorMessage(),
            )
            self._status(client, False, BRIDGE_OFFLINE_REASON, self.clock.seconds())

    def message(self, client, topic, publish):
        now = self.clock.seconds()
        local, retain, invalid = downward(self.config.subscription, topic, publish.retain)
        if invalid:
            self._log.warn(
                "Bridge {name}: invalid local_topic template for {topic}; "
                "publishing it unchanged",
                name=self.name,
                topic=topic,
            )
        props = forwarded_properties(publish.properties) if client.v5 else None
        message = Message(local, publish.payload, publish.qos, retain, props, now, self.sender)
        self.broker.publish(message, now)

    def delivered(self, client, item):
        self.session.finished(item)
        self.pump()

    def gave_up(self, client, item):
        self.stats.cancelled += 1
        self.session.finished(item)

    def writable(self, client):
        self.pump()

    def _status(self, proto, online, code, now):
        if not self.broker.sys_events:
            return
        info = _status_info(self.config, proto.client_id or self.config.clientid)
        if online:
            payload = client_online_payload(info, code, now)
        else:
            payload = client_offline_payload(info, code, now)
        self.broker.publish_internal(CLIENT_STATUS_TOPIC, payload, now, retain=True)

    # -- live (un)subscribe (REST) -------------------------------------------

    def add_subscriptions(self, entries, properties=None):
        """Append ``BridgeSubscription`` entries and SUBSCRIBE them now if
        connected (otherwise at the next connect)."""
        self.config = replace(self.config, subscription=self.config.subscription + tuple(entries))
        client = self.protocol
        if client is not None:
            client.subscribe(subscription_options(entries), properties if client.v5 else None)

    def remove_subscriptions(self, topics, properties=None):
        kept = tuple(s for s in self.config.subscription if s.remote_topic not in topics)
        self.config = replace(self.config, subscription=kept)
        client = self.protocol
        if client is not None:
            client.unsubscribe(list(topics), properties if client.v5 else None)

    # -- observability ---------------------------------------------------------

    def metrics(self):
        """NanoMQ's ``/api/v4/metrics`` object for this bridge (all its
        connections together)."""
        stats = self.totals()
        return {
            "bridge name": self.name,
            "sent messages": stats.sent,
            "received messages": stats.received,
            "sent bytes": stats.sent_bytes,
            "received bytes": stats.received_bytes,
            "MQTT reconnect times": stats.connects,
            "uplink msg dropped": stats.dropped,
            "downlink msg dropped": stats.downlink_dropped,
        }
