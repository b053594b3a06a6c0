"""
What the SQLite store keeps besides sessions and messages, and its limit:

- inbound QoS 2 packet ids awaiting PUBREL survive a restart, so a
  PUBLISH resent after it is not routed twice [MQTT-4.3.3];
- REST-made rules (a view of the ``rules`` table);
- ``sqlite.disk_cache_size``: the oldest queued messages of offline
  persistent sessions are dropped and counted past it.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.mqtt.packets import Pubcomp, Publish, Pubrec, Pubrel

from .test_broker import Peer, make_broker, publishes
from .test_store_sqlite import StoreTestMixin, rows


class StoreLimitTests(StoreTestMixin, SynchronousTestCase):
    def start(self, directory, sync_ack=False, max_rows=0):
        store = self.make_store(path=directory, sync_ack=sync_ack)
        store.max_rows = max_rows
        broker = make_broker()
        broker.set_store(store)
        store.restore(broker, 100.0)
        return broker, store

    def commit(self, store):
        d = store.flush()
        self.runner.run_all()
        self.successResultOf(d)

    def restart(self, directory, store, **kwargs):
        self.commit(store)
        store._db.close()
        return self.start(directory, **kwargs)

    # -- awaiting_rel ------------------------------------------------------------

    def test_qos2_resent_after_restart_is_not_routed_twice(self):
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory)
        sub = Peer(broker, "sub")
        sub.connect()
        sub.subscribe("t", 2)
        pub = Peer(broker, "pub", clean=False)
        pub.connect()
        self.assertEqual(pub.publish("t", b"once", 2), [Pubrec(1)])
        self.assertEqual(len(publishes(sub.received())), 1)
        self.assertEqual(rows(self.path, "SELECT client_id, packet_id FROM awaiting_rel"), [])
        broker2, store2 = self.restart(directory, store)
        self.assertEqual(broker2.sessions["pub"].awaiting_rel, {1: 0.0})
        sub2 = Peer(broker2, "sub2")
        sub2.connect(now=101.0)
        sub2.subscribe("t", 2, now=101.0)
        pub2 = Peer(broker2, "pub", clean=False)
        self.assertTrue(pub2.connect(now=101.0)[0].session_present)
        # The PUBREC was lost with the connection: the client resends.
        pub2.send(Publish("t", b"once", 2, False, True, 1, {}), now=101.0)
        self.assertEqual(pub2.received(), [Pubrec(1)])
        self.assertEqual(publishes(sub2.received()), [])
        pub2.send(Pubrel(1), now=101.0)
        self.assertEqual(pub2.received(), [Pubcomp(1)])
        self.commit(store2)
        self.assertEqual(rows(self.path, "SELECT * FROM awaiting_rel"), [])
        # The id is free again: a new message with it is routed.
        pub2.send(Publish("t", b"next", 2, False, False, 1, {}), now=102.0)
        self.assertEqual([p.payload for p in publishes(sub2.received())], [b"next"])

    def test_clean_session_does_not_persist_awaiting_rel(self):
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory)
        pub = Peer(broker, "pub")
        pub.connect()
        pub.publish("t", b"x", 2)
        self.commit(store)
        self.assertEqual(rows(self.path, "SELECT * FROM awaiting_rel"), [])

    def test_ended_session_forgets_awaiting_rel(self):
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory)
        pub = Peer(broker, "pub", clean=False)
        pub.connect()
        pub.publish("t", b"x", 2)
        self.commit(store)
        self.assertEqual(rows(self.path, "SELECT client_id, packet_id FROM awaiting_rel"),
                         [("pub", 1)])
        pub.lost()
        Peer(broker, "pub", clean=True).connect()
        self.commit(store)
        self.assertEqual(rows(self.path, "SELECT * FROM awaiting_rel"), [])

    def test_sync_ack_holds_pubrec_until_awaiting_rel_is_durable(self):
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory, sync_ack=True)
        pub = Peer(broker, "pub", clean=False)
        pub.connect()
        self.commit(store)
        self.assertEqual(pub.publish("nobody", b"x", 2), [])
        self.clock.advance(0.01)
        self.runner.run_all()
        self.assertEqual(pub.received(), [Pubrec(1)])

    def test_sync_ack_holds_pubrel_until_pubrec_is_durable(self):
        # [MQTT-4.3.3] exactly once across a kill -9: the client delivers on
        # PUBREL, so the PUBREL waits until "released" is on disk; else a
        # restart would resend the PUBLISH and the client take it as new.
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory, sync_ack=True)
        sub = Peer(broker, "sub", clean=False)
        sub.connect()
        sub.subscribe("t", 2)
        pub = Peer(broker, "pub")
        pub.connect()
        pub.publish("t", b"x", 2)
        self.commit(store)
        (publish,) = publishes(sub.received())
        sub.send(Pubrec(publish.packet_id))
        sub.send(Pubrec(2))  # unknown id: answered at once [MQTT-4.3.3]
        self.assertEqual(sub.received(), [Pubrel(2)])
        self.commit(store)
        self.assertEqual(sub.received(), [Pubrel(publish.packet_id)])
        self.assertEqual(
            rows(store.path, "SELECT released FROM deliveries WHERE client_id = 'sub'"), [(1,)])

    def test_pubrel_at_once_without_sync_ack(self):
        directory = os.path.abspath(self.mktemp())
        broker, _store = self.start(directory)
        sub = Peer(broker, "sub", clean=False)
        sub.connect()
        sub.subscribe("t", 2)
        pub = Peer(broker, "pub")
        pub.connect()
        pub.publish("t", b"x", 2)
        (publish,) = publishes(sub.received())
        sub.send(Pubrec(publish.packet_id))
        self.assertEqual(sub.received(), [Pubrel(publish.packet_id)])

    # -- rules view ------------------------------------------------------------------

    def test_rules_view_survives_restart(self):
        directory = os.path.abspath(self.mktemp())
        _broker, store = self.start(directory)
        store.rule_saved({"id": 3, "name": "repub", "rawsql": "SELECT * FROM \"t\"",
                          "enabled": True, "params": {}, "description": None})
        store.rule_saved({"id": 4, "name": "sqlite", "rawsql": "SELECT * FROM \"u\"",
                          "enabled": False, "params": {"table": "x"}, "description": "d"})
        store.rule_deleted(1)
        store.rule_deleted(4)
        _broker2, store2 = self.restart(directory, store)
        saved = store2.saved_rules()
        self.assertEqual(sorted(saved), [1, 3, 4])
        self.assertIsNone(saved[1])
        self.assertIsNone(saved[4])
        self.assertEqual(saved[3]["rawsql"], "SELECT * FROM \"t\"")

    # -- disk_cache_size ---------------------------------------------------------------

    def test_disk_cache_size_drops_oldest_queued_of_offline_sessions(self):
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory, max_rows=3)
        for name in ("a", "b"):
            peer = Peer(broker, name, clean=False)
            peer.connect()
            peer.subscribe(name + "/t", 1)
            peer.lost()
        pub = Peer(broker, "pub")
        pub.connect()
        pub.publish("a/t", b"a1", 1, now=1.0)
        pub.publish("b/t", b"b1", 1, now=2.0)
        pub.publish("a/t", b"a2", 1, now=3.0)
        self.assertEqual(store.rows, 3)
        self.assertEqual(broker.stats.dropped_disk_cache, 0)
        pub.publish("b/t", b"b2", 1, now=4.0)  # over: the oldest (a1) goes
        pub.publish("b/t", b"b3", 1, now=5.0)  # over: then b1
        self.assertEqual(store.rows, 3)
        self.assertEqual(broker.stats.dropped_disk_cache, 2)
        self.assertEqual(broker.stats.dropped, 2)
        broker2, _ = self.restart(directory, store, max_rows=3)
        queued = {
            cid: [m.payload for m, *_ in broker2.sessions[cid].queue] for cid in ("a", "b")
        }
        self.assertEqual(queued, {"a": [b"a2"], "b": [b"b2", b"b3"]})
        self.assertEqual(len(rows(self.path, "SELECT * FROM deliveries")), 3)

    def test_disk_cache_size_never_drops_online_or_inflight(self):
        directory = os.path.abspath(self.mktemp())
        broker, store = self.start(directory, max_rows=1)
        sub = Peer(broker, "on", clean=False)
        sub.connect()
        sub.subscribe("t", 1)
        pub = Peer(broker, "pub")
        pub.connect()
        pub.publish("t", b"1", 1)
        pub.publish("t", b"2", 1)
        self.assertEqual(len(publishes(sub.received())), 2)
        self.assertEqual(broker.stats.dropped_disk_cache, 0)
        self.assertEqual(store.rows, 2)
