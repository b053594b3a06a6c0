"""
Restarts with real clients: the broker runs as a subprocess
(``python -m nanomq_twisted -c FILE``) with ``sqlite {}`` on; it is stopped
with SIGTERM (clean: listeners stop, then the store flushes) or killed with
SIGKILL once the last batch is known to be committed, then started again on
the same port and database.  A paho v3.1.1 persistent subscriber must get
every QoS 1/2 message published while it was away, and a new subscriber the
retained messages.
"""

import os
import re
import signal
import socket
import sqlite3
import sys

from twisted.internet import defer, error, protocol, reactor, task
from twisted.trial.unittest import TestCase

from .support import TIMEOUT, Client, in_thread

LISTENING = re.compile(rb"tcp listening on 127\.0\.0\.1:(\d+)")


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


class _Broker(protocol.ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.listening = defer.Deferred()
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.output += data
        if not self.listening.called and LISTENING.search(self.output):
            self.listening.callback(None)

    errReceived = outReceived

    def processEnded(self, reason):
        if not self.listening.called:
            self.listening.errback(RuntimeError(self.output.decode("utf-8", "replace")))
        self.ended.callback(reason.value)


class RestartTests(TestCase):
    timeout = 60

    def setUp(self):
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.port = free_port()
        self.db = os.path.join(self.workdir, "data", "nano_qos_db.db")
        self.conf = os.path.join(self.workdir, "nanomq.conf")
        with open(self.conf, "w") as f:
            f.write(
                f'listeners.tcp {{ bind = "127.0.0.1:{self.port}" }}\n'
                f'sqlite {{ mounted_file_path = "{os.path.join(self.workdir, "data")}" }}\n'
            )

    @defer.inlineCallbacks
    def start(self):
        proc = _Broker()
        env = dict(os.environ)
        env.pop("NANOMQ_CONF_PATH", None)
        transport = reactor.spawnProcess(
            proc, sys.executable, [sys.executable, "-m", "nanomq_twisted", "-c", self.conf],
            env=env, path=self.workdir,
        )

        def kill():
            try:
                transport.signalProcess(signal.SIGKILL)
            except error.ProcessExitedAlready:
                return None
            return proc.ended

        self.addCleanup(kill)
        yield proc.listening
        return proc, transport

    @defer.inlineCallbacks
    def stop(self, proc, transport, sig):
        transport.signalProcess(sig)
        yield proc.ended

    def clients(self):
        made = []

        def make(client_id="", **kwargs):
            client = Client(self.port, client_id, 4, **kwargs)
            made.append(client)
            return client

        def stop_all():
            for client in made:
                client.paho.disconnect()
                client.paho.loop_stop()

        self.addCleanup(in_thread, stop_all)
        return make

    def away_and_publish(self, make):
        """A persistent subscriber leaves; QoS 1/2 and retained messages
        arrive for it (blocking: runs in a thread)."""
        sub = make("keeper", clean=False)
        sub.connect()
        sub.subscribe("owed/#", 2)
        sub.disconnect()
        pub = make("publisher")
        pub.connect()
        for i in range(3):
            pub.publish("owed/one", b"q1-%d" % i, qos=1)
            pub.publish("owed/two", b"q2-%d" % i, qos=2)
        pub.publish("kept/a", b"ra", qos=1, retain=True)
        pub.publish("kept/b", b"rb", qos=2, retain=True)
        pub.publish("kept/a", b"ra2", qos=1, retain=True)
        pub.disconnect()

    def collect(self, make):
        """Reconnect the subscriber, then subscribe a newcomer to the
        retained topics; returns what each received."""
        sub = make("keeper", clean=False)
        flags, _, _ = sub.connect()
        owed = sorted(sub.expect().payload for _ in range(6))
        fresh = make("fresh")
        fresh.connect()
        fresh.subscribe("kept/#", 1)
        kept = sorted((m.topic, m.payload, m.retain) for m in (fresh.expect(), fresh.expect()))
        return flags.session_present, owed, kept

    EXPECTED_OWED = sorted([b"q1-%d" % i for i in range(3)] + [b"q2-%d" % i for i in range(3)])
    EXPECTED_KEPT = (("kept/a", b"ra2", True), ("kept/b", b"rb", True))

    @defer.inlineCallbacks
    def test_sigterm_flushes_and_restores(self):
        proc, transport = yield self.start()
        yield in_thread(self.away_and_publish, self.clients())
        yield self.stop(proc, transport, signal.SIGTERM)
        self.assertIn(b"Persistence flushed", proc.output)
        proc, transport = yield self.start()
        self.assertIn(b"Restored 2 retained messages and 1 sessions owing 6", proc.output)
        present, owed, kept = yield in_thread(self.collect, self.clients())
        self.assertTrue(present)
        self.assertEqual(owed, self.EXPECTED_OWED)
        self.assertEqual(kept, list(self.EXPECTED_KEPT))
        yield self.stop(proc, transport, signal.SIGTERM)

    @defer.inlineCallbacks
    def test_kill_9_after_commit_restores(self):
        proc, transport = yield self.start()
        yield in_thread(self.away_and_publish, self.clients())
        yield self.wait_committed(deliveries=6, retained=2)
        yield self.stop(proc, transport, signal.SIGKILL)
        self.assertNotIn(b"Persistence flushed", proc.output)
        proc, transport = yield self.start()
        present, owed, kept = yield in_thread(self.collect, self.clients())
        self.assertTrue(present)
        self.assertEqual(owed, self.EXPECTED_OWED)
        self.assertEqual(kept, list(self.EXPECTED_KEPT))
        yield self.stop(proc, transport, signal.SIGTERM)

    @defer.inlineCallbacks
    def wait_committed(self, deliveries, retained):
        """Poll the database (bounded) until the last batch is visible."""

        def counts():
            db = sqlite3.connect(self.db, timeout=1)
            try:
                return (
                    db.execute("SELECT count(*) FROM deliveries").fetchone()[0],
                    db.execute("SELECT payload FROM retained WHERE topic = 'kept/a'")
                    .fetchall(),
                    db.execute("SELECT count(*) FROM retained").fetchone()[0],
                )
            finally:
                db.close()

        want = (deliveries, [(b"ra2",)], retained)
        for _ in range(int(TIMEOUT / 0.05)):
            got = counts() if os.path.exists(self.db) else None
            if got == want:
                return
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.fail(f"database never showed {want!r} (last {got!r})")


class RuleRestartTests(TestCase):
    """Rules made, changed and deleted over REST survive a restart, around
    the config-file rules (which keep their ids)."""

    timeout = 60
    SQL = 'SELECT payload FROM "in/#"'
    start = RestartTests.start
    stop = RestartTests.stop

    def setUp(self):
        RestartTests.setUp(self)
        self.http_port = free_port()
        with open(self.conf, "a") as f:
            f.write(
                f'http_server {{ port = {self.http_port}, ip_addr = "127.0.0.1",'
                ' username = admin, password = public }\n'
                'rules.repub { rules = [ { server = "mqtt-tcp://127.0.0.1:1",'
                ' topic = "cfg/out", sql = "SELECT * FROM \\"cfg/#\\"" } ] }\n'
            )

    @defer.inlineCallbacks
    def rest(self, method, path, body=None):
        import treq
        from twisted.web.client import HTTPConnectionPool

        pool = HTTPConnectionPool(reactor, persistent=False)
        url = f"http://127.0.0.1:{self.http_port}/api/v4/rules{path}"
        response = yield treq.request(method, url, json=body, auth=("admin", "public"),
                                      pool=pool)
        content = yield response.json()
        yield pool.closeCachedConnections()
        self.assertEqual(response.code, 200, content)
        return content

    def repub(self, topic):
        return {"name": "repub", "params": {
            "topic": topic, "address": f"mqtt-tcp://127.0.0.1:{self.port}"}}

    @defer.inlineCallbacks
    def test_rest_rules_survive_sigterm_and_kill_9(self):
        proc, transport = yield self.start()
        made = yield self.rest("POST", "", {"rawsql": self.SQL,
                                            "actions": [self.repub("out/a")]})
        self.assertEqual(made["data"]["id"], 2)
        yield self.rest("POST", "", {"rawsql": self.SQL, "actions": [self.repub("out/b")]})
        yield self.rest("PUT", "/rule:2", {"rawsql": 'SELECT qos FROM "in/x"',
                                           "enabled": False})
        yield self.rest("DELETE", "/rule:3")
        yield self.rest("DELETE", "/rule:1")  # a config-file rule
        expected = [{"name": "repub", "rawsql": 'SELECT qos FROM "in/x"', "id": 2,
                     "enabled": False}]
        self.assertEqual((yield self.rest("GET", ""))["data"], expected)
        yield self.stop(proc, transport, signal.SIGTERM)

        proc, transport = yield self.start()
        self.assertEqual((yield self.rest("GET", ""))["data"], expected)
        # New ids continue after every id ever used.
        made = yield self.rest("POST", "", {"rawsql": self.SQL,
                                            "actions": [self.repub("out/c")]})
        self.assertEqual(made["data"]["id"], 4)
        yield self.wait_rules(4)
        yield self.stop(proc, transport, signal.SIGKILL)

        proc, transport = yield self.start()
        listed = (yield self.rest("GET", ""))["data"]
        self.assertEqual([(r["id"], r["enabled"]) for r in listed], [(2, False), (4, True)])
        yield self.stop(proc, transport, signal.SIGTERM)

    @defer.inlineCallbacks
    def wait_rules(self, top_id):
        """Poll the database (bounded) until rule ``top_id`` is committed."""

        def committed():
            db = sqlite3.connect(self.db, timeout=1)
            try:
                return db.execute("SELECT max(id) FROM rules").fetchone()[0]
            finally:
                db.close()

        for _ in range(int(TIMEOUT / 0.05)):
            if os.path.exists(self.db) and committed() == top_id:
                return
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.fail(f"rule {top_id} never committed")
