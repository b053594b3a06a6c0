"""
``DirectWriteServer`` (transport/direct.py): a write goes to the socket at
once when nothing is buffered, and what the kernel does not take is
buffered by Twisted as before, in order.

A real socket pair, no listening port: the server end is wrapped in a
``DirectWriteServer`` as ``tcp.Port`` would wrap an accepted socket.
"""

import socket

from twisted.internet import defer, reactor, threads
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from nanomq_twisted.transport.direct import DirectWriteServer


class _Quiet(Protocol):
    def __init__(self):
        self.lost = defer.Deferred()

    def connectionLost(self, reason):
        self.lost.callback(None)


class DirectWriteTests(TestCase):
    def setUp(self):
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        self.peer = theirs
        self.addCleanup(theirs.close)
        self.protocol = _Quiet()
        self.transport = DirectWriteServer(ours, self.protocol, ("peer", 1), None, 1, reactor)
        self.protocol.makeConnection(self.transport)

    def tearDown(self):
        self.transport.abortConnection()
        return self.protocol.lost

    def test_written_before_the_reactor_runs(self):
        """No reactor turn between ``write`` and the bytes on the wire."""
        self.transport.write(b"hello")
        self.peer.settimeout(0)
        self.assertEqual(self.peer.recv(100), b"hello")
        self.assertFalse(self.transport._tempDataLen)

    @defer.inlineCallbacks
    def test_what_the_kernel_refuses_is_buffered_in_order(self):
        self.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        big = bytes(range(256)) * 4096  # 1 MiB, more than the socket takes
        self.transport.write(big)
        self.assertTrue(self.transport._tempDataLen or self.transport.dataBuffer)
        # Buffered now: this one must queue behind, not jump ahead.
        self.transport.writeSequence([b"tail-", b"end"])
        expected = len(big) + len(b"tail-end")
        self.peer.settimeout(10)

        def read_all():
            # Blocking, in a thread, while the reactor writes the rest.
            received = bytearray()
            while len(received) < expected:
                chunk = self.peer.recv(1 << 20)
                if not chunk:
                    break
                received += chunk
            return bytes(received)

        received = yield threads.deferToThread(read_all)
        self.assertEqual(received, big + b"tail-end")
