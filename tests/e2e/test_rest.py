"""
The REST API end to end: the real application (app.py) with the
HTTP listener on port 0, real HTTP requests (treq) and real MQTT clients
(paho-mqtt in threads).
"""

import base64
import json
import os
import sqlite3

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from nanomq_twisted.config import load

from .support import TIMEOUT, Clients, in_thread, start_app, start_broker

HTTP_CONF = """
http_server { port = 0, ip_addr = "127.0.0.1" }
"""

AUTH = {b"Authorization": [b"Basic " + base64.b64encode(b"admin:public")]}


class RestCase(TestCase):
    def setUp(self):
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    @defer.inlineCallbacks
    def start(self, conf=""):
        self.running = yield start_broker(self, HTTP_CONF + conf)
        yield self.locate(self.running.app)
        self.clients = Clients(self, self.running.port)
        return self.running

    @defer.inlineCallbacks
    def locate(self, app):
        self.http_port = yield app.port("http")
        self.api = app.api

    @defer.inlineCallbacks
    def call(self, method, path, body=None):
        """``(status, body bytes)`` of one request."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
        elif isinstance(body, str):
            body = body.encode("utf-8")
        url = f"http://127.0.0.1:{self.http_port}/api/v4{path}"
        response = yield treq.request(method, url, headers=AUTH, data=body, pool=self.pool)
        content = yield response.content()
        return response.code, content

    @defer.inlineCallbacks
    def call_json(self, method, path, body=None):
        status, content = yield self.call(method, path, body)
        return status, json.loads(content)


class PublishSubscribeTests(RestCase):
    @defer.inlineCallbacks
    def test_publish_reaches_v5_subscriber_with_properties(self):
        yield self.start()
        sub = self.clients("frank", protocol=5)

        def subscribe():
            sub.connect()
            sub.subscribe("rest/#", 1)

        yield in_thread(subscribe)
        status, body = yield self.call_json("POST", "/mqtt/publish", {
            "topic": "rest/one", "payload": "hello", "qos": 1, "clientid": "rester",
            "properties": {
                "payload_format_indicator": 1, "message_expiry_interval": 100,
                "response_topic": "rest/reply", "correlation_data": "c-1",
                "content_type": "text/plain",
                "user_properties": {"id": 10010, "name": "x"},
            }})
        self.assertEqual((status, body), (200, {"code": 0}))
        message = yield in_thread(sub.expect)
        self.assertEqual((message.topic, message.payload, message.qos),
                         ("rest/one", b"hello", 1))
        props = message.properties
        self.assertEqual(props.PayloadFormatIndicator, 1)
        self.assertLessEqual(props.MessageExpiryInterval, 100)
        self.assertEqual(props.ResponseTopic, "rest/reply")
        self.assertEqual(props.CorrelationData, b"c-1")
        self.assertEqual(props.ContentType, "text/plain")
        self.assertEqual(sorted(props.UserProperty), [("id", "10010"), ("name", "x")])

    @defer.inlineCallbacks
    def test_rest_subscribe_makes_connected_client_receive(self):
        yield self.start()
        client = self.clients("alice", protocol=4)
        yield in_thread(client.connect)
        status, body = yield self.call_json(
            "POST", "/mqtt/subscribe", {"topic": "cmd/+", "clientid": "alice", "qos": 1})
        self.assertEqual((status, body), (200, {"code": 0}))
        status, body = yield self.call_json("GET", "/subscriptions/alice")
        self.assertEqual(body["data"], [{"clientid": "alice", "topic": "cmd/+", "qos": 1}])
        yield self.call_json("POST", "/mqtt/publish", {"topic": "cmd/go", "payload": "now"})
        message = yield in_thread(client.expect)
        self.assertEqual((message.topic, message.payload), ("cmd/go", b"now"))
        status, body = yield self.call_json("GET", "/clients/alice")
        self.assertEqual(body["data"][0]["conn_state"], "connected")

    @defer.inlineCallbacks
    def test_kick(self):
        yield self.start()
        client = self.clients("victim", protocol=5)
        yield in_thread(client.connect)
        status, body = yield self.call_json("DELETE", "/clients/victim")
        self.assertEqual((status, body), (200, {"code": 0}))
        code, _props = yield in_thread(client.disconnects.get, True, TIMEOUT)
        self.assertEqual(code.value, 0x98)


class ReloadTests(RestCase):
    @defer.inlineCallbacks
    def test_reload_changes_max_packet_size_for_new_connections(self):
        yield self.start()
        status, body = yield self.call_json("POST", "/reload",
                                            {"data": {"max_packet_size": 2}})
        self.assertEqual((status, body), (200, {"code": 0}))
        status, body = yield self.call_json("GET", "/reload")
        self.assertEqual(body["data"]["max_packet_size"], 2)
        client = self.clients("big", protocol=5)
        _flags, _code, props = yield in_thread(client.connect)
        self.assertEqual(props.MaximumPacketSize, 2048)

    @defer.inlineCallbacks
    def test_reload_allow_anonymous(self):
        yield self.start()
        yield self.call_json("POST", "/reload", {"data": {"allow_anonymous": False}})
        client = self.clients("anon", protocol=5)
        _flags, code, _props = yield in_thread(client.connect, expect_success=False)
        self.assertEqual(code.value, 0x87)


class PrometheusTests(RestCase):
    @defer.inlineCallbacks
    def test_scrape_parses(self):
        yield self.start()
        client = self.clients("p1", protocol=4)
        yield in_thread(client.connect)
        status, text = yield self.call("GET", "/prometheus")
        self.assertEqual(status, 200)
        families = {f.name: f for f in text_string_to_metric_families(text.decode("utf-8"))}
        # NanoMQ's 15 and ours: nanomq_http_default_credentials, two
        # dashboard login counters, the two nanomq_persistence_* (healthy
        # without persistence, no failures), 8 for the state quotas and 5
        # counters of floods and slow peers.
        self.assertEqual(len(families), 33)
        self.assertEqual(families["nanomq_persistence_healthy"].samples[0].value, 1)
        self.assertEqual(families["nanomq_persistence_write_failures"].samples[0].value, 0)
        self.assertEqual(families["nanomq_retained_refused"].type, "counter")
        self.assertEqual(families["nanomq_connections_rate_limited"].type, "counter")
        self.assertEqual(families["nanomq_connections_count"].samples[0].value, 1)
        # The API here listens on 127.0.0.1 only.
        self.assertEqual(families["nanomq_http_default_credentials"].samples[0].value, 0)
        self.assertEqual(families["nanomq_messages_received"].type, "counter")
        # The collector's samples, read through prometheus_client itself.
        registry = self.api.prometheus.registry
        self.assertEqual(registry.get_sample_value("nanomq_connections_count"), 1)
        self.assertIsNone(registry.get_sample_value("nanomq_messages_received_total"))


class ConfigFileTests(RestCase):
    CONF = """
listeners.tcp { bind = "127.0.0.1:0" }
http_server { port = 0, ip_addr = "127.0.0.1" }
mqtt { max_mqueue_len = 100 }
"""

    @defer.inlineCallbacks
    def start_from_file(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "nanomq.conf")
        with open(self.path, "w") as handle:
            handle.write(self.CONF)
        self.app = start_app(self, load(self.path, env={}))
        yield self.locate(self.app)
        self.clients = Clients(self, (yield self.app.port("tcp")))

    def read(self):
        with open(self.path) as handle:
            return handle.read()

    @defer.inlineCallbacks
    def test_config_update_junk_leaves_file_untouched(self):
        yield self.start_from_file()
        for junk in ("listeners.tcp { bind = ", "", "mqtt.max_mqueue_len = -5"):
            status, body = yield self.call_json("POST", "/config_update", junk)
            self.assertEqual((status, body["code"]), (400, 117))
            self.assertEqual(self.read(), self.CONF)
        new = self.CONF.replace("100", "200")
        status, body = yield self.call_json("POST", "/config_update", new)
        self.assertEqual((status, body), (200, {"code": 0}))
        self.assertEqual(self.read(), new)
        with open(self.path + ".bak") as handle:
            self.assertEqual(handle.read(), self.CONF)

    @defer.inlineCallbacks
    def test_restart_keeps_sessions_and_retained(self):
        yield self.start_from_file()
        broker = self.app.broker
        client = self.clients("keeper", protocol=4, clean=False)

        def setup():
            client.connect()
            client.subscribe("keep/#", 1)
            client.disconnect()

        yield in_thread(setup)
        yield self.call_json("POST", "/mqtt/publish",
                             {"topic": "keep/r", "payload": "kept", "retain": True, "qos": 1})
        new = self.CONF.replace("100", "300")
        yield self.call_json("POST", "/config_update", new)
        old_api = self.api
        status, body = yield self.call_json("POST", "/ctrl/restart")
        self.assertEqual((status, body), (200, {"code": 0}))
        yield old_api.restarted
        self.assertIs(self.app.broker, broker)
        self.assertIn("keeper", broker.sessions)
        self.assertEqual(broker.config.max_mqueue_len, 300)
        yield self.locate(self.app)
        self.assertIsNot(self.api, old_api)
        status, body = yield self.call_json("GET", "/subscriptions/keeper")
        self.assertEqual(body["data"], [{"clientid": "keeper", "topic": "keep/#", "qos": 1}])
        self.assertEqual(len(broker.sessions["keeper"].queue), 1)
        self.assertEqual(len(list(broker.retained.match("keep/#", reactor.seconds()))), 1)


    @defer.inlineCallbacks
    def test_restart_rebuilds_bridges_and_rules_from_the_file(self):
        yield self.start_from_file()
        old_rules = self.app.rules
        old_bridges = self.app.bridges
        self.assertEqual(len(old_rules.engine), 0)
        status, body = yield self.call_json("GET", "/bridges")
        self.assertEqual((status, body["data"]["bridge"]["nodes"]), (200, []))
        db = os.path.join(os.path.dirname(self.path), "rules.db")
        new = self.CONF + (
            f'rules.sqlite {{ path = "{db}"\n'
            '  rules = [ { table = hits, sql = "SELECT topic, payload FROM \\"sensor/#\\"" } ]'
            ' }\n'
            'bridges.mqtt.later {\n  server = "mqtt-tcp://127.0.0.1:1"\n'
            '  enable = false\n  clientid = "later"\n}\n'
        )
        status, body = yield self.call_json("POST", "/config_update", new)
        self.assertEqual((status, body), (200, {"code": 0}))
        old_api = self.api
        status, body = yield self.call_json("POST", "/ctrl/restart")
        self.assertEqual((status, body), (200, {"code": 0}))
        yield old_api.restarted
        yield self.locate(self.app)

        rules = self.app.rules
        bridges = self.app.bridges
        self.assertIsNot(rules, old_rules)
        self.assertIsNot(bridges, old_bridges)
        self.assertFalse(old_rules.running)
        self.assertFalse(old_bridges.running)
        self.assertEqual([r.id for r in rules.engine], [1])
        self.assertEqual(self.app.broker.extensions.filters_of(old_rules), [])
        # The new API serves the new services.
        status, body = yield self.call_json("GET", "/rules")
        self.assertEqual((status, [r["id"] for r in body["data"]]), (200, [1]))
        status, body = yield self.call_json("GET", "/bridges")
        self.assertEqual([n["name"] for n in body["data"]["bridge"]["nodes"]], ["later"])
        # The rule is live: a routed message is written to its table.
        status, body = yield self.call_json(
            "POST", "/mqtt/publish", {"topic": "sensor/1", "payload": "after restart"})
        self.assertEqual((status, body), (200, {"code": 0}))
        yield rules.flush()
        connection = sqlite3.connect(db)
        self.addCleanup(connection.close)
        rows = connection.execute("SELECT Topic, Payload FROM hits").fetchall()
        self.assertEqual(rows, [("sensor/1", "after restart")])
