"""
The outbound QoS 1/2 engine (core/outbound.py), stepping ``now``: the
resend selection both its users rely on.
"""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.core.outbound import Flow, OutboundFlows


class DueTests(SynchronousTestCase):
    def setUp(self):
        self.flows = OutboundFlows()
        for now in (1.0, 2.0, 3.0):
            self.flows.start(Flow(f"m{now:g}", 1), now)

    def test_all_after_a_reconnect_MQTT_4_4_0_1(self):
        due = self.flows.due(10.0)
        self.assertEqual([flow.packet_id for flow in due], [1, 2, 3])
        self.assertEqual({flow.sent_at for flow in due}, {10.0})

    def test_older_than(self):
        due = self.flows.due(10.0, older_than=2.0)
        self.assertEqual([flow.message for flow in due], ["m1", "m2"])
        self.assertEqual(self.flows.get(3).sent_at, 3.0)

    def test_limit_takes_the_oldest_and_leaves_the_rest(self):
        (flow,) = self.flows.due(10.0, older_than=5.0, limit=1)
        self.assertEqual((flow.packet_id, flow.sent_at), (1, 10.0))
        self.assertEqual([f.sent_at for f in self.flows.values()], [10.0, 2.0, 3.0])
        # The next call moves on to the next oldest.
        (flow,) = self.flows.due(11.0, older_than=6.0, limit=1)
        self.assertEqual(flow.packet_id, 2)
