"""
``log { to = [file], ... }`` on a running service tree: the level filter,
rotation by size and count with a tiny ``rotation.size``, and the level
changed at runtime with ``set_log_level``.
"""

import os

from twisted.internet import defer
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from nanomq_twisted.logging import LogService, set_log_level, twisted_level

from .support import in_thread, start_broker

_log = Logger(namespace="nanomq.test")


class LoggingTests(TestCase):
    def conf(self, level="info", size="1KB", count=2):
        self.dir = os.path.abspath(self.mktemp())
        return (
            f'log {{ to = [file, console], level = {level}, dir = "{self.dir}",\n'
            f'      file = "broker.log", rotation {{ size = {size}, count = {count} }} }}\n'
        )

    def files(self):
        return sorted(os.listdir(self.dir))

    def read(self, name="broker.log"):
        with open(os.path.join(self.dir, name)) as f:
            return f.read()

    @defer.inlineCallbacks
    def test_file_gets_broker_events_at_level(self):
        running = yield start_broker(self, self.conf(level="info"))
        yield in_thread(self._connect_once, running.port)
        _log.debug("hidden debug line")
        text = self.read()
        self.assertIn("tcp listening on 127.0.0.1", text)
        self.assertNotIn("hidden debug line", text)

    @staticmethod
    def _connect_once(port):
        from .support import Client

        client = Client(port, "logged")
        client.connect()
        client.disconnect()

    @defer.inlineCallbacks
    def test_rotation_by_size_and_count(self):
        yield start_broker(self, self.conf(level="warn", size="1KB", count=2))
        for i in range(200):
            _log.warn("line {i} of a rotation test with some padding text", i=i)
        self.assertEqual(self.files(), ["broker.log", "broker.log.1", "broker.log.2"])
        for name in self.files():
            # Rotation happens before the write that would pass the size.
            self.assertLessEqual(os.path.getsize(os.path.join(self.dir, name)), 1024 + 200)
        self.assertIn("line 199 of", self.read())
        self.assertNotIn("line 0 of", "".join(self.read(n) for n in self.files()))

    @defer.inlineCallbacks
    def test_level_changed_at_runtime(self):
        yield start_broker(self, self.conf(level="error"))
        _log.warn("before the change")
        self.assertEqual(set_log_level("debug"), twisted_level("debug"))
        _log.debug("after the change")
        text = self.read()
        self.assertNotIn("before the change", text)
        self.assertIn("after the change", text)

    def test_level_words(self):
        self.assertEqual(twisted_level("fatal").name, "critical")
        self.assertEqual(twisted_level("trace").name, "debug")
        self.assertEqual(twisted_level("nonsense").name, "error")

    def test_stop_detaches_and_closes(self):
        from nanomq_twisted.config.schema import LogConfig

        directory = os.path.abspath(self.mktemp())
        published = []

        class Publisher:
            def addObserver(self, o):
                published.append(o)

            def removeObserver(self, o):
                published.remove(o)

        service = LogService(LogConfig(to=("file",), dir=directory), publisher=Publisher())
        service.startService()
        self.assertEqual(len(published), 1)
        service.stopService()
        self.assertEqual(published, [])
        self.assertIsNone(service.logfile)
