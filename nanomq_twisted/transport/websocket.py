# -*- test-case-name: tests.e2e.test_websocket -*-
"""
MQTT over WebSocket: a thin wsproto adapter that *is* the ITransport of
an unchanged ``MQTTServerProtocol`` (the shape of autobahn's wrapping
factory; framing and the HTTP upgrade are all wsproto's).

``WebSocketProtocol`` runs on a TCP (``ws``) or TLS (``wss``) transport:

- the upgrade request must target the configured path (query string
  ignored); any other path gets HTTP 404, a request that is not a valid
  WebSocket upgrade gets wsproto's suggested status (400/426);
- the ``mqtt`` subprotocol is echoed when offered (also ``mqttv3.1``);
  browsers drop a connection whose offered subprotocol is not echoed
  [MQTT-6.0.0-3];
- binary message data is fed to the MQTT protocol chunk by chunk as it
  arrives: MQTT packets may be split across frames or packed several in
  one frame and the MQTT decoder reassembles them [MQTT-6.0.0-2];
- a text frame closes the connection with status 1003 [MQTT-6.0.0-1];
- every write of the MQTT protocol becomes one binary message; pings are
  answered; a close from the peer is answered and the socket closed;
- producer calls (backpressure) go straight to the underlying transport.

A peer that does not complete the upgrade within ``handshake_timeout`` is
dropped; the MQTT protocol (and so the broker core) only exists after a
successful upgrade.
"""

from functools import singledispatchmethod

from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError
from zope.interface import implementer

from .tls import HANDSHAKE_TIMEOUT

#: Subprotocols we answer, in order of preference.
SUBPROTOCOLS = ("mqtt", "mqttv3.1")

#: Close status for a text frame: "unsupported data" (RFC 6455 §7.4.1).
UNSUPPORTED_DATA = 1003

#: Bytes of the HTTP request kept to find its target on a bad upgrade.
_HEAD_LIMIT = 8192

_BARE_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


def choose_subprotocol(offered):
    """The subprotocol to echo for the client's offered list, or None."""
    for name in SUBPROTOCOLS:
        if name in offered:
            return name
    return None


def _request_path(head):
    """The path of the request line in ``head`` (bytes), or None."""
    line = head.split(b"\r\n", 1)[0].split(b" ")
    if len(line) != 3:
        return None
    return line[1].split(b"?", 1)[0].decode("latin-1")


@implementer(ITransport, IPushProducer, IConsumer)
class WebSocketProtocol(Protocol):
    """One WebSocket connection carrying one wrapped stream protocol."""

    _log = Logger()

    #: What the TLS handshake gate learnt (WSS), passed on to the wrapped
    #: protocol: ``tls_established`` is called before ``makeConnection``.
    tls = None

    def tls_established(self, peer):
        self.tls = peer

    def __init__(self, factory):
        self.ws_factory = factory
        self.ws = WSConnection(ConnectionType.SERVER)
        self.wrapped = None
        self.disconnecting = False
        self._head = b""
        self._timeout = None

    # -- Twisted protocol (the network side) ----------------------------

    def connectionMade(self):
        factory = self.ws_factory
        self._timeout = factory.clock.callLater(factory.handshake_timeout, self._timed_out)

    def dataReceived(self, data):
        if self.disconnecting:
            return
        if self.wrapped is None and len(self._head) < _HEAD_LIMIT:
            self._head += data[: _HEAD_LIMIT - len(self._head)]
        try:
            self.ws.receive_data(data)
        except RemoteProtocolError as error:
            self._bad_request(error)
            return
        for event in self.ws.events():
            self._on_event(event)
            if self.disconnecting:
                return

    def connectionLost(self, reason):
        self._cancel_timeout()
        self.disconnecting = True
        if self.wrapped is not None:
            wrapped, self.wrapped = self.wrapped, None
            wrapped.connectionLost(reason)

    # -- wsproto events ---------------------------------------------------

    @singledispatchmethod
    def _on_event(self, event):
        # Pong, RejectData and other events need no action.
        pass

    @_on_event.register
    def _(self, event: Request):
        path = event.target.split("?", 1)[0]
        if path != self.ws_factory.path:
            self._reject(404, f"wrong path {path!r}")
            return
        subprotocol = choose_subprotocol(event.subprotocols)
        self.transport.write(self.ws.send(AcceptConnection(subprotocol=subprotocol)))
        self._cancel_timeout()
        self._head = b""
        self.wrapped = self.ws_factory.wrapped_factory.buildProtocol(self.transport.getPeer())
        if self.wrapped is None:
            self.loseConnection()
            return
        if self.tls is not None:
            self.wrapped.tls_established(self.tls)
        self.wrapped.makeConnection(self)

    @_on_event.register
    def _(self, event: BytesMessage):
        if self.wrapped is not None:
            self.wrapped.dataReceived(bytes(event.data))

    @_on_event.register
    def _(self, event: TextMessage):
        # [MQTT-6.0.0-1]: MQTT control packets travel in binary frames only.
        self._log.info("Text frame from {peer}: closing", peer=self.transport.getPeer())
        self._close(UNSUPPORTED_DATA, "MQTT needs binary frames")

    @_on_event.register
    def _(self, event: Ping):
        self.transport.write(self.ws.send(event.response()))

    @_on_event.register
    def _(self, event: Pong):
        pass

    @_on_event.register
    def _(self, event: CloseConnection):
        # A close from the peer, or a framing error wsproto turned into
        # one (status 1002/1007/1009): answer it, then drop the socket.
        if self.ws.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self.transport.write(self.ws.send(event.response()))
        self.disconnecting = True
        self.transport.loseConnection()

    # -- rejecting --------------------------------------------------------

    def _reject(self, status, why):
        self._log.info(
            "WebSocket upgrade from {peer} refused ({status}): {why}",
            peer=self.transport.getPeer(), status=status, why=why,
        )
        try:
            data = self.ws.send(RejectConnection(status_code=status))
        except LocalProtocolError:
            data = _BARE_400
        self.transport.write(data)
        self.disconnecting = True
        self._cancel_timeout()
        self.transport.loseConnection()

    def _bad_request(self, error):
        path = _request_path(self._head)
        if path is not None and path != self.ws_factory.path:
            self._reject(404, f"wrong path {path!r}")
            return
        hint = error.event_hint
        status = hint.status_code if isinstance(hint, RejectConnection) else 400
        self._reject(status, str(error))

    def _timed_out(self):
        self._timeout = None
        stats = self.ws_factory.stats
        if stats is not None:
            stats.handshake_timeouts += 1
        self._log.info("WebSocket handshake from {peer} timed out", peer=self.transport.getPeer())
        self.disconnecting = True
        self.transport.abortConnection()

    def _cancel_timeout(self):
        if self._timeout is not None:
            if self._timeout.active():
                self._timeout.cancel()
            self._timeout = None

    def _close(self, code, reason):
        if self.ws.state is ConnectionState.OPEN:
            self.transport.write(self.ws.send(CloseConnection(code=code, reason=reason)))
        self.disconnecting = True
        self.transport.loseConnection()

    # -- ITransport (the wrapped protocol's side) -------------------------

    def write(self, data):
        if not self.disconnecting and self.ws.state is ConnectionState.OPEN:
            self.transport.write(self.ws.send(BytesMessage(data=bytes(data))))

    def writeSequence(self, seq):
        self.write(b"".join(seq))

    def loseConnection(self):
        if not self.disconnecting:
            self._close(1000, "")

    def abortConnection(self):
        self.disconnecting = True
        self.transport.abortConnection()

    def getPeer(self):
        return self.transport.getPeer()

    def getHost(self):
        return self.transport.getHost()

    def setTcpNoDelay(self, enabled):
        self.transport.setTcpNoDelay(enabled)

    # -- IConsumer / IPushProducer: straight to the socket ----------------

    def registerProducer(self, producer, streaming):
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self):
        self.transport.unregisterProducer()

    def pauseProducing(self):
        self.transport.pauseProducing()

    def resumeProducing(self):
        self.transport.resumeProducing()

    def stopProducing(self):
        self.transport.stopProducing()


class WebSocketFactory(Factory):
    """Serves ``wrapped_factory``'s protocol over WebSocket at ``path``."""

    def __init__(self, wrapped_factory, path, clock, handshake_timeout=HANDSHAKE_TIMEOUT,
                 stats=None):
        self.wrapped_factory = wrapped_factory
        self.path = path
        self.clock = clock
        #: Seconds from the TCP (WSS: TLS) connection to a complete upgrade
        #: request, however slowly it arrives.
        self.handshake_timeout = handshake_timeout
        #: The broker's ``Stats`` (``handshake_timeouts``), or None.
        self.stats = stats

    def buildProtocol(self, addr):
        protocol = WebSocketProtocol(self)
        protocol.factory = self
        return protocol
