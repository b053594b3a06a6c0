"""
``core/outbound.py``: packet identifiers and the QoS 1/2 acknowledgement
flows towards one peer, shared by client sessions and bridges.  Pure:
``now`` is a number the tests step by ``TICK``.
"""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.core.outbound import MAX_PACKET_ID, Flow, OutboundFlows

TICK = 0.25


def started(flows, qos, now=0.0, busy=None):
    flow = Flow("message", qos)
    return flows.start(flow, now, busy), flow


class PacketIdTests(SynchronousTestCase):
    def test_round_robin(self):
        """A finished id is not reused next [MQTT-2.2.1-3]."""
        flows = OutboundFlows()
        self.assertEqual(started(flows, 1)[0], 1)
        flows.puback(1)
        self.assertEqual(started(flows, 1)[0], 2)

    def test_busy_ids_are_skipped(self):
        flows = OutboundFlows()
        self.assertEqual(started(flows, 1, busy={1, 2})[0], 3)

    def test_wraps_and_runs_out(self):
        flows = OutboundFlows()
        for pid in range(1, MAX_PACKET_ID + 1):
            self.assertEqual(started(flows, 1)[0], pid)
        flow = Flow("m", 1)
        self.assertIsNone(flows.start(flow, 0.0))
        self.assertIsNone(flow.packet_id)
        self.assertIsNone(flows.allocate())
        flows.puback(7)
        self.assertEqual(started(flows, 1)[0], 7)

    def test_restore_keeps_the_id_and_allocates_after_it(self):
        flows = OutboundFlows()
        flow = Flow("m", 2)
        flow.packet_id = 40
        flows.restore(flow)
        self.assertIs(flows.get(40), flow)
        self.assertEqual(started(flows, 1)[0], 41)

    def test_restore_of_the_last_id_wraps(self):
        flows = OutboundFlows()
        flow = Flow("m", 1)
        flow.packet_id = MAX_PACKET_ID
        flows.restore(flow)
        self.assertEqual(started(flows, 1)[0], 1)


class FlowTests(SynchronousTestCase):
    def test_qos1(self):
        flows = OutboundFlows()
        pid, flow = started(flows, 1)
        self.assertIsNone(flows.pubcomp(pid))
        self.assertEqual(flows.pubrec(pid, 0, TICK), (None, False))
        self.assertIs(flows.puback(pid), flow)
        self.assertNotIn(pid, flows)
        self.assertIsNone(flows.puback(pid))

    def test_qos2(self):
        """PUBREC releases (PUBREL to send), a repeated PUBREC asks for it
        again, PUBCOMP ends the flow [MQTT-4.3.3]."""
        flows = OutboundFlows()
        pid, flow = started(flows, 2)
        self.assertIsNone(flows.puback(pid))
        self.assertIsNone(flows.pubcomp(pid))
        self.assertEqual(flows.pubrec(pid, 0, TICK), (flow, True))
        self.assertTrue(flow.released)
        self.assertEqual(flow.sent_at, TICK)
        self.assertEqual(flows.pubrec(pid, 0, 2 * TICK), (flow, True))
        self.assertIs(flows.pubcomp(pid), flow)
        self.assertEqual(len(flows), 0)

    def test_failed_pubrec_ends_the_flow(self):
        flows = OutboundFlows()
        pid, flow = started(flows, 2)
        self.assertEqual(flows.pubrec(pid, 0x80, TICK), (flow, False))
        self.assertEqual(len(flows), 0)

    def test_no_match_pubrec_is_a_success(self):
        """0x10 No matching subscribers is below 0x80: the flow goes on."""
        flows = OutboundFlows()
        pid, flow = started(flows, 2)
        self.assertEqual(flows.pubrec(pid, 0x10, TICK), (flow, True))

    def test_discard(self):
        flows = OutboundFlows()
        pid, flow = started(flows, 1)
        self.assertIs(flows.discard(pid), flow)
        self.assertIsNone(flows.discard(pid))


class ResendTests(SynchronousTestCase):
    def setUp(self):
        self.flows = OutboundFlows()
        self.a = started(self.flows, 1, now=0.0)[1]
        self.b = started(self.flows, 2, now=1.0)[1]
        self.c = started(self.flows, 1, now=2.0)[1]

    def test_all_in_send_order(self):
        self.assertEqual(self.flows.due(5.0), [self.a, self.b, self.c])
        self.assertEqual([f.sent_at for f in (self.a, self.b, self.c)], [5.0] * 3)
        self.assertEqual([f.first_sent for f in (self.a, self.b, self.c)], [0.0, 1.0, 2.0])

    def test_older_than(self):
        self.assertEqual(self.flows.due(5.0, older_than=1.0), [self.a, self.b])
        self.assertEqual(self.c.sent_at, 2.0)
        self.assertEqual(self.flows.due(6.0, older_than=2.0), [self.c])

    def test_take_all(self):
        self.assertEqual(self.flows.take_all(), [self.a, self.b, self.c])
        self.assertEqual(len(self.flows), 0)


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
