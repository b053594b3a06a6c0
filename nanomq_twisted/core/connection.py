# -*- test-case-name: tests.protocol.test_protocol -*-
"""
The per-connection MQTT state machine, free of any I/O.

``ClientConnection.receive(packet, now)`` is fed every decoded packet of
one network connection.  It answers through its ``sink`` (``write(bytes)``,
``close()``, ``congested``) and asks the ``Broker`` for everything shared
between connections: sessions, routing, retained messages.

The transport (`transport/protocol.py`) owns the single mapping from an
``MqttError`` to what goes on the wire; this class raises ``MqttError`` for
protocol violations it finds itself and lets the transport end the
connection, exactly as for decoder errors.
"""

from ..mqtt import reason_codes as rc
from ..mqtt.codec import encode
from ..mqtt.errors import MqttError, ProtocolError
from ..mqtt.packets import (
    AUTH,
    CONNECT,
    DISCONNECT,
    MQTT_5,
    PINGREQ,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBSCRIBE,
    UNSUBSCRIBE,
    Connack,
    Disconnect,
    Pingresp,
    Puback,
    Pubcomp,
    Pubrec,
    Pubrel,
    Suback,
    Unsuback,
)
from ..mqtt.topics import validate_topic_filter
from .auth import PENDING, ConnectRequest
from .message import Message, forwarded_properties, with_packet_id

NEW, AUTHENTICATING, CONNECTED, CLOSED = range(4)

#: Largest packet the protocol allows (remaining length limit plus header).
ABSOLUTE_MAX_PACKET = 268435460


class ClientConnection:
    """One network connection of one MQTT client."""

    def __init__(self, broker, sink, peer=None, listener="default"):
        self.broker = broker
        self.sink = sink
        self.peer = peer
        self.listener = listener
        self.state = NEW
        self.level = 4
        self.v5 = False
        self.client_id = None
        self.username = None
        self.keepalive = 0
        self.server_keepalive = None
        self.clean_start = True
        self.session = None
        self.will = None
        self.will_delay = 0
        self.receive_maximum = 65535
        self.max_outgoing = ABSOLUTE_MAX_PACKET
        self.topic_alias_max = 0
        self.request_problem_information = True
        self.aliases_in = {}
        self.aliases_out = {}  # topic -> alias we assigned towards the client
        self.connected_at = None
        self.disconnect_reason = None
        self.graceful = False
        self._pending = []
        #: Packets waiting, in order, for an asynchronous ACL answer.
        self._held = None
        #: PUBACK/PUBREC waiting for the store (``sqlite.sync_ack``).
        self._held_acks = None
        #: Inbound flow control [MQTT-4.9]: QoS 1 PUBACKs not yet sent and
        #: the QoS 2 packet ids received on this connection whose PUBCOMP is
        #: not yet sent; together at most our Receive Maximum.
        self._unsent_pubacks = 0
        self._inbound_qos2 = set()

    # -- helpers -----------------------------------------------------------

    def encode(self, packet):
        return encode(packet, self.level)

    def send(self, packet):
        data = encode(packet, self.level)
        self.sink.write(data)
        self.broker.stats.bytes_sent += len(data)

    def aliased_publish(self, message, qos, retain, sub_ids, packet_id, now):
        """The PUBLISH for this 5.0 client using a broker-assigned Topic
        Alias, up to the Topic Alias Maximum it announced [MQTT-3.2.2-17].

        The first message on a topic carries topic and alias; later ones
        only the alias.  Aliases are assigned first come, first served and
        never remapped.  Returns None when the packet would exceed the
        client's Maximum Packet Size; an alias is only recorded once a packet
        establishing it is actually sent.
        """
        topic = message.topic
        alias = self.aliases_out.get(topic)
        if alias is not None:
            data = message.wire_with_alias("", alias, qos, retain, sub_ids, packet_id, now)
        elif len(self.aliases_out) < self.topic_alias_max:
            alias = len(self.aliases_out) + 1
            data = message.wire_with_alias(topic, alias, qos, retain, sub_ids, packet_id, now)
            if len(data) <= self.max_outgoing:
                self.aliases_out[topic] = alias
        elif qos:
            template = message.wire_template(True, qos, retain, sub_ids, now)
            data = with_packet_id(template, packet_id)
        else:
            data = message.wire_qos0(True, retain, sub_ids, now)
        return data if len(data) <= self.max_outgoing else None

    @property
    def keepalive_timeout(self):
        """Seconds of silence after which the client is dropped
        [MQTT-3.1.2-22]: ``keepalive × keepalive_multiplier``; 0 = never."""
        if not self.keepalive:
            return 0
        return self.keepalive * self.broker.config.keepalive_multiplier

    # -- input -------------------------------------------------------------

    def receive(self, packet, now):
        """Handle one decoded packet.  Raises ``MqttError`` on violations."""
        state = self.state
        if state == CONNECTED:
            ptype = packet.type
            if self._held is not None or (
                (ptype == PUBLISH or ptype == SUBSCRIBE)
                and getattr(self.broker.acl, "prepare", None) is not None
                and not self._acl_ready(packet)
            ):
                self._hold(packet)
                return
            if ptype == PUBLISH:
                self._on_publish(packet, now)
            elif ptype == PUBACK:
                self.session.on_puback(packet.packet_id, now)
            elif ptype == PUBREC:
                self._on_pubrec(packet, now)
            elif ptype == PUBREL:
                self._on_pubrel(packet, now)
            elif ptype == PUBCOMP:
                self.session.on_pubcomp(packet.packet_id, now)
            elif ptype == SUBSCRIBE:
                self._on_subscribe(packet, now)
            elif ptype == UNSUBSCRIBE:
                self._on_unsubscribe(packet, now)
            elif ptype == PINGREQ:
                self.send(Pingresp())
            elif ptype == DISCONNECT:
                self._on_disconnect(packet, now)
            elif ptype == AUTH:
                # No enhanced authentication was negotiated [MQTT-4.12.0-6].
                raise ProtocolError("AUTH without an authentication method")
            else:
                # CONNECT twice [MQTT-3.1.0-2] or a server-only packet.
                raise ProtocolError(f"unexpected packet type {ptype}")
        elif state == NEW:
            if packet.type != CONNECT:
                raise ProtocolError("first packet must be CONNECT [MQTT-3.1.0-1]")
            self._on_connect(packet, now)
        elif state == AUTHENTICATING:
            # Pipelined after CONNECT; replayed once authentication is done.
            if len(self._pending) >= 1000:
                raise MqttError(rc.QUOTA_EXCEEDED, "too many packets before CONNACK")
            self._pending.append(packet)

    # -- asynchronous ACL (HTTP acl_req) -------------------------------------

    def _acl_ready(self, packet):
        """Ask an asynchronous ACL (one with ``prepare``) to have decisions
        ready for ``packet``.  False: this connection's packets wait, in
        order, until it calls back (as pipelined packets wait for CONNACK)."""
        if packet.type == PUBLISH:
            topic = packet.topic
            if not topic and self.v5 and packet.properties:
                topic = self.aliases_in.get(packet.properties.get("topic_alias"))
            if not topic:
                return True  # _on_publish raises the protocol error
            action, topics = "publish", (topic,)
        else:
            action = "subscribe"
            topics = tuple(option.topic_filter for option in packet.subscriptions)
        return self.broker.acl.prepare(self, action, topics, self._acl_answered)

    def _hold(self, packet):
        if self._held is None:
            self._held = []
        elif len(self._held) >= 1000:
            raise MqttError(rc.QUOTA_EXCEEDED, "too many packets awaiting authorisation")
        self._held.append(packet)

    def _acl_answered(self):
        """The asynchronous ACL has its answer: replay the held packets."""
        held, self._held = self._held, None
        if not held or self.state != CONNECTED:
            return
        now = self.broker.now()
        try:
            for index, packet in enumerate(held):
                if self.state != CONNECTED:
                    return
                if self._held is not None:  # waiting again
                    self._held.extend(held[index:])
                    return
                self.receive(packet, now)
        except MqttError as error:
            self.server_disconnect(error.reason_code, now, error.message)

    # -- CONNECT -------------------------------------------------------------

    def _on_connect(self, connect, now):
        self.level = connect.protocol_level
        self.v5 = self.level == MQTT_5
        props = connect.properties
        self.keepalive = connect.keepalive
        # A 5.0 server may impose its own keepalive with Server Keep Alive
        # in CONNACK [MQTT-3.2.2-21]; ``mqtt.max_keepalive`` caps it (a
        # client asking for 0, "never", gets the cap too).
        limit = self.broker.limits.server_keep_alive
        self.server_keepalive = None
        if self.v5 and limit and (self.keepalive == 0 or self.keepalive > limit):
            self.keepalive = self.server_keepalive = limit
        self.clean_start = connect.clean_start
        # A TLS listener's use_identity_as_username: the certificate's CN.
        identity = getattr(self.sink, "tls_identity", None)
        self.username = identity if identity is not None else connect.username
        client_id = connect.client_id
        assigned = False
        if not client_id:
            if not self.v5 and not connect.clean_start:
                # [MQTT-3.1.3-8]: a 3.1.1 client with CleanSession=0 must
                # supply an id.  NanoMQ invents one; we follow the spec.
                self._refuse(rc.CLIENT_IDENTIFIER_NOT_VALID, connect, now)
                return
            client_id = self.broker.assign_client_id()
            assigned = True
        self.client_id = client_id
        # ``mqtt.max_inflight_window`` (unused by NanoMQ) bounds the QoS 1/2
        # messages in flight towards any client; the rest wait in the queue.
        window = self.broker.limits.receive_maximum
        if self.v5:
            if "authentication_method" in props:
                self._refuse(rc.BAD_AUTHENTICATION_METHOD, connect, now)
                return
            # Never more in flight than the client allows [MQTT-3.3.4-9], nor
            # than our own window.
            self.receive_maximum = min(props.get("receive_maximum", 65535), window)
            if "maximum_packet_size" in props:
                self.max_outgoing = props["maximum_packet_size"]
            else:
                self.max_outgoing = self.broker.config.client_max_packet_size
            self.topic_alias_max = props.get("topic_alias_maximum", 0)
            self.request_problem_information = bool(
                props.get("request_problem_information", 1)
            )
        else:
            self.max_outgoing = self.broker.config.client_max_packet_size
            self.receive_maximum = window
        self.will = connect.will
        if connect.will is not None and self.v5:
            self.will_delay = connect.will.properties.get("will_delay_interval", 0)
        self._assigned = assigned
        self._connect = connect
        self.state = AUTHENTICATING
        if self.broker.observers:
            self.broker.notify("client_connect", conn=self, now=now)
        request = ConnectRequest(
            client_id,
            self.username,
            connect.password,
            self.peer,
            self.level,
            self.listener,
            self,
            getattr(self.sink, "tls_common_name", "") or "",
            getattr(self.sink, "tls_subject", "") or "",
        )
        result = self.broker.authenticator.authenticate(
            request, lambda code: self.auth_done(code, self.broker.now())
        )
        if result is not PENDING:
            self.auth_done(result, now)

    def auth_done(self, code, now):
        """Finish CONNECT once the authenticator has answered."""
        if self.state != AUTHENTICATING:
            return
        connect = self._connect
        if code != rc.SUCCESS:
            self.broker.stats.auth_failures += 1
            self._refuse(code, connect, now)
            return
        session_present = self.broker.attach(self, connect, now)
        self.state = CONNECTED
        self.connected_at = now
        props = {}
        if self.v5:
            if self._assigned:
                props["assigned_client_identifier"] = self.client_id
            limits = self.broker.limits
            # How many QoS 1/2 PUBLISHes it may have unacknowledged towards
            # us; one more is DISCONNECT 0x93 [MQTT-3.3.4-7] (_on_publish).
            props["receive_maximum"] = limits.receive_maximum
            if limits.topic_alias_maximum:
                props["topic_alias_maximum"] = limits.topic_alias_maximum
            props["maximum_packet_size"] = limits.maximum_packet_size
            if self.server_keepalive is not None:
                props["server_keep_alive"] = self.server_keepalive
        self.send(Connack(session_present, rc.SUCCESS, props))
        self.broker.on_connected(self, now)
        self.session.resend_inflight(now)
        if not self.v5 and self.session.inflight:
            # The 3.x retry timer was cancelled when the previous connection
            # closed; re-arm it, or what was just resent is never retried.
            self.broker.ensure_retry(self.session, now)
        self.session.pump(now)
        pending, self._pending = self._pending, []
        for packet in pending:
            if self.state != CONNECTED:
                break
            self.receive(packet, now)

    def _refuse(self, code, connect, now):
        """CONNACK with a failure code, then close [MQTT-3.2.2-6]."""
        if self.v5:
            self.send(Connack(False, code))
        else:
            self.send(Connack(False, rc.connack_code_for_v3(code)))
        self.state = CLOSED
        self.will = None
        self.broker.on_refused(self, code, now)
        self.sink.close()

    # -- PUBLISH (inbound) ---------------------------------------------------

    def _on_publish(self, packet, now):
        topic = packet.topic
        props = packet.properties
        if self.v5 and props:
            alias = props.get("topic_alias")
            if alias is not None:
                limit = self.broker.limits.topic_alias_maximum
                if alias == 0 or alias > limit:
                    raise MqttError(rc.TOPIC_ALIAS_INVALID, "topic alias out of range")
                if topic:
                    self.aliases_in[alias] = topic
                else:
                    topic = self.aliases_in.get(alias)
                    if topic is None:
                        raise MqttError(rc.PROTOCOL_ERROR, "unknown topic alias")
        qos = packet.qos
        broker = self.broker
        if qos and self.v5 and (
            self._unsent_pubacks + len(self._inbound_qos2)
            >= broker.limits.receive_maximum
        ) and not (qos == 2 and packet.packet_id in self.session.awaiting_rel):
            # One more unacknowledged QoS 1/2 PUBLISH than the Receive
            # Maximum in our CONNACK [MQTT-3.3.4-7]; a DUP of a QoS 2
            # message still awaiting PUBREL is no new one.
            raise MqttError(
                rc.RECEIVE_MAXIMUM_EXCEEDED,
                "more unacknowledged QoS 1/2 PUBLISHes than Receive Maximum",
            )
        allowed = broker.acl.check(self, "publish", topic)
        if not allowed:
            self._publish_denied(packet, now)
            return
        if qos == 2:
            awaiting = self.session.awaiting_rel
            if packet.packet_id in awaiting:
                # A DUP re-send of a message already routed [MQTT-4.3.3-10].
                if self._held_acks is not None:
                    self._hold_ack(Pubrec(packet.packet_id), False)
                else:
                    self.send(Pubrec(packet.packet_id))
                return
        message = Message(
            topic,
            packet.payload,
            qos,
            packet.retain,
            forwarded_properties(props) if self.v5 else None,
            now,
            self.client_id,
            self.username,
            packet.packet_id,
        )
        raw = packet.raw
        # Forward the received bytes only when they are exactly what we would
        # encode: QoS 0, no alias to resolve and no stray DUP bit, which a
        # 3.1.1 client may set although it must not [MQTT-3.3.1-2].
        if raw is not None and qos == 0 and not packet.dup and topic == packet.topic:
            if not self.v5:
                message.seed_wire_form(False, packet.retain, raw)
            elif not props:
                message.seed_wire_form(True, packet.retain, raw)
        store = broker.store
        changes = store.changes
        matched = broker.publish(message, now, self)
        if qos == 1:
            code = rc.SUCCESS if matched or not self.v5 else rc.NO_MATCHING_SUBSCRIBERS
            ack = Puback(packet.packet_id, code)
        elif qos == 2:
            self.session.rel_awaited(packet.packet_id, now)
            self._inbound_qos2.add(packet.packet_id)
            code = rc.SUCCESS if matched or not self.v5 else rc.NO_MATCHING_SUBSCRIBERS
            ack = Pubrec(packet.packet_id, code)
        else:
            return
        durable = store.sync_ack and store.changes != changes
        if durable or self._held_acks is not None:
            if qos == 1:
                self._unsent_pubacks += 1
            self._hold_ack(ack, durable)
        else:
            self.send(ack)

    def _hold_ack(self, ack, durable):
        """``sqlite.sync_ack``: this PUBACK/PUBREC waits until what the
        publish stored has committed; acks behind it wait too, so they keep
        the order of the PUBLISHes [MQTT-4.6.0-2]."""
        entry = [ack, not durable]
        if self._held_acks is None:
            self._held_acks = []
        self._held_acks.append(entry)
        if durable:

            def committed():
                entry[1] = True
                self._release_acks()

            self.broker.store.after_commit(committed)

    def _release_acks(self):
        held = self._held_acks
        while held and held[0][1]:
            ack = held.pop(0)[0]
            if ack.type == PUBACK:
                self._unsent_pubacks -= 1
            if self.state == CONNECTED:
                self.send(ack)
        if not held:
            self._held_acks = None

    def _publish_denied(self, packet, now):
        """ACL said no: 0x87 in the ack for 5.0, silence for 3.1.1, or a
        disconnect, per ``auth.deny_action`` (see docs/compatibility.md)."""
        if self.broker.deny_action == "disconnect":
            raise MqttError(rc.NOT_AUTHORIZED, f"publish to {packet.topic!r} denied")
        if packet.qos == 1:
            self.send(Puback(packet.packet_id, rc.NOT_AUTHORIZED if self.v5 else 0))
        elif packet.qos == 2:
            if self.v5:
                self.send(Pubrec(packet.packet_id, rc.NOT_AUTHORIZED))
            else:
                self.session.rel_awaited(packet.packet_id, now)
                self.send(Pubrec(packet.packet_id))

    def _on_pubrel(self, packet, now):
        self._inbound_qos2.discard(packet.packet_id)
        if not self.session.rel_done(packet.packet_id):
            code = rc.PACKET_IDENTIFIER_NOT_FOUND if self.v5 else 0
            self.send(Pubcomp(packet.packet_id, code))
            return
        self.send(Pubcomp(packet.packet_id))

    def _on_pubrec(self, packet, now):
        if self.session.on_pubrec(packet.packet_id, packet.reason_code, now):
            self.send(Pubrel(packet.packet_id))
        elif packet.reason_code < 0x80 and packet.packet_id not in self.session.inflight:
            if self.v5:
                self.send(Pubrel(packet.packet_id, rc.PACKET_IDENTIFIER_NOT_FOUND))
            else:
                self.send(Pubrel(packet.packet_id))

    # -- SUBSCRIBE / UNSUBSCRIBE ---------------------------------------------

    def _on_subscribe(self, packet, now):
        sub_id = packet.properties.get("subscription_identifier") if self.v5 else None
        if sub_id == 0:
            raise ProtocolError("Subscription Identifier 0 [MQTT-3.8.2.1.2]")
        if self.broker.observers:
            self.broker.notify("client_subscribe", conn=self, packet=packet, now=now)
        failure = rc.UNSPECIFIED_ERROR
        denied = False
        codes = []
        granted = []
        for option in packet.subscriptions:
            topic_filter = option.topic_filter
            if not validate_topic_filter(topic_filter):
                codes.append(rc.TOPIC_FILTER_INVALID if self.v5 else failure)
                continue
            is_shared = topic_filter.startswith(("$share/", "$queue/"))
            if is_shared and option.no_local:
                # [MQTT-3.8.3-4]
                raise ProtocolError("No Local on a shared subscription")
            if not self.broker.acl.check(self, "subscribe", topic_filter):
                # SUBACK 0x87 (0x80 for 3.1.1), then, with deny_action =
                # disconnect, DISCONNECT 0x87 (docs/compatibility.md).
                denied = True
                codes.append(rc.NOT_AUTHORIZED if self.v5 else failure)
                continue
            qos = min(option.qos, 2)
            codes.append(qos)
            granted.append((option, qos))
        # SUBACK first: retained messages follow it [MQTT-3.8.4-?] so the
        # client knows the subscription is in place when they arrive.
        self.send(Suback(packet.packet_id, tuple(codes)))
        for option, qos in granted:
            self.broker.subscribe(self.session, option, qos, sub_id, now)
        if denied and self.broker.deny_action == "disconnect":
            raise MqttError(rc.NOT_AUTHORIZED, "subscribe denied")

    def _on_unsubscribe(self, packet, now):
        if self.broker.observers:
            self.broker.notify("client_unsubscribe", conn=self, packet=packet, now=now)
        codes = []
        for topic_filter in packet.topic_filters:
            existed = self.broker.unsubscribe(self.session, topic_filter)
            codes.append(rc.SUCCESS if existed else rc.NO_SUBSCRIPTION_EXISTED)
        self.send(Unsuback(packet.packet_id, tuple(codes) if self.v5 else ()))

    # -- DISCONNECT and closing ----------------------------------------------

    def _on_disconnect(self, packet, now):
        if self.v5:
            expiry = packet.properties.get("session_expiry_interval")
            if expiry is not None:
                if self.session.expiry_interval == 0 and expiry != 0:
                    # [MQTT-3.14.2-2]
                    raise ProtocolError("session expiry raised from 0 on DISCONNECT")
                self.session.expiry_interval = expiry
            if packet.reason_code != rc.DISCONNECT_WITH_WILL:
                self.will = None
        else:
            # [MQTT-3.14.4-3]: a DISCONNECT discards the will.
            self.will = None
        self.graceful = True
        self.disconnect_reason = packet.reason_code
        self.sink.close()

    def server_disconnect(self, reason_code, now, reason_string=None):
        """End the connection from the broker's side: DISCONNECT with a
        reason for 5.0 clients [MQTT-4.13.2-1], a plain close for 3.x."""
        if self.state == CLOSED:
            return
        if self.v5 and self.state == CONNECTED:
            props = {}
            if reason_string and self.request_problem_information:
                props["reason_string"] = reason_string
            self.send(Disconnect(reason_code, props))
        self.disconnect_reason = reason_code
        self.sink.close()

    def keepalive_expired(self, now):
        """No packet within keepalive × multiplier [MQTT-3.1.2-22]."""
        self.server_disconnect(rc.KEEP_ALIVE_TIMEOUT, now, "keep alive timeout")

    def connection_lost(self, now):
        """The network connection is gone, for whatever reason."""
        state = self.state
        self.state = CLOSED
        if state == CONNECTED:
            self.broker.detach(self, now)
