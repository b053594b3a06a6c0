# -*- test-case-name: tests.unit.test_session -*-
"""
A client's session: what outlives one network connection.

[MQTT-4.1] defines the server's session state: the subscriptions, QoS 1/2
messages sent but not completely acknowledged, QoS 1/2 messages waiting to
be sent, QoS 2 messages received but not completely acknowledged, and the
will and expiry.  All of it lives here, together with the outbound QoS
flows, because they act on that state and nothing else.

Outbound flow control: at most ``receive_maximum`` QoS 1/2 messages are in
flight [MQTT-4.9.0-1]; the rest wait in ``queue``, which is bounded by
``max_queue``.  A message that does not fit is dropped and counted -- a
stuck subscriber can cost its own messages, never the broker's memory or
other clients' service.  QoS 0 messages are never queued for an offline
session (as NanoMQ and Mosquitto by default).

Time enters as ``now``; nothing here schedules anything itself except
through the broker's ``TimerQueue``.
"""

from collections import OrderedDict, deque

from ..mqtt.packets import Pubrel
from .message import with_packet_id


class Subscription:
    """The options one client holds for one topic filter [MQTT-3.8.3.1]."""

    __slots__ = (
        "client_id",
        "identifier",
        "no_local",
        "qos",
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
    ):
        self.client_id = client_id
        self.topic_filter = topic_filter
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling
        self.identifier = identifier
        self.share_group = share_group


class Inflight:
    """One outbound QoS 1/2 message awaiting its acknowledgement."""

    __slots__ = (
        "awaiting_pubcomp",
        "message",
        "qos",
        "retain",
        "sent_at",
        "seq",
        "sub_ids"
    )

    def __init__(self, message, qos, retain, sub_ids, sent_at, seq=None):
        self.message = message
        self.qos = qos
        self.retain = retain
        self.sub_ids = sub_ids
        self.awaiting_pubcomp = False
        self.sent_at = sent_at
        #: The store's sequence number while the session is durable.
        self.seq = seq


class Session:
    """State for one client id; ``conn`` is the live connection or None."""

    def __init__(self, client_id, stats, max_queue):
        self.client_id = client_id
        self.stats = stats
        self.max_queue = max_queue
        self.subscriptions = {}  # topic filter as given -> Subscription
        self.inflight = OrderedDict()  # packet id -> Inflight
        self.queue = deque()  # (message, qos, retain, sub_ids, seq)
        self.awaiting_rel = {}  # inbound QoS 2 packet ids -> received at
        self.conn = None
        self.expiry_interval = 0
        self.expiry_timer = None
        self.retry_timer = None
        self.will_timer = None
        self.username = None
        self.created = 0.0
        self.owner = None  # the Broker, for timers
        self._next_pid = 1
        #: Persisted through ``store`` (core/store.py); set by the broker.
        self.durable = False
        self.store = None
        self.seq = 0

    # -- packet identifiers ---------------------------------------------

    def allocate_packet_id(self):
        """A packet id not in use by an outbound flow [MQTT-2.2.1-3]."""
        inflight = self.inflight
        if len(inflight) >= 65535:
            return None
        pid = self._next_pid
        while pid in inflight:
            pid = pid % 65535 + 1
        self._next_pid = pid % 65535 + 1
        return pid

    # -- delivery ----------------------------------------------------------

    def deliver(self, message, qos, retain, sub_ids, now):
        """Send (or queue) one message to this session at granted ``qos``."""
        conn = self.conn
        stats = self.stats
        if qos == 0:
            if conn is None or conn.sink.congested:
                stats.dropped += 1
                return
            self._write_qos0(conn, message, retain, sub_ids, now)
            return
        if (
            conn is None
            or self.queue
            or len(self.inflight) >= conn.receive_maximum
            or conn.sink.congested
        ):
            self._enqueue(message, qos, retain, sub_ids)
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
        conn.sink.write(data)
        self.stats.sent += 1
        self.stats.bytes_sent += len(data)
        owner = self.owner
        if owner is not None and owner.observers:
            owner.notify("message_delivered", session=self, message=message)

    def _new_seq(self, message, qos, retain, sub_ids):
        """Number a message entering a durable session and report it."""
        self.seq = seq = self.seq + 1
        self.store.message_queued(self.client_id, seq, message, qos, retain, sub_ids)
        return seq

    def _forget(self, seq):
        """A numbered message left the session without completing a flow."""
        if seq is not None and self.durable:
            self.store.message_acked(self.client_id, seq)

    def _enqueue(self, message, qos, retain, sub_ids, seq=None):
        if len(self.queue) >= self.max_queue:
            self.stats.dropped_queue_full += 1
            self.stats.dropped += 1
            self._forget(seq)
            return
        if seq is None and self.durable and qos:
            seq = self._new_seq(message, qos, retain, sub_ids)
        self.queue.append((message, qos, retain, sub_ids, seq))
        store = self.store
        if seq is not None and store.max_rows and self.owner is not None:
            if self.conn is None:
                self.owner._store_backlog.add(self)
            if store.rows > store.max_rows:
                self.owner.trim_store()

    def _send_new(self, conn, message, qos, retain, sub_ids, now, seq=None):
        if conn.topic_alias_max:
            pid = self.allocate_packet_id()
            if pid is None:
                self._enqueue(message, qos, retain, sub_ids, seq)
                return False
            data = conn.aliased_publish(message, qos, retain, sub_ids, pid, now)
            if data is None:
                self.stats.dropped_oversize += 1
                self._forget(seq)
                return False
        else:
            template = message.wire_template(conn.v5, qos, retain, sub_ids, now)
            if len(template[0]) > conn.max_outgoing:
                self.stats.dropped_oversize += 1
                self._forget(seq)
                return False
            pid = self.allocate_packet_id()
            if pid is None:
                self._enqueue(message, qos, retain, sub_ids, seq)
                return False
            data = with_packet_id(template, pid)
        if self.durable:
            if seq is None:
                seq = self._new_seq(message, qos, retain, sub_ids)
            self.store.message_sent(self.client_id, seq, pid)
        self.inflight[pid] = Inflight(message, qos, retain, sub_ids, now, seq)
        if not conn.v5 and self.retry_timer is None and self.owner is not None:
            self.owner.ensure_retry(self, now)
        conn.sink.write(data)
        self.stats.sent += 1
        self.stats.bytes_sent += len(data)
        owner = self.owner
        if owner is not None and owner.observers:
            owner.notify("message_delivered", session=self, message=message)
        return True

    def pump(self, now):
        """Move queued messages into flight while the window allows."""
        conn = self.conn
        if conn is None:
            return
        queue = self.queue
        stats = self.stats
        while queue and not conn.sink.congested:
            message, qos, retain, sub_ids, seq = queue[0]
            if message.expired(now):
                queue.popleft()
                stats.dropped_expired += 1
                self._forget(seq)
                continue
            if qos == 0:
                queue.popleft()
                self._write_qos0(conn, message, retain, sub_ids, now)
                continue
            if len(self.inflight) >= conn.receive_maximum:
                return
            queue.popleft()
            self._send_new(conn, message, qos, retain, sub_ids, now, seq)

    def resend_inflight(self, now, older_than=None):
        """Resend unacknowledged PUBLISH (DUP=1) and PUBREL packets with their
        original packet ids [MQTT-4.4.0-1]; with ``older_than``, only those
        sent before that time (the 3.1.1 retry timer)."""
        conn = self.conn
        if conn is None:
            return
        for pid, entry in self.inflight.items():
            if older_than is not None and entry.sent_at > older_than:
                continue
            entry.sent_at = now
            if entry.awaiting_pubcomp:
                data = conn.encode(Pubrel(pid))
            else:
                template = entry.message.wire_template(
                    conn.v5, entry.qos, entry.retain, entry.sub_ids, now
                )
                data = with_packet_id(template, pid, dup=True)
            conn.sink.write(data)
            self.stats.bytes_sent += len(data)

    # -- acknowledgements ------------------------------------------------

    def _done(self, entry):
        """The flow of ``entry`` completed: tell the store and observers."""
        self._forget(entry.seq)
        owner = self.owner
        if owner is not None and owner.observers:
            owner.notify("message_acked", session=self, message=entry.message)

    def on_puback(self, pid, now):
        entry = self.inflight.get(pid)
        if entry is None or entry.qos != 1:
            return False
        del self.inflight[pid]
        self._done(entry)
        self.pump(now)
        return True

    def on_pubrec(self, pid, reason_code, now):
        """Returns True if a PUBREL must be sent [MQTT-4.3.3-4]."""
        entry = self.inflight.get(pid)
        if entry is None or entry.qos != 2:
            return False
        if reason_code >= 0x80:
            # A failed PUBREC ends the flow [MQTT-4.3.3-4 v5 note].
            del self.inflight[pid]
            self._forget(entry.seq)
            self.pump(now)
            return False
        if not entry.awaiting_pubcomp and entry.seq is not None and self.durable:
            self.store.message_released(self.client_id, entry.seq)
        entry.awaiting_pubcomp = True
        entry.sent_at = now
        return True

    def on_pubcomp(self, pid, now):
        entry = self.inflight.get(pid)
        if entry is None or not entry.awaiting_pubcomp:
            return False
        del self.inflight[pid]
        self._done(entry)
        self.pump(now)
        return True

    # -- inbound QoS 2 ------------------------------------------------------

    def rel_awaited(self, pid, now):
        """Inbound QoS 2 ``pid`` was PUBREC'd; PUBREL is awaited."""
        self.awaiting_rel[pid] = now
        if self.durable:
            self.store.rel_awaited(self.client_id, pid, now)

    def rel_done(self, pid):
        """PUBREL for ``pid``: False if it was not awaited."""
        if self.awaiting_rel.pop(pid, None) is None:
            return False
        if self.durable:
            self.store.rel_done(self.client_id, pid)
        return True

    # -- bookkeeping -----------------------------------------------------

    def clear_messages(self):
        self.inflight.clear()
        self.queue.clear()
        self.awaiting_rel.clear()

    def cancel_timers(self):
        for name in ("expiry_timer", "retry_timer", "will_timer"):
            handle = getattr(self, name)
            if handle is not None:
                handle.cancel()
                setattr(self, name, None)
