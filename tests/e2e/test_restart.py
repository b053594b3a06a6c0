"""
Restarts with real clients: the broker runs as a subprocess
(``python -m nanomq_twisted -c FILE``) with ``sqlite {}`` on; it is stopped
with SIGTERM (clean: listeners stop, then the store flushes) or killed with
SIGKILL once the last batch is known to be committed, then started again on
the same port and database.  A paho v3.1.1 persistent subscriber must get
every QoS 1/2 message published while it was away, and a new subscriber the
retained messages.

Nothing polls the database file.  "Committed" is a protocol event: with
``sqlite.sync_ack = true`` the broker holds a PUBACK/PUBREC until the batch
holding what the publish stored -- and everything reported before it --
is on disk, so the publisher's acknowledgement is the commit.  The
database is read once, after the broker process has ended.
"""

import os
import re
import signal
import sqlite3
import sys

from twisted.internet import defer, error, protocol, reactor
from twisted.trial.unittest import TestCase

from .support import Client, Clients, free_port, in_thread


def listening(name):
    """The console line a listener logs once it is bound."""
    return re.compile(rb"\b" + name.encode() + rb" listening on 127\.0\.0\.1:(\d+)")


class _Broker(protocol.ProcessProtocol):
    """``listening`` fires once every listener named in ``listeners`` has
    said it is bound (the REST API may bind after the MQTT port)."""

    def __init__(self, listeners):
        self.output = b""
        self.patterns = [listening(name) for name in listeners]
        self.listening = defer.Deferred()
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.output += data
        if not self.listening.called and all(p.search(self.output) for p in self.patterns):
            self.listening.callback(None)

    errReceived = outReceived

    def processEnded(self, reason):
        if not self.listening.called:
            self.listening.errback(RuntimeError(self.output.decode("utf-8", "replace")))
        self.ended.callback(reason.value)


class RestartTests(TestCase):
    timeout = 60
    #: The listeners ``start`` waits for.
    LISTENERS = ("tcp",)

    def setUp(self):
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.port = free_port()
        self.db = os.path.join(self.workdir, "data", "nano_qos_db.db")
        self.conf = os.path.join(self.workdir, "nanomq.conf")
        with open(self.conf, "w") as f:
            f.write(
                f'listeners.tcp {{ bind = "127.0.0.1:{self.port}" }}\n'
                # The harness reads the "listening" line from the console.
                'log { to = [console], level = info }\n'
                f'sqlite {{ mounted_file_path = "{os.path.join(self.workdir, "data")}" }}\n'
            )

    @defer.inlineCallbacks
    def start(self):
        proc = _Broker(self.LISTENERS)
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
        """With ``sync_ack`` the last acknowledgement the publisher got means
        the last batch committed: a ``kill -9`` then loses nothing."""
        sync_ack(self.conf)
        proc, transport = yield self.start()
        yield in_thread(self.away_and_publish, self.clients())
        yield self.stop(proc, transport, signal.SIGKILL)
        self.assertNotIn(b"Persistence flushed", proc.output)
        self.assertEqual(self.counts(), (6, [(b"ra2",)], 2))
        proc, transport = yield self.start()
        present, owed, kept = yield in_thread(self.collect, self.clients())
        self.assertTrue(present)
        self.assertEqual(owed, self.EXPECTED_OWED)
        self.assertEqual(kept, list(self.EXPECTED_KEPT))
        yield self.stop(proc, transport, signal.SIGTERM)

    def counts(self):
        """(deliveries, kept/a's retained payload, retained rows) on disk."""
        db = sqlite3.connect(self.db, timeout=1)
        try:
            return (
                db.execute("SELECT count(*) FROM deliveries").fetchone()[0],
                db.execute("SELECT payload FROM retained WHERE topic = 'kept/a'").fetchall(),
                db.execute("SELECT count(*) FROM retained").fetchone()[0],
            )
        finally:
            db.close()


def sync_ack(conf):
    """Turn on ``sqlite.sync_ack`` in the configuration file ``conf``."""
    with open(conf, "a") as f:
        f.write("sqlite.sync_ack = true\n")


def committed_fence(port):
    """Block until everything the broker on ``port`` reported to its store
    so far is committed (``sync_ack`` must be on): a retained QoS 1 publish
    changes the store, so its PUBACK waits for the batch holding it, which
    is not before the earlier ones."""
    fence = Client(port, "commit-fence")
    fence.connect()
    try:
        fence.publish("fence/commit", b"committed", qos=1, retain=True)
    finally:
        fence.paho.disconnect()
        fence.paho.loop_stop()


class RuleRestartTests(TestCase):
    """Rules made, changed and deleted over REST survive a restart, around
    the config-file rules (which keep their ids)."""

    timeout = 60
    LISTENERS = ("tcp", "http")
    SQL = 'SELECT payload FROM "in/#"'
    start = RestartTests.start
    stop = RestartTests.stop

    def setUp(self):
        RestartTests.setUp(self)
        sync_ack(self.conf)
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
        yield in_thread(committed_fence, self.port)
        yield self.stop(proc, transport, signal.SIGKILL)

        proc, transport = yield self.start()
        listed = (yield self.rest("GET", ""))["data"]
        self.assertEqual([(r["id"], r["enabled"]) for r in listed], [(2, False), (4, True)])
        yield self.stop(proc, transport, signal.SIGTERM)


class BridgeRestartTests(TestCase):
    """Bridges changed over REST (PUT, switch, live sub/unsub) and the
    QoS 1/2 messages a bridge owes its remote survive a restart; the remote
    is a real Mosquitto."""

    timeout = 60
    LISTENERS = ("tcp", "http")
    start = RestartTests.start
    stop = RestartTests.stop

    def setUp(self):
        from .mosquitto import MOSQUITTO, Mosquitto

        if MOSQUITTO is None:
            raise self.skipTest("mosquitto is not installed (apt-get install mosquitto)")
        RestartTests.setUp(self)
        self.remote = Mosquitto(self)
        self.http_port = free_port()
        server = f"mqtt-tcp://127.0.0.1:{self.remote.port}"
        with open(self.conf, "a") as f:
            f.write(
                f'http_server {{ port = {self.http_port}, ip_addr = "127.0.0.1",'
                ' username = admin, password = public }\n'
                f'bridges.mqtt.up {{ server = "{server}", clientid = "edge-up",'
                ' backoff_max = 1s, max_send_queue_len = 1000,'
                ' forwards = [ { local_topic = "a/#", remote_topic = "", prefix = "file/" },'
                ' { local_topic = "q/#", remote_topic = "" } ] }\n'
                f'bridges.mqtt.spare {{ server = "{server}", clientid = "edge-spare",'
                ' backoff_max = 1s }\n'
            )
        self.local_clients = Clients(self, self.port)
        self.remote_clients = Clients(self, self.remote.port)

    @defer.inlineCallbacks
    def rest(self, method, path, body=None):
        import treq
        from twisted.web.client import HTTPConnectionPool

        pool = HTTPConnectionPool(reactor, persistent=False)
        url = f"http://127.0.0.1:{self.http_port}/api/v4/bridges{path}"
        response = yield treq.request(method, url, json=body, auth=("admin", "public"),
                                      pool=pool)
        content = yield response.json()
        yield pool.closeCachedConnections()
        self.assertEqual(response.code, 200, content)
        return content

    @defer.inlineCallbacks
    def test_rest_changes_survive_sigterm(self):
        yield self.remote.start()
        proc, transport = yield self.start()
        yield self.rest("PUT", "/up", {"up": {
            "server": f"mqtt-tcp://127.0.0.1:{self.remote.port}",
            "clientid": "edge-up",
            "max_send_queue_len": 1000,
            "forwards": [{"local_topic": "a/#", "remote_topic": "", "prefix": "rest/",
                          "qos": 1}],
        }})
        yield self.rest("POST", "/sub/up", {"data": {"subscription": [
            {"remote_topic": "down/#", "local_topic": "", "qos": 1},
            {"remote_topic": "gone/#", "local_topic": "", "qos": 1},
        ]}})
        yield self.rest("PUT", "/unsub/up", {"data": {"unsubscription": [{"topic": "gone/#"}]}})
        yield self.rest("POST", "/switch/spare", {"data": {"bridge_switch": False}})
        before = (yield self.rest("GET", ""))["data"]["bridge"]["nodes"]
        yield self.stop(proc, transport, signal.SIGTERM)

        proc, transport = yield self.start()
        self.assertIn(b"Restored 2 bridges changed over REST", proc.output)
        after = (yield self.rest("GET", ""))["data"]["bridge"]["nodes"]
        self.assertEqual(after, before)
        (up,) = [n for n in after if n["name"] == "up"]
        self.assertEqual(up["forwards"], [{"prefix": "rest/", "remote_topic": "",
                                           "local_topic": "a/#", "qos": 1}])
        self.assertEqual([s["remote_topic"] for s in up["subscription"]], ["down/#"])
        self.assertEqual({n["name"]: n["enable"] for n in after}, {"up": True, "spare": False})

        remote = self.remote_clients("remote-check")
        local = self.local_clients("local-check")
        local_pub = self.local_clients("local-pub")

        def check():
            remote.connect()
            remote.subscribe("+/a/#", 1)
            local.connect()
            local.subscribe("down/#", 1)
            # Queued (QoS 1, max_send_queue_len) until the bridge is up.
            local_pub.connect()
            local_pub.publish("a/x", b"up", 1)
            message = remote.expect()
            self.assertEqual((message.topic, message.payload, message.qos),
                             ("rest/a/x", b"up", 1))
            # Retained at the remote, so it comes down whenever the
            # bridge's restored subscription reaches Mosquitto.
            remote.publish("down/y", b"d", 1, retain=True)
            message = local.expect()
            self.assertEqual((message.topic, message.payload), ("down/y", b"d"))

        yield in_thread(check)
        yield self.stop(proc, transport, signal.SIGTERM)

    @defer.inlineCallbacks
    def test_offline_queue_survives_sigterm(self):
        count = 100
        with open(self.conf, "a") as f:
            # The fence below comes back through this subscription.
            f.write('bridges.mqtt.up.subscription = '
                    '[ { remote_topic = "fence/#", local_topic = "", qos = 1 } ]\n')
        proc, transport = yield self.start()  # the remote is down
        pub = self.local_clients("queue-pub")

        def publish_all():
            pub.connect()
            for i in range(count):
                pub.publish(f"q/{i}", str(i).encode(), 1)
            pub.disconnect()

        yield in_thread(publish_all)
        yield self.stop(proc, transport, signal.SIGTERM)
        self.assertEqual(self.queued(), count)

        yield self.remote.start()
        remote = self.remote_clients("queue-sub")
        yield in_thread(lambda: (remote.connect(), remote.subscribe("q/#", 1)))
        proc, transport = yield self.start()
        self.assertIn(b"and %d messages queued for bridges" % count, proc.output)

        def receive():
            return [int(remote.expect().payload) for _ in range(count)]

        self.assertEqual((yield in_thread(receive)), list(range(count)))

        def fence():
            """Mosquitto queued its PUBACK for the last message on the
            bridge's connection before that message reached ``remote``; a
            message published at the remote now comes down the same
            connection after it, so once it arrives here the bridge has
            read every PUBACK."""
            down = self.local_clients("fence-sub")
            down.connect()
            down.subscribe("fence/#", 1)
            up = self.remote_clients("fence-pub")
            up.connect()
            up.publish("fence/acks", b"after the acks", 1)
            self.assertEqual(down.expect().topic, "fence/acks")

        yield in_thread(fence)
        # SIGTERM flushes the store: delivered and acknowledged is gone.
        yield self.stop(proc, transport, signal.SIGTERM)
        self.assertEqual(self.queued(), 0)

    def queued(self):
        db = sqlite3.connect(self.db, timeout=1)
        try:
            return db.execute("SELECT count(*) FROM bridge_messages").fetchone()[0]
        finally:
            db.close()
