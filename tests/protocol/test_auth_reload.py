# -*- test-case-name: tests.protocol.test_auth_reload -*-
"""
``auth.reload_interval``: ``FileWatchReloadService`` polls the configuration
file and its includes on a ``task.Clock`` and reloads the password table and
the ACL once per change; an invalid file keeps the old rules.  Clients are
``MQTTServerProtocol``s on ``StringTransport``s (3.1.1 CONNACK codes).
"""

import os

from twisted.internet import task
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.app import BrokerApp
from nanomq_twisted.config import load
from nanomq_twisted.transport.protocol import MQTTServerFactory

from .. import packets as P

ACCEPTED = 0
BAD_USER_NAME_OR_PASSWORD = 4

MAIN = """
listeners.tcp { bind = "127.0.0.1:0" }
auth {
    allow_anonymous = false
    reload_interval = 5s
    password = {include "pwd.conf"}
%s}
"""


class FileWatchReloadTests(SynchronousTestCase):
    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self._mtime = 1_000_000_000 * 10**9
        self.write("pwd.conf", '"u": "one"\n')
        self.conf = self.write("nanomq.conf", MAIN % "")
        self.clock = task.Clock()
        config = load(self.conf, env={})
        # The application on the test clock (not started): its broker and
        # its file watch, which reloads through the application.
        self.app = BrokerApp(config, self.clock)
        self.broker = self.app.broker
        self.factory = MQTTServerFactory(self.broker, self.clock)
        self.watch = self.app.file_watch
        # Cleanups run last-in first-out: stop, then check nothing is left.
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        self.watch.startService()
        self.addCleanup(self.watch.stopService)

    def write(self, name, text):
        """Write ``name``; its mtime steps by one second each time, so every
        write is a change even within one file-system timestamp tick."""
        path = os.path.join(self.dir, name)
        with open(path, "w") as handle:
            handle.write(text)
        self._mtime += 10**9
        os.utime(path, ns=(self._mtime, self._mtime))
        return path

    def tick(self):
        """Advance one poll interval; the ``ReloadResult`` if it reloaded."""
        reloaded = []
        self.watch.next_reload().addCallback(reloaded.append)
        self.clock.advance(5.0)
        if not reloaded:
            # Drop the waiter that did not fire.
            self.watch._waiters.clear()
            return None
        return reloaded[0]

    def login(self, password, client_id="c"):
        protocol = self.factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(P.connect(client_id, username="u", password=password.encode()))
        code = transport.value()[3]
        protocol.connectionLost(Failure(ConnectionDone()))
        return code

    def allowed(self, topic):
        class Client:
            client_id, username, peer = "c", "u", ("127.0.0.1", 1)

        return self.broker.acl.check(Client(), "publish", topic)

    def test_changed_password_file_is_reloaded_once(self):
        self.assertEqual(self.login("one"), ACCEPTED)
        self.write("pwd.conf", '"u": "two"\n')
        self.clock.advance(4.9)
        self.assertEqual(self.login("two"), BAD_USER_NAME_OR_PASSWORD)
        self.clock.advance(0.1)
        self.assertEqual(self.login("two"), ACCEPTED)
        self.assertEqual(self.login("one"), BAD_USER_NAME_OR_PASSWORD)
        # Debounced: nothing changed since, no further reload.
        self.assertIsNone(self.tick())
        self.assertIsNone(self.tick())

    def test_unchanged_files_do_not_reload(self):
        self.assertIsNone(self.tick())
        self.assertIsNone(self.tick())

    def test_invalid_file_keeps_old_rules(self):
        for text in ('"u": {\n', '"u": "$pbkdf2-sha256$x$y$z"\n'):
            self.write("pwd.conf", text)
            result = self.tick()
            self.assertFalse(result)
            self.assertTrue(result.error)
            self.assertEqual(self.login("one"), ACCEPTED)
            # Not retried while the file stays as it is.
            self.assertIsNone(self.tick())
        self.write("pwd.conf", '"u": "three"\n')
        self.assertTrue(self.tick())
        self.assertEqual(self.login("three"), ACCEPTED)

    def test_removed_file_keeps_old_rules_and_its_return_reloads(self):
        os.remove(os.path.join(self.dir, "pwd.conf"))
        self.assertFalse(self.tick())
        self.assertEqual(self.login("one"), ACCEPTED)
        self.write("pwd.conf", '"u": "back"\n')
        self.assertTrue(self.tick())
        self.assertEqual(self.login("back"), ACCEPTED)

    def test_main_file_change_and_new_include_are_watched(self):
        self.write("acl.conf", 'rules = [{permit = deny, action = publish, topics = ["a"]}]\n')
        self.assertTrue(self.allowed("a"))
        # acl.conf is not part of the configuration yet: no reload.
        self.assertIsNone(self.tick())
        self.write("nanomq.conf", MAIN % '    acl = {include "acl.conf"}\n')
        result = self.tick()
        self.assertTrue(result)
        self.assertIn(os.path.abspath(os.path.join(self.dir, "acl.conf")), result.files)
        self.assertFalse(self.allowed("a"))
        # Now the included ACL file is watched too.
        self.write("acl.conf", 'rules = [{permit = deny, action = publish, topics = ["b"]}]\n')
        self.assertTrue(self.tick())
        self.assertTrue(self.allowed("a"))
        self.assertFalse(self.allowed("b"))
        # Dropping the include and deleting the file: the ACL is off again.
        self.write("nanomq.conf", MAIN % "")
        os.remove(os.path.join(self.dir, "acl.conf"))
        self.assertTrue(self.tick())
        self.assertTrue(self.allowed("b"))
        self.assertEqual(len(self.watch.files), 2)

    def test_stop_cancels_the_poll(self):
        self.watch.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.write("pwd.conf", '"u": "late"\n')
        self.clock.advance(10.0)
        self.assertEqual(self.login("one"), ACCEPTED)


class ServiceTreeTests(SynchronousTestCase):
    def tree(self, interval):
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "pwd.conf"), "w") as handle:
            handle.write('"u": "one"\n')
        path = os.path.join(directory, "nanomq.conf")
        with open(path, "w") as handle:
            handle.write((MAIN % "").replace("5s", interval))
        config = load(path, env={})
        return config, BrokerApp(config, MemoryReactorClock())

    def test_attached_with_the_configured_interval(self):
        config, app = self.tree("2s")
        watch = app.file_watch
        self.assertEqual(watch.interval, 2.0)
        self.assertEqual(watch.files, config.source_files)
        self.assertEqual(
            [os.path.basename(f) for f in config.source_files], ["nanomq.conf", "pwd.conf"]
        )

    def test_off_by_default(self):
        _, app = self.tree("0")
        self.assertIsNone(app.file_watch)
        self.assertNotIn(app.file_watch, list(app.auth.service))
