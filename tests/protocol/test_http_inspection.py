"""
Our inspection additions through ``StubTreq`` on the test clock: a
session in detail (``/sessions/{clientid}``), shared groups
(``/shared``), retained messages (``/retained``: list, filter, delete),
the configuration file as text (``/config_file``) and where a refused
``/config_update`` is wrong.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.mqtt.packets import Publish

from .http_support import Harness


class SessionDetailTests(SynchronousTestCase):
    def test_online_v5_client(self):
        h = Harness()
        peers = h.populate()
        alice = peers["alice"]
        h.clock.advance(30)
        status, body = h.json("GET", "/api/v4/sessions/sub_v5_alice")
        self.assertEqual(status, 200)
        data = body["data"]
        self.assertEqual((data["client_id"], data["conn_state"], data["proto_ver"]),
                         ("sub_v5_alice", "connected", 5))
        self.assertEqual((data["keepalive"], data["connected_for"], data["peer"]),
                         (60, 30, "127.0.0.1:50000"))
        self.assertEqual([s["topic"] for s in data["subscriptions"]],
                         ["sensor/+/temp", "cmd/#"])
        self.assertEqual(data["subscriptions"][0]["qos"], 1)
        # Two QoS 1 messages unacknowledged: in flight, nothing queued.
        for n in (1, 2):
            h.broker.publish_internal("cmd/go", b"%d" % n, h.clock.seconds(), qos=1)
        self.assertEqual(len([p for p in alice.received() if isinstance(p, Publish)]), 2)
        data = h.json("GET", "/api/v4/sessions/sub_v5_alice")[1]["data"]
        self.assertEqual((data["inflight"], data["mqueue_len"]), (2, 0))
        # The smaller of the client's Receive Maximum and ours.
        self.assertEqual(data["inflight_max"], h.broker.config.max_inflight_window)

    def test_offline_session_queues(self):
        h = Harness()
        h.populate()
        for n in range(3):
            h.broker.publish_internal("offline/queue", b"%d" % n, h.clock.seconds(), qos=1)
        status, body = h.json("GET", "/api/v4/sessions/persist_offline_v5")
        self.assertEqual(status, 200)
        data = body["data"]
        self.assertEqual((data["conn_state"], data["session_expiry_interval"]),
                         ("disconnected", 3600))
        self.assertEqual((data["mqueue_len"], data["inflight"], data["connected_for"],
                          data["inflight_max"]), (3, 0, None, None))
        self.assertEqual(data["mqueue_max"], h.broker.config.max_mqueue_len)

    def test_unknown_client_is_404(self):
        self.assertEqual(Harness().json("GET", "/api/v4/sessions/nobody"),
                         (404, {"code": 108}))


class SharedTests(SynchronousTestCase):
    def test_groups_and_members(self):
        h = Harness()
        h.populate()
        other = h.peer("second_carol", level=5)
        other.connect()
        other.subscribe("$share/group1/shared/topic", 1)
        other.subscribe("$share/g2/x/#", 0)
        status, body = h.json("GET", "/api/v4/shared")
        self.assertEqual(status, 200)
        self.assertEqual(body["data"], [
            {"group": "g2", "topic": "x/#", "members": [{"clientid": "second_carol", "qos": 0}]},
            {"group": "group1", "topic": "shared/topic",
             "members": [{"clientid": "sub_shared_carol", "qos": 0},
                         {"clientid": "second_carol", "qos": 1}]},
        ])


class RetainedTests(SynchronousTestCase):
    def setUp(self):
        self.h = h = Harness()
        now = h.clock.seconds()
        h.broker.publish_internal("room/b/temp", b"21.5", now, qos=1, retain=True)
        h.broker.publish_internal("room/a/temp", b"\xff\x00", now, retain=True)
        h.broker.publish_internal("$SYS/kept", b"sys", now, retain=True)
        h.broker.publish_internal("short/lived", b"soon gone", now, retain=True,
                                  properties={"message_expiry_interval": 10})

    def test_list_sorted_with_payload_encodings(self):
        status, body = self.h.json("GET", "/api/v4/retained")
        self.assertEqual(status, 200)
        # "#" skips "$" topics [MQTT-4.7.2-1].
        self.assertEqual([m["topic"] for m in body["data"]],
                         ["room/a/temp", "room/b/temp", "short/lived"])
        self.assertEqual(body["total"], 3)
        binary, text = body["data"][0], body["data"][1]
        self.assertEqual((binary["payload"], binary["encoding"], binary["size"]),
                         ("/wA=", "base64", 2))
        self.assertEqual((text["payload"], text["encoding"], text["qos"]), ("21.5", "plain", 1))

    def test_filter_limit_and_expiry(self):
        h = self.h
        body = h.json("GET", "/api/v4/retained?topic=room/%2B/temp&limit=1")[1]
        self.assertEqual(([m["topic"] for m in body["data"]], body["total"]),
                         (["room/a/temp"], 2))
        body = h.json("GET", "/api/v4/retained?topic=%24SYS/%23")[1]
        self.assertEqual([m["topic"] for m in body["data"]], ["$SYS/kept"])
        h.clock.advance(10)
        body = h.json("GET", "/api/v4/retained")[1]
        self.assertNotIn("short/lived", [m["topic"] for m in body["data"]])

    def test_bad_queries(self):
        for query in ("topic=a/%23/b", "limit=0", "limit=x"):
            self.assertEqual(self.h.json("GET", "/api/v4/retained?" + query),
                             (400, {"code": 108}), query)

    def test_delete(self):
        h = self.h
        self.assertEqual(h.json("DELETE", "/api/v4/retained?topic=room/b/temp"),
                         (200, {"code": 0}))
        self.assertIsNone(h.broker.retained.get("room/b/temp"))
        self.assertEqual(h.json("DELETE", "/api/v4/retained?topic=room/b/temp"),
                         (404, {"code": 108}))
        self.assertEqual(h.json("DELETE", "/api/v4/retained?topic=room/%2B/temp"),
                         (400, {"code": 108}))
        self.assertEqual(h.json("DELETE", "/api/v4/retained"), (400, {"code": 107}))

    def test_delete_delivers_nothing(self):
        h = self.h
        watcher = h.peer("watcher")
        watcher.connect()
        watcher.subscribe("room/#")
        watcher.received()
        h.json("DELETE", "/api/v4/retained?topic=room/a/temp")
        self.assertEqual(watcher.publishes(), [])


class ConfigFileTests(SynchronousTestCase):
    TEXT = 'listeners.tcp { bind = "127.0.0.1:1884" }\nhttp_server { port = 8081 }\n'

    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "nanomq.conf")
        with open(self.path, "w") as handle:
            handle.write(self.TEXT)
        self.h = Harness(path=self.path)

    def test_text_of_the_file(self):
        self.assertEqual(self.h.json("GET", "/api/v4/config_file"),
                         (200, {"code": 0, "data": {"path": self.path, "text": self.TEXT}}))

    def test_without_a_file(self):
        self.assertEqual(Harness().json("GET", "/api/v4/config_file"),
                         (200, {"code": 0, "data": {"path": None, "text": None}}))

    def test_refused_update_says_where(self):
        broken = self.TEXT + "mqtt {\n  max_packet_size = 12 parsecs\n}\n"
        status, body = self.h.json("POST", "/api/v4/config_update", broken)
        self.assertEqual((status, body["code"]), (400, 117))
        error = body["error"]
        self.assertEqual((error["file"], error["line"], error["key"]),
                         (self.path, 4, "mqtt.max_packet_size"))
        self.assertIn("expected a size", error["reason"])
        self.assertTrue(body["message"].startswith(f"{self.path}:4: mqtt.max_packet_size: "))

    def test_syntax_error_has_a_line(self):
        status, body = self.h.json("POST", "/api/v4/config_update", self.TEXT + "mqtt {\n")
        self.assertEqual((status, body["error"]["line"], body["error"]["key"]),
                         (400, 4, None))
