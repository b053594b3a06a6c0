# -*- test-case-name: tests.protocol.test_protocol -*-
"""
``MQTTServerProtocol``: bytes in, the pure core, bytes out.

This is the only place where MQTT meets Twisted for a client connection.
It feeds ``Decoder.feed`` into ``ClientConnection.receive``, implements the
core's *sink* (``write``/``close``/``congested``), enforces the keepalive
and CONNECT deadlines with ``DelayedCall``s, and holds the single mapping
from ``MqttError`` to what goes on the wire (like ``read_handle.c``'s tail
in Mosquitto): a v5 client gets DISCONNECT with the reason code, a 3.x
client a plain close, a CONNECT with an unknown protocol level a CONNACK
0x01 [MQTT-3.1.2-2].

Every transport (TCP, TLS, WebSocket, QUIC) carries this class unchanged.

Backpressure: the protocol registers itself as a streaming producer on its
own transport.  When the transport's buffer passes its high-water mark
(64 KiB), Twisted calls ``pauseProducing`` and we stop reading from this
client.  That mark is crossed by any burst -- one large read of a fast
publisher easily produces more than 64 KiB for one subscriber in a single
reactor turn -- so it alone does not make a consumer "slow".  Only when
another ``SLOW_CONSUMER_BYTES`` have been written while paused is the sink
marked congested: the core then drops QoS 0 and queues QoS 1/2 for this
client (bounded by ``max_mqueue_len``), counting both, so one stuck
subscriber never stalls the broker or grows memory without bound.
``resumeProducing`` clears the state and drains the session's queue.

Connection limit (``max_connections`` of a tcp/ssl listener, 0 = none):
the factory counts its open connections.  One accepted while the listener
is at its limit is marked ``over_limit``: its CONNECT is answered with
CONNACK 0x97 "Quota exceeded" (v5) or 0x03 "Server unavailable" (3.x) and
the connection is closed; it never reaches the core.  Until it sends
CONNECT it is bounded by the CONNECT timeout like any other.
"""

from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from ..core.connection import AUTHENTICATING, CONNECTED, NEW, ClientConnection
from ..mqtt.codec import Decoder
from ..mqtt.errors import MqttError
from ..mqtt.packets import MQTT_5

#: A client must send CONNECT within this many seconds of connecting.
CONNECT_TIMEOUT = 10.0

#: Bytes written to a paused transport before its client counts as a slow
#: consumer (see the module docstring).
SLOW_CONSUMER_BYTES = 4 * 1024 * 1024


@implementer(IPushProducer)
class MQTTServerProtocol(Protocol):
    """One MQTT client connection on any stream transport."""

    _log = Logger()

    def __init__(self, broker, clock, listener="default", connect_timeout=CONNECT_TIMEOUT):
        self.broker = broker
        self.clock = clock
        self.listener = listener
        self.connect_timeout = connect_timeout
        self.congested = False
        #: Accepted while the listener was at ``max_connections``.
        self.over_limit = False
        self._paused = False
        self._paused_bytes = 0
        self.conn = None
        self.decoder = None
        self._last_rx = 0.0
        self._keepalive_call = None
        self._connect_call = None
        self._closing = False
        self._counted = False
        #: The client certificate's CN when the TLS listener has
        #: ``use_identity_as_username`` (set before ``makeConnection``);
        #: the core uses it as the user name.
        self.tls_identity = None
        #: The verified client certificate's CN and subject (one-line
        #: form) over TLS/WSS, "" otherwise; for HTTP auth ``%C``/``%d``.
        self.tls_common_name = ""
        self.tls_subject = ""

    # -- Twisted protocol ------------------------------------------------

    def connectionMade(self):
        transport = self.transport
        try:
            transport.setTcpNoDelay(True)
        except (AttributeError, NotImplementedError, OSError):
            pass
        peer = transport.getPeer()
        host = getattr(peer, "host", None)
        port = getattr(peer, "port", None)
        self.conn = ClientConnection(self.broker, self, (host, port), self.listener)
        self.decoder = Decoder(max_packet_size=self.broker.config.max_packet_size)
        self._last_rx = self.clock.seconds()
        self._connect_call = self.clock.callLater(self.connect_timeout, self._connect_timed_out)
        transport.registerProducer(self, True)

    def dataReceived(self, data):
        now = self.clock.seconds()
        self._last_rx = now
        self.broker.stats.bytes_received += len(data)
        conn = self.conn
        # Over ``max_connections`` the first packet (the decoder guarantees
        # it is CONNECT) is refused; otherwise the loop pays nothing for it.
        receive = self._refuse_over_limit if self.over_limit else conn.receive
        try:
            for packet in self.decoder.feed(data):
                receive(packet, now)
                if self._closing:
                    return
        except MqttError as error:
            self._protocol_error(error, now)
            return
        except Exception:  # noqa: BLE001 -- logged with its traceback, then 0x80
            self._log.failure(
                "Internal error handling a packet from {peer}", peer=self.conn.peer
            )
            self._protocol_error(MqttError(0x80, "internal error"), now)
            return
        if self._connect_call is not None and conn.state != NEW:
            self._connect_call.cancel()
            self._connect_call = None
            # Also while an asynchronous authenticator is still answering:
            # keepalive counts from CONNECT [MQTT-3.1.2-24], and nothing
            # would arm it once ``auth_done`` runs outside dataReceived.
            if conn.state in (CONNECTED, AUTHENTICATING):
                self._arm_keepalive(now)

    def connectionLost(self, reason):
        self._closing = True
        factory = getattr(self, "factory", None)
        if factory is not None and self._counted:
            self._counted = False
            factory.open_connections -= 1
        for name in ("_keepalive_call", "_connect_call"):
            call = getattr(self, name)
            if call is not None and call.active():
                call.cancel()
            setattr(self, name, None)
        if self.conn is not None:
            self.conn.connection_lost(self.clock.seconds())

    # -- the core's sink ---------------------------------------------------

    def write(self, data):
        if self._paused:
            self._paused_bytes += len(data)
            if self._paused_bytes > SLOW_CONSUMER_BYTES:
                self.congested = True
        self.transport.write(data)

    def close(self):
        if not self._closing:
            self._closing = True
            self.transport.loseConnection()

    # -- errors ------------------------------------------------------------

    def _protocol_error(self, error, now):
        """The one place an ``MqttError`` becomes wire behaviour."""
        conn = self.conn
        self._log.info(
            "Closing {client} from {peer}: {message} (reason 0x{code:02x})",
            client=conn.client_id,
            peer=conn.peer,
            message=error.message,
            code=error.reason_code,
        )
        if conn.state == NEW and error.reason_code == 0x84:
            # [MQTT-3.1.2-2]: 3.1.1 CONNACK "unacceptable protocol level".
            self.transport.write(b"\x20\x02\x00\x01")
        conn.server_disconnect(error.reason_code, now, error.message)
        self.close()

    def _refuse_over_limit(self, connect, now):
        """``max_connections`` reached: CONNACK 0x97 (v5) / 0x03 (3.x)."""
        self._log.info(
            "Refusing {peer}: listener {listener} is at max_connections",
            peer=self.conn.peer, listener=self.listener,
        )
        if connect.protocol_level == MQTT_5:
            self.transport.write(b"\x20\x03\x00\x97\x00")
        else:
            self.transport.write(b"\x20\x02\x00\x03")
        self.close()

    # -- timers ------------------------------------------------------------

    def _connect_timed_out(self):
        self._connect_call = None
        self._log.info("No CONNECT from {peer} in time", peer=self.conn.peer)
        self.close()

    def _arm_keepalive(self, now):
        timeout = self.conn.keepalive_timeout
        if timeout:
            self._keepalive_call = self.clock.callLater(timeout, self._keepalive_check)

    def _keepalive_check(self):
        """Fires at most once per timeout: instead of pushing a deadline back
        on every packet, compare with the time of the last read."""
        self._keepalive_call = None
        now = self.clock.seconds()
        timeout = self.conn.keepalive_timeout
        idle = now - self._last_rx
        if idle >= timeout:
            self.conn.keepalive_expired(now)
            self.close()
        else:
            self._keepalive_call = self.clock.callLater(timeout - idle, self._keepalive_check)

    # -- IPushProducer (our transport tells us its buffer is full) ---------

    def pauseProducing(self):
        self._paused = True
        self.transport.pauseProducing()

    def resumeProducing(self):
        self._paused = False
        self._paused_bytes = 0
        self.congested = False
        if self._closing:
            return
        self.transport.resumeProducing()
        session = self.conn.session if self.conn is not None else None
        if session is not None and session.conn is self.conn:
            session.pump(self.clock.seconds())

    def stopProducing(self):
        pass


class MQTTServerFactory(Factory):
    """Builds ``MQTTServerProtocol``s that share one broker.

    ``max_connections`` (0 = unlimited) caps the connections open at once
    on this listener (see the module docstring); ``connect_timeout`` is the
    CONNECT deadline of its connections.
    """

    connect_timeout = CONNECT_TIMEOUT

    def __init__(self, broker, clock, listener="default", max_connections=0):
        self.broker = broker
        self.clock = clock
        self.listener = listener
        self.max_connections = max_connections
        self.open_connections = 0

    def buildProtocol(self, addr):
        protocol = MQTTServerProtocol(self.broker, self.clock, self.listener,
                                      self.connect_timeout)
        protocol.factory = self
        limit = self.max_connections
        if limit and self.open_connections >= limit:
            protocol.over_limit = True
        else:
            protocol._counted = True
            self.open_connections += 1
        return protocol
