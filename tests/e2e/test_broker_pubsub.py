# -*- test-case-name: tests.e2e.test_broker_pubsub -*-
"""
Publish/subscribe end to end with real paho-mqtt clients: QoS levels and
downgrade, wildcards, ``$`` topics and ``$SYS/brokers/client_status``,
retained messages, shared subscriptions.
"""

import json

from twisted.internet import defer
from twisted.trial import unittest

from .support import play


class PubSubTests(unittest.TestCase):
    def _qos_roundtrip(self, protocol):
        def scenario(clients):
            sub = clients("sub", protocol)
            sub.connect()
            self.assertEqual(sub.subscribe("t/q", 2), [2])
            pub = clients("pub", protocol)
            pub.connect()
            for qos in (0, 1, 2):
                pub.publish("t/q", b"qos%d" % qos, qos)
                message = sub.expect()
                self.assertEqual((message.topic, message.payload, message.qos),
                                 ("t/q", b"qos%d" % qos, qos))
                self.assertFalse(message.retain)

        return play(self, scenario)

    @defer.inlineCallbacks
    def test_qos_0_1_2_v311(self):
        yield self._qos_roundtrip(4)

    @defer.inlineCallbacks
    def test_qos_0_1_2_v5(self):
        yield self._qos_roundtrip(5)

    @defer.inlineCallbacks
    def test_qos_0_1_2_mqtt31_mqisdp(self):
        yield self._qos_roundtrip(3)

    @defer.inlineCallbacks
    def test_qos_downgraded_to_subscription_MQTT_3_8_4_6(self):
        def scenario(clients):
            sub0 = clients("sub0", 4)
            sub0.connect()
            sub0.subscribe("down", 0)
            sub1 = clients("sub1", 5)
            sub1.connect()
            sub1.subscribe("down", 1)
            pub = clients("pub", 4)
            pub.connect()
            pub.publish("down", b"x", 2)
            self.assertEqual(sub0.expect().qos, 0)
            self.assertEqual(sub1.expect().qos, 1)
            # A lower publish QoS is not raised.
            pub.publish("down", b"y", 0)
            self.assertEqual(sub1.expect().qos, 0)

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_wildcards_plus_and_hash_MQTT_4_7_1(self):
        def scenario(clients):
            plus = clients("plus", 4)
            plus.connect()
            plus.subscribe("a/+/c")
            hash_ = clients("hash", 5)
            hash_.connect()
            hash_.subscribe("a/#")
            pub = clients("pub", 4)
            pub.connect()
            pub.publish("a/b/c", b"1")
            self.assertEqual(plus.expect().topic, "a/b/c")
            self.assertEqual(hash_.expect().topic, "a/b/c")
            # "#" also matches the parent level [MQTT-4.7.1-2].
            pub.publish("a", b"2")
            self.assertEqual(hash_.expect().topic, "a")
            pub.publish("a/b/c/d", b"3")
            self.assertEqual(hash_.expect().topic, "a/b/c/d")
            pub.publish("a/b/c", b"sentinel")
            self.assertEqual(hash_.expect().payload, b"sentinel")
            # "a", "a/b/c/d" did not reach "a/+/c".
            self.assertEqual(plus.expect_sentinel("a/b/c").payload, b"sentinel")

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_dollar_topics_not_matched_by_hash_MQTT_4_7_2_1(self):
        def scenario(clients):
            every = clients("every", 4)
            every.connect()
            every.subscribe("#")
            plus = clients("plus", 5)
            plus.connect()
            plus.subscribe("+/brokers/client_status")
            sys = clients("sys", 4)
            sys.connect()
            sys.subscribe("$SYS/#")
            other = clients("other", 5)
            other.paho.username_pw_set("alice")
            other.connect(keepalive=30)
            online = sys.expect()
            self.assertEqual(online.topic, "$SYS/brokers/client_status")
            body = json.loads(online.payload)
            self.assertEqual(
                list(body),
                ["status", "username", "ts", "proto_name", "keepalive",
                 "return_code", "proto_ver", "client_id", "clean_start", "IPv4"],
            )
            self.assertEqual(body["status"], "online")
            self.assertEqual(body["username"], "alice")
            self.assertEqual(body["client_id"], "other")
            self.assertEqual(body["proto_name"], "MQTT")
            self.assertEqual(body["proto_ver"], 5)
            self.assertEqual(body["keepalive"], 30)
            self.assertEqual(body["return_code"], "0")
            self.assertEqual(body["clean_start"], 1)
            self.assertEqual(body["IPv4"], "127.0.0.1")
            self.assertIsInstance(body["ts"], int)
            # Milliseconds since the epoch.
            self.assertGreater(body["ts"], 10**12)
            # The raw layout keeps NanoMQ's spacing (broker.md §8).
            self.assertTrue(online.payload.startswith(b'{"status":"online", "username":'))
            self.assertIn(b', "IPv4":', online.payload)
            other.disconnect()
            offline = sys.expect()
            body = json.loads(offline.payload)
            self.assertEqual(
                list(body), ["status", "username", "ts", "reason_code", "client_id", "IPv4"]
            )
            self.assertEqual(
                (body["status"], body["client_id"], body["reason_code"]),
                ("offline", "other", "0"),
            )
            # Neither "#" nor "+/..." saw either notice.
            plus.subscribe("sentinel")
            every.paho.publish("sentinel", b"s")
            self.assertEqual(every.expect_sentinel("sentinel").payload, b"s")
            self.assertEqual(plus.expect_sentinel("sentinel").payload, b"s")

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_client_status_anonymous_username_null(self):
        def scenario(clients):
            sys = clients("sys", 4)
            sys.connect()
            sys.subscribe("$SYS/brokers/client_status")
            anon = clients("anon", 4, clean=False)
            anon.connect(keepalive=0)
            body = json.loads(sys.expect().payload)
            self.assertEqual(body["username"], "(null)")
            self.assertEqual(body["proto_ver"], 4)
            self.assertEqual(body["clean_start"], 0)

        yield play(self, scenario)


class RetainTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_retained_set_replace_delete_MQTT_3_3_1_5_to_7(self):
        def scenario(clients):
            pub = clients("pub", 4)
            pub.connect()
            pub.publish("r/a", b"first", 1, retain=True)
            pub.publish("r/a", b"second", 1, retain=True)
            pub.publish("r/b", b"other", 0, retain=True)
            sub = clients("sub", 4)
            sub.connect()
            sub.subscribe("r/+", 1)
            got = {}
            for _ in range(2):
                message = sub.expect()
                self.assertTrue(message.retain)  # [MQTT-3.3.1-8]
                got[message.topic] = (message.payload, message.qos)
            self.assertEqual(got, {"r/a": (b"second", 1), "r/b": (b"other", 0)})
            # Live delivery clears RETAIN for an existing subscription
            # [MQTT-3.3.1-9].
            pub.publish("r/a", b"live", 0, retain=True)
            live = sub.expect()
            self.assertEqual((live.payload, live.retain), (b"live", False))
            # Empty payload deletes [MQTT-3.3.1-10/11]; it is forwarded once.
            pub.publish("r/a", b"", 1, retain=True)
            self.assertEqual(sub.expect().payload, b"")
            late = clients("late", 5)
            late.connect()
            late.subscribe("r/#")
            message = late.expect()
            self.assertEqual((message.topic, message.payload), ("r/b", b"other"))
            pub.publish("r/sentinel", b"s")
            late.expect_sentinel("r/sentinel")

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_retained_not_sent_to_hash_for_dollar_topics(self):
        def scenario(clients):
            pub = clients("pub", 4)
            pub.connect()
            pub.publish("$internal/x", b"hidden", 1, retain=True)
            pub.publish("visible", b"v", 1, retain=True)
            sub = clients("sub", 4)
            sub.connect()
            sub.subscribe("#")
            self.assertEqual(sub.expect_sentinel("visible").payload, b"v")
            dollar = clients("dollar", 4)
            dollar.connect()
            dollar.subscribe("$internal/#")
            self.assertEqual(dollar.expect().payload, b"hidden")

        yield play(self, scenario)


class SharedSubscriptionTests(unittest.TestCase):
    def _round_robin(self, topic_filter, protocol):
        def scenario(clients):
            members = []
            for name in ("m1", "m2"):
                member = clients(name, protocol)
                member.connect()
                member.subscribe(topic_filter, 1)
                member.subscribe("sentinel/" + name)
                members.append((name, member))
            plain = clients("plain", 4)
            plain.connect()
            plain.subscribe("work", 1)
            pub = clients("pub", 4)
            pub.connect()
            for i in range(6):
                pub.publish("work", b"%d" % i, 1)
            for _ in range(6):
                plain.expect()  # every non-shared subscriber gets all
            seen = set()
            for name, member in members:
                # Each member gets exactly half, and nothing more.
                for _ in range(3):
                    seen.add(member.expect().payload)
                pub.publish("sentinel/" + name, b"s")
                member.expect_sentinel("sentinel/" + name)
            self.assertEqual(seen, {b"%d" % i for i in range(6)})
            # A member that left is skipped.
            watcher = clients("watcher", 4)
            watcher.connect()
            watcher.subscribe("$SYS/brokers/client_status")
            members[0][1].disconnect()
            watcher.wait_status("m1", "offline")
            for i in range(4):
                pub.publish("work", b"after%d" % i, 1)
            for i in range(4):
                self.assertEqual(members[1][1].expect().payload, b"after%d" % i)

        return play(self, scenario)

    @defer.inlineCallbacks
    def test_share_round_robin_v311(self):
        yield self._round_robin("$share/g/work", 4)

    @defer.inlineCallbacks
    def test_share_round_robin_v5(self):
        yield self._round_robin("$share/g/work", 5)

    @defer.inlineCallbacks
    def test_queue_prefix_round_robin(self):
        yield self._round_robin("$queue/work", 4)

    @defer.inlineCallbacks
    def test_share_no_retained_MQTT_4_8_2(self):
        def scenario(clients):
            pub = clients("pub", 4)
            pub.connect()
            pub.publish("sr", b"kept", 1, retain=True)
            member = clients("member", 5)
            member.connect()
            member.subscribe("$share/g/sr", 1)
            pub.publish("sr", b"live", 1)
            self.assertEqual(member.expect().payload, b"live")

        yield play(self, scenario)

