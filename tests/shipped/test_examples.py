"""
Every configuration under ``etc/examples/`` is loaded with the real loader,
started, and used once by a real client.

The folder is copied into a temporary directory (the includes of
``auth.conf`` are relative to it) and only addresses and paths change:
listeners bind 127.0.0.1 port 0, the test certificates of ``etc/certs`` are
given by absolute path, the bridge and republish targets are a second
broker started by the test, the JWT key is one the test generates.
`ExampleCoverageTests` fails when an example is added without a test here.
"""

import base64
import glob
import os
import shutil
import ssl
import time

import jwt
import treq
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet import defer, reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import HTTPConnectionPool

from ..e2e.support import Client, in_thread, start_broker
from .support import EXAMPLES, ROOT, q, rewrite, start_config

CERTS = os.path.join(ROOT, "etc", "certs")

#: Examples checked here, by file name.
COVERED = {
    "auth.conf", "bridge.conf", "bridge_quic.conf", "http_jwt.conf",
    "nanomq_acl.conf", "nanomq_pwd.conf", "quic.conf", "rules.conf",
    "tls.conf", "ws.conf",
}


class ExampleCoverageTests(SynchronousTestCase):
    def test_every_example_is_covered(self):
        present = {os.path.basename(p) for p in glob.glob(os.path.join(EXAMPLES, "*.conf"))}
        self.assertEqual(present, COVERED)


def loopback_binds(text):
    """Every ``bind = "0.0.0.0:N[/path]"`` on 127.0.0.1 port 0."""
    return text.replace('"0.0.0.0:', '"127.0.0.1:').replace(
        '"127.0.0.1:1883"', '"127.0.0.1:0"').replace(
        '"127.0.0.1:8883"', '"127.0.0.1:0"').replace(
        '"127.0.0.1:8083/mqtt"', '"127.0.0.1:0/mqtt"').replace(
        '"127.0.0.1:8086/mqtt"', '"127.0.0.1:0/mqtt"').replace(
        '"127.0.0.1:14567"', '"127.0.0.1:0"')


class ExampleTests(TestCase):
    timeout = 60

    def setUp(self):
        self.workdir = os.path.abspath(self.mktemp())
        shutil.copytree(EXAMPLES, self.workdir)

    def example(self, name, changes=()):
        """Rewrite ``name`` in the copy: loopback binds, absolute test
        certificates, then ``changes`` (each must match once)."""
        path = os.path.join(self.workdir, name)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        text = rewrite(text, changes, name) if changes else text
        text = loopback_binds(text).replace('"etc/certs/', q(CERTS + "/")[:-1])
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def client(self, port, client_id, protocol=4, **kwargs):
        client = Client(port, client_id, protocol, **kwargs)
        self.addCleanup(lambda: in_thread(client.disconnect))
        return client

    @defer.inlineCallbacks
    def remote(self):
        """A plain broker standing in for the bridges' and rules' target."""
        self.remote_broker = yield start_broker(self)
        return self.remote_broker.port

    def remote_connected(self, client_id):
        """Fires once ``client_id`` has connected to the remote broker."""
        broker = self.remote_broker.broker
        if client_id in broker.connections:
            return defer.succeed(None)
        waiter = defer.Deferred()

        def observer(event, conn=None, code=None, **_):
            if event == "client_connack" and code == 0 and conn.client_id == client_id:
                broker.events.unlisten("client_connack", observer)
                waiter.callback(None)

        broker.events.listen("client_connack", observer)
        return waiter

    # -- one test per example ------------------------------------------------

    @defer.inlineCallbacks
    def test_auth(self):
        """Password file (plain and PBKDF2) and ACL file via includes."""
        _, ports = yield start_config(self, self.example("auth.conf"))

        def scenario():
            ok = self.client(ports["tcp"], "c-admin")
            ok.paho.username_pw_set("admin", "public")
            self.assertEqual(ok.connect()[1], 0)
            alice = self.client(ports["tcp"], "c-alice")
            alice.paho.username_pw_set("alice", "wonderland")
            self.assertEqual(alice.connect()[1], 0)
            bad = self.client(ports["tcp"], "c-bad")
            bad.paho.username_pw_set("admin", "nope")
            code = bad.connect(expect_success=False)[1]
            self.assertEqual(str(code), "Bad user name or password")

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_bridge(self):
        remote = yield self.remote()
        path = self.example("bridge.conf", [
            (r'"mqtt-tcp://127\.0\.0\.1:1885"', q(f"mqtt-tcp://127.0.0.1:{remote}"))])
        _, ports = yield start_config(self, path)

        def scenario():
            up = self.client(remote, "cloud")
            up.connect()
            up.subscribe("cloud/alarm", 1)
            local = self.client(ports["tcp"], "edge-device")
            local.connect()
            # QoS 1 waits in the bridge's offline queue until it connects.
            local.publish("alarm/fire", b"hot", 1)
            message = up.expect()
            self.assertEqual((message.topic, message.payload), ("cloud/alarm", b"hot"))

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_bridge_quic(self):
        """Starts with its QUIC bridge dialling a port where nothing
        answers; local clients are served meanwhile."""
        remote = yield self.remote()
        path = self.example("bridge_quic.conf", [
            (r'"mqtt-tcp://127\.0\.0\.1:1885"', q(f"mqtt-tcp://127.0.0.1:{remote}"))])
        _, ports = yield start_config(self, path)
        yield in_thread(lambda: self.client(ports["tcp"], "quic-edge").connect())

    @defer.inlineCallbacks
    def test_http_jwt(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        keyfile = os.path.join(self.workdir, "jwtRS256.key.pub")
        with open(keyfile, "wb") as f:
            f.write(key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        path = self.example("http_jwt.conf", [
            (r'"etc/certs/jwt/jwtRS256\.key\.pub"', q(keyfile)),
            (r"port = 8081", "port = 0")])
        _, ports = yield start_config(self, path, ("tcp", "http"))
        pool = HTTPConnectionPool(reactor, persistent=False)
        url = f"http://127.0.0.1:{ports['http']}/api/v4/brokers"
        token = jwt.encode({"iss": "jwtRS256.key.pub", "exp": int(time.time()) + 60},
                           key, algorithm="RS256")
        response = yield treq.get(url, headers={b"Authorization": [b"Bearer " + token.encode()]},
                                  pool=pool)
        yield response.content()
        self.assertEqual(response.code, 200)
        basic = b"Basic " + base64.b64encode(b"admin:public")
        response = yield treq.get(url, headers={b"Authorization": [basic]}, pool=pool)
        yield response.content()
        self.assertEqual(response.code, 401)

    @defer.inlineCallbacks
    def test_quic(self):
        _, ports = yield start_config(self, self.example("quic.conf"), ("tcp", "quic"))
        self.assertGreater(ports["quic"], 0)
        yield in_thread(lambda: self.client(ports["tcp"], "quic-tcp").connect())

    @defer.inlineCallbacks
    def test_rules(self):
        """The republish rule sends ``repub/in`` to the (rewritten) server
        as ``repub/out``; the MySQL rule's server is absent and only logs."""
        remote = yield self.remote()
        path = self.example("rules.conf", [
            (r'"/tmp/rule_engine\.db"', q(os.path.join(self.workdir, "rules.db"))),
            (r"127\.0\.0\.1:1883", f"127.0.0.1:{remote}")])
        _, ports = yield start_config(self, path)
        # The republish client dials on its own; publish once it is in.
        yield self.remote_connected("repub-client")

        def scenario():
            out = self.client(remote, "repub-watch")
            out.connect()
            out.subscribe("repub/out", 0)
            local = self.client(ports["tcp"], "repub-source")
            local.connect()
            local.publish("repub/in", b"x", 1)
            self.assertEqual(out.expect().topic, "repub/out")

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_tls(self):
        _, ports = yield start_config(self, self.example("tls.conf"), ("tcp", "ssl", "wss"))

        def scenario():
            for name in ("ssl", "wss"):
                kwargs = {"transport": "websockets"} if name == "wss" else {}
                client = self.client(ports[name], "tls-" + name, **kwargs)
                if name == "wss":
                    client.paho.ws_set_options(path="/mqtt")
                client.paho.tls_set(ca_certs=os.path.join(CERTS, "cacert.pem"),
                                    tls_version=ssl.PROTOCOL_TLS_CLIENT)
                self.assertEqual(client.connect()[1], 0)

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_ws(self):
        _, ports = yield start_config(self, self.example("ws.conf"), ("tcp", "ws"))

        def scenario():
            client = self.client(ports["ws"], "ws-example", 5, transport="websockets")
            client.paho.ws_set_options(path="/mqtt")
            self.assertEqual(client.connect()[1], 0)

        yield in_thread(scenario)

    def test_password_and_acl_files_load_on_their_own(self):
        """``nanomq_pwd.conf`` and ``nanomq_acl.conf`` are includes of
        ``auth.conf`` (test_auth uses both); they also parse alone."""
        from nanomq_twisted.config.hocon import parse_text

        for name in ("nanomq_pwd.conf", "nanomq_acl.conf"):
            with open(os.path.join(self.workdir, name), encoding="utf-8") as f:
                self.assertTrue(parse_text(f.read(), name, self.workdir))
