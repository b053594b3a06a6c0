# -*- test-case-name: tests.unit.test_broker,tests.unit.test_limits -*-
"""
PUBLISH from a client: topic aliases, flow control, authorisation, the
acknowledgement, and the inbound half of QoS 2.

`InboundPublishes` is the receiving side of one connection, made when it
is accepted.  For each PUBLISH it

1. holds the topic to ``mqtt.max_topic_levels``/``max_topic_length``
   (core/quotas.py: 0x90), then resolves a Topic Alias [MQTT-3.3.2-10..12]
   (aliases are per connection);
2. holds the client to our Receive Maximum [MQTT-3.3.4-7]: QoS 1 PUBACKs
   not yet sent plus QoS 2 messages received on this connection whose
   PUBCOMP is not yet sent are at most what our CONNACK allowed; one more
   is ``MqttError(0x93)``;
3. asks the ACL (``auth.deny_action``: 0x87 in the acknowledgement for
   5.0, silence for 3.1.1, or a disconnect), and for a retained 5.0 QoS
   1/2 message whether the retained store has room (0x97 if not);
4. routes the message (``Broker.publish``), reusing the received bytes as
   the outgoing form when they are exactly what a subscriber of the same
   protocol gets;
5. acknowledges: PUBACK or PUBREC, written as bytes (no packet object on
   this path), after the store's commit when ``sqlite.sync_ack`` says so.
   Acknowledgements behind a held one wait too, so they keep the order of
   the PUBLISHes [MQTT-4.6.0-2].

QoS 2 is exactly once [MQTT-4.3.3]: a packet id stays in the session's
``awaiting_rel`` from PUBREC to PUBREL, and a DUP re-send meanwhile is
acknowledged again without being routed again [MQTT-4.3.3-10].  A
PUBLISH under an awaited id *without* DUP is a new message: the client
only reuses an id it completed, so the entry is stale (see ``publish``).
"""

from ..mqtt import reason_codes as rc
from ..mqtt.ack_codec import PUBACK_FIRST, PUBCOMP_FIRST, PUBREC_FIRST, ack_bytes
from ..mqtt.errors import MqttError
from .message import Message, forwarded_properties
from .quotas import topic_too_big


class InboundPublishes:
    """The receiving side of one connection (see the module docstring)."""

    __slots__ = ("_acks", "_qos2", "_unsent_pubacks", "aliases", "conn")

    def __init__(self, conn):
        self.conn = conn
        #: Topic Alias -> topic, as this client established them (None
        #: until it establishes one).
        self.aliases = None
        # Acknowledgements waiting for the store: [first byte, bytes, ready].
        self._acks = None
        self._unsent_pubacks = 0
        #: QoS 2 packet ids received on this connection, PUBCOMP not yet
        #: sent; None until the first (an empty set is 200 bytes).
        self._qos2 = None

    def topic_of(self, packet):
        """The topic a PUBLISH is for, its alias resolved if it has one it
        may; None when only ``publish`` can say what is wrong."""
        topic = packet.topic
        if not topic and self.conn.v5 and packet.properties:
            aliases = self.aliases
            topic = aliases.get(packet.properties.get("topic_alias")) if aliases else None
        return topic

    def publish(self, packet, now):
        conn = self.conn
        broker = conn.broker
        topic = packet.topic
        props = packet.properties
        v5 = conn.v5
        if topic and topic_too_big(broker.limits, topic):
            # Before an alias can record it: an alias only ever stands for
            # a topic within the quotas.
            self._topic_refused(packet)
            return
        if v5 and props:
            alias = props.get("topic_alias")
            if alias is not None:
                if alias == 0 or alias > broker.limits.topic_alias_maximum:
                    raise MqttError(rc.TOPIC_ALIAS_INVALID, "topic alias out of range")
                aliases = self.aliases
                if topic:
                    if aliases is None:
                        aliases = self.aliases = {}
                    aliases[alias] = topic
                else:
                    topic = aliases.get(alias) if aliases else None
                    if topic is None:
                        raise MqttError(rc.PROTOCOL_ERROR, "unknown topic alias")
        qos = packet.qos
        session = conn.session
        if qos and v5 and (
            self._unsent_pubacks + (len(self._qos2) if self._qos2 else 0)
            >= broker.limits.receive_maximum
        ) and not (qos == 2 and packet.packet_id in session.awaiting_rel):
            # One more unacknowledged QoS 1/2 PUBLISH than the Receive
            # Maximum in our CONNACK [MQTT-3.3.4-7]; a DUP of a QoS 2
            # message still awaiting PUBREL is no new one.
            raise MqttError(
                rc.RECEIVE_MAXIMUM_EXCEEDED,
                "more unacknowledged QoS 1/2 PUBLISHes than Receive Maximum",
            )
        if not broker.acl.check(conn, "publish", topic):
            self._denied(packet, now)
            return
        pid = packet.packet_id
        if qos == 2 and pid in session.awaiting_rel:
            if packet.dup:
                # A re-send of a message already routed [MQTT-4.3.3-10].
                self._ack(PUBREC_FIRST, pid, 0, False)
                return
            # DUP 0 is a first attempt [MQTT-3.3.1-1]: the client reuses an
            # id it completed, so ours is stale -- left by a broker that
            # crashed after PUBCOMP and before its commit (as mosquitto's
            # "reused message ID").  Taking it for a re-send would drop a
            # new message; it is routed (docs/compatibility.md).
            broker.stats.reused_packet_ids += 1
        if qos and v5 and packet.retain and broker.router.retain_refused(topic, packet.payload):
            # The retained store is full (mqtt.max_retained_messages or
            # _bytes): a 5.0 publisher that waits for an answer gets 0x97
            # and the message goes nowhere, so that it may publish again
            # later with nothing delivered twice.  Everyone else is routed
            # without being retained (routing.py).
            broker.stats.refused_retained += 1
            self._ack(PUBACK_FIRST if qos == 1 else PUBREC_FIRST, pid,
                      rc.QUOTA_EXCEEDED, False)
            return
        message = Message(
            topic,
            packet.payload,
            qos,
            packet.retain,
            forwarded_properties(props) if v5 else None,
            now,
            conn.client_id,
            conn.username,
            pid,
        )
        raw = packet.raw
        # Reuse the received bytes when they are exactly what we would
        # encode: no alias to resolve, no properties, no stray DUP bit (a
        # 3.1.1 client may set it on QoS 0 although it must not
        # [MQTT-3.3.1-2]; on QoS 1/2 it is the publisher's, not ours).
        if raw is not None and not packet.dup and topic == packet.topic and not (v5 and props):
            message.seed_wire_form(v5, qos, packet.retain, raw)
        store = broker.store
        changes = store.changes
        matched = broker.publish(message, now)
        if qos == 0:
            return
        code = rc.SUCCESS if matched or not v5 else rc.NO_MATCHING_SUBSCRIBERS
        if qos == 1:
            first = PUBACK_FIRST
        else:
            session.rel_awaited(pid, now)
            if self._qos2 is None:
                self._qos2 = set()
            self._qos2.add(pid)
            first = PUBREC_FIRST
        self._ack(first, pid, code, store.sync_ack and store.changes != changes)

    def _ack(self, first, pid, code, durable):
        data = ack_bytes(first, pid, code, self.conn.v5)
        if not durable and self._acks is None:
            self.conn.write(data)
            return
        entry = [first, data, not durable]
        if self._acks is None:
            self._acks = []
        self._acks.append(entry)
        if first == PUBACK_FIRST:
            self._unsent_pubacks += 1
        if durable:

            def committed():
                entry[2] = True
                self._release_acks()

            self.conn.broker.store.after_commit(committed)

    def _release_acks(self):
        acks = self._acks
        conn = self.conn
        while acks and acks[0][2]:
            first, data, _ready = acks.pop(0)
            if first == PUBACK_FIRST:
                self._unsent_pubacks -= 1
            conn.write(data)
        if not acks:
            self._acks = None

    def _topic_refused(self, packet):
        """A topic name over ``mqtt.max_topic_levels`` (or, past the
        decoder, ``max_topic_length``): 0x90 Topic Name Invalid in the
        PUBACK/PUBREC of a 5.0 QoS 1/2 publish (the message is not
        routed), DISCONNECT 0x90 for 5.0 QoS 0, the close for 3.x."""
        conn = self.conn
        conn.broker.stats.refused_topics += 1
        if not (conn.v5 and packet.qos):
            raise MqttError(rc.TOPIC_NAME_INVALID, "topic name over the broker's quota")
        first = PUBACK_FIRST if packet.qos == 1 else PUBREC_FIRST
        self._ack(first, packet.packet_id, rc.TOPIC_NAME_INVALID, False)

    def _denied(self, packet, now):
        """The ACL said no: 0x87 in the ack for 5.0, silence for 3.1.1, or
        a disconnect, per ``auth.deny_action`` (docs/compatibility.md)."""
        conn = self.conn
        if conn.broker.deny_action == "disconnect":
            raise MqttError(rc.NOT_AUTHORIZED, f"publish to {packet.topic!r} denied")
        pid = packet.packet_id
        if packet.qos == 1:
            conn.write(ack_bytes(PUBACK_FIRST, pid, rc.NOT_AUTHORIZED, conn.v5))
        elif packet.qos == 2:
            if not conn.v5:
                conn.session.rel_awaited(pid, now)
            conn.write(ack_bytes(PUBREC_FIRST, pid, rc.NOT_AUTHORIZED, conn.v5))

    def pubrel(self, packet, now):
        """PUBREL: PUBCOMP, also for an id not awaited (0x92 in 5.0)."""
        pid = packet.packet_id
        if self._qos2:
            self._qos2.discard(pid)
        conn = self.conn
        session = conn.session
        if session.rel_done(pid):
            # A durable session's PUBCOMP waits for the commit that forgets
            # the packet id, as the PUBREC waited for the one that stored
            # it: otherwise a crash right after it would leave the id
            # "awaiting PUBREL", and the client's next message under that id
            # would be taken for a re-send and dropped [MQTT-4.3.3-10].
            store = conn.broker.store
            self._ack(PUBCOMP_FIRST, pid, 0, store.sync_ack and session.durable)
        else:
            self._ack(PUBCOMP_FIRST, pid, rc.PACKET_IDENTIFIER_NOT_FOUND, False)
