# -*- test-case-name: tests.protocol.test_quic_driver,tests.e2e.test_quic,tests.e2e.test_bridge_mosquitto -*-
"""
MQTT on a QUIC connection: one bidirectional stream carries the bytes of
one stream protocol, for the listener and the dialler alike.

``StreamSession`` is the ``QuicDriver``'s event handler (events dispatched
with ``singledispatchmethod``).  It opens the stream, builds the stream
protocol from its factory and presents the stream to it as a
``QuicStreamTransport``, an ``ITransport`` (and push producer) whose
writes are merged with ``callLater(0)`` into one ``send_stream_data``.  So
the protocol is unchanged: ``MQTTServerProtocol`` on the listener, the
bridge's client protocol on the dialler.

The roles differ only in who opens the stream: the client opens it when
the handshake completes (so its protocol's ``connectionMade`` sends
CONNECT), the server adopts the first client-initiated bidirectional
stream.  ``ConnectionTerminated`` is the protocol's ``connectionLost``; a
FIN or reset of the stream ends the MQTT connection.  Connection-ID events
go to an optional ``on_cid`` (the listener's demultiplexer).

This module imports nothing of ``driver.py``, ``server.py`` or
``client.py``: the session is handed its driver.  ALPN is ``mqtt`` on both
sides (``ALPN``, used by both configurations).
"""

from functools import singledispatchmethod

from aioquic.quic.events import (
    ConnectionIdIssued,
    ConnectionIdRetired,
    ConnectionTerminated,
    HandshakeCompleted,
    StreamDataReceived,
    StreamReset,
)
from aioquic.quic.packet import QuicErrorCode
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..interfaces import IReleasable

ALPN = ["mqtt"]


def _address(addr):
    """The Twisted ``UDP`` address of an aioquic ``(host, port, ...)`` tuple."""
    host, port = addr[0], addr[1]
    if ":" in host:
        return IPv6Address("UDP", host, port)
    return IPv4Address("UDP", host, port)


@implementer(ITransport, IConsumer, IPushProducer, IReleasable)
class QuicStreamTransport:
    """One QUIC stream as the ``ITransport`` of a stream protocol."""

    disconnecting = False

    def __init__(self, session, stream_id):
        self.session = session
        self.stream_id = stream_id
        self.producer = None
        self._pending = []
        self._paused = False
        self._held = []

    # writes: queued, flushed once per reactor turn into send_stream_data
    def write(self, data):
        if self.disconnecting or not data:
            return
        self._pending.append(bytes(data))
        self.session.driver.transmit_soon(self._flush)

    def writeSequence(self, seq):
        for data in seq:
            self.write(data)

    def _flush(self, end_stream=False):
        data, self._pending = b"".join(self._pending), []
        if data or end_stream:
            self.session.driver.quic.send_stream_data(self.stream_id, data, end_stream)

    def loseConnection(self):
        if not self.disconnecting:
            self.disconnecting = True
            self.session.close_by_application(self)

    abortConnection = loseConnection

    def released(self):
        """IReleasable: fires after the connection's UDP port is released
        (at once when nothing is held)."""
        terminated = self.session.terminated_deferred
        if terminated is None or terminated.called:
            return defer.succeed(None)
        done = defer.Deferred()

        def fired(result):
            done.callback(None)
            return result

        terminated.addBoth(fired)
        return done

    def getPeer(self):
        return _address(self.session.peer)

    def getHost(self):
        return self.session.host

    def setTcpNoDelay(self, enabled):
        pass

    # reading side: pausing holds received data until resumed
    def deliver(self, data):
        if self._paused:
            self._held.append(data)
        else:
            self.session.protocol.dataReceived(data)

    def registerProducer(self, producer, streaming):
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        held, self._held = self._held, []
        for data in held:
            if self.session.protocol is None:
                return
            self.session.protocol.dataReceived(data)

    def stopProducing(self):
        self.loseConnection()


class StreamSession:
    """Event handler of one QUIC connection carrying one stream protocol.

    ``protocol_factory.buildProtocol(peer_address)`` is called once the
    stream exists.  ``on_open(protocol)`` runs then, ``on_terminated(event)``
    when the connection has ended; both are optional.
    """

    _log = Logger()

    def __init__(self, protocol_factory, is_client, peer, host,
                 on_open=None, on_terminated=None, on_cid=None):
        self.protocol_factory = protocol_factory
        self.is_client = is_client
        self.peer = peer
        self.host = host
        self.on_open = on_open
        self.on_terminated = on_terminated
        self.on_cid = on_cid
        self.driver = None
        self.stream = None
        self.protocol = None
        self.terminated = False
        #: Fires when the connection is gone and its port released (set by
        #: the side that owns the port: the client's UDP protocol).
        self.terminated_deferred = None
        self._lose_call = None

    @singledispatchmethod
    def quic_event(self, event):
        pass

    @quic_event.register
    def _(self, event: HandshakeCompleted):
        if self.is_client:
            self._open(self.driver.quic.get_next_available_stream_id())

    @quic_event.register
    def _(self, event: StreamDataReceived):
        if self.stream is None and not self.is_client and event.stream_id % 4 == 0:
            # The first client-initiated bidirectional stream carries MQTT.
            self._open(event.stream_id)
        if self.stream is None or event.stream_id != self.stream.stream_id:
            return
        if event.data:
            self.stream.deliver(event.data)
        if event.end_stream and self.protocol is not None:
            # The peer will send nothing more: the MQTT connection is over.
            self.stream.loseConnection()

    @quic_event.register
    def _(self, event: StreamReset):
        if self.stream is not None and event.stream_id == self.stream.stream_id:
            self.stream.loseConnection()

    @quic_event.register
    def _(self, event: ConnectionIdIssued):
        if self.on_cid is not None:
            self.on_cid(event.connection_id, True)

    @quic_event.register
    def _(self, event: ConnectionIdRetired):
        if self.on_cid is not None:
            self.on_cid(event.connection_id, False)

    @quic_event.register
    def _(self, event: ConnectionTerminated):
        self.terminated = True
        self.driver.stop()
        self._lose(
            error.ConnectionDone("QUIC connection closed")
            if event.error_code == QuicErrorCode.NO_ERROR
            else error.ConnectionLost(
                f"QUIC connection terminated: 0x{event.error_code:x} {event.reason_phrase}"
            )
        )
        if self.on_terminated is not None:
            self.on_terminated(event)

    def _open(self, stream_id):
        self.stream = QuicStreamTransport(self, stream_id)
        protocol = self.protocol_factory.buildProtocol(_address(self.peer))
        if protocol is None:
            self.driver.close(QuicErrorCode.NO_ERROR, "refused")
            return
        self.protocol = protocol
        protocol.makeConnection(self.stream)
        if self.on_open is not None:
            self.on_open(protocol)

    def close_by_application(self, stream):
        """The stream protocol closed: finish the stream, close the QUIC
        connection, and tell the protocol on the next turn (never
        re-entrantly), without waiting for the closing period."""
        if not self.terminated:
            # FIN first (best effort: the pacer may hold it back), so the
            # peer's protocol can end before its draining period does.
            stream._flush(end_stream=True)
            self.driver.transmit()
            self.driver.close(QuicErrorCode.NO_ERROR, "")
        if self._lose_call is None:
            self._lose_call = self.driver.clock.callLater(
                0, self._lose, error.ConnectionDone("closed")
            )

    def abort(self, reason="server shutting down"):
        """Close now and forget the connection (listener shutdown)."""
        if not self.terminated:
            self.terminated = True
            self.driver.close(QuicErrorCode.NO_ERROR, reason)
        self.driver.stop()
        self._lose(error.ConnectionDone(reason))

    def _lose(self, exc):
        call, self._lose_call = self._lose_call, None
        if call is not None and call.active():
            call.cancel()
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            self.stream.disconnecting = True
            protocol.connectionLost(Failure(exc))
