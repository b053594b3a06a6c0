"""
Every REST endpoint's success shape against the golden transcript, and
its effect on the broker (publish delivery, subscribe, reload, kick...).
"""

import json
import os
import re

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.http.brokers import uptime_text
from nanomq_twisted.http.metrics import METRICS

from .http_support import Harness

CLIENT_KEYS = [
    "client_id", "username", "keepalive", "conn_state", "clean_start",
    "proto_name", "proto_ver",
]


class BrokerNodeMetricsTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.h.populate()

    def test_brokers_3(self):
        status, body = self.h.json("GET", "/api/v4/brokers")
        self.assertEqual(status, 200)
        self.assertEqual(list(body), ["code", "data"])
        (item,) = body["data"]
        # NanoMQ's keys in NanoMQ's order, then ours (http/brokers.py).
        self.assertEqual(list(item),
                         ["datetime", "node_status", "sysdescr", "uptime", "version",
                          "default_credentials", "persistence"])
        # The harness has no sqlite {} section.
        self.assertEqual(item["persistence"], "off")
        self.assertEqual((item["node_status"], item["sysdescr"]), ("Running", "NanoMQ Broker"))

    def test_uptime_text(self):
        self.assertEqual(uptime_text(3600 * 15 + 98), "15 Hours, 1 minutes, 38 seconds")

    def test_nodes_5_counts_sessions(self):
        _status, body = self.h.json("GET", "/api/v4/nodes")
        (item,) = body["data"]
        self.assertEqual(list(item), ["connections", "node_status", "uptime", "version"])
        self.assertEqual(item["connections"], 6)  # 5 online + 1 offline session

    def test_metrics_6(self):
        status, body = self.h.json("GET", "/api/v4/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(list(body), ["metrics", "cpuinfo", "memory", "connections"])
        self.assertTrue(body["cpuinfo"].endswith("%"))
        self.assertTrue(body["memory"].isdigit())
        self.assertEqual((body["metrics"], body["connections"]), ([], 5))

    def test_prometheus_7_8(self):
        status, headers, text = self.h.request("GET", "/api/v4/prometheus")
        self.assertEqual(status, 200)
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"text/plain; version=0.0.4"])
        text = text.decode("utf-8")
        self.assertTrue(text.endswith("\n"))
        families = list(text_string_to_metric_families(text))
        self.assertEqual([(f.name, f.type) for f in families],
                         [(name, kind) for name, kind, _ in METRICS])
        lines = text.splitlines()
        self.assertEqual(lines[0], "# TYPE nanomq_connections_count gauge")
        self.assertIn("nanomq_connections_count 5", lines)
        self.assertIn("nanomq_sessions_count 6", lines)
        self.assertIn("nanomq_subscribers_count 6", lines)
        self.assertIn("nanomq_messages_received 0", lines)
        self.assertRegex(text, r"\nnanomq_cpu_usage \d+\.\d\d\n")
        # Maxima are sticky (#8).
        self.h.peers["alice"].lost()
        _s, _h, text = self.h.request("GET", "/api/v4/prometheus")
        lines = text.decode("utf-8").splitlines()
        self.assertIn("nanomq_connections_count 4", lines)
        self.assertIn("nanomq_connections_max 5", lines)


class ClientsTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.h.populate()

    def ids(self, path):
        status, body = self.h.json("GET", path)
        self.assertEqual((status, body["code"]), (200, 0), path)
        return sorted(item["client_id"] for item in body["data"])

    def test_all_clients_9(self):
        _status, body = self.h.json("GET", "/api/v4/clients")
        self.assertEqual(len(body["data"]), 6)
        for item in body["data"]:
            self.assertEqual(list(item)[:7], CLIENT_KEYS)
        by_id = {item["client_id"]: item for item in body["data"]}
        self.assertEqual(by_id["tcp_v31_client"]["proto_name"], "MQIsdp")
        self.assertEqual(by_id["tcp_v31_client"]["proto_ver"], 3)
        self.assertEqual(by_id["tcp_v31_client"]["keepalive"], 120)
        self.assertEqual(by_id["sub_persist_bob"]["clean_start"], False)
        self.assertEqual(by_id["persist_offline_v5"]["conn_state"], "disconnected")
        self.assertEqual(by_id["persist_offline_v5"]["will_topic"], "will/dave")
        self.assertEqual(by_id["persist_offline_v5"]["will_msg"], "bye")
        self.assertEqual(by_id["sub_repub_watch"]["username"], "")

    def test_filters(self):
        cases = [
            (10, "?clientid=sub_v5_alice", ["sub_v5_alice"]),
            (11, "?client_id=sub_v5_alice", ["sub_v5_alice"]),
            (12, "?username=alice", ["sub_v5_alice", "tcp_v31_client"]),
            (14, "?conn_state=disconnected", ["persist_offline_v5"]),
            (13, "?conn_state=CONNECTED", ["sub_persist_bob", "sub_repub_watch",
                                           "sub_shared_carol", "sub_v5_alice",
                                           "tcp_v31_client"]),
            (16, "?clean_start=false", ["sub_persist_bob"]),
            (20, "?proto_name=MQIsdp", ["tcp_v31_client"]),
            (21, "?proto_name=CoAP", []),
            (22, "?proto_ver=3", ["tcp_v31_client"]),
            (23, "?proto_ver=4", ["sub_persist_bob"]),
            (27, "?username=alice&proto_ver=5", ["sub_v5_alice"]),
            (30, "?clientid=nobody", []),
        ]
        for entry, query, expected in cases:
            self.assertEqual(self.ids("/api/v4/clients" + query), expected, f"entry {entry}")

    def test_by_path(self):
        self.assertEqual(self.ids("/api/v4/clients/sub_v5_alice"), ["sub_v5_alice"])
        self.assertEqual(self.ids("/api/v4/clients/persist_offline_v5"), ["persist_offline_v5"])
        self.assertEqual(self.ids("/api/v4/clients/does_not_exist"), [])
        self.assertEqual(self.ids("/api/v4/clients/sub_v5_alice?proto_ver=4"), [])
        self.assertEqual(self.ids("/api/v4/clients/username/alice"),
                         ["sub_v5_alice", "tcp_v31_client"])
        self.assertEqual(self.ids("/api/v4/clients/username/nobody"), [])

    def test_kick(self):
        alice = self.h.peers["alice"]
        status, body = self.h.json("DELETE", "/api/v4/clients/sub_v5_alice")
        self.assertEqual((status, body), (200, {"code": 0}))
        self.assertTrue(alice.sink.closed)
        (disconnect,) = alice.received()
        self.assertEqual(disconnect.reason_code, 0x98)
        alice.lost()
        status, body = self.h.json("DELETE", "/api/v4/clients/sub_v5_alice")
        self.assertEqual((status, body), (404, {"code": 112}))


class SubscriptionsAndTreeTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.h.populate()

    def items(self, path):
        status, body = self.h.json("GET", path)
        self.assertEqual((status, body["code"]), (200, 0))
        for item in body["data"]:
            self.assertEqual(list(item), ["clientid", "topic", "qos"])
        return sorted((i["clientid"], i["topic"], i["qos"]) for i in body["data"])

    def test_list_38(self):
        self.assertEqual(len(self.items("/api/v4/subscriptions")), 7)

    def test_path_44_45_46_47(self):
        self.assertEqual(self.items("/api/v4/subscriptions/sub_v5_alice"),
                         [("sub_v5_alice", "cmd/#", 1), ("sub_v5_alice", "sensor/+/temp", 1)])
        self.assertEqual(self.items("/api/v4/subscriptions/sub_shared_carol"),
                         [("sub_shared_carol", "$share/group1/shared/topic", 0)])
        self.assertEqual(self.items("/api/v4/subscriptions/persist_offline_v5"),
                         [("persist_offline_v5", "offline/queue", 1)])
        self.assertEqual(self.items("/api/v4/subscriptions/does_not_exist"), [])

    def test_query_filters_applied(self):
        self.assertEqual(self.items("/api/v4/subscriptions?clientid=sub_v5_alice"),
                         [("sub_v5_alice", "cmd/#", 1), ("sub_v5_alice", "sensor/+/temp", 1)])
        self.assertEqual(self.items("/api/v4/subscriptions?topic=persist/topic"),
                         [("sub_persist_bob", "persist/topic", 2)])
        self.assertEqual(len(self.items("/api/v4/subscriptions?qos=2")), 2)
        self.assertEqual(self.items("/api/v4/subscriptions?share=group1"),
                         [("sub_shared_carol", "$share/group1/shared/topic", 0)])
        status, body = self.h.json("GET", "/api/v4/subscriptions?qos=7")
        self.assertEqual((status, body), (400, {"code": 108}))

    def test_topic_tree_48(self):
        _status, body = self.h.json("GET", "/api/v4/topic-tree")
        data = body["data"]
        self.assertEqual(data[0], [{"topic": "", "cld_cnt": 6}])
        first = [node["topic"] for node in data[1]]
        self.assertEqual(first, ["$share", "cmd", "offline", "persist", "sensor", "topic3"])
        self.assertEqual(data[1][-1], {"topic": "topic3", "cld_cnt": 0,
                                       "clientid": ["sub_repub_watch"]})
        temp = next(n for n in data[3] if n["topic"] == "temp")
        self.assertEqual(sorted(temp["clientid"]), ["sub_v5_alice", "tcp_v31_client"])
        self.assertEqual(data[-1], [{"topic": "topic", "cld_cnt": 0,
                                     "clientid": ["sub_shared_carol"]}])


class PublishTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.h.populate()
        self.frank = self.h.peer("sub_props_frank", level=5, username="frank")
        self.frank.connect()
        self.frank.subscribe("rest/#", 2)

    def publish(self, body, path="/api/v4/mqtt/publish"):
        return self.h.json("POST", path, body)

    def test_properties_reach_v5_subscriber_117(self):
        status, body = self.publish({
            "topic": "rest/p", "payload": "hello", "qos": 1, "clientid": "rester",
            "properties": {
                "payload_format_indicator": 1, "message_expiry_interval": 60,
                "response_topic": "rest/reply", "correlation_data": "corr",
                "subscription_identifier": 5, "content_type": "text/plain",
                "user_properties": {"id": 10010, "ok": True, "f": 1.5, "s": "v"},
            }})
        self.assertEqual((status, body), (200, {"code": 0}))
        (message,) = self.frank.publishes()
        self.assertEqual((message.topic, message.payload, message.qos), ("rest/p", b"hello", 1))
        props = message.properties
        self.assertEqual(props["payload_format_indicator"], 1)
        self.assertEqual(props["message_expiry_interval"], 60)
        self.assertEqual(props["response_topic"], "rest/reply")
        self.assertEqual(props["correlation_data"], b"corr")
        self.assertEqual(props["content_type"], "text/plain")
        self.assertNotIn("subscription_identifier", props)
        self.assertEqual(sorted(map(tuple, props["user_property"])),
                         [("f", "1.5"), ("id", "10010"), ("ok", "true"), ("s", "v")])

    def test_topics_encoding_retain(self):
        self.publish({"topics": "rest/a,rest/b", "payload": "x"})
        self.assertEqual([m.topic for m in self.frank.publishes()], ["rest/a", "rest/b"])
        self.publish({"topic": "rest/e", "payload": "hi", "encoding": "base64"})
        self.assertEqual(self.frank.publishes()[0].payload, b"aGk=")
        self.publish({"topic": "rest/d", "payload": "aGk=", "decoding": "base64"})
        self.assertEqual(self.frank.publishes()[0].payload, b"hi")
        self.publish({"topic": "rest/r", "payload": "kept", "retain": True})
        self.assertIn("rest/r", [m.topic for m, _ in self.h.broker.retained.match("rest/r", 2000)])

    def test_wildcard_publishes_nothing(self):
        _status, body = self.publish({"topic": "rest/#", "payload": "x"})
        self.assertEqual(body, {"code": 108})
        self.assertEqual(self.frank.publishes(), [])

    def test_acl_denied_is_102(self):
        class Deny:
            def check(self, client, action, topic):
                return not (client.client_id == "bad" and action == "publish")

        self.h.broker.acl = Deny()
        _status, body = self.publish({"topic": "rest/a", "payload": "x", "clientid": "bad"})
        self.assertEqual(body, {"code": 102})
        self.assertEqual(self.frank.publishes(), [])

    def test_batch_142_143_144(self):
        status, body = self.publish(
            [{"topic": "rest/batch1", "payload": "1"}, {"topic": "rest/batch2", "payload": "2"}],
            "/api/v4/mqtt/publish_batch")
        self.assertEqual((status, body), (200, {"data": [
            {"topic": "rest/batch1", "code": 0}, {"topic": "rest/batch2", "code": 0}],
            "code": 0}))
        _status, body = self.publish(
            [{"topic": "rest/batch3", "payload": "3"}, {"topic": "rest/batch4"},
             {"payload": "x"}, {"topics": "rest/b5,rest/b6", "payload": "y"}, 7],
            "/api/v4/mqtt/publish_batch")
        self.assertEqual(body["data"], [
            {"topic": "rest/batch3", "code": 0}, {"topic": "rest/batch4", "code": 108},
            {"code": 108}, {"topic": "rest/b5,rest/b6", "code": 0}, {"code": 109}])
        self.assertEqual(len(self.frank.publishes()), 5)
        self.assertEqual(self.publish([], "/api/v4/mqtt/publish_batch"),
                         (200, {"data": [], "code": 0}))


class SubscribeTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness()
        self.h.populate()

    def test_subscribe_then_receive_then_unsubscribe(self):
        bob = self.h.peers["bob"]
        status, body = self.h.json("POST", "/api/v4/mqtt/subscribe",
                                   {"topic": "rest/s", "clientid": "sub_persist_bob", "qos": 1})
        self.assertEqual((status, body), (200, {"code": 0}))
        self.h.json("POST", "/api/v4/mqtt/publish", {"topic": "rest/s", "payload": "x", "qos": 1})
        (message,) = bob.publishes()
        self.assertEqual((message.topic, message.qos), ("rest/s", 1))
        self.h.json("POST", "/api/v4/mqtt/unsubscribe",
                    {"topic": "rest/s", "clientid": "sub_persist_bob"})
        self.h.json("POST", "/api/v4/mqtt/publish", {"topic": "rest/s", "payload": "x"})
        self.assertEqual(bob.publishes(), [])

    def test_offline_session_queues(self):
        _status, body = self.h.json("POST", "/api/v4/mqtt/subscribe",
                                   {"topics": "q/1,q/2", "clientid": "persist_offline_v5",
                                    "qos": 1})
        self.assertEqual(body, {"code": 0})
        self.h.json("POST", "/api/v4/mqtt/publish", {"topic": "q/2", "payload": "x", "qos": 1})
        self.assertEqual(len(self.h.broker.sessions["persist_offline_v5"].queue), 1)

    def test_errors(self):
        cases = [
            ({"topic": "a"}, 108),
            ({"topic": "a/#/b", "clientid": "sub_persist_bob"}, 108),
            ({"topic": "a", "clientid": "sub_persist_bob", "qos": 3}, 108),
            ({"topic": "a", "clientid": "nobody"}, 112),
        ]
        for request, code in cases:
            self.assertEqual(self.h.json("POST", "/api/v4/mqtt/subscribe", request),
                             (200, {"code": code}), request)
        self.assertEqual(self.h.json("POST", "/api/v4/mqtt/subscribe", "[1]"),
                         (400, {"code": 109}))

    def test_batches(self):
        _status, body = self.h.json("POST", "/api/v4/mqtt/subscribe_batch", [
            {"topic": "b/1", "clientid": "sub_persist_bob"},
            {"topic": "b/2", "clientid": "nobody"}])
        self.assertEqual(body, {"data": [
            {"clientid": "sub_persist_bob", "topic": "b/1", "code": 0},
            {"clientid": "nobody", "topic": "b/2", "code": 112}], "code": 0})
        self.assertIn("b/1", self.h.broker.sessions["sub_persist_bob"].subscriptions)
        _status, body = self.h.json("POST", "/api/v4/mqtt/unsubscribe_batch", [
            {"topic": "b/1", "clientid": "sub_persist_bob"}])
        self.assertEqual(body["data"][0]["code"], 0)
        self.assertNotIn("b/1", self.h.broker.sessions["sub_persist_bob"].subscriptions)
        self.assertEqual(self.h.json("POST", "/api/v4/mqtt/subscribe_batch", {})[0], 400)


class ReloadAndConfigurationTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness("mqtt { max_mqueue_len = 2048, keepalive_multiplier = 1.25 }\n")

    def test_reload_78_79_80(self):
        _status, body = self.h.json("GET", "/api/v4/reload")
        self.assertEqual(list(body["data"]), [
            "property_size", "max_packet_size", "client_max_packet_size", "msq_len",
            "qos_duration", "keepalive_backoff", "allow_anonymous", "enable_mqtt_stream",
            "bridge_mode"])
        self.assertEqual((body["data"]["msq_len"], body["data"]["keepalive_backoff"]),
                         (2048, 1.25))
        self.h.json("POST", "/api/v4/reload", {"data": {
            "msq_len": 4096, "keepalive_backoff": 1.5, "max_packet_size": 1,
            "allow_anonymous": False, "qos_duration": 3, "property_size": "x"}})
        _status, body = self.h.json("GET", "/api/v4/reload")
        data = body["data"]
        self.assertEqual((data["msq_len"], data["keepalive_backoff"], data["max_packet_size"],
                          data["allow_anonymous"], data["qos_duration"], data["property_size"]),
                         (4096, 1.5, 1, False, 3, 32))
        config = self.h.broker.config
        self.assertEqual((config.max_mqueue_len, config.max_packet_size, config.retry_interval),
                         (4096, 1024, 3.0))
        self.assertFalse(self.h.broker.authenticator.allow_anonymous)
        # A new anonymous client is refused at once.
        peer = self.h.peer("anon", level=5)
        (connack,) = peer.connect()
        self.assertEqual(connack.reason_code, 0x87)

    def test_configuration_87_to_96(self):
        status, body = self.h.json("GET", "/api/v4/configuration")
        self.assertEqual(status, 200)
        self.assertEqual(list(body["data"]), [
            "basic", "tls", "auth", "auth_http", "websocket", "http_server", "sqlite", "bridge"])
        expected = {
            "basic": ["url", "num_taskq_thread", "max_taskq_thread", "parallel",
                      "property_size", "daemon", "max_packet_size", "client_max_packet_size",
                      "msq_len", "qos_duration", "keepalive_backoff", "allow_anonymous",
                      "ipc_internal"],
            "tls": ["enable", "url", "key_password", "key", "cert", "cacert", "verify_peer",
                    "fail_if_no_peer_cert"],
            "auth_http": ["enable", "timeout", "connect_timeout", "pool_size", "cache_ttl",
                          "auth_req", "acl_req", "super_req"],
            "websocket": ["enable", "tls_enable", "url", "tls_url"],
            "http_server": ["enable", "port", "addr", "username", "password", "auth_type"],
            "sqlite": ["enable", "disk_cache_size", "flush_mem_threshold", "resend_interval",
                       "mounted_file_path"],
            "bridge": ["nodes", "sqlite"],
        }
        for section, keys in expected.items():
            status, body = self.h.json("GET", "/api/v4/configuration/" + section)
            self.assertEqual(status, 200, section)
            self.assertEqual(list(body["data"]), [section])
            self.assertEqual(list(body["data"][section]), keys, section)
        self.assertEqual(self.h.json("GET", "/api/v4/configuration/auth")[1],
                         {"code": 0, "data": {"auth": []}})
        basic = self.h.json("GET", "/api/v4/configuration/basic")[1]["data"]["basic"]
        self.assertEqual(basic["url"], "nmq-tcp://127.0.0.1:1883")

    def test_post_configuration_auth_and_basic(self):
        self.h.json("POST", "/api/v4/configuration", {"data": {
            "basic": {"msq_len": 77},
            "auth": [{"username": "u1", "password": "p1"}]}})
        self.assertEqual(self.h.broker.config.max_mqueue_len, 77)
        _status, body = self.h.json("GET", "/api/v4/configuration/auth")
        self.assertEqual(body["data"]["auth"], [{"login": "u1", "password": "p1"}])


class ConfigUpdateTests(SynchronousTestCase):
    GOOD = 'listeners.tcp { bind = "127.0.0.1:1884" }\nhttp_server { port = 8081 }\n'

    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "nanomq.conf")
        with open(self.path, "w") as handle:
            handle.write(self.GOOD)
        self.h = Harness(path=self.path)

    def read(self, path=None):
        with open(path or self.path) as handle:
            return handle.read()

    def test_valid_replaces_and_keeps_backup_106(self):
        new = self.GOOD.replace("1884", "1885")
        self.assertEqual(self.h.json("POST", "/api/v4/config_update", new), (200, {"code": 0}))
        self.assertEqual(self.read(), new)
        self.assertEqual(self.read(self.path + ".bak"), self.GOOD)
        self.assertEqual(sorted(os.listdir(self.dir)), ["nanomq.conf", "nanomq.conf.bak"])

    def test_junk_leaves_file_untouched_108_109_110(self):
        for junk in ("listeners.tcp { bind = ", "{\"data\": [", "", "mqtt.nonsense = 1",
                     b"\xff\xfe"):
            status, body = self.h.json("POST", "/api/v4/config_update", junk)
            self.assertEqual((status, body["code"]), (400, 117), junk)
            self.assertEqual(self.read(), self.GOOD)
        self.assertEqual(os.listdir(self.dir), ["nanomq.conf"])

    def test_no_file_is_118(self):
        h = Harness()
        self.assertEqual(h.json("POST", "/api/v4/config_update", self.GOOD), (200, {"code": 118}))


class CtrlTests(SynchronousTestCase):
    def test_stop_after_response(self):
        h = Harness()
        self.assertEqual(h.json("POST", "/api/v4/ctrl/STOP"), (200, {"code": 0}))
        self.assertEqual(h.stopped, [])
        h.clock.advance(0)
        self.assertEqual(h.stopped, [True])


class OpenApiTests(SynchronousTestCase):
    def test_document_covers_every_route(self):
        h = Harness()
        status, doc = h.json("GET", "/api/v4/openapi.json")
        self.assertEqual(status, 200)
        self.assertTrue(doc["openapi"].startswith("3."))
        # Parameter names differ (NanoMQ's list says ``:bridge_name``, the
        # document ``{name}``): compare the templates without them.
        paths = {re.sub(r"\{[^}]*\}", "{}", path): ops for path, ops in doc["paths"].items()}
        _status, listing = h.json("GET", "/api/v4")
        for item in listing["data"]:
            path = "/" + "/".join(
                "{}" if seg.startswith(":") else seg
                for seg in item["path"].strip("/").split("/"))
            if path.startswith("/configuration/"):
                path = "/configuration/{}"
            self.assertIn(path, paths, item)
            self.assertIn(item["method"].lower(), paths[path], item)
        json.dumps(doc)
