"""
``/api/v4/bridges`` through ``StubTreq``: NanoMQ's JSON and codes (golden
transcript §13), live (un)subscribe on a connected bridge, PUT
reconfiguration.
"""

from twisted.internet.testing import MemoryReactorClock
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
        self.assertEqual(self.h.json("PATCH", "/api/v4/bridges/emqx")[0], 405)
        self.assertEqual(self.h.json("POST", "/api/v4/bridges/emqx", {}), (404, {"code": 102}))

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


NEW_BRIDGE = {
    "b2": {
        "server": "mqtt-tcp://127.0.0.1:1885",
        "proto_ver": 4,
        "clientid": "b2_client",
        "keepalive": 30,
        "clean_start": False,
        "forwards": [{"remote_topic": "up/one", "local_topic": "one", "qos": 1}],
        "subscription": [{"remote_topic": "down/#", "local_topic": "local/down", "qos": 2}],
    }
}


class CreateDeleteTests(SynchronousTestCase):
    """Our ``POST /bridges`` and ``DELETE /bridges/{name}``, through the
    application object, with the bridges service running on a memory
    reactor (so "started" means "dialled")."""

    def setUp(self):
        self.reactor = MemoryReactorClock()
        self.h = Harness(BRIDGE, clock=self.reactor)
        self.h.app.bridges.getServiceNamed("emqx").enabled = False
        self.h.app.bridges.startService()
        self.addCleanup(self.h.app.bridges.stopService)

    def dialled(self):
        return [(host, port) for host, port, *_ in self.reactor.tcpClients]

    def test_create_starts_and_delete_stops(self):
        status, body = self.h.json("POST", "/api/v4/bridges", NEW_BRIDGE)
        self.assertEqual((status, body["code"]), (200, 0))
        (node,) = body["data"]["bridge"]["nodes"]
        self.assertEqual((node["name"], node["enable"], node["parallel"]), ("b2", True, 2))
        self.assertEqual(node["connector"]["keepalive"], 30)
        self.assertEqual(node["forwards"], [{"remote_topic": "up/one", "local_topic": "one",
                                             "qos": 1}])
        self.assertEqual(self.dialled(), [("127.0.0.1", 1885)])
        _, listed = self.h.json("GET", "/api/v4/bridges")
        self.assertEqual([n["name"] for n in listed["data"]["bridge"]["nodes"]], ["emqx", "b2"])
        _, status_list = self.h.json("GET", "/api/v4/bridge-status")
        self.assertIn("b2", [b["name"] for b in status_list["data"]])
        # The created bridge forwards: it is a consumer in the routing trie.
        service = self.h.app.bridges.get("b2")
        self.assertTrue(service.created)
        self.assertIn(service.bridge, self.consumers())

        self.assertEqual(self.h.json("DELETE", "/api/v4/bridges/b2"), (200, {"code": 0}))
        self.assertIsNone(self.h.app.bridges.get("b2"))
        self.assertNotIn(service.bridge, self.consumers())
        self.assertEqual(service.clients, [])
        self.assertEqual(self.h.json("DELETE", "/api/v4/bridges/b2"), (404, {"code": 115}))
        # A file bridge can be deleted too.
        self.assertEqual(self.h.json("DELETE", "/api/v4/bridges/emqx/"), (200, {"code": 0}))
        _, listed = self.h.json("GET", "/api/v4/bridges")
        self.assertEqual(listed["data"]["bridge"]["nodes"], [])

    def consumers(self):
        """The extensions a message on ``one`` (b2's forward) reaches."""
        return list(self.h.broker.extensions.consumers("one"))

    def test_disabled_and_parallel(self):
        body = {"b3": dict(NEW_BRIDGE["b2"], enable=False, parallel=4, name="b3")}
        status, got = self.h.json("POST", "/api/v4/bridges", body)
        self.assertEqual(status, 200)
        (node,) = got["data"]["bridge"]["nodes"]
        self.assertEqual((node["enable"], node["parallel"]), (False, 4))
        self.assertEqual(self.dialled(), [])

    def test_refusals(self):
        def post(body):
            return self.h.json("POST", "/api/v4/bridges", body)

        self.assertEqual(post('{"b2":'), (400, {"code": 109}))
        self.assertEqual(post([NEW_BRIDGE]), (400, {"code": 109}))
        for body in ({}, {"b2": 1}, dict(NEW_BRIDGE, b3={})):
            status, got = post(body)
            self.assertEqual((status, got["code"]), (400, 108), body)
            self.assertIn("<name>", got["message"])
        for name in ("a.b", "", "cache", "x" * 65, "a/b"):
            status, got = post({name: NEW_BRIDGE["b2"]})
            self.assertEqual((status, got["code"], got["key"]), (400, 108, "name"), name)
        status, got = post({"emqx": NEW_BRIDGE["b2"]})
        self.assertEqual((status, got["code"], got["key"]), (400, 108, "name"))
        self.assertIn("exists", got["message"])
        status, got = post({"b2": dict(NEW_BRIDGE["b2"], name="other")})
        self.assertEqual((status, got["key"]), (400, "name"))
        status, got = post({"b2": dict(NEW_BRIDGE["b2"], enable="yes")})
        self.assertEqual((status, got["key"]), (400, "enable"))
        status, got = post({"b2": dict(NEW_BRIDGE["b2"], parallel=0)})
        self.assertEqual((status, got["key"]), (400, "parallel"))
        # Bad settings: the key relative to the bridge, the loader's reason.
        status, got = post({"b2": dict(NEW_BRIDGE["b2"], server="http://x")})
        self.assertEqual((status, got["code"], got["key"]), (400, 108, "server"))
        self.assertIn("mqtt-tcp://", got["message"])
        status, got = post({"b2": dict(NEW_BRIDGE["b2"], proto_ver=7)})
        self.assertEqual((status, got["key"]), (400, "proto_ver"))
        status, got = post({"b2": dict(NEW_BRIDGE["b2"], forwards=[{"local_topic": "a"}])})
        self.assertEqual(status, 400)
        self.assertTrue(got["key"].startswith("forwards"), got)
        status, got = post({"b2": dict(NEW_BRIDGE["b2"], serverr="mqtt-tcp://a:1")})
        self.assertEqual((status, got["key"]), (400, "serverr"))
        self.assertIsNone(self.h.app.bridges.get("b2"))
        self.assertEqual(self.dialled(), [])
