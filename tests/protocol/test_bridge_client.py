"""
The bridge client against our own broker protocol, in memory
(``iosim.connectedServerAndClient`` on one ``task.Clock``), plus
``ClientService`` back-off and keepalive on a ``Clock``.
"""

import json
import random
import zlib
from dataclasses import replace

from twisted.internet import defer, task
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import StringTransport
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from nanomq_twisted.bridge.client import BridgeClientFactory
from nanomq_twisted.bridge.service import (
    Bridge,
    BridgeService,
    backoff_cap,
    link_config,
    sender_id,
)
from nanomq_twisted.bridge.topics import shard
from nanomq_twisted.config import BridgeSubscription, loads
from nanomq_twisted.core.broker import Broker
from nanomq_twisted.core.interfaces import IMessageConsumer
from nanomq_twisted.core.message import Message
from nanomq_twisted.transport.protocol import MQTTServerFactory

from ..driving import drive

BASE = 'listeners.tcp { bind = "127.0.0.1:0" }\n'


def bridge_config(body):
    config = loads(BASE + "bridges.mqtt.up {\n" + body + "\n}\n", path="<test>")
    return config, config.bridges[0]


@implementer(IMessageConsumer)
class Recorder:
    """Keeps every message the broker routes: a consumer of every topic in
    its routing trie (core/extensions.py)."""

    consumer_name = "test recorder"

    def __init__(self, broker):
        self.messages = []
        broker.extensions.add(self, "#", sees_dollar=True)

    def deliver(self, message, now):
        self.messages.append(message)

    def topics(self):
        return [m.topic for m in self.messages if not m.topic.startswith("$SYS")]


class BridgeTestCase(SynchronousTestCase):
    body = """
        server = "mqtt-tcp://127.0.0.1:1883"
        proto_ver = 5
        clientid = "edge1"
        keepalive = 60s
        max_send_queue_len = 3
        conn_properties { session_expiry_interval = 30, user_property { a = b } }
        forwards = [
            { local_topic = "sensors/#", remote_topic = "", prefix = "edge1/" }
            { local_topic = "alarm/+/x/#", remote_topic = "+/x/#", qos = 2 }
        ]
        subscription = [
            { remote_topic = "cmd/edge1/#", local_topic = "#", qos = 1 }
        ]
    """

    def setUp(self):
        self.clock = task.Clock()
        self.clock.advance(1000.0)
        config, self.config = bridge_config(self.body)
        self.remote = drive(self, Broker(config.mqtt, clock=self.clock.seconds,
                                         sys_events=False), self.clock)
        self.local = drive(self, Broker(config.mqtt, clock=self.clock.seconds), self.clock)
        self.remote_seen = Recorder(self.remote)
        self.local_seen = Recorder(self.local)
        self.bridge = Bridge(self.config, self.local, self.clock)
        self.bridge.attach()
        self.server_factory = MQTTServerFactory(self.remote, self.clock)
        self.pump = None

    def connect(self):
        client, server, pump = iosim.connectedServerAndClient(
            lambda: self.server_factory.buildProtocol(None),
            lambda: BridgeClientFactory(self.bridge, self.clock).buildProtocol(None),
            clock=self.clock,
        )
        self.pump = pump
        self.client, self.server = client, server
        pump.flush()
        return client

    def publish(self, topic, payload=b"x", qos=0, retain=False, sender="local-client"):
        now = self.clock.seconds()
        self.local.publish(Message(topic, payload, qos, retain, None, now, sender), now)
        if self.pump is not None:
            self.pump.flush()


class ConnectTests(BridgeTestCase):
    def test_v5_connect_properties_and_subscription(self):
        client = self.connect()
        self.assertTrue(client.connected)
        session = self.remote.sessions["edge1"]
        self.assertEqual(session.expiry_interval, 30)
        sub = session.subscriptions["cmd/edge1/#"]
        self.assertEqual((sub.qos, sub.no_local), (1, True))
        self.assertTrue(self.bridge.stats.connected)
        self.assertEqual(self.bridge.stats.connects, 1)

    def test_status_notices_retained(self):
        client = self.connect()
        notice = self.local.retained.get("$SYS/brokers/client_status")
        body = json.loads(notice.payload)
        self.assertEqual((body["status"], body["client_id"]), ("online", "edge1"))
        self.assertTrue(notice.retain)
        client.disconnect()
        self.pump.flush()
        body = json.loads(self.local.retained.get("$SYS/brokers/client_status").payload)
        self.assertEqual((body["status"], body["reason_code"]), ("offline", "8b"))
        self.assertFalse(self.bridge.stats.connected)


class ForwardTests(BridgeTestCase):
    def test_forward_with_prefix_and_remap(self):
        self.connect()
        self.publish("sensors/t1", b"21", qos=1)
        self.publish("alarm/a/x/y/z", b"!", qos=0)
        self.publish("other", b"no")
        self.assertEqual(self.remote_seen.topics(), ["edge1/sensors/t1", "a/x/y/z"])
        self.assertEqual([m.qos for m in self.remote_seen.messages], [1, 2])
        self.assertEqual(self.remote_seen.messages[0].payload, b"21")
        self.assertEqual(self.bridge.stats.sent, 2)
        self.assertEqual(len(self.bridge.session.inflight), 0)

    def test_qos2_both_directions_exactly_once(self):
        self.connect()
        self.publish("alarm/b/x/q", b"2", qos=1)  # override: QoS 2 upward
        self.assertEqual(self.remote_seen.topics(), ["b/x/q"])
        self.assertEqual(self.remote_seen.messages[0].qos, 2)
        self.assertEqual(len(self.bridge.session.inflight), 0)
        now = self.clock.seconds()
        self.remote.publish(Message("cmd/edge1/go", b"c", 2, False, None, now, "cloud"), now)
        self.pump.flush()
        self.assertEqual(self.local_seen.topics(), ["alarm/b/x/q", "go"])
        self.assertEqual(self.local_seen.messages[-1].qos, 1)  # subscription granted QoS 1
        self.assertEqual(self.bridge.session.incoming_qos2, set())

    def test_downward_remap_and_loop_prevention(self):
        # The bridge also forwards "#": what came down must not go back up.
        body = self.body.replace('{ local_topic = "sensors/#"', '{ local_topic = "#"')
        _, config = bridge_config(body)
        self.bridge.detach()
        self.bridge = Bridge(config, self.local, self.clock)
        self.bridge.attach()
        self.connect()
        now = self.clock.seconds()
        self.remote.publish(Message("cmd/edge1/a/b", b"c", 1, False, None, now, "cloud"), now)
        self.pump.flush()
        self.assertEqual(self.local_seen.topics(), ["a/b"])
        self.assertEqual(self.local_seen.messages[-1].sender, sender_id("up"))
        self.assertEqual(self.remote_seen.topics(), ["cmd/edge1/a/b"])
        self.assertEqual(self.bridge.stats.received, 1)

    def test_sys_topics_never_forwarded(self):
        self.connect()
        self.local.publish_internal("$SYS/brokers/x", b"{}", self.clock.seconds())
        self.pump.flush()
        self.assertEqual(self.remote_seen.topics(), [])


class OfflineQueueTests(BridgeTestCase):
    def test_queue_while_down_then_drain_in_order(self):
        for i in range(5):
            self.publish(f"sensors/{i}", str(i).encode(), qos=1)
        self.publish("sensors/q0", qos=0)  # QoS 0 while down: dropped
        stats = self.bridge.stats
        self.assertEqual((stats.queued, stats.dropped), (3, 3))
        self.connect()
        self.assertEqual(
            self.remote_seen.topics(), ["edge1/sensors/2", "edge1/sensors/3", "edge1/sensors/4"]
        )
        self.assertEqual(stats.queued, 0)

    def test_zero_capacity_drops(self):
        _, config = bridge_config(self.body.replace("max_send_queue_len = 3", ""))
        self.bridge.detach()
        self.bridge = Bridge(config, self.local, self.clock)
        self.bridge.attach()
        self.publish("sensors/a", qos=1)
        self.assertEqual((self.bridge.stats.queued, self.bridge.stats.dropped), (0, 1))

    def test_inflight_requeued_after_connection_loss(self):
        client = self.connect()
        pump, self.pump = self.pump, None
        self.publish("sensors/lost", qos=1)
        self.assertEqual(len(self.bridge.session.inflight), 1)
        client.transport.stream.clear()  # the PUBLISH never reaches the remote
        client.transport.loseConnection()
        pump.flush()
        self.assertIsNone(self.bridge.protocol)
        self.assertEqual(len(self.bridge.session.inflight), 1)
        self.connect()
        # clean_start = true: the remote kept no session, so it is resent as new.
        self.assertEqual(self.remote_seen.topics(), ["edge1/sensors/lost"])
        self.assertEqual(len(self.bridge.session.inflight), 0)


class V311Tests(SynchronousTestCase):
    def test_connect_sets_bridge_bit(self):
        _, config = bridge_config('server = "mqtt-tcp://127.0.0.1:1883"\nclientid = "b1"')
        clock = task.Clock()
        local = drive(self, Broker(loads(BASE, path="<t>").mqtt, clock=clock.seconds), clock)
        bridge = Bridge(config, local, clock)
        proto = BridgeClientFactory(bridge, clock).buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        data = transport.value()
        # fixed header, length, "MQTT" name (2+4 bytes), then the level byte.
        self.assertEqual(data[2:8], b"\x00\x04MQTT")
        self.assertEqual(data[8], 0x84)

    def test_no_bridge_bit_when_disabled(self):
        _, config = bridge_config(
            'server = "mqtt-tcp://127.0.0.1:1883"\nclientid = "b1"\nno_local_v4 = false'
        )
        clock = task.Clock()
        local = drive(self, Broker(loads(BASE, path="<t>").mqtt, clock=clock.seconds), clock)
        proto = BridgeClientFactory(Bridge(config, local, clock), clock).buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        self.assertEqual(transport.value()[8], 0x04)


class KeepaliveTests(SynchronousTestCase):
    def test_pingreq_then_close_when_unanswered(self):
        _, config = bridge_config(
            'server = "mqtt-tcp://127.0.0.1:1883"\nclientid = "k"\nkeepalive = 10s\n'
            "resend_interval = 2000"
        )
        clock = task.Clock()
        local = drive(self, Broker(loads(BASE, path="<t>").mqtt, clock=clock.seconds), clock)
        proto = BridgeClientFactory(Bridge(config, local, clock), clock).buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        proto.dataReceived(b"\x20\x02\x00\x00")
        transport.clear()
        clock.advance(8.0)
        self.assertEqual(transport.value(), b"")
        clock.advance(2.0)
        self.assertEqual(transport.value(), b"\xc0\x00")
        proto.dataReceived(b"\xd0\x00")  # PINGRESP
        clock.advance(2.0)
        self.assertFalse(transport.disconnecting)
        transport.clear()
        clock.advance(8.0)
        self.assertEqual(transport.value(), b"\xc0\x00")
        clock.advance(2.0)  # no PINGRESP by the next tick
        self.assertTrue(transport.disconnecting)

    def test_connack_timeout_aborts(self):
        _, config = bridge_config('server = "mqtt-tcp://127.0.0.1:1883"')
        clock = task.Clock()
        local = drive(self, Broker(loads(BASE, path="<t>").mqtt, clock=clock.seconds), clock)
        proto = BridgeClientFactory(Bridge(config, local, clock), clock).buildProtocol(None)
        transport = StringTransport()
        proto.makeConnection(transport)
        clock.advance(10.0)
        self.assertTrue(transport.disconnecting)


class _RefusingEndpoint:
    def __init__(self):
        self.attempts = 0

    def connect(self, factory):
        self.attempts += 1
        return defer.fail(ConnectionRefusedError())


class BackoffTests(SynchronousTestCase):
    def test_clientservice_backoff_is_capped_with_jitter(self):
        _, config = bridge_config('server = "mqtt-tcp://127.0.0.1:1883"\nbackoff_max = 4s')
        clock = task.Clock()
        local = drive(self, Broker(loads(BASE, path="<t>").mqtt, clock=clock.seconds), clock)
        endpoint = _RefusingEndpoint()
        service = BridgeService(
            config, local, clock, rng=random.Random(7), endpoint_factory=lambda r, c: endpoint
        )
        service.startService()
        self.assertEqual(endpoint.attempts, 1)  # first attempt immediate
        delays = []
        for _ in range(8):
            pending = clock.getDelayedCalls()
            self.assertEqual(len(pending), 1)
            delays.append(pending[0].getTime() - clock.seconds())
            clock.advance(delays[-1])
        self.assertEqual(endpoint.attempts, 9)
        self.assertTrue(all(0 <= d <= 4 + 1 for d in delays), delays)
        self.assertLess(delays[0], 1.6)
        self.assertGreaterEqual(delays[-1], 4)
        self.successResultOf(service.stopService())
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(len(local.extensions), 0)

    def test_backoff_cap_clamped(self):
        _, config = bridge_config('server = "mqtt-tcp://127.0.0.1:1883"\nbackoff_max = 700s')
        self.assertEqual(backoff_cap(config), 360.0)

    def test_disabled_bridge_never_dials(self):
        _, config = bridge_config('server = "mqtt-tcp://127.0.0.1:1883"\nenable = false')
        clock = task.Clock()
        local = drive(self, Broker(loads(BASE, path="<t>").mqtt, clock=clock.seconds), clock)
        endpoint = _RefusingEndpoint()
        service = BridgeService(config, local, clock, endpoint_factory=lambda r, c: endpoint)
        service.startService()
        self.assertEqual(endpoint.attempts, 0)
        service.switch(True)
        self.assertEqual(endpoint.attempts, 1)
        self.successResultOf(service.switch(False))
        self.successResultOf(service.stopService())


class _RecordingEndpoint:
    """Refuses every attempt, recording which server it was for."""

    def __init__(self, config, log):
        self.server = config.server
        self.log = log

    def connect(self, factory):
        self.log.append(self.server)
        return defer.fail(ConnectionRefusedError())


class HybridTests(SynchronousTestCase):
    body = """
        server = "mqtt-quic://127.0.0.1:14567"
        hybrid_bridging = true
        hybrid_servers = ["mqtt-tcp://127.0.0.1:1885", "tls+mqtt-tcp://127.0.0.1:8885"]
        backoff_max = 1s
        ssl { cacertfile = "/nonexistent/ca.pem" }
    """

    def start(self, body):
        _, config = bridge_config(body)
        clock = task.Clock()
        local = drive(self, Broker(loads(BASE, path="<t>").mqtt, clock=clock.seconds), clock)
        attempts = []
        service = BridgeService(
            config, local, clock, rng=random.Random(3),
            endpoint_factory=lambda r, c: _RecordingEndpoint(c, attempts),
        )
        service.startService()
        return service, clock, attempts

    def test_rotation_through_every_server(self):
        service, clock, attempts = self.start(self.body)
        for _ in range(6):
            clock.advance(2.0)
        self.assertEqual(
            attempts[:7],
            ["mqtt-quic://127.0.0.1:14567", "mqtt-tcp://127.0.0.1:1885",
             "tls+mqtt-tcp://127.0.0.1:8885"] * 2 + ["mqtt-quic://127.0.0.1:14567"],
        )
        current = service.bridge.current
        self.assertEqual((current.scheme, current.host, current.port),
                         ("mqtt-quic", "127.0.0.1", 14567))
        self.successResultOf(service.stopService())

    def test_without_hybrid_bridging_only_server(self):
        service, clock, attempts = self.start(
            'server = "mqtt-tcp://127.0.0.1:1883"\n'
            'hybrid_servers = ["mqtt-tcp://127.0.0.1:1885"]\nbackoff_max = 1s'
        )
        for _ in range(3):
            clock.advance(2.0)
        self.assertEqual(set(attempts), {"mqtt-tcp://127.0.0.1:1883"})
        self.successResultOf(service.stopService())

    def test_ssl_with_quic_needs_a_tls_hybrid_server(self):
        from nanomq_twisted.config import ConfigError

        with self.assertRaises(ConfigError):
            bridge_config('server = "mqtt-quic://127.0.0.1:1"\nssl { cacertfile = "x" }')
        with self.assertRaises(ConfigError):
            bridge_config(
                'server = "mqtt-quic://127.0.0.1:1"\nhybrid_bridging = true\n'
                'hybrid_servers = ["mqtt-tcp://127.0.0.1:2"]\nssl { cacertfile = "x" }'
            )


class ShardTests(SynchronousTestCase):
    def test_shard_is_crc32_of_the_local_topic(self):
        for topic in ("a", "s/1", "sensors/t/ü", ""):
            self.assertEqual(shard(topic, 3), zlib.crc32(topic.encode("utf-8")) % 3)
            self.assertEqual(shard(topic, 1), 0)
        # Stable and spread: 30 topics use every one of 3 connections.
        self.assertEqual({shard(f"p/{i}", 3) for i in range(30)}, {0, 1, 2})
        self.assertEqual([shard("p/7", 3)] * 5, [shard("p/7", 3) for _ in range(5)])


class ParallelTests(BridgeTestCase):
    body = BridgeTestCase.body.replace(
        "max_send_queue_len = 3", "max_send_queue_len = 100\nparallel_connections = 3"
    )

    def connect(self):
        self.pumps = []
        for link in self.bridge.links:
            _client, _server, pump = iosim.connectedServerAndClient(
                lambda: self.server_factory.buildProtocol(None),
                lambda link=link: BridgeClientFactory(link, self.clock).buildProtocol(None),
                clock=self.clock,
            )
            self.pumps.append(pump)
        self.flush()

    def flush(self):
        for _ in range(3):
            for pump in self.pumps:
                pump.flush()

    def publish(self, topic, payload=b"x", qos=0, retain=False, sender="local-client"):
        now = self.clock.seconds()
        self.local.publish(Message(topic, payload, qos, retain, None, now, sender), now)
        if getattr(self, "pumps", None):
            self.flush()

    def test_links_client_ids_and_subscriptions_only_on_link_0(self):
        links = self.bridge.links
        self.assertEqual([link.index for link in links], [0, 1, 2])
        self.assertEqual([link.config.clientid for link in links], ["edge1", "edge1-1", "edge1-2"])
        self.connect()
        self.assertEqual(set(self.remote.sessions), {"edge1", "edge1-1", "edge1-2"})
        self.assertEqual(set(self.remote.sessions["edge1"].subscriptions), {"cmd/edge1/#"})
        self.assertEqual(self.remote.sessions["edge1-1"].subscriptions, {})
        self.assertEqual(self.remote.sessions["edge1-2"].subscriptions, {})
        # REST /bridges/sub: link 0 only, live.
        self.bridge.add_subscriptions([BridgeSubscription("more/#", "", 1)])
        self.flush()
        self.assertEqual(set(self.remote.sessions["edge1"].subscriptions), {"cmd/edge1/#", "more/#"})
        self.assertEqual(self.remote.sessions["edge1-2"].subscriptions, {})
        # Without a configured client id each link gets one of its own.
        self.assertIsNone(link_config(replace(self.config, clientid=None), 2).clientid)
        self.assertEqual(self.bridge.totals().connects, 3)
        self.assertTrue(self.bridge.totals().connected)

    def test_forwards_sharded_by_local_topic_in_order(self):
        self.connect()
        for i in range(300):
            self.publish(f"sensors/{i % 30}", str(i).encode(), qos=1)
        forwarded = [m for m in self.remote_seen.messages if m.topic.startswith("edge1/")]
        self.assertEqual(len(forwarded), 300)
        ids = ["edge1", "edge1-1", "edge1-2"]
        per_topic = {}
        for message in forwarded:
            local = message.topic[len("edge1/"):]
            self.assertEqual(message.sender, ids[shard(local, 3)])
            per_topic.setdefault(local, []).append(int(message.payload))
        for n in range(30):
            self.assertEqual(per_topic[f"sensors/{n}"], list(range(n, 300, 30)))
        self.assertEqual({m.sender for m in forwarded}, set(ids))
        metrics = self.bridge.metrics()
        self.assertEqual(metrics["sent messages"], 300)
        self.assertEqual(metrics["MQTT reconnect times"], 3)
        self.assertEqual(sum(link.stats.sent for link in self.bridge.links), 300)

    def test_offline_queues_per_link_and_resharded_on_reconfigure(self):
        for i in range(60):
            self.publish(f"sensors/{i % 12}", str(i).encode(), qos=1)
        queued = [len(link.session.queue) for link in self.bridge.links]
        self.assertEqual(sum(queued), 60)
        for link in self.bridge.links:
            for item in link.session.queue:
                self.assertEqual(shard(item.key, 3), link.index)
        self.bridge.reconfigure(replace(self.bridge.config, parallel_connections=2))
        self.assertEqual(len(self.bridge.links), 2)
        self.assertEqual(self.bridge.totals().queued, 60)
        self.connect()
        forwarded = [m for m in self.remote_seen.messages if m.topic.startswith("edge1/")]
        self.assertEqual(len(forwarded), 60)
        per_topic = {}
        for message in forwarded:
            local = message.topic[len("edge1/"):]
            self.assertEqual(message.sender, ["edge1", "edge1-1"][shard(local, 2)])
            per_topic.setdefault(local, []).append(int(message.payload))
        for n in range(12):
            self.assertEqual(per_topic[f"sensors/{n}"], list(range(n, 60, 12)))
        self.assertEqual(set(self.remote.sessions), {"edge1", "edge1-1"})


    def test_parallel_connections_key(self):
        from nanomq_twisted.config import ConfigError

        base = 'server = "mqtt-tcp://127.0.0.1:1883"\n'
        _, config = bridge_config(base)
        self.assertEqual((config.parallel_connections, config.max_parallel_processes), (1, 2))
        self.assertEqual(len(Bridge(config, None, task.Clock()).links), 1)
        with self.assertRaises(ConfigError):
            bridge_config(base + "parallel_connections = 0")


class QuicSettingsTests(SynchronousTestCase):
    """The ``quic_*`` keys aioquic has an equivalent for reach its
    ``QuicConfiguration``."""

    def test_quic_keys_mapped(self):
        from twisted.internet.testing import MemoryReactorClock

        from nanomq_twisted.bridge.endpoints import QuicEndpoint

        _, bridge = bridge_config(
            'server = "mqtt-quic://127.0.0.1:14567"\n'
            "quic_idle_timeout = 30s\nquic_initial_rtt_ms = 250"
        )
        quic = QuicEndpoint(MemoryReactorClock(), bridge).configuration
        self.assertEqual(
            (quic.idle_timeout, quic.initial_rtt, quic.congestion_control_algorithm),
            (30.0, 0.25, "cubic"),
        )
        self.assertEqual(quic.alpn_protocols, ["mqtt"])
