"""
Bridge persistence without a reactor: settings to JSON and back, the
store's ``bridges`` and ``bridge_messages`` (group commit, cancel-out,
restore into a second store), and the session's journal (drops, cancels,
acknowledgements reported; ``BridgesService`` applying it all at start).
"""

import json
import os
from dataclasses import replace

from twisted.internet import task
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.bridge.saved import (
    body_from_service,
    config_from_dict,
    config_to_dict,
)
from nanomq_twisted.bridge.service import build_bridges_service
from nanomq_twisted.bridge.session import BridgeSession, Outgoing
from nanomq_twisted.client.options import ClientOptions
from nanomq_twisted.config import loads
from nanomq_twisted.core.broker import Broker

from .test_store_sqlite import StoreTestMixin, rows

CONF = """
listeners.tcp { bind = "127.0.0.1:0" }
bridges.mqtt.up {
    server = "tls+mqtt-tcp://127.0.0.1:8883"
    proto_ver = 5
    clientid = "edge1"
    parallel_connections = 2
    max_send_queue_len = 10
    ssl { cacertfile = "/nonexistent/ca.pem", verify_peer = true }
    conn_properties { session_expiry_interval = 30, user_property { a = b } }
    will { topic = "w", payload = "gone", properties { user_property { k = v } } }
    forwards = [ { local_topic = "s/#", remote_topic = "", prefix = "e/", qos = 1 } ]
    subscription = [ { remote_topic = "cmd/#", local_topic = "", qos = 1 } ]
    sub_properties { identifier = 3, user_property { x = y } }
    hybrid_bridging = true
    hybrid_servers = [ "mqtt-tcp://127.0.0.1:1883" ]
}
"""


def config():
    return loads(CONF, path="<test>")


class SettingsTests(SynchronousTestCase):
    def test_round_trip_through_json(self):
        bridge = config().bridges[0]
        data = json.loads(json.dumps(config_to_dict(bridge)))
        self.assertEqual(config_from_dict(data), bridge)

    def test_unknown_keys_ignored_missing_defaulted(self):
        data = {"name": "b", "server": "mqtt-tcp://h:1", "scheme": "mqtt-tcp",
                "host": "h", "port": 1, "future_key": 1,
                "forwards": [{"local_topic": "a", "remote_topic": "b", "new": 2}]}
        got = config_from_dict(data)
        self.assertEqual((got.name, got.keepalive, got.forwards[0].remote_topic),
                         ("b", 60.0, "b"))


class Journal:
    def __init__(self):
        self.next = 1
        self.live = {}

    def added(self, item):
        seq, self.next = self.next, self.next + 1
        self.live[seq] = item.topic
        return seq

    def removed(self, item):
        del self.live[item.seq]


class SessionJournalTests(SynchronousTestCase):
    def test_every_exit_is_reported(self):
        session = BridgeSession(ClientOptions(window=2), max_send_queue_len=2)
        journal = session.journal = Journal()
        for topic in ("a", "b", "c"):
            session.enqueue(Outgoing(topic, b"", 1, False))
        self.assertEqual(sorted(journal.live.values()), ["b", "c"])  # "a" overflowed
        first, second = session.pop(), session.pop()
        session.requeue([second])
        self.assertEqual(sorted(journal.live.values()), ["b", "c"])  # moving is no change
        session.finished(first)  # acknowledged
        self.assertEqual(list(journal.live.values()), ["c"])
        session.finished(session.pop())  # cancelled
        self.assertEqual(journal.live, {})


class StoreTests(StoreTestMixin, SynchronousTestCase):
    def commit(self, store):
        d = store.flush()
        self.runner.run_all()
        self.successResultOf(d)

    def test_messages_and_settings_survive(self):
        directory = os.path.abspath(self.mktemp())
        store = self.make_store(path=directory)
        store.restore(Broker(config().mqtt), 0.0)
        one = store.bridge_message_queued("up", "t/1", b"1", 1, False, None, "s/1")
        two = store.bridge_message_queued("up", "t/2", b"2", 2, True,
                                          {"user_property": [("k", "v")]}, "s/2")
        gone = store.bridge_message_queued("up", "t/3", b"3", 1, False, None, "s/3")
        store.bridge_message_done("up", gone)  # cancelled out within the batch
        store.bridge_saved("up", {"version": 1, "enable": False, "config": {}})
        self.commit(store)
        self.assertEqual(rows(self.path, "SELECT seq FROM bridge_messages"), [(one,), (two,)])
        store.bridge_message_done("up", one)
        self.commit(store)
        store._db.close()

        store2 = self.make_store(path=directory)
        store2.restore(Broker(config().mqtt), 0.0)
        self.assertEqual(store2.saved_bridges(),
                         {"up": {"version": 1, "enable": False, "config": {}}})
        self.assertEqual(store2.saved_bridge_messages("up"),
                         [(two, "t/2", b"2", 2, True, {"user_property": [("k", "v")]}, "s/2")])
        # Numbers continue after the highest one kept.
        self.assertGreater(store2.bridge_message_queued("up", "t", b"", 1, False, None, "t"),
                           two)

    def test_service_applies_saved_settings_and_queue(self):
        cfg = config()
        store = self.make_store()
        broker = Broker(cfg.mqtt)
        store.restore(broker, 0.0)
        broker.set_store(store)
        original = cfg.bridges[0]
        changed = replace(original, forwards=original.forwards[:0], max_send_queue_len=5)
        store.bridge_saved("up", body_from_service(changed, False))
        store.bridge_saved("removed", body_from_service(replace(changed, name="removed"), True))
        for i in range(3):
            store.bridge_message_queued("up", f"e/s/{i}", b"%d" % i, 1, False, None, f"s/{i}")
        service = build_bridges_service(cfg, broker, task.Clock())
        service.startService()
        self.addCleanup(service.stopService)
        (up,) = service.all()
        self.assertEqual((up.config.forwards, up.config.max_send_queue_len, up.enabled),
                         ((), 5, False))
        links = up.bridge.links
        queued = sorted(item.topic for link in links for item in link.session.queue)
        self.assertEqual(queued, ["e/s/0", "e/s/1", "e/s/2"])
        # Acknowledging one is reported to the store.
        link = next(link for link in links if link.session.queue)
        item = link.session.pop()
        link.session.finished(item)
        left = sorted(m[1] for m in store.saved_bridge_messages("up"))
        self.assertEqual(left, sorted(set(queued) - {item.topic}))

    def broker_with_store(self, cfg):
        store = self.make_store()
        broker = Broker(cfg.mqtt)
        store.restore(broker, 0.0)
        broker.set_store(store)
        return broker, store

    def test_created_bridge_comes_back_and_deleted_one_does_not(self):
        """A bridge created over REST is started again at the next start
        though the file has no block for it; a file bridge deleted over
        REST is not, and what it owed is gone with it."""
        cfg = config()
        broker, store = self.broker_with_store(cfg)
        service = build_bridges_service(cfg, broker, task.Clock())
        new = replace(cfg.bridges[0], name="new", parallel_connections=1, enable=False)
        created = service.create(new)
        self.assertTrue(created.created)
        self.assertRaises(KeyError, service.create, new)
        self.assertTrue(store.saved_bridges()["new"]["created"])
        store.bridge_message_queued("up", "e/s/1", b"1", 1, False, None, "s/1")
        service.get("up").enabled = False  # its CA file does not exist
        service.startService()
        up = service.get("up")
        self.assertEqual(sum(len(link.session.queue) for link in up.bridge.links), 1)
        self.successResultOf(service.remove("up"))
        self.assertIsNone(service.get("up"))
        self.assertEqual(store.saved_bridges()["up"], {"version": 1, "deleted": True})
        self.assertEqual(store.saved_bridge_messages("up"), [])
        self.failureResultOf(service.remove("up"), KeyError)
        self.successResultOf(service.stopService())

        again = build_bridges_service(cfg, broker, task.Clock())
        again.startService()
        self.addCleanup(again.stopService)
        self.assertEqual([s.name for s in again.all()], ["new"])
        restored = again.get("new")
        self.assertEqual((restored.created, restored.enabled, restored.config.clientid),
                         (True, False, "edge1"))

    def test_recreated_after_delete(self):
        """The latest change wins: a bridge created again after a delete
        is started at the next start."""
        cfg = config()
        broker, _store = self.broker_with_store(cfg)
        service = build_bridges_service(cfg, broker, task.Clock())
        self.successResultOf(service.remove("up"))
        service.create(replace(cfg.bridges[0], clientid="edge2", enable=False))
        again = build_bridges_service(cfg, broker, task.Clock())
        again.startService()
        self.addCleanup(again.stopService)
        self.assertEqual(again.get("up").config.clientid, "edge2")
