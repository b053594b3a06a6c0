# -*- test-case-name: tests.unit.test_broker,tests.protocol.test_protocol -*-
"""
The per-connection MQTT state machine, free of any I/O.

``ClientConnection.receive(packet, now)`` is fed every decoded packet of
one network connection and asks the ``Broker`` for everything shared
between connections: sessions, routing, retained messages.

Output.  The connection owns what it sends: ``write`` appends to its
``outbox`` and marks it dirty with the broker; the adapter calls
``Broker.flush`` once per turn (after a ``dataReceived``, a timer, a REST
call), which hands each dirty connection's outbox to its sink
(`IConnectionSink.send`) in one call.  While the network pushes back
(``pause_output``), the outbox keeps what the client has not taken; once it
holds ``Broker.outbox_limit`` bytes the connection is *congested*: QoS 0
messages for it are dropped and counted, QoS 1/2 wait in its session's
queue (bounded by ``max_mqueue_len``).  So one client that does not read
costs at most that much memory and never slows anyone else.

Holding input.  Packets that arrive while their turn has not come --
pipelined after CONNECT while the authenticator answers, or a PUBLISH or
SUBSCRIBE while an asynchronous ACL fetches its decision -- wait in one
queue (``_held``) and are replayed in order; the packets after a held one
wait behind it, so order is never broken.  Acknowledgements that must wait
for the store (``sqlite.sync_ack``) wait in ``_acks``, in order too.

Errors.  Protocol violations raise ``MqttError``; ``protocol_error`` is the
one mapping from an error to the wire (like ``read_handle.c``'s tail in
Mosquitto): a CONNECT with an unknown protocol level gets a 3.1.1 CONNACK
0x01 [MQTT-3.1.2-2], a connected 5.0 client a DISCONNECT with the reason
code, a 3.x client a plain close [MQTT-4.13.1-1].
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
from ..mqtt.topics import is_shared, validate_topic_filter
from .auth import PENDING
from .info import NO_TRANSPORT, ConnectInfo
from .message import Message, forwarded_properties, with_packet_id

NEW, AUTHENTICATING, CONNECTED, CLOSED = range(4)

#: Largest packet the protocol allows (remaining length limit plus header).
ABSOLUTE_MAX_PACKET = 268435460

#: Packets held at most while their turn has not come.
MAX_HELD = 1000

#: Bytes handed to the sink at a time when the outbox is large: about the
#: high-water mark of Twisted's write buffer, so a client that stops
#: reading pushes back after one slice.
FLUSH_SLICE = 64 * 1024


class ClientConnection:
    """One network connection of one MQTT client.

    ``transport`` (`TransportInfo`) says where it came from; with
    ``over_limit`` the listener was at ``max_connections`` when it was
    accepted, and its CONNECT is refused.
    """

    def __init__(self, broker, sink, transport=NO_TRANSPORT, over_limit=False):
        self.broker = broker
        self.sink = sink
        self.transport = transport
        self.over_limit = over_limit
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
        #: The CONNECT as accepted (`ConnectInfo`); None until it arrives.
        self.info = None
        # Output (module docstring).
        self.outbox = []
        self.outbox_bytes = 0
        self.dirty = False
        self.paused = False
        # Input waiting for its turn, in order (module docstring).
        self._held = None
        # PUBACK/PUBREC waiting for the store: [packet, ready] in order.
        self._acks = None
        # Inbound flow control [MQTT-4.9]: QoS 1 PUBACKs not yet sent and
        # the QoS 2 packet ids received on this connection whose PUBCOMP is
        # not yet sent; together at most our Receive Maximum.
        self._unsent_pubacks = 0
        self._inbound_qos2 = set()

    @property
    def peer(self):
        return self.transport.peer

    @property
    def listener(self):
        return self.transport.listener

    # -- output --------------------------------------------------------------

    @property
    def congested(self):
        """The client is not taking its data: its outbox is over the limit."""
        return self.outbox_bytes >= self.broker.outbox_limit

    def write(self, data):
        """Queue ``data`` for the client; the adapter flushes it this turn."""
        if self.state == CLOSED:
            return
        self.outbox.append(data)
        self.outbox_bytes += len(data)
        self.broker.stats.bytes_sent += len(data)
        if not self.dirty:
            self.dirty = True
            self.broker.output_pending(self)

    def encode(self, packet):
        return encode(packet, self.level)

    def send(self, packet):
        self.write(encode(packet, self.level))

    def flush(self):
        """Hand the outbox to the sink, unless the network pushes back.

        A large outbox goes out in slices of about ``FLUSH_SLICE`` bytes,
        stopping as soon as the network says its buffer is full
        (``pause_output`` is called during ``send``): the rest stays here,
        where it counts towards congestion, instead of piling up in the
        adapter's write buffer."""
        self.dirty = False
        outbox = self.outbox
        if self.paused or not outbox:
            return
        if self.outbox_bytes <= FLUSH_SLICE:
            self.outbox = []
            self.outbox_bytes = 0
            self.sink.send(outbox)
            return
        send = self.sink.send
        count = len(outbox)
        start = 0
        sent = 0
        while start < count and not self.paused:
            end = start
            size = 0
            while end < count and size < FLUSH_SLICE:
                size += len(outbox[end])
                end += 1
            send(outbox[start:end])
            sent += size
            start = end
        del outbox[:start]
        self.outbox_bytes -= sent

    def pause_output(self):
        """The network's buffer is full: keep output in the outbox."""
        self.paused = True

    def resume_output(self, now):
        """The network takes data again: send the outbox, then let the
        session move queued messages into flight."""
        self.paused = False
        self.flush()
        session = self.session
        if session is not None and session.conn is self:
            session.pump(now)

    def _close(self):
        """Send what is queued (a DISCONNECT, a CONNACK) and close."""
        if self.outbox:
            outbox = self.outbox
            self.outbox = []
            self.outbox_bytes = 0
            self.sink.send(outbox)
        self.sink.close()

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
        if self._held is not None:
            self._hold(packet)
            return
        state = self.state
        if state == CONNECTED:
            ptype = packet.type
            if ptype == PUBLISH:
                acl = self.broker.acl
                if acl.asynchronous and not self._acl_ready(acl, packet):
                    self._hold(packet)
                    return
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
                acl = self.broker.acl
                if acl.asynchronous and not self._acl_ready(acl, packet):
                    self._hold(packet)
                    return
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
            if self.over_limit:
                self._refuse_over_limit(packet, now)
                return
            self._on_connect(packet, now)
        elif state == AUTHENTICATING:
            # Pipelined after CONNECT; replayed once authentication is done.
            self._hold(packet)

    def _hold(self, packet):
        held = self._held
        if held is None:
            held = self._held = []
        elif len(held) >= MAX_HELD:
            raise MqttError(rc.QUOTA_EXCEEDED, "too many packets waiting for their turn")
        held.append(packet)

    def _replay(self, now):
        """Handle the held packets in order, until one has to wait again."""
        held, self._held = self._held, None
        if not held:
            return
        for index, packet in enumerate(held):
            if self.state != CONNECTED:
                return
            if self._held is not None:  # the previous packet waits again
                self._held.extend(held[index:])
                return
            self.receive(packet, now)

    def _resume(self, now):
        """Replay held input from outside the adapter's packet loop (an
        authenticator or ACL answering); errors end the connection here, as
        they would in the loop."""
        try:
            self._replay(now)
        except MqttError as error:
            self.protocol_error(error, now)
        except Exception as exc:  # noqa: BLE001 -- counted, reported, then 0x80
            self.broker.guard.failed("connection " + str(self.client_id), exc)
            self.protocol_error(MqttError(rc.UNSPECIFIED_ERROR, "internal error"), now)

    # -- asynchronous ACL (HTTP acl_req) -------------------------------------

    def _acl_ready(self, acl, packet):
        """Ask an asynchronous ACL to have decisions ready for ``packet``.
        False: this connection's packets wait, in order, until it answers."""
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
        return acl.prepare(self, action, topics, self._acl_answered)

    def _acl_answered(self):
        if self.state == CONNECTED and self._held is not None:
            self._resume(self.broker.now())

    # -- CONNECT -------------------------------------------------------------

    def _on_connect(self, connect, now):
        self.level = connect.protocol_level
        self.v5 = self.level == MQTT_5
        props = connect.properties
        self.keepalive = connect.keepalive
        limits = self.broker.limits
        # A 5.0 server may impose its own keepalive with Server Keep Alive
        # in CONNACK [MQTT-3.2.2-21]; ``mqtt.max_keepalive`` caps it (a
        # client asking for 0, "never", gets the cap too).
        limit = limits.server_keep_alive
        self.server_keepalive = None
        if self.v5 and limit and (self.keepalive == 0 or self.keepalive > limit):
            self.keepalive = self.server_keepalive = limit
        self.clean_start = connect.clean_start
        # A TLS listener's use_identity_as_username: the certificate's CN.
        identity = self.transport.tls_identity
        self.username = identity if identity is not None else connect.username
        client_id = connect.client_id
        assigned = False
        if not client_id:
            if not self.v5 and not connect.clean_start:
                # [MQTT-3.1.3-8]: a 3.1.1 client with CleanSession=0 must
                # supply an id.  NanoMQ invents one; we follow the spec.
                self.info = self._connect_info(connect, None, False)
                self._refuse(rc.CLIENT_IDENTIFIER_NOT_VALID, now)
                return
            client_id = self.broker.assign_client_id()
            assigned = True
        self.client_id = client_id
        self.info = self._connect_info(connect, client_id, assigned)
        # ``mqtt.max_inflight_window`` bounds the QoS 1/2 messages in flight
        # towards any client; the rest wait in the queue.
        window = limits.receive_maximum
        if self.v5:
            if "authentication_method" in props:
                self._refuse(rc.BAD_AUTHENTICATION_METHOD, now)
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
        self.state = AUTHENTICATING
        events = self.broker.events
        if events.client_connect:
            events.emit("client_connect", conn=self, now=now)
        result = self.broker.authenticator.authenticate(
            self.info, self._auth_answered
        )
        if result is not PENDING:
            self.auth_done(result, now)

    def _connect_info(self, connect, client_id, assigned):
        return ConnectInfo(
            client_id, self.username, connect.password, self.level,
            connect.protocol_name, connect.clean_start, self.keepalive,
            connect.properties, self.transport, assigned, connect.will,
        )

    def _auth_answered(self, code):
        """An asynchronous authenticator answered, outside the packet loop."""
        now = self.broker.now()
        try:
            self.auth_done(code, now)
        except MqttError as error:
            self.protocol_error(error, now)

    def auth_done(self, code, now):
        """Finish CONNECT once the authenticator has answered."""
        if self.state != AUTHENTICATING:
            return
        if code != rc.SUCCESS:
            self.broker.stats.auth_failures += 1
            self._refuse(code, now)
            return
        session_present = self.broker.attach(self, now)
        self.state = CONNECTED
        self.connected_at = now
        props = {}
        if self.v5:
            if self.info.assigned:
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
        session = self.session
        session.resend_inflight(now)
        if not self.v5 and session.inflight:
            # The 3.x retry timer was cancelled when the previous connection
            # closed; re-arm it, or what was just resent is never retried.
            self.broker.retry_needed(session, now)
        session.pump(now)
        self._replay(now)

    def _refuse(self, code, now):
        """CONNACK with a failure code, then close [MQTT-3.2.2-6]."""
        if self.v5:
            self.send(Connack(False, code))
        else:
            self.send(Connack(False, rc.connack_code_for_v3(code)))
        self.state = CLOSED
        self.will = None
        self._held = None
        self.broker.on_refused(self, code, now)
        self._close()

    def _refuse_over_limit(self, connect, now):
        """``max_connections`` reached: CONNACK 0x97 Quota exceeded (5.0) or
        0x03 Server unavailable (3.x); the client never reaches the broker."""
        self.level = connect.protocol_level
        self.v5 = self.level == MQTT_5
        code = rc.QUOTA_EXCEEDED if self.v5 else rc.CONNACK_REFUSED_SERVER_UNAVAILABLE
        self.send(Connack(False, code))
        self.state = CLOSED
        self._close()

    # -- PUBLISH (inbound) ---------------------------------------------------

    def _on_publish(self, packet, now):
        topic = packet.topic
        props = packet.properties
        broker = self.broker
        if self.v5 and props:
            alias = props.get("topic_alias")
            if alias is not None:
                if alias == 0 or alias > broker.limits.topic_alias_maximum:
                    raise MqttError(rc.TOPIC_ALIAS_INVALID, "topic alias out of range")
                if topic:
                    self.aliases_in[alias] = topic
                else:
                    topic = self.aliases_in.get(alias)
                    if topic is None:
                        raise MqttError(rc.PROTOCOL_ERROR, "unknown topic alias")
        qos = packet.qos
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
        if not broker.acl.check(self, "publish", topic):
            self._publish_denied(packet, now)
            return
        if qos == 2 and packet.packet_id in self.session.awaiting_rel:
            # A DUP re-send of a message already routed [MQTT-4.3.3-10].
            self._ack(Pubrec(packet.packet_id), False)
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
        matched = broker.publish(message, now)
        if qos == 0:
            return
        code = rc.SUCCESS if matched or not self.v5 else rc.NO_MATCHING_SUBSCRIBERS
        if qos == 1:
            ack = Puback(packet.packet_id, code)
        else:
            self.session.rel_awaited(packet.packet_id, now)
            self._inbound_qos2.add(packet.packet_id)
            ack = Pubrec(packet.packet_id, code)
        self._ack(ack, store.sync_ack and store.changes != changes)

    def _ack(self, ack, durable):
        """Send a PUBACK/PUBREC -- after the commit holding what the publish
        stored when ``durable`` (``sqlite.sync_ack``); acks behind a held
        one wait too, so they keep the order of the PUBLISHes
        [MQTT-4.6.0-2]."""
        if not durable and self._acks is None:
            self.send(ack)
            return
        entry = [ack, not durable]
        if self._acks is None:
            self._acks = []
        self._acks.append(entry)
        if ack.type == PUBACK:
            self._unsent_pubacks += 1
        if durable:

            def committed():
                entry[1] = True
                self._release_acks()

            self.broker.store.after_commit(committed)

    def _release_acks(self):
        acks = self._acks
        while acks and acks[0][1]:
            ack = acks.pop(0)[0]
            if ack.type == PUBACK:
                self._unsent_pubacks -= 1
            if self.state == CONNECTED:
                self.send(ack)
        if not acks:
            self._acks = None

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
        broker = self.broker
        events = broker.events
        if events.client_subscribe:
            events.emit("client_subscribe", conn=self, packet=packet, now=now)
        failure = rc.UNSPECIFIED_ERROR
        denied = False
        codes = []
        granted = []
        for option in packet.subscriptions:
            topic_filter = option.topic_filter
            if not validate_topic_filter(topic_filter):
                codes.append(rc.TOPIC_FILTER_INVALID if self.v5 else failure)
                continue
            if option.no_local and is_shared(topic_filter):
                # [MQTT-3.8.3-4]
                raise ProtocolError("No Local on a shared subscription")
            if not broker.acl.check(self, "subscribe", topic_filter):
                # SUBACK 0x87 (0x80 for 3.1.1), then, with deny_action =
                # disconnect, DISCONNECT 0x87 (docs/compatibility.md).
                denied = True
                codes.append(rc.NOT_AUTHORIZED if self.v5 else failure)
                continue
            qos = min(option.qos, 2)
            codes.append(qos)
            granted.append((option, qos))
        # SUBACK first: retained messages follow it, so the client knows
        # the subscription is in place when they arrive.
        self.send(Suback(packet.packet_id, tuple(codes)))
        for option, qos in granted:
            broker.subscribe(self.session, option, qos, sub_id, now)
        if denied and broker.deny_action == "disconnect":
            raise MqttError(rc.NOT_AUTHORIZED, "subscribe denied")

    def _on_unsubscribe(self, packet, now):
        broker = self.broker
        events = broker.events
        if events.client_unsubscribe:
            events.emit("client_unsubscribe", conn=self, packet=packet, now=now)
        codes = []
        for topic_filter in packet.topic_filters:
            existed = broker.unsubscribe(self.session, topic_filter)
            codes.append(rc.SUCCESS if existed else rc.NO_SUBSCRIPTION_EXISTED)
        self.send(Unsuback(packet.packet_id, tuple(codes) if self.v5 else ()))

    # -- DISCONNECT, errors and closing --------------------------------------

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
        self._close()

    def protocol_error(self, error, now):
        """The one place an ``MqttError`` becomes wire behaviour."""
        if self.state == NEW and error.reason_code == rc.UNSUPPORTED_PROTOCOL_VERSION:
            # [MQTT-3.1.2-2]: 3.1.1 CONNACK "unacceptable protocol level".
            self.write(encode(Connack(False, rc.CONNACK_REFUSED_PROTOCOL_VERSION), 4))
        self.server_disconnect(error.reason_code, now, error.message)

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
        self._close()

    def keepalive_expired(self, now):
        """No packet within keepalive × multiplier [MQTT-3.1.2-22]."""
        self.server_disconnect(rc.KEEP_ALIVE_TIMEOUT, now, "keep alive timeout")

    def detached(self):
        """The broker let go of this connection (it closed, or a takeover
        replaced it): nothing more is handled or sent."""
        self.state = CLOSED

    def connection_lost(self, now):
        """The network connection is gone, for whatever reason."""
        state = self.state
        self.state = CLOSED
        self._held = None
        self.outbox = []
        self.outbox_bytes = 0
        if state == CONNECTED:
            self.broker.detach(self, now)
