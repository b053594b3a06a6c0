# -*- test-case-name: tests.protocol.test_protocol -*-
"""
``MQTTServerProtocol``: bytes in, the pure core, bytes out.

This is the only place where MQTT meets Twisted for a client connection,
and it only moves bytes and time: ``dataReceived`` feeds ``Decoder.feed``
into ``ClientConnection.receive`` and ends the turn with ``Broker.flush``,
which hands each connection that has output its whole outbox once
(`IConnectionSink.send` -> ``transport.writeSequence``).  Every transport
(TCP, TLS, WebSocket, QUIC) carries this class unchanged.

What the core decides, it decides: errors become wire behaviour in
``ClientConnection.protocol_error``, the ``max_connections`` refusal in the
core's CONNECT handling, congestion from the core's outbox.  The CONNECT
timeout and the keepalive check are core timers too (``ClientConnection.
accepted``/``start_keepalive``); the adapter only stamps ``last_rx``
and turns the transport's flow control into the core's: the protocol registers as a streaming producer on its own transport; when
Twisted's buffer passes its high-water mark it calls ``pauseProducing``
(we stop reading from this client and tell the connection to keep output
in its outbox), ``resumeProducing`` sends the outbox and lets the session
move queued messages into flight.  The core's inbound rate limit
(core/admission.py) pauses reading the same way (``pause_input``); reading
resumes only when neither pause holds.  A close the broker decides
unregisters the producer first (a TLS transport does not close while one
is registered) and aborts a peer that lingers past ``CLOSE_TIMEOUT``.

An exception that is not an ``MqttError`` is a bug: it is logged with its
traceback and the connection is closed with 0x80 Unspecified error.
"""

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from zope.interface import implementer

from ..core.connection import ClientConnection
from ..core.info import TransportInfo
from ..core.interfaces import IConnectionSink
from ..mqtt import reason_codes as rc
from ..mqtt.codec import Decoder
from ..mqtt.errors import MqttError

IP_ADDRESSES = (IPv4Address, IPv6Address)

#: A client must send CONNECT within this many seconds of connecting.
CONNECT_TIMEOUT = 10.0

#: Seconds a connection the broker closed may take to go away before it is
#: aborted: a TLS close waits for the peer's close_notify, which a hostile
#: peer never sends.
CLOSE_TIMEOUT = 5.0


class TlsPeer:
    """What a TLS handshake learnt about the client certificate, handed to
    the protocol before ``makeConnection`` (transport/tls.py)."""

    __slots__ = ("common_name", "identity", "subject")

    def __init__(self, common_name="", subject="", identity=None):
        self.common_name = common_name
        self.subject = subject
        #: The common name when the listener uses it as the user name.
        self.identity = identity


@implementer(IPushProducer, IConnectionSink)
class MQTTServerProtocol(Protocol):
    """One MQTT client connection on any stream transport."""

    _log = Logger()

    def __init__(self, broker, clock, listener="default", connect_timeout=CONNECT_TIMEOUT,
                 over_limit=False, factory=None):
        self.broker = broker
        self.clock = clock
        self.listener = listener
        self.connect_timeout = connect_timeout
        #: Accepted while the listener was at ``max_connections``.
        self.over_limit = over_limit
        self.conn_factory = factory
        self.tls = None
        self.conn = None
        self.decoder = None
        self._closing = False
        # Reading stops while either holds (pause_input / pauseProducing).
        self._input_paused = False
        self._output_paused = False
        self._abort_call = None

    def tls_established(self, peer):
        """The TLS handshake finished (before ``makeConnection``)."""
        self.tls = peer

    # -- Twisted protocol ------------------------------------------------

    def connectionMade(self):
        transport = self.transport
        try:
            transport.setTcpNoDelay(True)
        except (AttributeError, NotImplementedError, OSError):
            pass
        address = transport.getPeer()
        # TCP, TLS and WebSocket have IP addresses; a QUIC stream reports
        # its connection's; anything else (a test transport) has none.
        peer = (address.host, address.port) if isinstance(address, IP_ADDRESSES) else (None, None)
        host = transport.getHost()
        local_port = host.port if isinstance(host, IP_ADDRESSES) else None
        tls = self.tls
        if tls is None:
            info = TransportInfo(peer, self.listener, local_port=local_port)
        else:
            info = TransportInfo(peer, self.listener, tls.common_name, tls.subject,
                                 tls.identity, local_port)
        self.conn = ClientConnection(self.broker, self, info, self.over_limit)
        self.decoder = Decoder(max_packet_size=self.broker.config.max_packet_size,
                               max_topic_length=self.broker.limits.max_topic_length)
        self.conn.accepted(self.clock.seconds(), self.connect_timeout)
        transport.registerProducer(self, True)

    def dataReceived(self, data):
        now = self.clock.seconds()
        broker = self.broker
        broker.stats.bytes_received += len(data)
        conn = self.conn
        conn.last_rx = now
        receive = conn.receive
        decoder = self.decoder
        # ``mqtt.max_packet_size`` may change at run time (REST /reload).
        decoder.max_packet_size = broker.config.max_packet_size
        broker.in_turn = True
        try:
            for packet in decoder.feed(data):
                receive(packet, now)
                if self._closing:
                    break
        except MqttError as error:
            self._log.info(
                "Closing {client} from {peer}: {message} (reason 0x{code:02x})",
                client=conn.client_id, peer=conn.peer, message=error.message,
                code=error.reason_code,
            )
            conn.protocol_error(error, now)
        except Exception:  # noqa: BLE001 -- logged with its traceback, then 0x80
            self._log.failure("Internal error handling a packet from {peer}", peer=conn.peer)
            conn.protocol_error(MqttError(rc.UNSPECIFIED_ERROR, "internal error"), now)
        finally:
            conn.input_received(len(data), now)
            broker.in_turn = False
            broker.flush()

    def connectionLost(self, reason):
        self._closing = True
        call, self._abort_call = self._abort_call, None
        if call is not None and call.active():
            call.cancel()
        factory = self.conn_factory
        if factory is not None:
            factory.connection_closed(self)
            self.conn_factory = None
        if self.conn is not None:
            self.conn.connection_lost(self.clock.seconds())
            self.broker.flush()

    # -- IConnectionSink -------------------------------------------------

    def send(self, chunks):
        if not self._closing:
            self.transport.writeSequence(chunks)

    def close(self):
        if not self._closing:
            self._closing = True
            transport = self.transport
            # A TLS transport does not close while a producer is registered;
            # nothing is produced after this anyway.
            transport.unregisterProducer()
            transport.loseConnection()
            self._abort_call = self.clock.callLater(CLOSE_TIMEOUT, self._abort)

    def _abort(self):
        self._abort_call = None
        self.transport.abortConnection()

    def timed_out(self, what):
        # A peer that has not even sent its CONNECT gets no graceful close
        # (a slowloris would not answer TLS's close_notify either).
        self._log.info("No {what} from {peer} in time", what=what, peer=self.conn.peer)
        if not self._closing:
            self._closing = True
            self.transport.unregisterProducer()
            self.transport.abortConnection()

    def pause_input(self):
        # The rate limit is spent (core/admission.py): stop reading the
        # socket; the client's TCP window fills and its writes block.
        if self._closing:
            return
        self._input_paused = True
        self.transport.pauseProducing()

    def resume_input(self):
        self._input_paused = False
        if not self._closing and not self._output_paused:
            self.transport.resumeProducing()

    # -- IPushProducer (our transport tells us its buffer is full) ---------

    def pauseProducing(self):
        self._output_paused = True
        self.conn.pause_output()
        self.transport.pauseProducing()

    def resumeProducing(self):
        if self._closing:
            return
        self._output_paused = False
        if not self._input_paused:
            self.transport.resumeProducing()
        broker = self.broker
        broker.in_turn = True
        try:
            self.conn.resume_output(self.clock.seconds())
        finally:
            broker.in_turn = False
            broker.flush()

    def stopProducing(self):
        pass


class MQTTServerFactory(Factory):
    """Builds ``MQTTServerProtocol``s that share one broker.

    ``max_connections`` (0 = unlimited) caps the connections open at once
    on this listener: one accepted while the listener is at its limit is
    built ``over_limit`` and the core refuses its CONNECT (CONNACK 0x97 for
    5.0, 0x03 for 3.x); until it sends one it is bounded by the CONNECT
    timeout like any other.  ``connect_timeout`` is the CONNECT deadline.
    """

    def __init__(self, broker, clock, listener="default", max_connections=0,
                 connect_timeout=CONNECT_TIMEOUT):
        self.broker = broker
        self.clock = clock
        self.listener = listener
        self.max_connections = max_connections
        #: ``listeners.connect_timeout``: seconds from accept to CONNECT.
        self.connect_timeout = connect_timeout
        self.open_connections = 0

    def buildProtocol(self, addr):
        limit = self.max_connections
        if limit and self.open_connections >= limit:
            return MQTTServerProtocol(self.broker, self.clock, self.listener,
                                      self.connect_timeout, over_limit=True)
        self.open_connections += 1
        return MQTTServerProtocol(self.broker, self.clock, self.listener,
                                  self.connect_timeout, factory=self)

    def connection_closed(self, protocol):
        """A counted connection ended."""
        self.open_connections -= 1
