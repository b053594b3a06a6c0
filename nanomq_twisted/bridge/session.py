# -*- test-case-name: tests.protocol.test_bridge_client,tests.unit.test_bridge_saved -*-
"""
What a bridge link keeps beside the shared client's session: the offline
queue, the persistence journal and the counters.  Pure (no Twisted): it
outlives any single connection, so QoS 1/2 messages survive a reconnect
and keep their order.

The messages in flight are the client's (``client``, a
``ClientSession``, client/session.py: one ``OutboundFlows`` window,
resent or handed back after a reconnect).  In front of that window,
upward QoS 1/2 messages wait in ``queue`` (bounded by
``max_send_queue_len``, oldest dropped when full).  When the remote kept
no session, the messages it had in flight come back from the client and
go to the head of the queue as new ones (``requeue``), so nothing
acknowledged by nobody is lost and the order is kept.

With persistence, ``journal`` (set by ``Bridge.persist``) hears every
QoS 1/2 message that enters the session (``added``, once: it numbers the
message, ``Outgoing.seq``) and every one the session is done with
(``removed``: acknowledged, dropped from a full queue, cancelled); moving
messages between the queue, the window and links is not a change.
``restore(items)`` puts messages read back from the store at the end of
the queue.
"""

from collections import deque

from ..client.options import ClientStats, OutboundMessage
from ..client.session import ClientSession


class Outgoing(OutboundMessage):
    """One upward message on its way to the remote."""

    __slots__ = ("key", "seq")

    def __init__(self, topic, payload, qos, retain, properties=None, key=None):
        super().__init__(topic, payload, qos, retain, properties)
        #: The local topic it was forwarded from (the sharding key).
        self.key = topic if key is None else key
        #: The store's number for this message (None: not persisted).
        self.seq = None


class BridgeStats(ClientStats):
    """Per-bridge counters, read by REST ``/metrics`` and Prometheus: the
    client's (sent/received messages and bytes, in flight) and the
    bridge's own."""

    FIELDS = ClientStats.FIELDS + (
        "cancelled", "connected", "connects", "downlink_dropped", "dropped", "queued",
    )
    __slots__ = FIELDS[len(ClientStats.FIELDS):]

    def __init__(self):
        super().__init__()
        for name in BridgeStats.__slots__:
            setattr(self, name, 0)
        self.connected = False

    def as_dict(self):
        return {name: getattr(self, name) for name in self.FIELDS}


class BridgeSession:
    """The offline queue, journal and counters of one bridge link, around
    the link's ``ClientSession``."""

    def __init__(self, options, max_send_queue_len=0, stats=None):
        self.capacity = max_send_queue_len
        self.stats = stats if stats is not None else BridgeStats()
        self.client = ClientSession(options, self.stats)
        self.queue = deque()
        #: Persistence hooks (``added(item)`` -> seq, ``removed(item)``).
        self.journal = None

    @property
    def window(self):
        """Our send window (the remote may make it smaller per connection)."""
        return self.client.options.window

    @property
    def inflight(self):
        """The client's in-flight flows (``OutboundFlows``)."""
        return self.client.flows

    @property
    def incoming_qos2(self):
        return self.client.incoming_qos2

    def remember(self, item):
        """``item`` enters the session (the journal numbers it once)."""
        journal = self.journal
        if journal is not None and item.seq is None:
            item.seq = journal.added(item)

    def finished(self, item):
        """The session is done with ``item`` (acknowledged, dropped,
        cancelled)."""
        if self.journal is not None and item.seq is not None:
            self.journal.removed(item)
            item.seq = None

    def enqueue(self, item, connected=False):
        """Queue a QoS 1/2 message; False if it was dropped (capacity 0).
        A full queue drops its oldest message (NanoMQ), counted.

        While connected, the queue also serves as the client library's own
        cache in front of the send window, so it holds at least ``window``
        messages even when ``max_send_queue_len`` is 0."""
        capacity = max(self.capacity, self.window) if connected else self.capacity
        if capacity <= 0:
            self.stats.dropped += 1
            self.finished(item)
            return False
        if len(self.queue) >= capacity:
            self.finished(self.queue.popleft())
            self.stats.dropped += 1
        self.remember(item)
        self.queue.append(item)
        self.stats.queued = len(self.queue)
        return True

    def pop(self):
        """The oldest queued message, taken out to be sent."""
        item = self.queue.popleft()
        self.stats.queued = len(self.queue)
        return item

    def requeue(self, items):
        """Put ``items`` (in send order) back at the head of the queue:
        the in-flight messages of a remote that kept no session."""
        queue = self.queue
        for item in reversed(items):
            queue.appendleft(item)
        self.stats.queued = len(queue)

    def restore(self, items):
        """Append ``items`` (read back from the store, oldest first) to
        the queue, keeping at most ``max(max_send_queue_len, window)``
        (the oldest beyond that are dropped, counted)."""
        queue = self.queue
        queue.extend(items)
        limit = max(self.capacity, self.window)
        while len(queue) > limit:
            self.finished(queue.popleft())
            self.stats.dropped += 1
        self.stats.queued = len(queue)

    def drain(self):
        """Empty the session and return its QoS 1/2 messages in send
        order, in-flight ones first (to be sent as new messages): used to
        move them to other connections when the number of
        ``parallel_connections`` changes."""
        items = [flow.message for flow in self.client.flows.take_all()]
        items.extend(self.queue)
        self.queue.clear()
        self.stats.inflight = self.stats.queued = 0
        return items
