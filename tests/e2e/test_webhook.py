"""
WebHooks against a real local HTTP sink (a twisted.web ``Resource`` on
port 0): the three NanoMQ bodies byte for byte (key order included), the
events NanoMQ never fires, and a sink that is down not slowing MQTT.
"""

import json
import re

from twisted.internet import defer, reactor, task
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import resource, server

from nanomq_twisted.core.webhook_events import base62, encode_payload
from nanomq_twisted.mqtt.topics import match

from .support import TIMEOUT, Client, free_port, in_thread, start_broker


class Sink(resource.Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.requests = []
        self.arrived = defer.DeferredQueue()

    def render_POST(self, request):
        body = request.content.read()
        entry = (request.path, request.getHeader("content-type"),
                 request.getHeader("x-extra"), body)
        self.requests.append(entry)
        self.arrived.put(entry)
        return b"{}"


class WebhookTests(TestCase):
    timeout = 30

    def start_sink(self):
        sink = Sink()
        port = reactor.listenTCP(0, server.Site(sink), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return sink, port.getHost().port

    def conf(self, port, events, extra=""):
        entries = ",\n".join(events)
        return (
            f'webhook {{\n url = "http://127.0.0.1:{port}/hook"\n'
            ' headers.content-type = "application/json"\n headers.x-extra = "yes"\n'
            f" pool_size = 1\n cancel_timeout = 2s\n{extra} events = [\n{entries}\n ]\n}}\n"
        )

    @defer.inlineCallbacks
    def next_body(self, sink):
        entry = yield sink.arrived.get().addTimeout(TIMEOUT, reactor)
        self.assertEqual(entry[:3], (b"/hook", "application/json", "yes"))
        return entry[3]

    @defer.inlineCallbacks
    def test_nanomq_bodies_exactly(self):
        sink, port = self.start_sink()
        running = yield start_broker(self, self.conf(port, [
            '{ event = "on_client_connack" }',
            '{ event = "on_client_disconnected" }',
            '{ event = "on_message_publish", topic = "hook/#" }',
        ], extra=' body.encoding = "base64"\n'))

        def scenario():
            client = Client(running.port, "hooked")
            client.connect(keepalive=30)
            client.publish("hook/a", b"hello", qos=1, retain=True)
            client.publish("other/a", b"ignored", qos=1)
            client.disconnect()

        yield in_thread(scenario)
        connack = yield self.next_body(sink)
        self.assertEqual(
            connack,
            b'{"proto_ver":4,"keepalive":30,"conn_ack":"success","username":"undefined",'
            b'"clientid":"hooked","action":"client_connack"}',
        )
        publish = yield self.next_body(sink)
        self.assertRegex(
            publish,
            re.compile(
                rb'^\{"ts":\d{13},"topic":"hook/a","retain":true,"qos":1,'
                rb'"action":"message_publish","from_username":"undefined",'
                rb'"from_client_id":"hooked","payload":"aGVsbG8="\}$'
            ),
        )
        gone = yield self.next_body(sink)
        self.assertEqual(
            gone,
            b'{"reason":"normal","username":"undefined","clientid":"hooked",'
            b'"action":"client_disconnected"}',
        )
        hooks = running.app.webhook
        self.assertEqual(hooks.stats.dropped, 0)

    @defer.inlineCallbacks
    def test_events_nanomq_never_fires(self):
        sink, port = self.start_sink()
        names = ["on_client_connect", "on_client_connected", "on_client_subscribe",
                 "on_session_subscribed", "on_message_delivered", "on_message_acked",
                 "on_client_unsubscribe", "on_session_unsubscribed",
                 "on_session_terminated"]
        running = yield start_broker(
            self, self.conf(port, [f'{{ event = "{n}" }}' for n in names])
        )

        def scenario():
            client = Client(running.port, "all")
            client.connect()
            client.subscribe("ev/t", 1)
            client.publish("ev/t", b"x", qos=1)
            client.expect()
            client.paho.unsubscribe("ev/t")
            client.disconnect()

        yield in_thread(scenario)
        actions = []
        while len(actions) < len(names):
            body = yield self.next_body(sink)
            actions.append(json.loads(body)["action"])
        self.assertEqual(sorted(actions), sorted(n[3:] for n in names))

    @defer.inlineCallbacks
    def test_down_sink_does_not_block_mqtt(self):
        dead = free_port()
        running = yield start_broker(self, self.conf(dead, [
            '{ event = "on_message_publish" }', '{ event = "on_client_connack" }',
        ]))
        hooks = running.app.webhook
        hooks.backoff = 0.01

        def scenario():
            sub = Client(running.port, "s")
            sub.connect()
            sub.subscribe("fast/#", 1)
            pub = Client(running.port, "p")
            pub.connect()
            for i in range(20):
                pub.publish(f"fast/{i}", b"x", qos=1)
            got = [sub.expect().topic for _ in range(20)]
            sub.disconnect()
            pub.disconnect()
            return got

        got = yield in_thread(scenario)
        self.assertEqual(got, [f"fast/{i}" for i in range(20)])
        for _ in range(int(TIMEOUT / 0.05)):
            if hooks.stats.failed >= 1:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertGreaterEqual(hooks.stats.failed, 1)
        self.assertGreaterEqual(hooks.stats.retried, 3)


class EncodingTests(SynchronousTestCase):
    def test_payload_encodings(self):
        self.assertEqual(encode_payload(b"hi\x00there", "plain"), "hi")
        self.assertEqual(encode_payload(b"hello", "base64"), "aGVsbG8=")
        self.assertIsNone(encode_payload(b"", "base64"))
        self.assertEqual(encode_payload(b"", "base62"), "")
        self.assertEqual(base62(b"\x00\x00\x01"), "001")
        self.assertEqual(base62(b"\xff"), "47")  # 255 = 4*62 + 7

    def test_topic_filter_has_no_dollar_exception(self):
        self.assertTrue(match("#", "$SYS/brokers/client_status", dollar_rule=False))
        self.assertTrue(match("a/+/c", "a/b/c", dollar_rule=False))
        self.assertTrue(match("a/#", "a", dollar_rule=False))
        self.assertFalse(match("a/+", "a/b/c", dollar_rule=False))
