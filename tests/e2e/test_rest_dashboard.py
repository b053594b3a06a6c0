"""
The REST additions the dashboard uses, end to end on the shipped
configuration: real HTTP (treq), real paho-mqtt clients over TCP and
WebSocket, the real SQLite store.
"""

import base64
import json
import os

import treq
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from nanomq_twisted.config import load
from nanomq_twisted.tap import make_app

from ..shipped.support import PahoClients, shipped_copy, start_config, start_shipped
from .support import Client, in_thread

AUTH = {b"Authorization": [b"Basic " + base64.b64encode(b"admin:public")]}


class ShippedRestCase(TestCase):
    timeout = 60

    def setUp(self):
        self.pool = HTTPConnectionPool(reactor, persistent=False)

    @defer.inlineCallbacks
    def call(self, port, method, path, body=None, headers=AUTH):
        """``(status, JSON body, response)`` of one request."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
        response = yield treq.request(method, f"http://127.0.0.1:{port}/api/v4{path}",
                                      headers=headers, data=body, pool=self.pool)
        content = yield response.content()
        return response.code, json.loads(content) if content else None, response


class ListenerCountTests(ShippedRestCase):
    @defer.inlineCallbacks
    def test_clients_counted_on_their_listener(self):
        shipped = yield start_shipped(self)
        clients = PahoClients(self, shipped)

        def connect():
            for name, transport in (("over-tcp-1", "tcp"), ("over-tcp-2", "tcp"),
                                    ("over-ws", "ws")):
                clients(name, 4, transport).connect()

        yield in_thread(connect)
        status, body, _ = yield self.call(shipped.ports["http"], "GET", "/listeners")
        self.assertEqual(status, 200)
        by_name = {item["name"]: item for item in body["data"]}
        self.assertEqual(
            {name: (item["type"], item["port"], item["running"], item["connections"])
             for name, item in by_name.items()},
            {"tcp": ("tcp", shipped.ports["tcp"], True, 2),
             "ws": ("ws", shipped.ports["ws"], True, 1)})
        self.assertEqual(by_name["ws"]["path"], "/mqtt")


class SessionDetailTests(ShippedRestCase):
    @defer.inlineCallbacks
    def test_v5_client_in_detail(self):
        shipped = yield start_shipped(self)
        client = PahoClients(self, shipped)("detailed", 5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 120

        def connect():
            client.connect(keepalive=33, properties=props)
            client.subscribe("detail/#", 1)

        yield in_thread(connect)
        status, body, _ = yield self.call(shipped.ports["http"], "GET", "/sessions/detailed")
        self.assertEqual(status, 200)
        data = body["data"]
        self.assertEqual(
            (data["keepalive"], data["session_expiry_interval"], data["listener"],
             data["proto_ver"]), (33, 120, "tcp", 5))
        self.assertEqual([(s["topic"], s["qos"]) for s in data["subscriptions"]],
                         [("detail/#", 1)])
        self.assertTrue(data["peer"].startswith("127.0.0.1:"))


class RetainedPersistenceTests(ShippedRestCase):
    @defer.inlineCallbacks
    def test_deleted_retained_message_stays_deleted_after_a_restart(self):
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        path = shipped_copy(workdir)
        first = make_app(load(path), reactor)
        first.service.startService()
        stopped = False
        try:
            tcp = yield first.port("tcp")
            http = yield first.port("http")
            publisher = Client(tcp, "retainer", 4)

            def publish():
                publisher.connect()
                publisher.publish("keep/me", b"kept", 1, retain=True)
                publisher.publish("drop/me", b"dropped", 1, retain=True)
                publisher.disconnect()

            yield in_thread(publish)
            status, body, _ = yield self.call(http, "DELETE", "/retained?topic=drop/me")
            self.assertEqual((status, body), (200, {"code": 0}))
            yield first.service.stopService()
            stopped = True
        finally:
            if not stopped:
                yield first.service.stopService()
        _app, ports = yield start_config(self, path, ("http",))
        status, body, _ = yield self.call(ports["http"], "GET", "/retained")
        self.assertEqual([m["topic"] for m in body["data"]], ["keep/me"])


class LoginOverHttpTests(ShippedRestCase):
    @defer.inlineCallbacks
    def test_cookie_session(self):
        shipped = yield start_shipped(self)
        port = shipped.ports["http"]
        status, body, response = yield self.call(
            port, "POST", "/dashboard/login", {"username": "admin", "password": "public"},
            headers={})
        self.assertEqual((status, body["data"]["username"]), (200, "admin"))
        cookie = response.headers.getRawHeaders(b"set-cookie")[0].split(b";")[0]
        browser = {b"Cookie": [cookie], b"X-NanoMQ-Dashboard": [b"1"]}
        status, body, _ = yield self.call(port, "GET", "/stats", headers=browser)
        self.assertEqual((status, body["data"]["connections"]), (200, 0))
        status, _body, _ = yield self.call(port, "GET", "/stats", headers={b"Cookie": [cookie]})
        self.assertEqual(status, 401)
        status, _body, _ = yield self.call(port, "POST", "/dashboard/logout", headers=browser)
        self.assertEqual(status, 200)
        status, body, _ = yield self.call(port, "GET", "/stats", headers=browser)
        self.assertEqual((status, body), (401, {"code": 116}))

    @defer.inlineCallbacks
    def test_history_sampled_from_the_start(self):
        shipped = yield start_shipped(self)
        status, body, _ = yield self.call(shipped.ports["http"], "GET", "/metrics/history")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(len(body["data"]["samples"]), 1)
        self.assertEqual(body["data"]["interval"], 5.0)
