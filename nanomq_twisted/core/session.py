# -*- test-case-name: tests.unit.test_session -*-
"""
A client's session: what outlives one network connection.

[MQTT-4.1] defines the server's session state: the subscriptions, QoS 1/2
messages sent but not completely acknowledged, QoS 1/2 messages waiting to
be sent, QoS 2 messages received but not completely acknowledged, and the
will and expiry.  All of it lives here, together with the delivery towards
the client, because it acts on that state and nothing else.

Outbound flow control: at most ``receive_maximum`` QoS 1/2 messages are in
flight [MQTT-4.9.0-1] (the flows themselves are core/outbound.py's); the
rest wait in ``queue``, which is bounded by ``max_queue`` messages and
``max_queue_bytes`` bytes of topic and payload (``mqtt.max_mqueue_len``,
``mqtt.max_mqueue_bytes``; one message always fits an empty queue, so a
large message is never refused for its size alone).  A message that
does not fit is dropped and counted -- a stuck subscriber can cost its own
messages, never the broker's memory or other clients' service.  QoS 0
messages are never queued for an offline session (as NanoMQ and Mosquitto
by default), and are dropped, counted, for a connection that is congested
(its outbox is over the limit: the client does not read).

A durable session (one with a Session Expiry Interval and a real store)
reports its messages through ``journal`` (core/durable.py); a clean one has
``journal`` None and pays one attribute test.

The session talks to the rest of the broker through its ``host`` only
(`SessionHost`): counters, events, the 3.x retry timer and the store's
backlog.  Time enters as ``now``.
"""

from collections import deque
from typing import Protocol

from ..mqtt.packets import Pubrel
from .message import with_packet_id
from .outbound import Flow, OutboundFlows
from .quotas import message_size


class SessionHost(Protocol):
    """What a `Session` needs from its broker."""

    stats: object
    events: object

    def retry_needed(self, session, now):
        """``session`` has QoS 1/2 messages in flight to a 3.x client:
        make sure its retry timer runs."""

    def backlog_grew(self, session):
        """A durable ``session`` queued a message (``sqlite.disk_cache_size``
        may now be exceeded)."""


class Subscription:
    """The options one client holds for one topic filter [MQTT-3.8.3.1].

    ``topic_filter`` is the filter as the client wrote it; for a shared
    subscription ``share_group`` is its group and ``real_filter`` the
    filter after the group (for a plain one, the filter itself)."""

    __slots__ = (
        "client_id",
        "identifier",
        "no_local",
        "qos",
        "real_filter",
        "retain_as_published",
        "retain_handling",
        "share_group",
        "topic_filter",
    )

    def __init__(
        self,
        client_id,
        topic_filter,
        qos=0,
        no_local=False,
        retain_as_published=False,
        retain_handling=0,
        identifier=None,
        share_group=None,
        real_filter=None,
    ):
        self.client_id = client_id
        self.topic_filter = topic_filter
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling
        self.identifier = identifier
        self.share_group = share_group
        self.real_filter = topic_filter if real_filter is None else real_filter


#: The queue of a session with nothing waiting (see ``Session.queue``).
NO_QUEUE = ()


class Session:
    """State for one client id; ``conn`` is the live connection or None."""

    __slots__ = (
        "awaiting_rel",
        "client_id",
        "conn",
        "created",
        "expiry_interval",
        "expiry_timer",
        "flows",
        "held_back",
        "host",
        "info",
        "journal",
        "max_queue",
        "max_queue_bytes",
        "queue",
        "queue_bytes",
        "retry_timer",
        "stats",
        "subscriptions",
        "username",
        "will_timer",
    )

    def __init__(self, client_id, host, max_queue, max_queue_bytes=0):
        self.client_id = client_id
        self.host = host
        self.stats = host.stats
        self.max_queue = max_queue
        #: 0: no byte limit; ``queue_bytes`` is what the queue holds.
        self.max_queue_bytes = max_queue_bytes
        self.queue_bytes = 0
        self.subscriptions = {}  # topic filter as given -> Subscription
        self.flows = OutboundFlows()
        #: (message, qos, retain, sub_ids, seq) waiting for the window;
        #: ``NO_QUEUE`` (an empty tuple) until something waits: an empty
        #: deque costs 600 bytes, times every idle client.
        self.queue = NO_QUEUE
        #: Flows in flight that a reconnect could not resend yet: the new
        #: connection's Receive Maximum is smaller than what was in flight
        #: (a deque once there are any, ``NO_QUEUE`` until then).
        self.held_back = NO_QUEUE
        self.awaiting_rel = {}  # inbound QoS 2 packet ids -> received at
        self.conn = None
        self.expiry_interval = 0
        self.expiry_timer = None
        self.retry_timer = None
        self.will_timer = None
        self.username = None
        self.created = 0.0
        #: The ``ConnectInfo`` of its last connection (None once restored
        #: from the store until the client connects again).
        self.info = None
        #: ``SessionJournal`` while the session is durable (core/durable.py).
        self.journal = None

    @property
    def durable(self):
        return self.journal is not None

    @property
    def inflight(self):
        """Packet id -> `Flow` of the QoS 1/2 messages in flight."""
        return self.flows.inflight

    # -- delivery ----------------------------------------------------------

    def deliver(self, message, qos, retain, sub_ids, now):
        """Send (or queue) one message to this session at granted ``qos``."""
        conn = self.conn
        if qos == 0:
            if conn is None:
                self.stats.dropped += 1
                return
            if conn.congested:
                self.stats.dropped += 1
                self.stats.dropped_slow_consumer += 1
                return
            self._write_qos0(conn, message, retain, sub_ids, now)
            return
        if (
            conn is None
            or len(self.flows.inflight) >= conn.receive_maximum
            or conn.congested
        ):
            self._enqueue(message, qos, retain, sub_ids)
            return
        if self.queue:
            # Queued while the connection was congested, and nothing since
            # moved them: they go first [MQTT-4.6.0-6], then this one.
            self._enqueue(message, qos, retain, sub_ids)
            self.pump(now)
            return
        self._send_new(conn, message, qos, retain, sub_ids, now)

    def _write_qos0(self, conn, message, retain, sub_ids, now):
        if conn.topic_alias_max:
            data = conn.aliased_publish(message, 0, retain, sub_ids, None, now)
        else:
            data = message.wire_qos0(conn.v5, retain, sub_ids, now)
            if len(data) > conn.max_outgoing:
                data = None
        if data is None:
            # [MQTT-3.1.2-24]: never send more than the client accepts.
            self.stats.dropped_oversize += 1
            return
        conn.write(data)
        self.stats.sent += 1
        events = self.host.events
        if events.message_delivered:
            events.emit("message_delivered", session=self, message=message)

    def _enqueue(self, message, qos, retain, sub_ids, seq=None):
        if len(self.queue) >= self.max_queue:
            self.stats.dropped_queue_full += 1
            self.stats.dropped += 1
            self._forget(seq)
            return
        most = self.max_queue_bytes
        if most and self.queue and (
            self.queue_bytes + message_size(message) > most
        ):
            self.stats.dropped_queue_bytes += 1
            self.stats.dropped += 1
            self._forget(seq)
            return
        journal = self.journal
        if seq is None and journal is not None and qos:
            seq = journal.queued(message, qos, retain, sub_ids)
        self.append_queued((message, qos, retain, sub_ids, seq))
        if seq is not None:
            self.host.backlog_grew(self)

    def append_queued(self, entry):
        """Put ``entry`` at the end of the queue."""
        queue = self.queue
        if queue is NO_QUEUE:
            queue = self.queue = deque()
        queue.append(entry)
        self.queue_bytes += message_size(entry[0])

    def pop_queued(self):
        """Take the first entry off the queue."""
        entry = self.queue.popleft()
        self.queue_bytes -= message_size(entry[0])
        return entry

    def _forget(self, seq):
        """A numbered message left the session without completing a flow."""
        if seq is not None and self.journal is not None:
            self.journal.done(seq)

    def _send_new(self, conn, message, qos, retain, sub_ids, now, seq=None):
        flow = Flow(message, qos, retain, sub_ids, now, seq)
        if conn.topic_alias_max:
            pid = self.flows.start(flow, now)
            if pid is None:
                self._enqueue(message, qos, retain, sub_ids, seq)
                return False
            data = conn.aliased_publish(message, qos, retain, sub_ids, pid, now)
            if data is None:
                self.flows.discard(pid)
                self.stats.dropped_oversize += 1
                self._forget(seq)
                return False
        else:
            template = message.wire_template(conn.v5, qos, retain, sub_ids, now)
            if len(template[0]) > conn.max_outgoing:
                self.stats.dropped_oversize += 1
                self._forget(seq)
                return False
            pid = self.flows.start(flow, now)
            if pid is None:
                self._enqueue(message, qos, retain, sub_ids, seq)
                return False
            data = with_packet_id(template, pid)
        journal = self.journal
        if journal is not None:
            if seq is None:
                flow.seq = journal.queued(message, qos, retain, sub_ids)
            journal.sent(flow.seq, pid)
        if not conn.v5 and self.retry_timer is None:
            self.host.retry_needed(self, now)
        conn.write(data)
        self.stats.sent += 1
        events = self.host.events
        if events.message_delivered:
            events.emit("message_delivered", session=self, message=message)
        return True

    def pump(self, now):
        """Move queued messages into flight while the window allows."""
        conn = self.conn
        if conn is None:
            return
        queue = self.queue
        stats = self.stats
        inflight = self.flows.inflight
        held_back = self.held_back
        while held_back and not conn.congested:
            if len(inflight) - len(held_back) >= conn.receive_maximum:
                return
            flow = held_back.popleft()
            flow.sent_at = now
            self._resend(conn, flow, now)
        while queue and not conn.congested:
            message, qos, retain, sub_ids, seq = queue[0]
            if message.expired(now):
                self.pop_queued()
                stats.dropped_expired += 1
                self._forget(seq)
                continue
            if qos == 0:
                self.pop_queued()
                self._write_qos0(conn, message, retain, sub_ids, now)
                continue
            if len(inflight) >= conn.receive_maximum:
                return
            self.pop_queued()
            self._send_new(conn, message, qos, retain, sub_ids, now, seq)
        if not queue and queue is self.queue:
            self.queue = NO_QUEUE

    def resend_inflight(self, now, older_than=None):
        """Resend unacknowledged PUBLISH (DUP=1) and PUBREL packets with their
        original packet ids [MQTT-4.4.0-1]; with ``older_than``, only those
        sent before that time (the 3.1.1 retry timer).

        The client may have come back with a smaller Receive Maximum than
        what is in flight: PUBLISHes beyond it wait in ``held_back``, keeping
        their packet ids, and ``pump`` resends them as acknowledgements
        arrive [MQTT-3.3.4-9].  It may also have come back with a smaller
        Maximum Packet Size: a PUBLISH that no longer fits is dropped,
        counted, and its packet id freed, never sent [MQTT-3.1.2-25]."""
        conn = self.conn
        if conn is None:
            return
        if older_than is None:
            self.held_back = NO_QUEUE
        held_back = self.held_back
        journal = self.journal
        pubrel_waits = journal is not None and journal.store.sync_ack
        sent = 0
        for flow in self.flows.due(now, older_than):
            if flow.released:
                # Still counted against the window until PUBCOMP, as in
                # ``deliver``.  The PUBREC that released it may not be on
                # disk yet (the client came back, or the retry timer fired,
                # before its commit): the resent PUBREL waits for it as
                # the first one did, or the client would deliver a message
                # that a kill -9 then makes us send again as a new one.
                if pubrel_waits:
                    self._pubrel_after_commit(flow)
                else:
                    conn.write(conn.encode(Pubrel(flow.packet_id)))
                sent += 1
            elif older_than is not None and flow in held_back:
                continue
            elif sent >= conn.receive_maximum:
                if held_back is NO_QUEUE:
                    held_back = self.held_back = deque()
                held_back.append(flow)
            elif self._resend(conn, flow, now):
                sent += 1

    def _resend(self, conn, flow, now):
        """Resend one unreleased ``flow`` with DUP=1; False if it was
        dropped as too large for the client."""
        template = flow.message.wire_template(
            conn.v5, flow.qos, flow.retain, flow.sub_ids, now
        )
        if len(template[0]) > conn.max_outgoing:
            self.flows.discard(flow.packet_id)
            self.stats.dropped_oversize += 1
            self._forget(flow.seq)
            return False
        conn.write(with_packet_id(template, flow.packet_id, dup=True))
        return True

    # -- acknowledgements ------------------------------------------------

    def _unhold(self, flow):
        """The client acknowledged a flow not resent yet (it had it)."""
        held_back = self.held_back
        if held_back and flow in held_back:
            held_back.remove(flow)

    def _done(self, flow):
        """``flow`` completed: tell the store and observers."""
        self._unhold(flow)
        self._forget(flow.seq)
        events = self.host.events
        if events.message_acked:
            events.emit("message_acked", session=self, message=flow.message)

    def on_puback(self, pid, now):
        flow = self.flows.puback(pid)
        if flow is None:
            return False
        self._done(flow)
        self.pump(now)
        return True

    def on_pubrec(self, pid, reason_code, now):
        """Returns True if a PUBREL must be sent [MQTT-4.3.3-4]."""
        flow = self.flows.get(pid)
        first = flow is not None and not flow.released
        flow, release = self.flows.pubrec(pid, reason_code, now)
        if flow is None:
            return False
        self._unhold(flow)
        if not release:
            # A failed PUBREC ends the flow [MQTT-4.3.3-4 v5 note].
            self._forget(flow.seq)
            self.pump(now)
            return False
        journal = self.journal
        if first and flow.seq is not None and journal is not None:
            journal.released(flow.seq)
        if journal is not None and journal.store.sync_ack:
            self._pubrel_after_commit(flow)
            return False
        return True

    def _pubrel_after_commit(self, flow):
        """Send the PUBREL of ``flow`` once its PUBREC is on disk.

        The PUBREL lets the client deliver the message and forget its
        packet id (paho delivers on PUBREL).  If a ``kill -9`` then lost the
        released state, the restarted broker would resend the PUBLISH,
        which the client must take as a new message [MQTT-4.3.3]: a
        duplicate.  So with ``sqlite.sync_ack`` the PUBREL waits for the
        commit, as PUBACK/PUBREC do; PUBRELs keep the order of their
        PUBRECs [MQTT-4.6.0-4] because commit callbacks fire in order."""
        conn = self.conn
        pid = flow.packet_id

        def committed():
            if conn is not None and self.conn is conn and self.flows.get(pid) is flow:
                conn.write(conn.encode(Pubrel(pid)))

        self.journal.store.after_commit(committed)

    def on_pubcomp(self, pid, now):
        flow = self.flows.pubcomp(pid)
        if flow is None:
            return False
        self._done(flow)
        self.pump(now)
        return True

    # -- inbound QoS 2 ------------------------------------------------------

    def rel_awaited(self, pid, now):
        """Inbound QoS 2 ``pid`` was PUBREC'd; PUBREL is awaited."""
        self.awaiting_rel[pid] = now
        if self.journal is not None:
            self.journal.rel_awaited(pid, now)

    def rel_done(self, pid):
        """PUBREL for ``pid``: False if it was not awaited."""
        if self.awaiting_rel.pop(pid, None) is None:
            return False
        if self.journal is not None:
            self.journal.rel_done(pid)
        return True

    # -- bookkeeping -----------------------------------------------------

    def clear_messages(self):
        self.flows.clear()
        self.held_back = NO_QUEUE
        self.queue = NO_QUEUE
        self.queue_bytes = 0
        self.awaiting_rel.clear()

    def cancel_timers(self):
        for handle in (self.expiry_timer, self.retry_timer, self.will_timer):
            if handle is not None:
                handle.cancel()
        self.expiry_timer = self.retry_timer = self.will_timer = None
