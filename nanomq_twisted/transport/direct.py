# -*- test-case-name: tests.protocol.test_direct_write,tests.e2e.test_broker_pubsub -*-
"""
TCP listeners whose connections write to the socket at once.

Twisted's ``FileDescriptor.write`` never writes: it appends to a buffer,
registers the socket for writability (``epoll_ctl``), and a later turn of
the reactor sends it and unregisters (``epoll_ctl`` again).  For a broker
that forwards one small packet at a time, that is two extra system calls
and one extra reactor turn between a PUBLISH arriving and its copy leaving
-- the largest part of our latency at a light load (docs/performance.md).

`DirectWriteServer` is Twisted's own ``tcp.Server`` with one change: when
nothing is buffered, ``write`` tries ``socket.send`` first and hands only
what the kernel did not take to Twisted's buffer, which then works exactly
as before (writability, back-pressure through ``pauseProducing``, closing
after the last byte).  `DirectWritePort` is ``tcp.Port`` building those,
and `DirectTCPServerEndpoint` the ``IStreamServerEndpoint`` that listens
with it.  Mosquitto writes the same way (``packet__write`` straight from
the handling code).
"""

from twisted.internet import defer, tcp
from twisted.internet.interfaces import IStreamServerEndpoint
from zope.interface import implementer


class DirectWriteServer(tcp.Server):
    """A server-side TCP connection that sends at once when it can."""

    def write(self, data):
        if (
            data
            and self.connected
            and not self.disconnecting
            and not self._writeDisconnected
            and not self._tempDataLen
            and self.offset == len(self.dataBuffer)
        ):
            try:
                sent = self.socket.send(data)
            except OSError:
                # Would block, or a real error: Twisted's own write path
                # retries it, and finds and reports a broken connection.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        super().write(data)

    def writeSequence(self, iovec):
        if len(iovec) == 1:
            self.write(iovec[0])
        else:
            self.write(b"".join(iovec))


class DirectWritePort(tcp.Port):
    """``tcp.Port`` accepting `DirectWriteServer` connections."""

    transport = DirectWriteServer


@implementer(IStreamServerEndpoint)
class DirectTCPServerEndpoint:
    """Listen on TCP (IPv4 or IPv6, by ``interface``) with `DirectWritePort`."""

    def __init__(self, reactor, port, backlog=50, interface=""):
        self._reactor = reactor
        self._port = port
        self._backlog = backlog
        self._interface = interface

    def listen(self, protocolFactory):
        port = DirectWritePort(self._port, protocolFactory, self._backlog,
                               self._interface, self._reactor)
        try:
            port.startListening()
        except Exception:  # noqa: BLE001 -- handed to the caller's errback
            return defer.fail()
        return defer.succeed(port)
