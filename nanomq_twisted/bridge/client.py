# -*- test-case-name: tests.protocol.test_bridge_client -*-
"""
``MQTTBridgeProtocol``: the client side of MQTT, spoken by a bridge to its
remote broker, on our own codec.

The protocol is thin: it frames packets, runs the QoS 1/2 handshakes in
both directions, answers the keepalive and drives one periodic tick (every
``resend_interval``, as NanoMQ's client timer) that sends PINGREQ when due,
closes a connection whose PINGREQ went unanswered for a tick, and resends
the oldest unacknowledged message.  What to send, what was received and
what survives a reconnect belong to its *owner* (`bridge.Bridge`), which
provides ``config`` (a ``BridgeConfig``), ``session`` (a
`session.BridgeSession`) and the callbacks ``connected``, ``disconnected``,
``message_received`` and ``pump``.
"""

import secrets

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from ..mqtt.codec import Decoder, encode, encode_publish
from ..mqtt.errors import MqttError
from ..mqtt.packets import (
    CONNACK,
    DISCONNECT,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    UNSUBACK,
    Connect,
    Disconnect,
    Pingreq,
    Puback,
    Pubcomp,
    Pubrec,
    Pubrel,
    Subscribe,
    SubscriptionOptions,
    Unsubscribe,
    Will,
)
from .session import AWAIT_COMP

#: Seconds to wait for CONNACK after the transport connected.
CONNACK_TIMEOUT = 10.0

_PINGREQ = encode(Pingreq())


def connect_packet(config):
    """The CONNECT a bridge sends, from its ``BridgeConfig``."""
    level = config.proto_ver
    client_id = config.clientid or ""
    if not client_id and (level == 3 or not config.clean_start):
        # 3.1 and persistent 3.1.1 sessions need an id; make a stable-looking one.
        client_id = "nanomq-bridge-" + secrets.token_hex(4)
    properties = {}
    if level == 5 and config.conn_properties is not None:
        cp = config.conn_properties
        if cp.maximum_packet_size:
            properties["maximum_packet_size"] = cp.maximum_packet_size
        if cp.receive_maximum != 65535:
            properties["receive_maximum"] = cp.receive_maximum
        if cp.topic_alias_maximum:
            properties["topic_alias_maximum"] = cp.topic_alias_maximum
        if cp.request_problem_information != 1:
            properties["request_problem_information"] = cp.request_problem_information
        if cp.request_response_information:
            properties["request_response_information"] = cp.request_response_information
        if cp.session_expiry_interval:
            properties["session_expiry_interval"] = cp.session_expiry_interval
        if cp.user_property:
            properties["user_property"] = list(cp.user_property)
    will = None
    if config.will is not None and config.will.topic and config.will.payload is not None:
        will = Will(
            config.will.topic,
            config.will.payload.encode("utf-8"),
            config.will.qos,
            config.will.retain,
            _will_properties(config.will.properties) if level == 5 else {},
        )
    return Connect(
        client_id=client_id,
        protocol_level=level,
        protocol_name="MQIsdp" if level == 3 else "MQTT",
        clean_start=config.clean_start,
        keepalive=int(config.keepalive),
        username=config.username,
        password=None if config.password is None else config.password.encode("utf-8"),
        will=will,
        properties=properties,
        bridge=level != 5 and config.no_local_v4,
    )


def _will_properties(wp):
    if wp is None:
        return {}
    out = {}
    if wp.payload_format_indicator:
        out["payload_format_indicator"] = wp.payload_format_indicator
    if wp.message_expiry_interval:
        out["message_expiry_interval"] = wp.message_expiry_interval
    if wp.content_type:
        out["content_type"] = wp.content_type
    if wp.response_topic:
        out["response_topic"] = wp.response_topic
    if wp.correlation_data:
        out["correlation_data"] = wp.correlation_data.encode("utf-8")
    if wp.will_delay_interval:
        out["will_delay_interval"] = wp.will_delay_interval
    if wp.user_property:
        out["user_property"] = list(wp.user_property)
    return out


def subscription_options(entries):
    """``SubscriptionOptions`` for ``BridgeSubscription`` entries."""
    return tuple(
        SubscriptionOptions(
            entry.remote_topic,
            entry.qos,
            bool(entry.nolocal),
            bool(entry.retain_as_published),
            entry.retain_handling,
        )
        for entry in entries
    )


def subscribe_properties(sub_properties):
    """v5 SUBSCRIBE properties from ``sub_properties``."""
    if sub_properties is None:
        return {}
    out = {}
    if sub_properties.identifier:
        out["subscription_identifier"] = sub_properties.identifier
    if sub_properties.user_property:
        out["user_property"] = list(sub_properties.user_property)
    return out


class ConnectRefused(Exception):
    """The remote answered CONNECT with a non-zero CONNACK code."""


@implementer(IPushProducer)
class MQTTBridgeProtocol(Protocol):
    """One connection of a bridge to its remote broker."""

    _log = Logger()

    def __init__(self, owner, clock, connack_timeout=CONNACK_TIMEOUT):
        self.owner = owner
        self.clock = clock
        self.connack_timeout = connack_timeout
        # The server being dialled (``hybrid_bridging`` rotates it).
        self.config = owner.current
        self.level = self.config.proto_ver
        self.v5 = self.level == 5
        self.connected = False
        self.congested = False
        self.connack = None
        self.client_id = None
        self.window = owner.session.window
        self.remote_max_packet = None
        self._aliases = {}
        self._control = {}  # SUBSCRIBE/UNSUBSCRIBE packet id -> topics
        self._tick_call = None
        self._connack_call = None
        self._ping_outstanding = False
        self._last_ping = 0.0
        self._closing = False

    # -- Twisted protocol ------------------------------------------------

    def connectionMade(self):
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, NotImplementedError, OSError):
            pass
        limit = None
        cp = self.config.conn_properties
        if self.v5 and cp is not None and cp.maximum_packet_size:
            limit = cp.maximum_packet_size
        self.decoder = Decoder(protocol_level=self.level, max_packet_size=limit)
        connect = connect_packet(self.config)
        self.client_id = connect.client_id or None
        self._write(encode(connect))
        self._connack_call = self.clock.callLater(self.connack_timeout, self._connack_timed_out)
        self.transport.registerProducer(self, True)

    def dataReceived(self, data):
        self.owner.session.stats.received_bytes += len(data)
        try:
            for packet in self.decoder.feed(data):
                self._handle(packet)
                if self._closing:
                    return
        except (MqttError, ConnectRefused) as error:
            self._log.warn(
                "Bridge {name}: closing the connection to {server}: {error}",
                name=self.config.name,
                server=self.config.server,
                error=error,
            )
            self.abort()
        except Exception:  # noqa: BLE001 -- logged; the connection is dropped
            self._log.failure("Bridge {name}: internal error", name=self.config.name)
            self.abort()

    def connectionLost(self, reason):
        self._closing = True
        for name in ("_tick_call", "_connack_call"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        was_connected, self.connected = self.connected, False
        self.owner.disconnected(self, was_connected, reason)

    # -- sending -------------------------------------------------------------

    def _write(self, data):
        self.transport.write(data)

    def send_publish(self, item):
        """Write one upward message (QoS 0, or in flight with a packet id)."""
        if item.qos and item.state == AWAIT_COMP:
            self._write(encode(Pubrel(item.packet_id), self.level))
            return True
        data = encode_publish(
            item.topic,
            item.payload,
            item.qos,
            item.retain,
            item.dup,
            item.packet_id,
            item.properties if self.v5 else None,
            self.level,
        )
        if self.remote_max_packet is not None and len(data) > self.remote_max_packet:
            return False
        self._write(data)
        stats = self.owner.session.stats
        stats.sent += 1
        stats.sent_bytes += len(data)
        return True

    def subscribe(self, entries, properties=None):
        """Send one SUBSCRIBE for ``BridgeSubscription`` entries."""
        if not entries:
            return None
        packet_id = self.owner.session.next_packet_id(self._control)
        topics = [entry.remote_topic for entry in entries]
        self._control[packet_id] = topics
        packet = Subscribe(packet_id, subscription_options(entries), properties or {})
        self._write(encode(packet, self.level))
        return packet_id

    def unsubscribe(self, topics, properties=None):
        if not topics:
            return None
        packet_id = self.owner.session.next_packet_id(self._control)
        self._control[packet_id] = list(topics)
        self._write(encode(Unsubscribe(packet_id, tuple(topics), properties or {}), self.level))
        return packet_id

    def busy_ids(self):
        return self._control

    def disconnect(self):
        """A clean DISCONNECT, then close."""
        if self._closing:
            return
        if self.connected:
            self._write(encode(Disconnect(), self.level))
        self._closing = True
        self.transport.loseConnection()

    def abort(self):
        if not self._closing:
            self._closing = True
            self.transport.abortConnection()

    # -- receiving -----------------------------------------------------------

    def _handle(self, packet):
        ptype = packet.type
        if ptype == PUBLISH:
            self._on_publish(packet)
        elif ptype == PUBACK or ptype == PUBCOMP:
            if self.owner.session.acknowledged(packet.packet_id) is not None:
                self.owner.pump()
        elif ptype == PUBREC:
            if packet.reason_code >= 0x80:
                # v5 refusal: the message is finished, no PUBREL.
                if self.owner.session.acknowledged(packet.packet_id) is not None:
                    self.owner.pump()
                return
            self.owner.session.received_pubrec(packet.packet_id, self.clock.seconds())
            self._write(encode(Pubrel(packet.packet_id), self.level))
        elif ptype == PUBREL:
            self.owner.session.incoming_qos2.discard(packet.packet_id)
            self._write(encode(Pubcomp(packet.packet_id), self.level))
        elif ptype == PINGRESP:
            self._ping_outstanding = False
        elif ptype == CONNACK:
            self._on_connack(packet)
        elif ptype == SUBACK or ptype == UNSUBACK:
            topics = self._control.pop(packet.packet_id, None)
            failed = [
                topic
                for topic, code in zip(topics or (), packet.reason_codes)
                if code >= 0x80
            ]
            if failed:
                self._log.warn(
                    "Bridge {name}: the remote refused {what} of {topics}",
                    name=self.config.name,
                    what="SUBSCRIBE" if ptype == SUBACK else "UNSUBSCRIBE",
                    topics=failed,
                )
        elif ptype == DISCONNECT:
            self._log.info(
                "Bridge {name}: remote sent DISCONNECT 0x{code:02x}",
                name=self.config.name,
                code=packet.reason_code,
            )
            self.abort()
        else:
            raise MqttError(0x82, f"unexpected packet type {ptype} from the remote")

    def _on_connack(self, connack):
        if self.connack is not None:
            raise MqttError(0x82, "second CONNACK")
        if self._connack_call is not None:
            self._connack_call.cancel()
            self._connack_call = None
        self.connack = connack
        if connack.reason_code:
            raise ConnectRefused(f"CONNACK code 0x{connack.reason_code:02x}")
        props = connack.properties
        if self.v5:
            self.window = min(self.window, props.get("receive_maximum", 65535))
            self.remote_max_packet = props.get("maximum_packet_size")
            assigned = props.get("assigned_client_identifier")
            if assigned:
                self.client_id = assigned
        self.connected = True
        now = self.clock.seconds()
        self._last_ping = now
        self._arm_tick()
        self.owner.connected(self, connack)

    def _on_publish(self, packet):
        topic = packet.topic
        props = packet.properties
        if self.v5 and props:
            alias = props.get("topic_alias")
            if alias is not None:
                if topic:
                    self._aliases[alias] = topic
                else:
                    topic = self._aliases.get(alias)
                    if topic is None:
                        raise MqttError(0x82, f"unknown topic alias {alias}")
        stats = self.owner.session.stats
        stats.received += 1
        qos = packet.qos
        if qos == 2:
            seen = self.owner.session.incoming_qos2
            if packet.packet_id not in seen:
                seen.add(packet.packet_id)
                self.owner.message_received(topic, packet, self)
            self._write(encode(Pubrec(packet.packet_id), self.level))
            return
        self.owner.message_received(topic, packet, self)
        if qos == 1:
            self._write(encode(Puback(packet.packet_id), self.level))

    # -- timers --------------------------------------------------------------

    def tick_interval(self):
        interval = self.config.resend_interval / 1000.0
        keepalive = self.config.keepalive
        if keepalive:
            # A tick longer than the keepalive would let the remote time us out.
            interval = min(interval, keepalive / 2.0)
        return max(interval, 0.05)

    def _arm_tick(self):
        self._tick_call = self.clock.callLater(self.tick_interval(), self._tick)

    def _tick(self):
        self._tick_call = None
        if self._closing:
            return
        now = self.clock.seconds()
        keepalive = self.config.keepalive
        if keepalive:
            if self._ping_outstanding:
                self._log.info(
                    "Bridge {name}: no PINGRESP from {server}, reconnecting",
                    name=self.config.name,
                    server=self.config.server,
                )
                self.abort()
                return
            if now - self._last_ping >= keepalive:
                self._last_ping = now
                self._ping_outstanding = True
                self._write(_PINGREQ)
        item = self.owner.session.due_for_resend(
            now, self.config.resend_wait / 1000.0, self.config.cancel_timeout / 1000.0
        )
        if item is not None:
            self.send_publish(item)
        self.owner.pump()
        self._arm_tick()

    def _connack_timed_out(self):
        self._connack_call = None
        self._log.warn(
            "Bridge {name}: no CONNACK from {server} in {timeout}s",
            name=self.config.name,
            server=self.config.server,
            timeout=self.connack_timeout,
        )
        self.abort()

    # -- IPushProducer -------------------------------------------------------

    def pauseProducing(self):
        self.congested = True

    def resumeProducing(self):
        self.congested = False
        if self.connected and not self._closing:
            self.owner.pump()

    def stopProducing(self):
        pass


class BridgeClientFactory(Factory):
    """Builds the protocol of each connection attempt of one bridge."""

    def __init__(self, owner, clock):
        self.owner = owner
        self.clock = clock

    def buildProtocol(self, addr):
        protocol = MQTTBridgeProtocol(self.owner, self.clock)
        protocol.factory = self
        return protocol
