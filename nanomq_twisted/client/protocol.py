# -*- test-case-name: tests.protocol.test_client,tests.protocol.test_bridge_client -*-
"""
``MQTTClientProtocol``: the broker's MQTT client on a Twisted transport.

It only moves bytes and time: ``dataReceived`` feeds ``Decoder.feed`` and
hands each packet, by its packet type code, to the ``ClientSession``
(client/session.py), which decides everything; whatever the session
queued is written at once, and one DelayedCall is re-armed at the
session's ``next_deadline``.  What a packet means for the owner (an
`IClientOwner`: a bridge link, a republish rule's client) is told through
the owner's methods; what the owner wants sent goes through this
protocol's `IClientConnection` methods.  TCP, TLS and QUIC (a stream of
transport/quic/stream.py) carry it unchanged.

``_end`` is the one place where a reason to stop becomes wire behaviour:
an ``MqttError`` (the server broke the protocol) is logged with its
reason code and, in 5.0 once connected, sent as DISCONNECT before the
close (section 4.13); a refused CONNACK closes; a timeout or a DISCONNECT
from the server aborts.  An exception that is neither is a bug: logged
with its traceback, the connection dropped.

The protocol is a streaming producer on its transport: while Twisted's
buffer is above its high-water mark the connection is ``congested`` and
``writable()`` says no; ``resumeProducing`` tells the owner it may send
again.
"""

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from ..mqtt import reason_codes as rc
from ..mqtt.codec import Decoder
from ..mqtt.errors import MqttError, ProtocolError
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
)
from .interfaces import IClientConnection
from .session import ClientClosing


@implementer(IPushProducer, IClientConnection)
class MQTTClientProtocol(Protocol):
    """One connection of an owner to its server."""

    _log = Logger()

    def __init__(self, owner, session, clock):
        self.owner = owner
        self.session = session
        self.clock = clock
        self.level = session.options.level
        self.client_id = None
        self.connected = False
        self.congested = False
        self.decoder = None
        self._closing = False
        self._timer = None
        self._timer_at = None

    @property
    def v5(self):
        return self.level == 5

    # -- Twisted protocol ------------------------------------------------

    def connectionMade(self):
        try:
            self.transport.setTcpNoDelay(True)
        except (AttributeError, NotImplementedError, OSError):
            pass
        session = self.session
        self.level = session.options.level
        self.decoder = Decoder(protocol_level=self.level,
                               max_packet_size=session.options.max_packet_size)
        session.connection_made(self.clock.seconds())
        self.client_id = session.client_id
        self._flush()
        self._arm()
        self.transport.registerProducer(self, True)

    def dataReceived(self, data):
        session = self.session
        session.stats.received_bytes += len(data)
        now = self.clock.seconds()
        handlers = _HANDLERS
        try:
            for packet in self.decoder.feed(data):
                handler = handlers.get(packet.type)
                if handler is None:
                    raise ProtocolError(f"packet type {packet.type} is not for a client")
                handler(self, packet, now)
                self._flush()
                if self._closing:
                    return
        except (MqttError, ClientClosing) as error:
            self._end(error)
            return
        except Exception:  # noqa: BLE001 -- a bug: logged with its traceback, then dropped
            self._log.failure("{who}: internal error handling a packet from {server}",
                              who=self.owner.client_label, server=self.owner.server)
            self._end(MqttError(rc.UNSPECIFIED_ERROR, "internal error"), logged=True)
            return
        self._arm()

    def connectionLost(self, reason):
        self._closing = True
        self._cancel_timer()
        was_connected = self.session.connection_lost()
        self.connected = False
        self.owner.disconnected(self, reason, was_connected)

    # -- packets from the server (dispatched by type code, _HANDLERS) ------

    def _on_connack(self, connack, now):
        unsent = self.session.receive_connack(connack, now)
        self.connected = True
        self.client_id = self.session.client_id
        self.owner.connected(self, connack, unsent)

    def _on_publish(self, publish, now):
        topic = self.session.receive_publish(publish)
        if topic is not None:
            self.owner.message(self, topic, publish)

    def _on_ack(self, ack, now):
        message = self.session.receive_ack(ack, now)
        if message is not None:
            self.owner.delivered(self, message)

    def _on_pubrel(self, pubrel, now):
        self.session.receive_pubrel(pubrel)

    def _on_suback(self, ack, now):
        refused = self.session.receive_suback(ack)
        if refused:
            self._log.warn(
                "{who}: the server refused {what} of {topics}",
                who=self.owner.client_label,
                what="SUBSCRIBE" if ack.type == SUBACK else "UNSUBSCRIBE",
                topics=refused,
            )

    def _on_pingresp(self, pingresp, now):
        self.session.receive_pingresp(pingresp)

    def _on_disconnect(self, disconnect, now):
        self.session.receive_disconnect(disconnect)

    # -- ending ------------------------------------------------------------

    def _end(self, error, logged=False):
        """The single mapping from a reason to stop to the wire."""
        if self._closing:
            return
        owner = self.owner
        if isinstance(error, MqttError):
            if not logged:
                self._log.warn(
                    "{who}: closing the connection to {server}: {error} (reason 0x{code:02x})",
                    who=owner.client_label, server=owner.server,
                    error=error.message, code=error.reason_code,
                )
            if self.v5 and self.connected:
                self.session.disconnect(error.reason_code)
                self._flush()
            self._closing = True
            self.transport.loseConnection()
            return
        log = self._log.info if error.quiet else self._log.warn
        log("{who}: closing the connection to {server}: {error}",
            who=owner.client_label, server=owner.server, error=str(error))
        self._closing = True
        if error.abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    # -- time --------------------------------------------------------------

    def _cancel_timer(self):
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._timer_at = None

    def _arm(self):
        """One DelayedCall at the session's next deadline."""
        deadline = self.session.next_deadline()
        if deadline == self._timer_at:
            return
        self._cancel_timer()
        if deadline is not None:
            delay = max(0.0, deadline - self.clock.seconds())
            self._timer = self.clock.callLater(delay, self._on_timer)
            self._timer_at = deadline

    def _on_timer(self):
        deadline = self._timer_at
        self._timer = self._timer_at = None
        if self._closing:
            return
        # Never earlier than the deadline, whatever the float arithmetic
        # of callLater did (aioquic's handle_timer(max(t, now))).
        now = max(deadline, self.clock.seconds())
        try:
            given_up = self.session.handle_timer(now)
        except (MqttError, ClientClosing) as error:
            self._end(error)
            return
        self._flush()
        for message in given_up:
            self.owner.gave_up(self, message)
        if self.connected and not self._closing:
            self.owner.writable(self)
        if not self._closing:
            self._arm()

    # -- IClientConnection (what the owner asks) ---------------------------

    def _flush(self):
        out = self.session.data_to_send()
        if out:
            if len(out) == 1:
                self.transport.write(out[0])
            else:
                self.transport.writeSequence(out)

    def writable(self):
        return self.connected and not self.congested and not self._closing

    def has_room(self):
        return self.session.has_room()

    def publish(self, message, now=None):
        if not self.connected or self._closing:
            return False
        session = self.session
        sent = session.publish(message, self.clock.seconds() if now is None else now)
        self._flush()
        return sent

    def subscribe(self, subscriptions, properties=None):
        if not subscriptions:
            return None
        packet_id = self.session.subscribe(subscriptions, properties)
        self._flush()
        return packet_id

    def unsubscribe(self, topic_filters, properties=None):
        if not topic_filters:
            return None
        packet_id = self.session.unsubscribe(topic_filters, properties)
        self._flush()
        return packet_id

    def pending_requests(self):
        return self.session.requests

    def disconnect(self):
        if self._closing:
            return
        if self.connected:
            self.session.disconnect()
            self._flush()
        self._closing = True
        self.transport.loseConnection()

    def abort(self):
        if not self._closing:
            self._closing = True
            self.transport.abortConnection()

    # -- IPushProducer -------------------------------------------------------

    def pauseProducing(self):
        self.congested = True

    def resumeProducing(self):
        self.congested = False
        if self.connected and not self._closing:
            self.owner.writable(self)

    def stopProducing(self):
        pass


_HANDLERS = {
    CONNACK: MQTTClientProtocol._on_connack,
    PUBLISH: MQTTClientProtocol._on_publish,
    PUBACK: MQTTClientProtocol._on_ack,
    PUBREC: MQTTClientProtocol._on_ack,
    PUBCOMP: MQTTClientProtocol._on_ack,
    PUBREL: MQTTClientProtocol._on_pubrel,
    SUBACK: MQTTClientProtocol._on_suback,
    UNSUBACK: MQTTClientProtocol._on_suback,
    PINGRESP: MQTTClientProtocol._on_pingresp,
    DISCONNECT: MQTTClientProtocol._on_disconnect,
}


class MQTTClientFactory(Factory):
    """Builds the protocol of each connection attempt of one owner; every
    attempt shares the owner's ``ClientSession``."""

    protocol = MQTTClientProtocol

    def __init__(self, owner, session, clock):
        self.owner = owner
        self.session = session
        self.clock = clock

    def buildProtocol(self, addr):
        protocol = self.protocol(self.owner, self.session, self.clock)
        protocol.factory = self
        return protocol

