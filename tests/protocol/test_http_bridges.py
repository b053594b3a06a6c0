"""
``/api/v4/bridges`` through ``StubTreq``: NanoMQ's JSON and codes (golden
transcript §13), live (un)subscribe on a connected bridge, PUT
reconfiguration.
"""

from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.bridge.client import BridgeClientFactory
from nanomq_twisted.core.broker import Broker

from .http_support import Harness

BRIDGE = """
bridges.mqtt.emqx {
    server = "mqtt-tcp://127.0.0.1:1883"
    proto_ver = 5
    clientid = "bridge_client"
    keepalive = 60s
    backoff_max = 60s
    clean_start = true
    username = bridgeuser
    password = bridgepass
    forwards = [ { remote_topic = "fwd/topic1", local_topic = "topic1" } ]
    subscription = [ { remote_topic = "cmd/topic3", local_topic = "topic3", qos = 1 } ]
    max_parallel_processes = 2
    max_send_queue_len = 32
    max_recv_queue_len = 128
}
"""

GOLDEN_GET = (
    b'{"code":0,"data":{"bridge":{"nodes":[{"name":"emqx","enable":true,"parallel":2,'
    b'"connector":{"server":"mqtt-tcp://127.0.0.1:1883","proto_ver":5,"clientid":'
    b'"bridge_client","clean_start":true,"username":"bridgeuser","password":"bridgepass",'
    b'"keepalive":60},"forwards":[{"remote_topic":"fwd/topic1","local_topic":"topic1"}],'
    b'"subscription":[{"remote_topic":"cmd/topic3","local_topic":"topic3","qos":1}],'
    b'"tls":{"enable":false,"url":null,"key_password":null,"key":null,"cert":null,'
    b'"cacert":null,"verify_peer":false,"fail_if_no_peer_cert":false}}],"sqlite":'
    b'{"enable":false,"disk_cache_size":102400,"flush_mem_threshold":100,'
    b'"resend_interval":0,"mounted_file_path":null}}}}'
)

SUB_BODY = {
    "data": {
        "subscription": [
            {"remote_topic": "cmd/topic4", "local_topic": "topic4", "qos": 1},
            {"remote_topic": "cmd/topic5", "local_topic": "topic5", "qos": 2},
        ],
        "sub_properties": {
            "identifier": 1,
            "user_properties": [{"key": "key1", "value": "value1"}],
        },
    }
}


class BridgesHarness(Harness):
    def __init__(self):
        super().__init__(BRIDGE)
        self.bridges = self.app.bridges

    def service(self):
        return self.bridges.get("emqx")

    def connect_remote(self):
        """Connect the bridge to an in-memory remote broker."""
        self.remote = Broker(self.config.mqtt, clock=self.clock.seconds, sys_events=False)
        self.remote.wake = self.remote.flush
        from nanomq_twisted.transport.protocol import MQTTServerFactory

        factory = MQTTServerFactory(self.remote, self.clock)
        bridge = self.service().bridge
        _client, _server, self.pump = iosim.connectedServerAndClient(
            lambda: factory.buildProtocol(None),
            lambda: BridgeClientFactory(bridge, self.clock).buildProtocol(None),
            clock=self.clock,
        )
        self.pump.flush()


class BridgesRestTests(SynchronousTestCase):
    def setUp(self):
        self.h = BridgesHarness()

    def test_get_matches_golden(self):
        for path in ("/api/v4/bridges", "/api/v4/bridges/", "/api/v4/bridges/emqx"):
            status, _, body = self.h.request("GET", path)
            self.assertEqual((status, body), (200, GOLDEN_GET), path)

    def test_get_unknown_is_empty(self):
        status, body = self.h.json("GET", "/api/v4/bridges/nonexist")
        self.assertEqual((status, body["data"]["bridge"]["nodes"]), (200, []))

    def test_sub_errors(self):
        self.assertEqual(self.h.json("POST", "/api/v4/bridges/sub/nonexist", SUB_BODY),
                         (404, {"code": 108}))
        self.assertEqual(self.h.json("POST", "/api/v4/bridges/sub/emqx", '{"data":{'),
                         (400, {"code": 109}))
        self.assertEqual(self.h.json("POST", "/api/v4/bridges/sub/emqx", {"data": {}}),
                         (400, {"code": 109}))
        body = {"data": {"subscription": [{"remote_topic": "cmd/topic6", "qos": 1}]}}
        self.assertEqual(self.h.json("POST", "/api/v4/bridges/sub/emqx", body),
                         (400, {"code": 108}))

    def test_live_sub_and_unsub(self):
        self.h.connect_remote()
        self.assertEqual(self.h.json("POST", "/api/v4/bridges/sub/emqx", SUB_BODY),
                         (200, {"code": 0}))
        self.h.pump.flush()
        subs = self.h.remote.sessions["bridge_client"].subscriptions
        self.assertEqual(sorted(subs), ["cmd/topic3", "cmd/topic4", "cmd/topic5"])
        _, body = self.h.json("GET", "/api/v4/bridges/emqx")
        node = body["data"]["bridge"]["nodes"][0]
        self.assertEqual([s["remote_topic"] for s in node["subscription"]],
                         ["cmd/topic3", "cmd/topic4", "cmd/topic5"])
        self.assertEqual(node["sub_properties"], {"identifier": 1})
        # PUT is accepted too (the documented method).
        unsub = {"data": {"unsubscription": [{"topic": "cmd/topic4"}]}}
        self.assertEqual(self.h.json("PUT", "/api/v4/bridges/unsub/emqx", unsub),
                         (200, {"code": 0}))
        self.h.pump.flush()
        self.assertEqual(sorted(subs), ["cmd/topic3", "cmd/topic5"])
        self.assertEqual(self.h.service().bridge.stats.connects, 1)  # no reconnect

    def test_unsub_errors(self):
        unsub = {"data": {"unsubscription": [{"topic": "cmd/topic4"}]}}
        self.assertEqual(self.h.json("POST", "/api/v4/bridges/unsub/nonexist", unsub),
                         (404, {"code": 108}))
        self.assertEqual(self.h.json("POST", "/api/v4/bridges/unsub/emqx", '{"data":'),
                         (400, {"code": 109}))
        self.assertEqual(
            self.h.json("POST", "/api/v4/bridges/unsub/emqx", {"data": {"topics": ["x"]}}),
            (400, {"code": 109}),
        )

    def test_switch(self):
        off = {"data": {"bridge_switch": False}}
        self.assertEqual(self.h.json("POST", "/api/v4/bridges/switch/emqx", off),
                         (200, {"code": 0}))
        self.assertFalse(self.h.service().enabled)
        self.assertEqual(self.h.json("POST", "/api/v4/bridges/switch/emqx", off),
                         (200, {"code": 0}))
        unsub = {"data": {"unsubscription": [{"topic": "cmd/topic3"}]}}
        self.assertEqual(self.h.json("POST", "/api/v4/bridges/unsub/emqx", unsub),
                         (404, {"code": 108}))
        status, _ = self.h.json("POST", "/api/v4/bridges/switch/emqx",
                                {"data": {"bridge_switch": True}})
        self.assertEqual(status, 200)
        self.assertTrue(self.h.service().enabled)
        self.assertEqual(self.h.json("POST", "/api/v4/bridges/switch/emqx", {"data": {}}),
                         (400, {"code": 108}))
        self.assertEqual(
            self.h.json("POST", "/api/v4/bridges/switch/emqx",
                        {"data": {"bridge_switch": "false"}}),
            (400, {"code": 108}),
        )
        self.assertEqual(self.h.request("POST", "/api/v4/bridges/switch/nonexist",
                                        {"data": {"bridge_switch": True}})[0], 204)
        self.assertEqual(self.h.json("PUT", "/api/v4/bridges/switch/emqx",
                                     {"data": {"bridge_switch": True}}),
                         (404, {"code": 102}))

    def test_unrouted(self):
        self.assertEqual(self.h.json("DELETE", "/api/v4/bridges/emqx"), (404, {"code": 102}))
        self.assertEqual(self.h.json("POST", "/api/v4/bridges", {}), (404, {"code": 102}))

    def test_put(self):
        self.assertEqual(
            self.h.json("PUT", "/api/v4/bridges/emqx", {"other": {"server": "mqtt-tcp://a:1"}}),
            (400, {"code": 108}),
        )
        self.assertEqual(self.h.json("PUT", "/api/v4/bridges/emqx", '{"emqx":'),
                         (400, {"code": 109}))
        self.assertEqual(
            self.h.json("PUT", "/api/v4/bridges/nonexist",
                        {"nonexist": {"server": "mqtt-tcp://127.0.0.1:1883", "proto_ver": 4}}),
            (404, {"code": 115}),
        )
        body = {
            "emqx": {
                "name": "emqx",
                "enable": True,
                "parallel": 8,
                "server": "mqtt-tcp://127.0.0.1:1884",
                "proto_ver": 4,
                "clientid": "bridge_client_v2",
                "clean_start": True,
                "keepalive": "30s",
                "forwards": [{"remote_topic": "fwd/topic3", "local_topic": "local/topic3"}],
                "subscription": [
                    {"remote_topic": "cmd/topic1", "local_topic": "local/topic1", "qos": 1}
                ],
            }
        }
        self.assertEqual(self.h.json("PUT", "/api/v4/bridges/emqx", body), (200, {"code": 0}))
        _, got = self.h.json("GET", "/api/v4/bridges/emqx")
        node = got["data"]["bridge"]["nodes"][0]
        self.assertEqual(node["parallel"], 2)  # PUT keeps parallel
        self.assertEqual(node["connector"]["clientid"], "bridge_client_v2")
        self.assertEqual(node["connector"]["keepalive"], 30)
        self.assertEqual(node["forwards"], [{"remote_topic": "fwd/topic3",
                                             "local_topic": "local/topic3"}])

    def test_metrics_has_bridge_stats(self):
        status, body = self.h.json("GET", "/api/v4/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(body["metrics"][0]["bridge name"], "emqx")
        self.assertEqual(body["metrics"][0]["sent messages"], 0)
