"""
The shipped ``etc/nanomq.conf`` with the clients people use: paho-mqtt 2.x
at 3.1.1 and 5 over TCP and WebSocket, ``mosquitto_pub``/``mosquitto_sub``
at ``-V 5`` and ``-V 311``, and the REST API and Prometheus endpoint with
the file's own admin/public.

This is the tier that was missing when ``max_packet_size = 256MB`` locked
every paho v5 client out: paho refuses a CONNACK whose Maximum Packet Size
is out of range before any callback runs, so a successful ``connect`` here
is the check.
"""

import base64
import shutil
import subprocess
import uuid

import treq
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from ..e2e.support import TIMEOUT, in_thread
from .support import ADMIN, PahoClients, start_shipped

MOSQUITTO_PUB = shutil.which("mosquitto_pub")
MOSQUITTO_SUB = shutil.which("mosquitto_sub")


def _props(**values):
    props = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(props, name, value)
    return props


class PahoOnShippedConfigTests(TestCase):
    """Every combination of protocol (3.1.1, 5) and transport (TCP, WS)."""

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.shipped = yield start_shipped(self)
        self.clients = PahoClients(self, self.shipped)

    def _qos_round_trip(self, protocol, transport):
        tag = f"{protocol}-{transport}"
        sub = self.clients(f"sub-{tag}", protocol, transport)
        sub.connect()
        self.assertEqual(sub.subscribe(f"shipped/{tag}/#", 2)[0].value, 2)
        pub = self.clients(f"pub-{tag}", protocol, transport)
        pub.connect()
        for qos in (0, 1, 2):
            pub.publish(f"shipped/{tag}/q{qos}", f"qos {qos}".encode(), qos)
        got = sorted((m.topic, m.payload, m.qos) for m in
                     (sub.expect(), sub.expect(), sub.expect()))
        self.assertEqual(got, [
            (f"shipped/{tag}/q{qos}", f"qos {qos}".encode(), qos) for qos in (0, 1, 2)
        ])

    def test_qos_0_1_2_every_protocol_and_transport(self):
        def scenario():
            for protocol in (4, 5):
                for transport in ("tcp", "ws"):
                    self._qos_round_trip(protocol, transport)

        return in_thread(scenario)

    def test_v5_connack_properties(self):
        """What paho checked before accepting the connection: Maximum
        Packet Size 268,435,455 (the shipped 256MB is one byte over) and
        Receive Maximum 2048 (``max_inflight_window``)."""
        def scenario():
            for transport in ("tcp", "ws"):
                client = self.clients(f"props-{transport}", 5, transport)
                _flags, code, props = client.connect()
                self.assertEqual(code, 0)
                self.assertEqual(props.MaximumPacketSize, 268435455)
                self.assertEqual(props.ReceiveMaximum, 2048)
                self.assertEqual(props.TopicAliasMaximum, 1024)

        return in_thread(scenario)

    def test_v5_topic_alias_and_user_properties(self):
        def scenario():
            for transport in ("tcp", "ws"):
                sub = self.clients(f"alias-sub-{transport}", 5, transport)
                sub.connect()
                sub.subscribe(f"alias/{transport}", 1)
                pub = self.clients(f"alias-pub-{transport}", 5, transport)
                pub.connect()
                # Topic and alias 3, then the alias alone [MQTT-3.3.2-12].
                pub.publish(f"alias/{transport}", b"first", 1,
                            properties=_props(TopicAlias=3,
                                              UserProperty=[("k", "v1")]))
                pub.publish("", b"second", 1,
                            properties=_props(TopicAlias=3,
                                              UserProperty=[("k", "v2")]))
                for payload, value in ((b"first", "v1"), (b"second", "v2")):
                    message = sub.expect()
                    self.assertEqual((message.topic, message.payload),
                                     (f"alias/{transport}", payload))
                    self.assertEqual(message.properties.UserProperty, [("k", value)])

        return in_thread(scenario)

    def test_v5_session_expiry_keeps_queued_messages(self):
        """A session with an expiry survives its connection; what was
        published meanwhile arrives on reconnect, with Session Present."""
        def scenario():
            for transport in ("tcp", "ws"):
                cid = f"expiring-{transport}-{uuid.uuid4().hex[:6]}"
                connect_props = Properties(PacketTypes.CONNECT)
                connect_props.SessionExpiryInterval = 300
                first = self.clients(cid, 5, transport, clean=False)
                first.connect(properties=connect_props)
                first.subscribe(f"away/{transport}", 1)
                first.disconnect()
                pub = self.clients(f"away-pub-{transport}", 5, transport)
                pub.connect()
                pub.publish(f"away/{transport}", b"while away", 1)
                again = self.clients(cid, 5, transport, clean=False)
                flags, _code, _props = again.connect(properties=connect_props)
                self.assertTrue(flags.session_present)
                message = again.expect()
                self.assertEqual((message.payload, message.qos), (b"while away", 1))

        return in_thread(scenario)


class MosquittoClientsOnShippedConfigTests(TestCase):
    if MOSQUITTO_PUB is None or MOSQUITTO_SUB is None:
        skip = "mosquitto_pub/mosquitto_sub not installed (apt-get install mosquitto-clients)"

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.shipped = yield start_shipped(self)

    def test_mosquitto_pub_and_sub_v5_and_v311(self):
        port = str(self.shipped.port)

        def scenario():
            for version in ("5", "311"):
                topic = f"mosq/shipped/{version}"
                # A retained QoS 1 message, then a subscriber that must
                # receive it: no race between SUBSCRIBE and PUBLISH.
                done = subprocess.run(
                    [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", port, "-V", version,
                     "-q", "1", "-r", "-t", topic, "-m", "v" + version],
                    capture_output=True, timeout=TIMEOUT, check=False)
                self.assertEqual(done.returncode, 0, done.stderr)
                got = subprocess.run(
                    [MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", port, "-V", version,
                     "-q", "2", "-C", "1", "-W", "10", "-v", "-t", topic],
                    capture_output=True, timeout=TIMEOUT + 5, check=False)
                self.assertEqual(got.returncode, 0, got.stderr)
                self.assertEqual(got.stdout, f"{topic} v{version}\n".encode())

        return in_thread(scenario)


class RestOnShippedConfigTests(TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.shipped = yield start_shipped(self)
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    def url(self, path):
        return f"http://127.0.0.1:{self.shipped.ports['http']}/api/v4{path}"

    @defer.inlineCallbacks
    def get(self, path, credentials=ADMIN):
        headers = {}
        if credentials is not None:
            token = base64.b64encode(":".join(credentials).encode())
            headers[b"Authorization"] = [b"Basic " + token]
        response = yield treq.get(self.url(path), headers=headers, pool=self.pool)
        body = yield response.content()
        return response.code, body

    @defer.inlineCallbacks
    def test_default_credentials(self):
        code, body = yield self.get("/brokers")
        self.assertEqual(code, 200)
        self.assertIn(b'"code":0', body.replace(b" ", b""))
        code, _ = yield self.get("/brokers", credentials=None)
        self.assertEqual(code, 401)
        code, _ = yield self.get("/brokers", credentials=("admin", "wrong"))
        self.assertEqual(code, 401)

    @defer.inlineCallbacks
    def test_prometheus_counts_a_real_client(self):
        client = self.shipped.client("prom", 5)
        self.addCleanup(lambda: in_thread(client.disconnect))
        yield in_thread(client.connect)
        code, body = yield self.get("/prometheus")
        self.assertEqual(code, 200)
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        self.assertEqual(families["nanomq_connections_count"].samples[0].value, 1)
