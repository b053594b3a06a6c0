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
for the store (``sqlite.sync_ack``) wait in `InboundPublishes`, in order
too.

Errors.  Protocol violations raise ``MqttError``; ``protocol_error`` is the
one mapping from an error to the wire (like ``read_handle.c``'s tail in
Mosquitto): a CONNECT with an unknown protocol level gets a 3.1.1 CONNACK
0x01 [MQTT-3.1.2-2], a connected 5.0 client a DISCONNECT with the reason
code, a 3.x client a plain close [MQTT-4.13.1-1].
"""

from ..mqtt import reason_codes as rc
from ..mqtt.ack_codec import PUBREL_FIRST, ack_bytes
from ..mqtt.codec import encode
from ..mqtt.errors import MqttError, ProtocolError
from ..mqtt.packets import (
    AUTH,
    CONNECT,
    DISCONNECT,
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
)
from .connect import (
    AUTHENTICATING,
    CLOSED,
    CONNECTED,
    NEW,
    accept_connect,
    finish_connect,
    refuse_over_limit,
)
from .deadlines import Deadlines
from .inbound import InboundPublishes
from .info import NO_TRANSPORT
from .message import with_packet_id
from .subscribing import subscribe_request, unsubscribe_request

#: Largest packet the protocol allows (remaining length limit plus header).
ABSOLUTE_MAX_PACKET = 268435460

#: Packets held at most while their turn has not come.
MAX_HELD = 1000

#: Bytes handed to the sink at a time when the outbox is large: about the
#: high-water mark of Twisted's write buffer, so a client that stops
#: reading pushes back after one slice.
FLUSH_SLICE = 64 * 1024


class ClientConnection(Deadlines):
    """One network connection of one MQTT client.

    ``transport`` (`TransportInfo`) says where it came from; with
    ``over_limit`` the listener was at ``max_connections`` when it was
    accepted, and its CONNECT is refused.
    """

    # Thousands of these live at once: slots keep each one small.
    __slots__ = (
        "__weakref__",
        "_deadline",
        "_held",
        "address",
        "aliases_out",
        "broker",
        "clean_start",
        "client_id",
        "connected_at",
        "dirty",
        "disconnect_reason",
        "graceful",
        "inbound",
        "info",
        "keepalive",
        "last_rx",
        "level",
        "max_outgoing",
        "meter",
        "outbox",
        "outbox_bytes",
        "over_limit",
        "paused",
        "receive_maximum",
        "request_problem_information",
        "server_keepalive",
        "session",
        "sink",
        "state",
        "topic_alias_max",
        "transport",
        "username",
        "v5",
        "will",
        "will_delay",
    )

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
        #: topic -> alias we assigned towards the client; a dict once the
        #: client allows aliases (core/connect.py), None until then.
        self.aliases_out = None
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
        #: When the client last sent anything (the adapter sets it).
        self.last_rx = 0.0
        # The CONNECT deadline, then the keepalive check (`TimerHandle`).
        self._deadline = None
        #: PUBLISHes from the client (`InboundPublishes`).
        self.inbound = InboundPublishes(self)
        #: The IP address this connection is counted under
        #: (core/admission.py), None when not counted.
        self.address = None
        #: Its inbound rate limit (`InboundMeter`), None without one.
        self.meter = None

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
            was_congested = self.outbox_bytes >= self.broker.outbox_limit
            self.outbox = []
            self.outbox_bytes = 0
            self.sink.send(outbox)
            if was_congested:
                self._congestion_over()
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
        was_congested = self.congested
        self.outbox_bytes -= sent
        if was_congested and not self.congested:
            self._congestion_over()

    def _congestion_over(self):
        """The outbox went below the limit by a flush alone (the network
        never pushed back): messages the session queued meanwhile may have
        nothing in flight whose acknowledgement would move them, so move
        them now [MQTT-4.6.0-6: in order, behind what was sent]."""
        session = self.session
        if session is not None and session.conn is self and session.queue:
            session.pump(self.broker.now())

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

    def close_now(self):
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
                if self.meter is not None:
                    self.meter.publishes += 1
                self.inbound.publish(packet, now)
            elif ptype == PUBACK:
                self.session.on_puback(packet.packet_id, now)
            elif ptype == PUBREC:
                self._on_pubrec(packet, now)
            elif ptype == PUBREL:
                self.inbound.pubrel(packet, now)
            elif ptype == PUBCOMP:
                self.session.on_pubcomp(packet.packet_id, now)
            elif ptype == SUBSCRIBE:
                acl = self.broker.acl
                if acl.asynchronous and not self._acl_ready(acl, packet):
                    self._hold(packet)
                    return
                subscribe_request(self, packet, now)
            elif ptype == UNSUBSCRIBE:
                unsubscribe_request(self, packet, now)
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
                refuse_over_limit(self, packet, now)
                return
            accept_connect(self, packet, now)
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

    def replay_held(self, now):
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

    def drop_held(self):
        """Forget the held input: the connection ends before its turn."""
        self._held = None

    def _resume(self, now):
        """Replay held input from outside the adapter's packet loop (an
        authenticator or ACL answering); errors end the connection here, as
        they would in the loop."""
        try:
            self.replay_held(now)
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
            topic = self.inbound.topic_of(packet)
            if not topic:
                return True  # InboundPublishes.publish raises the error
            action, topics = "publish", (topic,)
        else:
            action = "subscribe"
            topics = tuple(option.topic_filter for option in packet.subscriptions)
        return acl.prepare(self, action, topics, self._acl_answered)

    def _acl_answered(self):
        if self.state == CONNECTED and self._held is not None:
            self._resume(self.broker.now())

    # -- CONNECT (core/connect.py) ------------------------------------------

    def authenticator_answered(self, code):
        """An asynchronous authenticator answered, outside the packet loop."""
        now = self.broker.now()
        try:
            self.auth_done(code, now)
        except MqttError as error:
            self.protocol_error(error, now)

    def auth_done(self, code, now):
        """Finish CONNECT once the authenticator has answered."""
        if self.state == AUTHENTICATING:
            finish_connect(self, code, now)

    # -- QoS 2 outbound: PUBREC from the client ----------------------------

    def _on_pubrec(self, packet, now):
        pid = packet.packet_id
        if self.session.on_pubrec(pid, packet.reason_code, now):
            self.write(ack_bytes(PUBREL_FIRST, pid))
        elif packet.reason_code < 0x80 and pid not in self.session.inflight:
            self.write(ack_bytes(PUBREL_FIRST, pid, rc.PACKET_IDENTIFIER_NOT_FOUND, self.v5))

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
        self.close_now()

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
        self.close_now()

    def detached(self):
        """The broker let go of this connection (it closed, or a takeover
        replaced it): nothing more is handled or sent."""
        self.state = CLOSED

    def connection_lost(self, now):
        """The network connection is gone, for whatever reason."""
        state = self.state
        self.state = CLOSED
        self._held = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        meter = self.meter
        if meter is not None and meter.timer is not None:
            meter.timer.cancel()
            meter.timer = None
        if self.address is not None:
            self.broker.admission.release(self.address)
            self.address = None
        self.outbox = []
        self.outbox_bytes = 0
        if state == CONNECTED:
            self.broker.detach(self, now)
