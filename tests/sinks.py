"""The core's sink as tests use it: ``write`` collects bytes, ``close``
is recorded, ``congested`` is a plain flag the test may set."""


class FakeSink:
    def __init__(self):
        self.data = bytearray()
        self.closed = False
        self.congested = False

    def write(self, data):
        self.data += data

    def close(self):
        self.closed = True
