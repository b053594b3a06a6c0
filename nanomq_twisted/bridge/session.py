# -*- test-case-name: tests.protocol.test_bridge_client -*-
"""
The client-side session of one bridge: what is queued, what is in flight,
and the counters.  Pure (no Twisted): it outlives any single connection,
so QoS 1/2 messages survive a reconnect and keep their order.

Upward QoS 1/2 messages wait in ``queue`` (bounded by
``max_send_queue_len``, oldest dropped when full), then move to
``inflight`` (bounded by the send window: NanoMQ's fixed 64, or less if
the remote's Receive Maximum says so) until acknowledged.  After a
reconnect the in-flight messages are resent first, with their packet ids
and DUP when the remote kept our session, as fresh messages at the head of
the queue when it did not -- so nothing acknowledged by nobody is lost and
the order is kept.

With persistence, ``journal`` (set by ``Bridge.persist``) hears every
QoS 1/2 message that enters the session (``added``, once: it numbers the
message, ``Outgoing.seq``) and every one the session is done with
(``removed``: acknowledged, dropped from a full queue, cancelled); moving
messages between links or back to the queue is not a change.
``restore(items)`` puts messages read back from the store at the end of
the queue.
"""

from collections import OrderedDict, deque

#: NanoMQ's client library keeps at most this many unacknowledged messages.
SEND_WINDOW = 64

#: Waiting for PUBACK/PUBREC, or (after PUBREC) for PUBCOMP.
AWAIT_ACK, AWAIT_COMP = 1, 2


class Outgoing:
    """One upward message on its way to the remote."""

    __slots__ = (
        "dup",
        "first_sent",
        "key",
        "last_sent",
        "packet_id",
        "payload",
        "properties",
        "qos",
        "retain",
        "seq",
        "state",
        "topic",
    )

    def __init__(self, topic, payload, qos, retain, properties=None, key=None):
        self.topic = topic
        #: The local topic it was forwarded from (the sharding key).
        self.key = topic if key is None else key
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.packet_id = None
        self.state = AWAIT_ACK
        self.first_sent = None
        self.last_sent = None
        self.dup = False
        #: The store's number for this message (None: not persisted).
        self.seq = None


class BridgeStats:
    """Per-bridge counters, read by REST ``/metrics`` and Prometheus."""

    __slots__ = (
        "cancelled",
        "connected",
        "connects",
        "downlink_dropped",
        "dropped",
        "inflight",
        "queued",
        "received",
        "received_bytes",
        "sent",
        "sent_bytes",
    )

    def __init__(self):
        self.sent = 0
        self.received = 0
        self.sent_bytes = 0
        self.received_bytes = 0
        self.connects = 0
        self.connected = False
        self.dropped = 0
        self.downlink_dropped = 0
        self.cancelled = 0
        self.queued = 0
        self.inflight = 0

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


class BridgeSession:
    """Queue, in-flight window, packet ids and counters of one bridge."""

    def __init__(self, max_send_queue_len=0, window=SEND_WINDOW, stats=None):
        self.capacity = max_send_queue_len
        self.window = window
        self.stats = stats if stats is not None else BridgeStats()
        self.queue = deque()
        self.inflight = OrderedDict()  # packet id -> Outgoing, in send order
        #: Incoming QoS 2 packet ids delivered locally, awaiting PUBREL.
        self.incoming_qos2 = set()
        self._next_id = 0
        #: Persistence hooks (``added(item)`` -> seq, ``removed(item)``).
        self.journal = None

    def _remember(self, item):
        journal = self.journal
        if journal is not None and item.seq is None:
            item.seq = journal.added(item)

    def _forget(self, item):
        if self.journal is not None and item.seq is not None:
            self.journal.removed(item)
            item.seq = None

    # -- upward ------------------------------------------------------------

    def enqueue(self, item, connected=False):
        """Queue a QoS 1/2 message; False if it was dropped (capacity 0).
        A full queue drops its oldest message (NanoMQ), counted.

        While connected, the queue also serves as the client library's own
        cache in front of the send window, so it holds at least ``window``
        messages even when ``max_send_queue_len`` is 0."""
        capacity = max(self.capacity, self.window) if connected else self.capacity
        if capacity <= 0:
            self.stats.dropped += 1
            self._forget(item)
            return False
        if len(self.queue) >= capacity:
            self._forget(self.queue.popleft())
            self.stats.dropped += 1
        self._remember(item)
        self.queue.append(item)
        self.stats.queued = len(self.queue)
        return True

    def has_room(self, window=None):
        return len(self.inflight) < (self.window if window is None else window)

    def next_packet_id(self, busy=()):
        """A packet id not used by an in-flight message (nor ``busy``)."""
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self.inflight and self._next_id not in busy:
                return self._next_id
        raise RuntimeError("no free packet identifier")

    def take(self, window, now, busy=()):
        """Move queued messages into flight while ``window`` allows;
        returns them (with packet ids) for sending, in order."""
        out = []
        queue = self.queue
        while queue and len(self.inflight) < window:
            item = queue.popleft()
            self.start(item, now, busy)
            out.append(item)
        self.stats.queued = len(queue)
        return out

    def start(self, item, now, busy=()):
        """Put ``item`` in flight with a fresh packet id."""
        item.packet_id = self.next_packet_id(busy)
        item.state = AWAIT_ACK
        item.first_sent = item.last_sent = now
        item.dup = False
        self._remember(item)
        self.inflight[item.packet_id] = item
        self.stats.inflight = len(self.inflight)

    def acknowledged(self, packet_id):
        """PUBACK or PUBCOMP: the message is done; returns it or None."""
        item = self.inflight.pop(packet_id, None)
        self.stats.inflight = len(self.inflight)
        if item is not None:
            self._forget(item)
        return item

    def received_pubrec(self, packet_id, now):
        """PUBREC: the message now waits for PUBCOMP; None if unknown."""
        item = self.inflight.get(packet_id)
        if item is None or item.qos != 2:
            return None
        item.state = AWAIT_COMP
        item.last_sent = now
        return item

    def due_for_resend(self, now, resend_wait, cancel_timeout):
        """The oldest in-flight message last sent more than ``resend_wait``
        ago (one per call, as NanoMQ's timer does); messages whose ACK was
        awaited longer than ``cancel_timeout`` are forgotten first."""
        for packet_id, item in list(self.inflight.items()):
            if now - item.first_sent >= cancel_timeout:
                del self.inflight[packet_id]
                self.stats.cancelled += 1
                self._forget(item)
                continue
            if now - item.last_sent > resend_wait:
                item.last_sent = now
                item.dup = True
                self.stats.inflight = len(self.inflight)
                return item
        self.stats.inflight = len(self.inflight)
        return None

    def restore(self, items):
        """Append ``items`` (read back from the store, oldest first) to
        the queue, keeping at most ``max(max_send_queue_len, window)``
        (the oldest beyond that are dropped, counted)."""
        queue = self.queue
        queue.extend(items)
        limit = max(self.capacity, self.window)
        while len(queue) > limit:
            self._forget(queue.popleft())
            self.stats.dropped += 1
        self.stats.queued = len(queue)

    def drain(self):
        """Empty the session and return its QoS 1/2 messages in send
        order, in-flight ones first as new messages (without packet ids):
        used to move them to other connections when the number of
        ``parallel_connections`` changes."""
        items = list(self.inflight.values())
        self.inflight.clear()
        for item in items:
            item.packet_id = None
            item.state = AWAIT_ACK
            item.dup = False
        items.extend(self.queue)
        self.queue.clear()
        self.stats.inflight = self.stats.queued = 0
        return items

    def reconnected(self, session_present, now):
        """The in-flight messages to resend as they are (same packet id,
        DUP set; PUBREL for those already PUBREC'd) when the remote kept
        our session; otherwise they go back to the head of the queue as
        new messages and an empty list is returned."""
        if session_present:
            for item in self.inflight.values():
                item.first_sent = item.last_sent = now
                item.dup = True
            return list(self.inflight.values())
        self.incoming_qos2.clear()
        items = list(self.inflight.values())
        self.inflight.clear()
        for item in reversed(items):
            item.packet_id = None
            item.state = AWAIT_ACK
            item.dup = False
            self.queue.appendleft(item)
        self.stats.inflight = 0
        self.stats.queued = len(self.queue)
        return []
