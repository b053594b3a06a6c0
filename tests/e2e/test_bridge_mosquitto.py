"""
Bridges to a real Mosquitto (Debian ``mosquitto``), started per test on a
free loopback port: forwards and subscriptions with remapping, MQTT 5
properties, the 3.1.1 bridge bit, TLS, and fault tests (the remote stopped
in the middle of a stream, then restarted on the same port).
"""

import base64
import json
import os
import socket
import threading
import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from nanomq_twisted.bridge.service import sender_id

from .mosquitto import MOSQUITTO, Mosquitto, make_certificates, wait_for
from .support import Clients, in_thread, start_broker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_udp_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


def bridge_conf(server, body="", name="up"):
    return f"""
bridges.mqtt.{name} {{
    server = "{server}"
    clientid = "edge1"
    keepalive = 30s
    backoff_max = 1s
    {body}
}}
"""


def user_props(packet_type=PacketTypes.PUBLISH, **pairs):
    props = Properties(packet_type)
    props.UserProperty = list(pairs.items())
    return props


def stream(client, count, qos, timeout=30.0):
    """Connect ``client`` and publish ``s/0`` .. ``s/<count-1>`` (payload
    the number); return once the local broker acknowledged them all
    (bounded by ``timeout`` overall, so a failed test never hangs here)."""
    client.paho.max_inflight_messages_set(100)
    client.connect()
    infos = [client.paho.publish(f"s/{i}", str(i).encode(), qos) for i in range(count)]
    deadline = time.monotonic() + timeout
    for info in infos:
        info.wait_for_publish(max(0.01, deadline - time.monotonic()))
        if not info.is_published():
            raise AssertionError(f"message {info.mid} not acknowledged in {timeout}s")


class Collector:
    """Thread-safe record of the payloads a paho client receives."""

    def __init__(self, client):
        self.lock = threading.Lock()
        self.payloads = []
        client.paho.on_message = self._on_message

    def _on_message(self, _client, _userdata, message):
        with self.lock:
            self.payloads.append(int(message.payload))

    def snapshot(self):
        with self.lock:
            return list(self.payloads)

    def __len__(self):
        with self.lock:
            return len(self.payloads)


class BridgeE2E(TestCase):
    timeout = 60

    def setUp(self):
        if MOSQUITTO is None:
            raise self.skipTest("mosquitto is not installed (apt-get install mosquitto)")

    @defer.inlineCallbacks
    def bridged(self, body, proto_ver=4, tls=None, persistence=False, scheme="mqtt-tcp",
                extra=""):
        """Start mosquitto, then our broker bridged to it (``extra``: more
        broker configuration); wait until the bridge's SUBSCRIBE has been
        acknowledged."""
        self.remote = Mosquitto(self, tls=tls, persistence=persistence)
        yield self.remote.start()
        server = f"{scheme}://127.0.0.1:{self.remote.port}"
        conf = bridge_conf(server, f"proto_ver = {proto_ver}\n{body}") + extra
        self.local = yield start_broker(self, conf)
        self.bridge = self.local.app.bridges.get("up").bridge
        yield self.wait_ready()
        self.remote_clients = Clients(self, self.remote.port)
        self.local_clients = Clients(self, self.local.port)

    def wait_ready(self, timeout=10.0):
        bridge = self.bridge
        return wait_for(
            lambda: bridge.protocol is not None and not bridge.protocol.pending_requests(),
            timeout,
            what="the bridge to connect and subscribe",
        )

    @defer.inlineCallbacks
    def test_forwards_subscriptions_and_v5_properties(self):
        yield self.bridged(
            """
            forwards = [
                { local_topic = "sensors/#", remote_topic = "", prefix = "edge/" }
                { local_topic = "alarm/+/x/#", remote_topic = "+/x/#", qos = 1 }
            ]
            subscription = [ { remote_topic = "cmd/edge1/#", local_topic = "#", qos = 1 } ]
            conn_properties { session_expiry_interval = 60, user_property { site = a1 } }
            """,
            proto_ver=5,
        )

        def scenario():
            remote = self.remote_clients("cloud", 5)
            remote.connect()
            remote.subscribe("#", 1)
            local = self.local_clients("device", 5)
            local.connect()
            local.subscribe("go/#", 1)
            local.publish("sensors/t1", b"21", 1, properties=user_props(unit="C"))
            message = remote.expect()
            self.assertEqual((message.topic, message.payload), ("edge/sensors/t1", b"21"))
            self.assertEqual(message.properties.UserProperty, [("unit", "C")])
            local.publish("alarm/a/x/y", b"!", 0)
            message = remote.expect()
            self.assertEqual((message.topic, message.qos), ("a/x/y", 1))
            remote.publish("cmd/edge1/go/now", b"do", 1, properties=user_props(k="v"))
            message = remote.expect()  # the remote subscriber's own copy
            self.assertEqual(message.topic, "cmd/edge1/go/now")
            message = local.expect()
            self.assertEqual((message.topic, message.payload), ("go/now", b"do"))
            self.assertEqual(message.properties.UserProperty, [("k", "v")])

        yield in_thread(scenario)
        stats = self.bridge.stats
        self.assertEqual((stats.sent, stats.received, stats.dropped), (2, 1, 0))

    @defer.inlineCallbacks
    def test_v311_bridge_bit_prevents_echo(self):
        # Forwards and subscription overlap on the remote: with the bridge
        # bit Mosquitto does not send our own messages back.
        yield self.bridged(
            """
            forwards = [ { local_topic = "loop/#", remote_topic = "" } ]
            subscription = [ { remote_topic = "loop/#", local_topic = "", qos = 1 } ]
            """,
            proto_ver=4,
        )

        def scenario():
            remote = self.remote_clients("cloud", 4)
            remote.connect()
            remote.subscribe("loop/#", 1)
            local = self.local_clients("device", 4)
            local.connect()
            local.subscribe("loop/#", 1)
            local.publish("loop/a", b"1", 1)
            self.assertEqual(local.expect().topic, "loop/a")
            self.assertEqual(remote.expect().topic, "loop/a")
            remote.publish("loop/sentinel", b"2", 1)
            local.expect_sentinel("loop/sentinel")

        yield in_thread(scenario)
        self.assertEqual(self.bridge.stats.received, 1)

    @defer.inlineCallbacks
    def test_tls_bridge(self):
        certs_dir = os.path.abspath(self.mktemp())
        os.makedirs(certs_dir)
        certs = make_certificates(certs_dir)
        yield self.bridged(
            """
            ssl {{ cacertfile = "{}" }}
            forwards = [ {{ local_topic = "secure/#", remote_topic = "" }} ]
            subscription = [ {{ remote_topic = "down/#", local_topic = "", qos = 1 }} ]
            """.format(certs["ca"]),
            proto_ver=4,
            tls=certs,
            scheme="tls+mqtt-tcp",
        )

        def scenario():
            # paho to the TLS listener, trusting the same CA.
            remote = self.remote_clients("cloud", 4)
            remote.paho.tls_set(ca_certs=certs["ca"])
            remote.connect()
            remote.subscribe("secure/#", 1)
            local = self.local_clients("device", 4)
            local.connect()
            local.subscribe("down/#", 1)
            local.publish("secure/x", b"s", 1)
            self.assertEqual(remote.expect().topic, "secure/x")
            remote.publish("down/y", b"d", 1)
            self.assertEqual(local.expect().topic, "down/y")

        yield in_thread(scenario)

    # -- fault tests --------------------------------------------------------

    @defer.inlineCallbacks
    def stream_through_restart(self, qos, count, body, offline_subscriber=False):
        """Publish ``count`` messages locally while the remote is stopped
        mid-stream and restarted; return the payloads a persistent remote
        subscriber received.

        With ``offline_subscriber`` the subscriber disconnects before the
        stream (Mosquitto queues everything for its session) and comes
        back once the bridge has handed every message over: what it gets
        then shows what crossed the bridge, without Mosquitto's own replay
        of the messages it was delivering to a connected subscriber when
        it stopped (Mosquitto 2.0 resends that window after a restart)."""
        yield self.bridged(body, proto_ver=4, persistence=True)
        remote = self.remote_clients("fault-sub", 4, clean=False)
        collector = Collector(remote)

        def subscribe():
            remote.paho.reconnect_delay_set(0.05, 0.2)
            remote.connect()
            remote.subscribe("s/#", qos)
            if offline_subscriber:
                remote.disconnect()

        yield in_thread(subscribe)
        local = self.local_clients("fault-pub", 4)
        stats = self.bridge.stats
        session = self.bridge.session
        started = self.reactor_seconds()
        publishing = in_thread(stream, local, count, qos)
        if offline_subscriber:
            yield wait_for(lambda: stats.sent >= count // 5, what="the stream to start")
        else:
            yield wait_for(lambda: len(collector) >= count // 5, what="the stream to start")
        yield self.remote.stop()
        yield wait_for(lambda: not stats.connected, what="the bridge to notice")
        self.stopped_at = stats.sent
        yield publishing
        yield self.remote.start()
        if offline_subscriber:
            yield wait_for(
                lambda: stats.connected and not session.queue and not session.inflight,
                timeout=20,
                what="the bridge to hand every message over",
            )
            remote = self.remote_clients("fault-sub", 4, clean=False)
            collector = Collector(remote)
            yield in_thread(remote.connect)
        try:
            yield wait_for(
                lambda: len(set(collector.snapshot())) >= count,
                timeout=20,
                what="every message to arrive",
            )
        except AssertionError as e:
            got = collector.snapshot()
            raise AssertionError(
                f"{e}: {len(got)} received, {len(set(got))} distinct, bridge {stats.as_dict()}"
            ) from None
        self.elapsed = self.reactor_seconds() - started
        return collector.snapshot()

    @staticmethod
    def reactor_seconds():
        from twisted.internet import reactor

        return reactor.seconds()

    @defer.inlineCallbacks
    def test_qos1_stream_survives_remote_restart(self):
        count = 10000
        received = yield self.stream_through_restart(
            1,
            count,
            """
            forwards = [ { local_topic = "s/#", remote_topic = "" } ]
            max_send_queue_len = 20000
            """,
        )
        self.assertEqual(set(received), set(range(count)))
        self.assertEqual(self.bridge.stats.dropped, 0)

    @defer.inlineCallbacks
    def test_qos2_stream_in_order(self):
        # clean_start = false: Mosquitto (with persistence) keeps the
        # bridge's session, so the in-flight messages are resent with their
        # packet ids (PUBREL for those already PUBREC'd) and Mosquitto
        # de-duplicates them: every message crosses the bridge exactly
        # once, in order.
        count = 10000
        received = yield self.stream_through_restart(
            2,
            count,
            """
            clean_start = false
            forwards = [ { local_topic = "s/#", remote_topic = "" } ]
            max_send_queue_len = 20000
            """,
            offline_subscriber=True,
        )
        self.assertEqual(len(received), count)
        self.assertEqual(received, list(range(count)))
        self.assertEqual(self.bridge.stats.dropped, 0)

    @defer.inlineCallbacks
    def test_queue_overflow_counted(self):
        yield self.bridged(
            """
            forwards = [ { local_topic = "s/#", remote_topic = "" } ]
            max_send_queue_len = 10
            """,
            proto_ver=4,
            persistence=True,
        )
        remote = self.remote_clients("overflow-sub", 4, clean=False)
        collector = Collector(remote)

        def subscribe():
            remote.paho.reconnect_delay_set(0.05, 0.2)
            remote.connect()
            remote.subscribe("s/#", 1)

        yield in_thread(subscribe)
        yield self.remote.stop()
        yield wait_for(lambda: not self.bridge.stats.connected, what="the bridge to notice")
        local = self.local_clients("overflow-pub", 4)

        def publish_all():
            local.connect()
            for i in range(50):
                local.publish(f"s/{i}", str(i).encode(), 1)
            local.publish("s/qos0", b"-1", 0)

        yield in_thread(publish_all)
        stats = self.bridge.stats
        self.assertEqual((stats.queued, stats.dropped), (10, 41))
        yield self.remote.start()
        yield wait_for(lambda: len(collector) >= 10, what="the queue to drain")
        self.assertEqual(collector.snapshot(), list(range(40, 50)))

    # -- REST reconfiguration while traffic flows ----------------------------

    @defer.inlineCallbacks
    def rest(self, method, path, body):
        import treq
        from twisted.internet import reactor
        from twisted.web.client import HTTPConnectionPool

        port = getattr(self, "http_port", None)
        if port is None:
            port = yield self.local.app.port("http")
            self.http_port = port
        pool = HTTPConnectionPool(reactor, persistent=False)
        response = yield treq.request(
            method,
            f"http://127.0.0.1:{port}/api/v4{path}",
            headers={b"Authorization": [b"Basic " + base64.b64encode(b"admin:public")]},
            data=json.dumps(body).encode("utf-8"),
            pool=pool,
        )
        content = yield response.content()
        return response.code, json.loads(content)

    @defer.inlineCallbacks
    def test_rest_reconfigure_while_streaming(self):
        # PUT /bridges/up (new forwards, reconnect) and POST /bridges/sub/up
        # (new remote subscription, no reconnect) while a local publisher
        # streams QoS 1: the offline queue covers the reconnect, so every
        # message arrives, and the new forwards and subscription work.
        count = 10000
        forwards = '[ { local_topic = "s/#", remote_topic = "" } ]'
        yield self.bridged(
            f"forwards = {forwards}\nmax_send_queue_len = 20000\n",
            extra='http_server { port = 0, ip_addr = "127.0.0.1" }\n',
        )
        remote = self.remote_clients("rest-sub", 4)
        collector = Collector(remote)
        local = self.local_clients("rest-pub", 4)
        local_sub = self.local_clients("rest-local-sub", 4)

        def setup():
            remote.connect()
            remote.subscribe("s/#", 1)
            local_sub.connect()
            local_sub.subscribe("down/#", 1)

        yield in_thread(setup)

        publishing = in_thread(stream, local, count, 1)
        yield wait_for(lambda: len(collector) >= count // 10, what="the stream to start")
        status, body = yield self.rest("PUT", "/bridges/up", {"up": {
            "server": f"mqtt-tcp://127.0.0.1:{self.remote.port}",
            "proto_ver": 4,
            "clientid": "edge1",
            "keepalive": "30s",
            "max_send_queue_len": 20000,
            "forwards": [
                {"local_topic": "s/#", "remote_topic": ""},
                {"local_topic": "new/#", "remote_topic": "", "prefix": "fwd/", "qos": 1},
            ],
        }})
        self.assertEqual((status, body), (200, {"code": 0}))
        yield self.wait_ready()
        status, body = yield self.rest("POST", "/bridges/sub/up", {"data": {"subscription": [
            {"remote_topic": "down/#", "local_topic": "", "qos": 1},
        ]}})
        self.assertEqual((status, body), (200, {"code": 0}))
        yield self.wait_ready()  # the SUBACK
        self.assertFalse(publishing.called, "the stream ended before the changes")
        yield publishing
        yield wait_for(
            lambda: len(set(collector.snapshot())) >= count,
            timeout=20,
            what="every message to arrive",
        )
        self.assertEqual(set(collector.snapshot()), set(range(count)))
        stats = self.bridge.stats
        self.assertEqual((stats.connects, stats.dropped), (2, 0))

        def new_rules():
            check = self.remote_clients("rest-check", 4)
            check.connect()
            check.subscribe("fwd/#", 1)
            local.publish("new/x", b"n", 0)
            message = check.expect()
            self.assertEqual((message.topic, message.qos), ("fwd/new/x", 1))
            check.publish("down/y", b"d", 1)
            self.assertEqual(local_sub.expect().topic, "down/y")

        yield in_thread(new_rules)

    # -- the shipped example --------------------------------------------------

    @defer.inlineCallbacks
    def test_example_bridge_conf(self):
        with open(os.path.join(ROOT, "etc", "examples", "bridge.conf")) as f:
            text = f.read()
        self.remote = Mosquitto(self)
        yield self.remote.start()
        text = text.replace("0.0.0.0:1883", "127.0.0.1:0").replace(
            "127.0.0.1:1885", f"127.0.0.1:{self.remote.port}"
        )
        from nanomq_twisted.config import loads

        from .support import start_app

        app = start_app(self, loads(text, path="bridge.conf"))
        port = yield app.port("tcp")
        self.bridge = app.bridges.get("upstream").bridge
        yield self.wait_ready()
        remote_clients = Clients(self, self.remote.port)
        local_clients = Clients(self, port)

        def scenario():
            remote = remote_clients("cloud", 4)
            remote.connect()
            remote.subscribe("#", 1)
            local = local_clients("device", 4)
            local.connect()
            local.subscribe("cmd/#", 1)
            local.publish("sensors/t", b"1", 0)
            self.assertEqual(remote.expect().topic, "edge1/sensors/t")
            local.publish("alarm/door", b"2", 0)
            message = remote.expect()
            self.assertEqual((message.topic, message.qos), ("cloud/alarm", 1))
            remote.publish("cmd/edge1/reboot", b"3", 1)
            self.assertEqual(remote.expect().topic, "cmd/edge1/reboot")
            self.assertEqual(local.expect().topic, "cmd/reboot")

        yield in_thread(scenario)
        self.assertEqual(self.bridge.sender, sender_id("upstream"))


    # -- parallel_connections -------------------------------------------------

    @defer.inlineCallbacks
    def test_parallel_connections_share_the_forwards(self):
        # parallel_connections = 3: three connections to mosquitto (edge1,
        # edge1-1, edge1-2; its log shows each CONNECT), 3,000 QoS 1
        # messages over 30 topics sharded among them by topic; everything
        # arrives, in order per topic.  The subscription lives on link 0.
        count, topics = 3000, 30
        yield self.bridged(
            """
            parallel_connections = 3
            forwards = [ { local_topic = "p/#", remote_topic = "" } ]
            subscription = [ { remote_topic = "down/#", local_topic = "", qos = 1 } ]
            max_send_queue_len = 5000
            """,
        )
        links = self.bridge.links
        yield wait_for(
            lambda: all(link.protocol is not None for link in links),
            what="all three connections",
        )
        ids = ["edge1", "edge1-1", "edge1-2"]
        self.assertEqual([link.protocol.client_id for link in links], ids)

        def log():
            return b"".join(self.remote.proto.output).decode("utf-8", "replace")

        yield wait_for(
            lambda: all(f" as {client_id} (" in log() for client_id in ids),
            what="mosquitto to log the three CONNECTs",
        )
        remote = self.remote_clients("par-sub", 4)
        local = self.local_clients("par-pub", 4)
        local_sub = self.local_clients("par-local-sub", 4)
        lock = threading.Lock()
        got = {}

        def on_message(_client, _userdata, message):
            with lock:
                got.setdefault(message.topic, []).append(int(message.payload))

        def setup():
            remote.paho.on_message = on_message
            remote.connect()
            remote.subscribe("p/#", 1)
            local_sub.connect()
            local_sub.subscribe("down/#", 1)

        yield in_thread(setup)

        def publish_all():
            local.paho.max_inflight_messages_set(100)
            local.connect()
            infos = [
                local.paho.publish(f"p/{i % topics}", str(i).encode(), 1) for i in range(count)
            ]
            deadline = time.monotonic() + 30
            for info in infos:
                info.wait_for_publish(max(0.01, deadline - time.monotonic()))
                if not info.is_published():
                    raise AssertionError(f"message {info.mid} not acknowledged")

        yield in_thread(publish_all)

        def received():
            with lock:
                return sum(len(v) for v in got.values())

        yield wait_for(lambda: received() >= count, timeout=30, what="every message")
        with lock:
            self.assertEqual(
                {topic: got.get(topic) for topic in (f"p/{n}" for n in range(topics))},
                {f"p/{n}": list(range(n, count, topics)) for n in range(topics)},
            )
        # Every connection carried its share of the topics.
        self.assertTrue(all(link.stats.sent > 0 for link in links), [
            link.stats.sent for link in links
        ])
        metrics = self.bridge.metrics()
        self.assertEqual(metrics["sent messages"], count)
        self.assertEqual(metrics["MQTT reconnect times"], 3)
        self.assertEqual(metrics["uplink msg dropped"], 0)

        # Downward: the remote subscription is on link 0 only.
        def down():
            remote.publish("down/x", b"1", 1)
            self.assertEqual(local_sub.expect().topic, "down/x")

        yield in_thread(down)
        self.assertEqual([link.stats.received for link in links], [1, 0, 0])

class QuicBridgeE2E(TestCase):
    """One instance bridged to another instance's QUIC listener."""

    timeout = 30

    @defer.inlineCallbacks
    def test_quic_bridge_between_two_instances(self):
        try:
            import aioquic  # noqa: F401
        except ImportError:
            raise self.skipTest("aioquic is not installed") from None
        from .support import free_port

        certs_dir = os.path.abspath(self.mktemp())
        os.makedirs(certs_dir)
        certs = make_certificates(certs_dir)
        quic_port = free_port()
        cloud = yield start_broker(
            self,
            f'listeners.quic {{ bind = "127.0.0.1:{quic_port}", '
            f'keyfile = "{certs["key"]}", certfile = "{certs["cert"]}" }}\n',
        )
        yield cloud.listener("quic").listening
        edge = yield start_broker(
            self,
            bridge_conf(
                f"mqtt-quic://127.0.0.1:{quic_port}",
                """
                proto_ver = 4
                forwards = [ { local_topic = "t/#", remote_topic = "", prefix = "edge/" } ]
                subscription = [ { remote_topic = "cmd/#", local_topic = "#", qos = 1 } ]
                """,
            ),
        )
        bridge = edge.app.bridges.get("up").bridge
        yield wait_for(
            lambda: bridge.protocol is not None and not bridge.protocol.pending_requests(),
            what="the QUIC bridge to connect",
        )
        cloud_clients = Clients(self, cloud.port)
        edge_clients = Clients(self, edge.port)

        def scenario():
            remote = cloud_clients("cloud", 4)
            remote.connect()
            remote.subscribe("edge/#", 1)
            local = edge_clients("device", 4)
            local.connect()
            local.subscribe("go", 1)
            local.publish("t/1", b"q", 1)
            self.assertEqual(remote.expect().topic, "edge/t/1")
            remote.publish("cmd/go", b"c", 1)
            self.assertEqual(local.expect().topic, "go")

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_hybrid_falls_back_to_tcp_and_retries_quic(self):
        # The shipped example: QUIC first, TCP fallback.  Nothing listens
        # on the QUIC port, so each QUIC attempt ends at its handshake
        # timeout and the rotation moves on to the other instance's TCP
        # listener; after that connection is lost QUIC is tried again.
        try:
            import aioquic  # noqa: F401
        except ImportError:
            raise self.skipTest("aioquic is not installed") from None
        from nanomq_twisted.bridge.service import HybridEndpoint

        cloud = yield start_broker(self)
        with open(os.path.join(ROOT, "etc", "examples", "bridge_quic.conf")) as f:
            text = f.read()
        for old, new in (
            ('listeners.tcp { bind = "0.0.0.0:1883" }', ""),
            ("mqtt-quic://127.0.0.1:14567", f"mqtt-quic://127.0.0.1:{free_udp_port()}"),
            ("mqtt-tcp://127.0.0.1:1885", f"mqtt-tcp://127.0.0.1:{cloud.port}"),
            ("quic_handshake_timeout = 5s", "quic_handshake_timeout = 300ms"),
            ("backoff_max = 5s", "backoff_max = 200ms"),
        ):
            self.assertIn(old, text)
            text = text.replace(old, new)
        edge = yield start_broker(self, text)
        service = edge.app.bridges.get("quic_up")
        bridge = service.bridge
        self.assertIsInstance(service.endpoint, HybridEndpoint)

        def connected_over_tcp():
            return (
                bridge.protocol is not None
                and not bridge.protocol.pending_requests()
                and bridge.current.scheme == "mqtt-tcp"
            )

        yield wait_for(connected_over_tcp, what="the TCP fallback")
        self.assertGreaterEqual(service.endpoint.index, 2)  # QUIC was tried first
        cloud_clients = Clients(self, cloud.port)
        edge_clients = Clients(self, edge.port)
        remote = cloud_clients("cloud", 4)
        local = edge_clients("device", 4)

        def flow(n):
            local.publish(f"telemetry/{n}", str(n).encode(), 1)
            message = remote.expect()
            self.assertEqual((message.topic, message.payload), (f"telemetry/{n}", str(n).encode()))
            remote.publish(f"cmd/{n}", b"c", 1)
            self.assertEqual(local.expect().topic, f"cmd/{n}")

        def setup():
            remote.connect()
            remote.subscribe("telemetry/#", 1)
            local.connect()
            local.subscribe("cmd/#", 1)
            flow(1)

        yield in_thread(setup)
        # Lose the TCP connection: the next attempt goes to QUIC (and fails),
        # the one after to TCP again; what is published meanwhile is queued.
        before = service.endpoint.index
        bridge.protocol.abort()
        yield wait_for(lambda: bridge.current.scheme == "mqtt-quic", what="QUIC again")
        yield in_thread(local.publish, "telemetry/queued", b"q", 1)
        yield wait_for(connected_over_tcp, what="the TCP fallback again")
        self.assertEqual(service.endpoint.index, before + 2)
        message = yield in_thread(remote.expect)
        self.assertEqual(message.topic, "telemetry/queued")
        yield in_thread(flow, 2)
        self.assertEqual(bridge.stats.dropped, 0)

    @defer.inlineCallbacks
    def test_silent_quic_server_times_out_then_tcp(self):
        # A UDP port that swallows every datagram: no ICMP error, so the
        # QUIC attempt ends at quic_handshake_timeout (its port released)
        # and the hybrid rotation moves on to TCP.
        try:
            import aioquic  # noqa: F401
        except ImportError:
            raise self.skipTest("aioquic is not installed") from None
        from twisted.internet import reactor
        from twisted.internet.protocol import DatagramProtocol

        silent = reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
        self.addCleanup(silent.stopListening)
        cloud = yield start_broker(self)
        edge = yield start_broker(
            self,
            bridge_conf(
                f"mqtt-quic://127.0.0.1:{silent.getHost().port}",
                f"""
                proto_ver = 4
                hybrid_bridging = true
                hybrid_servers = ["mqtt-tcp://127.0.0.1:{cloud.port}"]
                quic_handshake_timeout = 300ms
                forwards = [ {{ local_topic = "t/#", remote_topic = "" }} ]
                """,
            ),
        )
        bridge = edge.app.bridges.get("up").bridge
        yield wait_for(
            lambda: bridge.protocol is not None and bridge.current.scheme == "mqtt-tcp",
            what="the TCP fallback",
        )
        self.assertEqual(bridge.stats.connects, 1)
