# -*- test-case-name: tests.protocol.test_http_quotas -*-
"""
The state quotas where the REST API can hit them (http/mqtt_ops.py):
``POST /api/v4/mqtt/subscribe`` over ``mqtt.max_subscriptions`` and
``/mqtt/publish`` of a retained message into a full retained store are our
code 119 and do nothing; a topic over ``max_topic_length``/``_levels`` is
108.  And the counters in ``/api/v4/prometheus``.
"""

from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from .http_support import Harness

QUOTAS = ("mqtt { max_subscriptions = 2, max_retained_messages = 1,"
          " max_topic_levels = 3 }\n")


class RestQuotaTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(QUOTAS)
        self.peer = self.h.peer("c1", level=5)
        self.peer.connect()

    def post(self, path, body):
        status, answer = self.h.json("POST", "/api/v4" + path, body)
        self.assertEqual(status, 200)
        return answer

    def test_subscribe_over_max_subscriptions_is_119_and_adds_nothing(self):
        self.assertEqual(self.post("/mqtt/subscribe", {"clientid": "c1", "topic": "a"}),
                         {"code": 0})
        self.assertEqual(self.post("/mqtt/subscribe", {"clientid": "c1", "topics": "b,c"}),
                         {"code": 119})
        self.assertEqual(sorted(self.h.broker.sessions["c1"].subscriptions), ["a"])
        # Re-subscribing what it holds plus one new one fits.
        self.assertEqual(self.post("/mqtt/subscribe", {"clientid": "c1", "topics": "a,b"}),
                         {"code": 0})
        self.assertEqual(self.h.broker.stats.refused_subscriptions, 2)

    def test_topic_over_levels_is_108(self):
        self.assertEqual(self.post("/mqtt/subscribe", {"clientid": "c1", "topic": "a/b/c/d"}),
                         {"code": 108})
        self.assertEqual(self.post("/mqtt/publish", {"topic": "a/b/c/d", "payload": "x"}),
                         {"code": 108})
        big = "x" * 1000000  # a 1 MB topic, within http_server.max_body
        self.assertEqual(self.post("/mqtt/publish", {"topic": big, "payload": "x"}),
                         {"code": 108})

    def test_retained_store_full_is_119_and_publishes_nothing(self):
        self.peer.subscribe("r/#", 1)
        self.assertEqual(self.post("/mqtt/publish",
                                   {"topic": "r/1", "payload": "x", "retain": True}),
                         {"code": 0})
        self.peer.publishes()
        self.assertEqual(self.post("/mqtt/publish",
                                   {"topic": "r/2", "payload": "x", "retain": True}),
                         {"code": 119})
        self.assertEqual(self.peer.publishes(), [])
        # Replacing the one retained topic is fine; so is not retaining.
        self.assertEqual(self.post("/mqtt/publish",
                                   {"topic": "r/1", "payload": "y", "retain": True}),
                         {"code": 0})
        self.assertEqual(self.post("/mqtt/publish", {"topic": "r/2", "payload": "z"}),
                         {"code": 0})
        self.assertEqual(len(self.peer.publishes()), 2)

    def test_prometheus_counts_what_the_quotas_refused(self):
        self.post("/mqtt/publish", {"topic": "r/1", "payload": "abc", "retain": True})
        self.post("/mqtt/publish", {"topic": "r/2", "payload": "x", "retain": True})
        self.post("/mqtt/subscribe", {"clientid": "c1", "topics": "a,b,c"})
        self.post("/mqtt/publish", {"topic": "a/b/c/d", "payload": "x"})
        _status, _headers, text = self.h.request("GET", "/api/v4/prometheus")
        values = {f.name: f.samples[0].value
                  for f in text_string_to_metric_families(text.decode("utf-8"))}
        self.assertEqual(values["nanomq_retained_count"], 1)
        self.assertEqual(values["nanomq_retained_bytes"], len("r/1") + 3)
        self.assertEqual(values["nanomq_retained_refused"], 1)
        self.assertEqual(values["nanomq_subscriptions_refused"], 3)
        self.assertEqual(values["nanomq_topics_refused"], 1)
        self.assertEqual(values["nanomq_messages_dropped_queue_bytes"], 0)
