"""
The core's support for an asynchronous ACL (``acl.prepare``): a connection
whose PUBLISH/SUBSCRIBE awaits a decision holds its later packets, in
order, and replays them when the ACL calls back; other connections are not
held.  (transport/http_auth.py ``HttpAcl`` is the real user.)
"""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.mqtt.packets import (
    Disconnect,
    Pingreq,
    Pingresp,
    Puback,
    Publish,
    Suback,
    Subscribe,
    SubscriptionOptions,
)

from .test_broker import Peer, make_broker, publishes


class AsyncAcl:
    """Allows topics starting with ``ok``; answers only when told to."""

    asynchronous = True

    def __init__(self):
        self.waiting = []
        self.ready = {}

    def prepare(self, client, action, topics, done):
        key = (id(client), action, tuple(topics))
        if self.ready.pop(key, False):
            return True
        self.waiting.append((key, done))
        return False

    def answer(self):
        key, done = self.waiting.pop(0)
        self.ready[key] = True
        done()

    def check(self, client, action, topic):
        return topic.startswith("ok")


class AsyncAclTests(SynchronousTestCase):
    def setUp(self):
        self.broker = make_broker()
        self.acl = self.broker.acl = AsyncAcl()

    def test_publish_held_then_replayed_in_order(self):
        sub = Peer(self.broker, "sub", level=5)
        sub.connect()
        sub.subscribe("ok/#", 1)
        self.acl.answer()
        self.assertIsInstance(sub.received()[0], Suback)
        pub = Peer(self.broker, "pub", level=5)
        pub.connect()
        pub.send(Publish("ok/1", b"a", 1, packet_id=1))
        pub.send(Publish("no/2", b"b", 1, packet_id=2))
        pub.send(Pingreq())
        self.assertEqual(pub.received(), [])
        self.assertEqual(len(self.acl.waiting), 1)
        # Another connection is not held.
        other = Peer(self.broker, "other", level=5)
        other.connect()
        other.send(Pingreq())
        self.assertEqual(other.received(), [Pingresp()])
        self.acl.answer()  # ok/1 decided; no/2 now waits
        self.assertEqual(pub.received(), [Puback(1)])
        self.acl.answer()
        self.assertEqual(pub.received(), [Puback(2, 0x87), Pingresp()])
        self.assertEqual([p.topic for p in publishes(sub.received())], ["ok/1"])

    def test_subscribe_held(self):
        peer = Peer(self.broker, "s", level=5)
        peer.connect()
        peer.send(Subscribe(1, (SubscriptionOptions("ok/a", 1), SubscriptionOptions("no", 1))))
        self.assertEqual(peer.received(), [])
        self.acl.answer()
        self.assertEqual(peer.received(), [Suback(1, (1, 0x87))])

    def test_answer_after_close_is_ignored(self):
        peer = Peer(self.broker, "p", level=5)
        peer.connect()
        peer.send(Publish("ok", b"x", 1, packet_id=1))
        peer.lost()
        self.acl.answer()
        self.assertEqual(peer.received(), [])

    def test_disconnect_on_deny_while_replaying(self):
        self.broker.deny_action = "disconnect"
        peer = Peer(self.broker, "p", level=5)
        peer.connect()
        peer.send(Publish("no", b"x", 1, packet_id=1))
        peer.send(Publish("ok", b"y", 1, packet_id=2))
        self.acl.answer()
        self.assertEqual(
            peer.received(), [Disconnect(0x87, {"reason_string": "publish to 'no' denied"})]
        )
        self.assertTrue(peer.sink.closed)
