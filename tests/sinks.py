"""The core's connection sink as tests use it (`IConnectionSink`):
``send`` collects the bytes a flush hands over, ``close`` is recorded.

The core only hands output to its sink when ``Broker.flush`` runs (the
adapter does that once per turn); test helpers call it before reading
``data``."""

from zope.interface import implementer

from nanomq_twisted.core.interfaces import IConnectionSink


@implementer(IConnectionSink)
class FakeSink:
    def __init__(self):
        self.data = bytearray()
        self.closed = False
        self.timed_out_waiting_for = None
        #: False while the core has asked to stop reading.
        self.reading = True

    def send(self, chunks):
        for chunk in chunks:
            self.data += chunk

    def close(self):
        self.closed = True

    def timed_out(self, what):
        self.timed_out_waiting_for = what
        self.closed = True

    def pause_input(self):
        self.reading = False

    def resume_input(self):
        self.reading = True
