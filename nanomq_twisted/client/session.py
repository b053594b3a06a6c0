# -*- test-case-name: tests.unit.test_client_session,tests.protocol.test_client -*-
"""
``ClientSession``: the client side of MQTT 3.1, 3.1.1 and 5.0 towards one
server, without I/O.

It is fed the server's packets one by one with the current time and
leaves its answers as bytes for ``data_to_send``; time enters only as
``now``, and ``next_deadline``/``handle_timer`` say when it needs to be
woken (the aioquic contract).  So the whole client -- CONNECT, CONNACK,
keepalive, QoS 1/2 in both directions, topic aliases, the resend rules --
is tested by stepping ``now``, and the Twisted adapter
(client/protocol.py) only moves bytes and arms one timer.

What outlives a connection lives here too, since one session serves every
connection attempt of its owner: the QoS 1/2 messages in flight (one
``OutboundFlows``, core/outbound.py, the engine the broker's own sessions
use) and the inbound QoS 2 packet ids awaiting PUBREL.  After a
reconnect in which the server kept our session they are resent as they
were, with DUP, or PUBREL for those already PUBREC'd [MQTT-4.4.0-1];
otherwise they go back to the owner to be sent again as new messages.

The server breaking the protocol raises ``MqttError`` with the reason
code; the other ways a connection must end (refused, timed out, told to
go) raise a ``ClientClosing``.  The protocol maps both onto the wire in
one place.
"""

import secrets

from zope.interface import implementer

from ..core.outbound import Flow, OutboundFlows
from ..mqtt import reason_codes as rc
from ..mqtt.ack_codec import PUBACK_FIRST, PUBCOMP_FIRST, PUBREC_FIRST, PUBREL_FIRST, ack_bytes
from ..mqtt.codec import encode, encode_publish
from ..mqtt.errors import MqttError, ProtocolError
from ..mqtt.packets import (
    PUBACK,
    PUBCOMP,
    Connect,
    Disconnect,
    Pingreq,
    Subscribe,
    Unsubscribe,
)
from .interfaces import IClientSession
from .options import ClientStats

_PINGREQ = encode(Pingreq())


class ClientClosing(Exception):
    """The connection must end, and the server did not break the
    protocol.  ``abort``: close at once (the server may not be reading);
    ``quiet``: an expected end, logged at info level."""

    abort = False
    quiet = False


class ConnectRefused(ClientClosing):
    """CONNACK with a failure code."""

    def __init__(self, connack):
        super().__init__(f"CONNACK code 0x{connack.reason_code:02x}")
        self.connack = connack


class ServerTimeout(ClientClosing):
    """No CONNACK, or no PINGRESP, in time: a client that gets no
    PINGRESP within a reasonable time SHOULD close the connection (the
    Keep Alive section of both specifications)."""

    abort = True
    quiet = True


class ServerDisconnected(ClientClosing):
    """The server sent DISCONNECT (5.0)."""

    abort = True
    quiet = True

    def __init__(self, disconnect):
        super().__init__(f"the server sent DISCONNECT 0x{disconnect.reason_code:02x}")
        self.reason_code = disconnect.reason_code


@implementer(IClientSession)
class ClientSession:
    """The client towards one server, across its connections."""

    def __init__(self, options, stats=None, token=secrets.token_hex):
        self.options = options
        self.stats = stats if stats is not None else ClientStats()
        self.flows = OutboundFlows()
        #: Inbound QoS 2 packet ids delivered to the owner, awaiting PUBREL.
        self.incoming_qos2 = set()
        self._token = token
        self._generated_id = None
        self._out = []
        self._reset()

    def _reset(self):
        """Forget what belongs to one connection."""
        options = self.options
        self.level = options.level
        self.v5 = options.level == 5
        self.connected = False
        self.client_id = None
        self.keepalive = options.keepalive
        #: The send window: ours, or less if the server's Receive Maximum says so.
        self.window = options.window
        self.server_max_packet = None
        #: SUBSCRIBE/UNSUBSCRIBE packet id -> its topic filters, until acknowledged.
        self.requests = {}
        self._aliases = {}
        self._connack_deadline = None
        self._ping_at = None
        self._pong_deadline = None
        self._tick_at = None

    # -- connection --------------------------------------------------------

    def connect_packet(self):
        """The CONNECT for the current options."""
        options = self.options
        level = options.level
        client_id = options.client_id
        if not client_id and (level == 3 or not options.clean_start):
            # 3.1 needs an id, and a 3.1.1 session the server should keep
            # needs one it can find again [MQTT-3.1.3-7]; one per session,
            # so a reconnect finds it.
            if self._generated_id is None:
                self._generated_id = options.generated_id_prefix + self._token(4)
            client_id = self._generated_id
        return Connect(
            client_id=client_id,
            protocol_level=level,
            protocol_name="MQIsdp" if level == 3 else "MQTT",
            clean_start=options.clean_start,
            keepalive=int(options.keepalive),
            username=options.username,
            password=options.password,
            will=options.will,
            properties=options.properties if level == 5 else {},
            bridge=options.bridge and level != 5,
        )

    def connection_made(self, now):
        """A new connection: CONNECT is queued, CONNACK awaited."""
        self._reset()
        self._out = []
        connect = self.connect_packet()
        self.client_id = connect.client_id or None
        self._out.append(encode(connect))
        self._connack_deadline = now + self.options.connack_timeout
        return connect

    def connection_lost(self):
        was_connected = self.connected
        self._reset()
        self._out = []
        return was_connected

    def receive_connack(self, connack, now):
        if self.connected:
            raise ProtocolError("second CONNACK [MQTT-3.2.0-2]")
        self._connack_deadline = None
        if connack.reason_code:
            raise ConnectRefused(connack)
        options = self.options
        if connack.session_present and options.clean_start:
            raise ProtocolError("session present after a clean start [MQTT-3.2.2-4]")
        if self.v5:
            props = connack.properties
            self.window = min(self.window, props.get("receive_maximum", 65535))
            self.server_max_packet = props.get("maximum_packet_size")
            assigned = props.get("assigned_client_identifier")
            if assigned:
                self.client_id = assigned
            server_keepalive = props.get("server_keep_alive")
            if server_keepalive is not None:
                self.keepalive = server_keepalive  # [MQTT-3.2.2-21]
        self.connected = True
        if self.keepalive:
            self._ping_at = now + self.keepalive
        if options.retry_interval:
            self._tick_at = now + options.retry_interval
        if connack.session_present:
            return self._resend_all(now)
        # The server has no session: nothing in flight is known to it.
        self.incoming_qos2.clear()
        unsent = [flow.message for flow in self.flows.take_all()]
        self.stats.inflight = 0
        return unsent

    def _resend_all(self, now):
        unsent = []
        for flow in self.flows.due(now):
            flow.first_sent = now
            if not self._send_flow(flow):
                self.flows.discard(flow.packet_id)
                unsent.append(flow.message)
        self.stats.inflight = len(self.flows)
        return unsent

    def _require_connected(self, packet):
        if not self.connected:
            raise ProtocolError(f"packet type {packet.type} before CONNACK [MQTT-3.2.0-1]")

    # -- inbound -----------------------------------------------------------

    def receive_publish(self, publish):
        if not self.connected:
            self._require_connected(publish)
        topic = publish.topic
        props = publish.properties
        if props and self.v5:
            alias = props.get("topic_alias")
            if alias is not None:
                if alias > self.options.topic_alias_maximum:
                    raise MqttError(rc.TOPIC_ALIAS_INVALID,
                                    f"topic alias {alias} above our maximum [MQTT-3.3.2-11]")
                if topic:
                    self._aliases[alias] = topic
                else:
                    topic = self._aliases.get(alias)
                    if topic is None:
                        raise ProtocolError(f"unknown topic alias {alias}")
        self.stats.received += 1
        qos = publish.qos
        if qos == 1:
            self._out.append(ack_bytes(PUBACK_FIRST, publish.packet_id))
        elif qos == 2:
            packet_id = publish.packet_id
            self._out.append(ack_bytes(PUBREC_FIRST, packet_id))
            seen = self.incoming_qos2
            if packet_id in seen:
                return None  # delivered once already [MQTT-4.3.3-10]
            seen.add(packet_id)
        return topic

    def receive_ack(self, ack, now):
        if not self.connected:
            self._require_connected(ack)
        flows = self.flows
        packet_id = ack.packet_id
        ptype = ack.type
        if ptype == PUBACK:
            flow = flows.puback(packet_id)
        elif ptype == PUBCOMP:
            flow = flows.pubcomp(packet_id)
        else:
            flow, release = flows.pubrec(packet_id, ack.reason_code, now)
            if release:
                self._out.append(ack_bytes(PUBREL_FIRST, packet_id))
                return None
            if flow is None and ack.reason_code < 0x80:
                # Not ours (any more): release it so the server can finish.
                self._out.append(ack_bytes(
                    PUBREL_FIRST, packet_id, rc.PACKET_IDENTIFIER_NOT_FOUND, self.v5))
        if flow is None:
            return None
        self.stats.inflight = len(flows.inflight)
        return flow.message

    def receive_pubrel(self, pubrel):
        self._require_connected(pubrel)
        packet_id = pubrel.packet_id
        seen = self.incoming_qos2
        code = rc.SUCCESS if packet_id in seen else rc.PACKET_IDENTIFIER_NOT_FOUND
        seen.discard(packet_id)
        self._out.append(ack_bytes(PUBCOMP_FIRST, packet_id, code, self.v5))

    def receive_suback(self, ack):
        self._require_connected(ack)
        filters = self.requests.pop(ack.packet_id, ())
        return [f for f, code in zip(filters, ack.reason_codes) if code >= 0x80]

    def receive_pingresp(self, pingresp):
        self._require_connected(pingresp)
        self._pong_deadline = None

    def receive_disconnect(self, disconnect):
        raise ServerDisconnected(disconnect)

    # -- outbound ----------------------------------------------------------

    def has_room(self):
        """True when another QoS 1/2 message fits the send window."""
        return len(self.flows.inflight) < self.window

    def _publish_bytes(self, message, qos, dup, packet_id):
        data = encode_publish(
            message.topic, message.payload, qos, message.retain, dup, packet_id,
            message.properties if self.v5 else None, self.level,
        )
        limit = self.server_max_packet
        if limit is not None and len(data) > limit:
            return None  # never above the server's maximum [MQTT-3.2.2-15]
        stats = self.stats
        stats.sent += 1
        stats.sent_bytes += len(data)
        return data

    def _send_flow(self, flow):
        """Resend one flow: PUBREL once released, else PUBLISH with DUP."""
        if flow.released:
            self._out.append(ack_bytes(PUBREL_FIRST, flow.packet_id))
            return True
        data = self._publish_bytes(flow.message, flow.qos, True, flow.packet_id)
        if data is None:
            return False
        self._out.append(data)
        return True

    def publish(self, message, now):
        """Queue a PUBLISH of ``message``; False when it cannot go (too
        large for the server, or no packet id free).  A QoS 1/2 message
        is in flight from here until ``receive_ack`` returns it."""
        qos = message.qos
        if not qos:
            data = self._publish_bytes(message, 0, False, None)
            if data is None:
                return False
            self._out.append(data)
            return True
        flows = self.flows
        packet_id = flows.start(Flow(message, qos, message.retain), now, self.requests or None)
        if packet_id is None:
            return False
        data = self._publish_bytes(message, qos, False, packet_id)
        if data is None:
            flows.discard(packet_id)
            return False
        self._out.append(data)
        self.stats.inflight = len(flows.inflight)
        return True

    def _request_id(self, topic_filters):
        packet_id = self.flows.allocate(self.requests)
        if packet_id is None:
            raise MqttError(rc.QUOTA_EXCEEDED, "no free packet identifier")
        self.requests[packet_id] = list(topic_filters)
        return packet_id

    def subscribe(self, subscriptions, properties=None):
        """Queue SUBSCRIBE for ``SubscriptionOptions``; its packet id."""
        packet_id = self._request_id(s.topic_filter for s in subscriptions)
        packet = Subscribe(packet_id, tuple(subscriptions), properties or {})
        self._out.append(encode(packet, self.level))
        return packet_id

    def unsubscribe(self, topic_filters, properties=None):
        packet_id = self._request_id(topic_filters)
        packet = Unsubscribe(packet_id, tuple(topic_filters), properties or {})
        self._out.append(encode(packet, self.level))
        return packet_id

    def disconnect(self, reason_code=rc.NORMAL_DISCONNECTION):
        self._out.append(encode(Disconnect(reason_code), self.level))

    def data_to_send(self):
        """The queued bytes, in order; the caller must not keep or change
        the list (an empty one is returned as it is, to cost nothing)."""
        out = self._out
        if out:
            self._out = []
        return out

    # -- time --------------------------------------------------------------

    def next_deadline(self):
        """The earliest time ``handle_timer`` has something to do."""
        if not self.connected:
            return self._connack_deadline
        times = [t for t in (self._pong_deadline, self._tick_at) if t is not None]
        if self._ping_at is not None and self._pong_deadline is None:
            times.append(self._ping_at)
        return min(times) if times else None

    def handle_timer(self, now):
        """Do what is due at ``now``; returns the messages given up.
        Raises ``ServerTimeout`` when the server stopped answering."""
        if not self.connected:
            deadline = self._connack_deadline
            if deadline is not None and now >= deadline:
                raise ServerTimeout(f"no CONNACK in {self.options.connack_timeout}s")
            return []
        if self._pong_deadline is not None:
            if now >= self._pong_deadline:
                raise ServerTimeout("no PINGRESP")
        elif self._ping_at is not None and now >= self._ping_at:
            # A PINGREQ every keepalive, traffic or not: it is also how we
            # learn that the server is gone [MQTT-3.1.2-20].
            self._out.append(_PINGREQ)
            self._ping_at = now + self.keepalive
            timeout = self.options.ping_timeout
            self._pong_deadline = now + (self.keepalive if timeout is None else timeout)
        if self._tick_at is None or now < self._tick_at:
            return []
        self._tick_at = now + self.options.retry_interval
        return self._retry(now)

    def _retry(self, now):
        options = self.options
        flows = self.flows
        given_up = []
        if options.give_up_after is not None:
            oldest = now - options.give_up_after
            for flow in [f for f in flows.values() if f.first_sent <= oldest]:
                flows.discard(flow.packet_id)
                given_up.append(flow.message)
        if options.retry_wait is not None:
            for flow in flows.due(now, now - options.retry_wait, options.retry_limit):
                if not self._send_flow(flow):
                    flows.discard(flow.packet_id)
                    given_up.append(flow.message)
        self.stats.inflight = len(flows)
        return given_up
