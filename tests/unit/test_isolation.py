# -*- test-case-name: tests.unit.test_isolation -*-
"""
Extensions are isolated and cost nothing for messages they do not match:
an extension that raises (a routing-trie consumer or an event observer) is
counted and reported, and the publisher, the other subscribers and the
other extensions never notice (core/isolation.py, core/extensions.py,
core/events.py).

Expected bytes are hand-built (``tests.packets``).
"""

from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from nanomq_twisted.core.events import EventBus
from nanomq_twisted.core.extensions import ExtensionRoutes
from nanomq_twisted.core.interfaces import IMessageConsumer
from nanomq_twisted.core.isolation import Guard
from nanomq_twisted.core.message import Message
from nanomq_twisted.core.metrics import Stats
from nanomq_twisted.mqtt.packets import Publish, Subscribe, SubscriptionOptions

from .. import packets as pk
from .test_broker import make_broker
from .test_limits import Peer


@implementer(IMessageConsumer)
class Consumer:
    def __init__(self, name, fail=False):
        self.consumer_name = name
        self.fail = fail
        self.seen = []

    def deliver(self, message, now):
        self.seen.append(message.topic)
        if self.fail:
            raise RuntimeError("extension bug")


class ExtensionRoutesTests(SynchronousTestCase):
    def setUp(self):
        self.stats = Stats()
        self.reported = []
        self.routes = ExtensionRoutes(Guard(self.stats, lambda n, e: self.reported.append(n)))

    def test_only_matching_consumers_are_called(self):
        a, b = Consumer("a"), Consumer("b")
        self.routes.add(a, "sensors/#")
        self.routes.add(b, "other/+")
        self.routes.deliver(Message("sensors/t1", b""), 0.0)
        self.routes.deliver(Message("nobody/t", b""), 0.0)
        self.assertEqual((a.seen, b.seen), (["sensors/t1"], []))

    def test_one_delivery_however_many_filters_match(self):
        a = Consumer("a")
        self.routes.add(a, "s/#")
        self.routes.add(a, "s/+")
        self.routes.add(a, "s/x")
        self.routes.deliver(Message("s/x", b""), 0.0)
        self.assertEqual(a.seen, ["s/x"])

    def test_dollar_topics_only_for_consumers_that_ask_MQTT_4_7_2_1(self):
        plain, rules = Consumer("bridge"), Consumer("rules")
        self.routes.add(plain, "#")
        self.routes.add(rules, "#", sees_dollar=True)
        self.routes.deliver(Message("$SYS/brokers/x", b""), 0.0)
        self.assertEqual((plain.seen, rules.seen), ([], ["$SYS/brokers/x"]))

    def test_removing_a_consumer_removes_its_routes(self):
        a = Consumer("a")
        self.routes.add(a, "t")
        self.routes.add(a, "u", sees_dollar=True)
        self.assertEqual(sorted(self.routes.filters_of(a)), [("t", False), ("u", True)])
        self.assertEqual(self.routes.remove_consumer(a), 2)
        self.assertFalse(self.routes)
        self.routes.deliver(Message("t", b""), 0.0)
        self.assertEqual(a.seen, [])

    def test_a_raising_consumer_is_counted_and_the_others_still_run(self):
        bad, good = Consumer("bad", fail=True), Consumer("good")
        self.routes.add(bad, "t")
        self.routes.add(good, "t")
        self.routes.deliver(Message("t", b""), 0.0)
        self.assertEqual(good.seen, ["t"])
        self.assertEqual(self.stats.extension_errors, 1)
        self.assertEqual(self.reported, ["bad"])

    def test_consumer_declares_the_interface(self):
        self.assertTrue(verifyObject(IMessageConsumer, Consumer("x")))


class EventBusTests(SynchronousTestCase):
    def test_observers_per_event_and_isolated(self):
        stats = Stats()
        bus = EventBus(Guard(stats))
        seen = []

        def bad(event, **fields):
            raise ValueError("observer bug")

        bus.listen("client_connack", bad)
        bus.listen("client_connack", lambda event, **f: seen.append((event, f["code"])))
        self.assertEqual(bus.message_delivered, ())
        bus.emit("client_connack", conn=None, code=0, now=0.0)
        self.assertEqual(seen, [("client_connack", 0)])
        self.assertEqual(stats.extension_errors, 1)
        bus.unlisten("client_connack", bad)
        self.assertEqual(len(bus.client_connack), 1)

    def test_unknown_event_is_refused(self):
        bus = EventBus(Guard(Stats()))
        self.assertRaises(ValueError, bus.listen, "client_conack", print)


class BrokerIsolationTests(SynchronousTestCase):
    """Through the real core: a consumer and an observer that raise while a
    QoS 1 PUBLISH is routed."""

    def test_raising_extension_disconnects_nobody(self):
        broker = make_broker()
        reported = []
        broker.guard.report = lambda name, exc: reported.append((name, str(exc)))
        bad = Consumer("broken bridge", fail=True)
        broker.extensions.add(bad, "#")

        def observer(event, **fields):
            raise RuntimeError("observer bug")

        broker.events.listen("message_delivered", observer)
        subs = [Peer(broker, f"sub{i}", level=5) for i in range(3)]
        for index, sub in enumerate(subs):
            sub.conn.receive(Subscribe(1, (SubscriptionOptions("t", 0),), {}), 0.0)
            sub.take()
            self.assertFalse(sub.sink.closed, index)
        pub = Peer(broker, "pub", level=5)
        pub.take()
        pub.conn.receive(Publish("t", b"hi", 1, False, False, 7, {}), 0.0)
        # The publisher gets its PUBACK, every subscriber its copy.
        self.assertEqual(pub.take(), pk.puback(7))  # reason 0: the short form [MQTT-3.4.2.1]
        for sub in subs:
            self.assertEqual(sub.take(), pk.publish("t", b"hi", level=5))
        self.assertFalse(pub.sink.closed)
        self.assertEqual(bad.seen, ["t"])
        self.assertEqual(broker.stats.extension_errors, 1 + 3)
        self.assertEqual(reported[0], ("broken bridge", "extension bug"))
