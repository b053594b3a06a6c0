# -*- test-case-name: tests.unit.test_admission -*-
"""
Rates per connection and connections per address in the pure core
(core/admission.py and its use in core/connection.py): no reactor, a
stepped ``now``, delayed work through ``broker.run_timers(now)``.

Expected CONNACK bytes come from ``tests.packets`` (laid out by hand from
the specification), never from the project's encoder.
"""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.core.admission import Admission, InboundMeter, TokenBucket
from nanomq_twisted.core.connection import ClientConnection
from nanomq_twisted.core.info import TransportInfo
from nanomq_twisted.mqtt.packets import Connect, Publish

from .. import packets as P
from ..sinks import FakeSink
from .test_broker import make_broker


class TokenBucketTests(SynchronousTestCase):
    def test_burst_then_rate(self):
        # "100,10s": 100 at once, then 10 per second.
        bucket = TokenBucket(100, 10.0, now=0.0)
        self.assertEqual(bucket.take(100, 0.0), 0.0)
        self.assertEqual(bucket.take(10, 0.0), 1.0)  # 10 owed at 10/s
        self.assertEqual(bucket.wait(0.5), 0.5)
        self.assertEqual(bucket.wait(1.0), 0.0)

    def test_refill_is_capped_at_the_burst(self):
        bucket = TokenBucket(5, 1.0, now=0.0)
        bucket.take(5, 0.0)
        self.assertEqual(bucket.wait(1000.0), 0.0)
        # A long silence saves at most one burst.
        self.assertEqual(bucket.take(10, 1000.0), 1.0)

    def test_debt_from_one_large_read(self):
        # A read is charged whole, even far past the budget: the pause
        # pays it back, so the average stays the configured rate.
        bucket = TokenBucket(1024, 1.0, now=0.0)
        self.assertEqual(bucket.take(65536 + 1024, 0.0), 64.0)


class InboundMeterTests(SynchronousTestCase):
    def test_the_longer_wait_of_both_buckets(self):
        meter = InboundMeter((10, 1.0), (1000, 1.0), now=0.0)
        meter.publishes = 30
        self.assertEqual(meter.charge(1500, 0.0), 2.0)  # 20 messages owed at 10/s
        self.assertEqual(meter.publishes, 0)
        self.assertEqual(meter.wait(1.0), 1.0)
        self.assertEqual(meter.wait(2.0), 0.0)

    def test_no_rate_means_no_meter(self):
        self.assertIsNone(Admission().meter(0.0))
        self.assertIsNotNone(Admission(bytes_in=(100, 1.0)).meter(0.0))


class AdmissionTests(SynchronousTestCase):
    def test_counts_per_address_and_forgets_empty_ones(self):
        admission = Admission(per_address=2)
        self.assertTrue(admission.admit("10.0.0.1"))
        self.assertTrue(admission.admit("10.0.0.1"))
        self.assertFalse(admission.admit("10.0.0.1"))
        self.assertTrue(admission.admit("10.0.0.2"))
        admission.release("10.0.0.1")
        self.assertTrue(admission.admit("10.0.0.1"))
        for host in ("10.0.0.1", "10.0.0.1", "10.0.0.2"):
            admission.release(host)
        self.assertEqual(admission.counts, {})

    def test_unlimited_and_addressless(self):
        admission = Admission()
        for _ in range(1000):
            self.assertTrue(admission.admit("10.0.0.1"))
        self.assertEqual(admission.counts, {"10.0.0.1": 1000})
        limited = Admission(per_address=1)
        self.assertTrue(limited.admit(None))
        self.assertTrue(limited.admit(None))
        self.assertEqual(limited.counts, {})


def accepted(broker, host="127.0.0.1", now=0.0, connect_timeout=10.0):
    sink = FakeSink()
    conn = ClientConnection(broker, sink, TransportInfo((host, 50000)))
    conn.accepted(now, connect_timeout)
    return conn, sink


def connect(conn, client_id, level=4, keepalive=60, now=0.0):
    conn.receive(Connect(client_id=client_id, protocol_level=level, keepalive=keepalive), now)
    conn.broker.flush()


class PerAddressTests(SynchronousTestCase):
    def setUp(self):
        self.broker = make_broker()
        self.broker.admission.configure(per_address=2)

    def test_refused_at_connect_with_quota_exceeded(self):
        one, _ = accepted(self.broker)
        two, _ = accepted(self.broker)
        connect(one, "one")
        connect(two, "two")
        # A third from the same address: 5.0 CONNACK 0x97, 3.1.1 CONNACK 3.
        three, sink5 = accepted(self.broker)
        connect(three, "three", level=5)
        self.assertEqual(bytes(sink5.data), P.connack(code=0x97, level=5))
        self.assertTrue(sink5.closed)
        four, sink4 = accepted(self.broker)
        connect(four, "four", level=4)
        self.assertEqual(bytes(sink4.data), P.connack(code=0x03))
        self.assertTrue(sink4.closed)
        self.assertNotIn("three", self.broker.sessions)
        self.assertEqual(self.broker.stats.refused_per_address, 2)
        # Another address is not affected.
        other, sink = accepted(self.broker, "127.0.0.2")
        connect(other, "other")
        self.assertEqual(bytes(sink.data), P.connack())

    def test_a_closed_connection_frees_its_place(self):
        one, _ = accepted(self.broker)
        accepted(self.broker)
        refused, _ = accepted(self.broker)
        refused.connection_lost(1.0)  # never counted: frees nothing
        self.assertEqual(self.broker.admission.counts, {"127.0.0.1": 2})
        one.connection_lost(1.0)
        self.assertEqual(self.broker.admission.counts, {"127.0.0.1": 1})
        again, sink = accepted(self.broker, now=1.0)
        connect(again, "again", now=1.0)
        self.assertEqual(bytes(sink.data), P.connack())

    def test_connections_not_yet_connected_count(self):
        # Half-open connections (no CONNECT yet) hold their place: a flood
        # of them from one address cannot crowd out the limit's worth.
        for _ in range(2):
            accepted(self.broker)
        late, sink = accepted(self.broker)
        connect(late, "late", level=5)
        self.assertEqual(bytes(sink.data), P.connack(code=0x97, level=5))


class ConnectTimeoutTests(SynchronousTestCase):
    def test_dribbled_connect_is_closed_at_the_deadline(self):
        """The CONNECT deadline counts from the accept, not from the last
        byte: bytes arriving (``last_rx`` moving) do not push it back."""
        broker = make_broker()
        conn, sink = accepted(broker, connect_timeout=2.0)
        for step in range(1, 8):
            conn.last_rx = step * 0.25  # the adapter stamps every byte
            broker.run_timers(step * 0.25)
        self.assertFalse(sink.closed)
        broker.run_timers(2.0)
        self.assertEqual(sink.timed_out_waiting_for, "CONNECT")
        self.assertEqual(broker.stats.connect_timeouts, 1)


class RateLimitTests(SynchronousTestCase):
    def setUp(self):
        self.broker = make_broker()
        self.broker.admission.configure(messages_in=(10, 1.0), bytes_in=(10000, 1.0))
        self.conn, self.sink = accepted(self.broker)
        connect(self.conn, "fast", keepalive=2)

    def publish_burst(self, count, now):
        for _ in range(count):
            self.conn.receive(Publish("t", b"x", 0), now)
        self.conn.input_received(count * 5, now)

    def test_reading_stops_over_the_budget_and_resumes(self):
        self.publish_burst(10, 0.0)
        self.assertTrue(self.sink.reading)  # the burst is allowed
        self.publish_burst(5, 0.1)
        # 4 over (one refilled in 0.1 s) at 10/s: stop reading for 0.4 s.
        self.assertFalse(self.sink.reading)
        self.assertEqual(self.broker.stats.rate_limited, 1)
        self.assertTrue(self.conn.throttled)
        self.broker.run_timers(0.4)
        self.assertFalse(self.sink.reading)
        self.broker.run_timers(0.5)
        self.assertTrue(self.sink.reading)
        self.assertFalse(self.sink.closed)
        # Every message was routed: nothing is dropped for the rate.
        self.assertEqual(self.broker.stats.received, 15)

    def test_bytes(self):
        self.conn.input_received(30000, 0.0)
        self.assertFalse(self.sink.reading)
        self.broker.run_timers(1.999)
        self.assertFalse(self.sink.reading)
        self.broker.run_timers(2.0)
        self.assertTrue(self.sink.reading)

    def test_reads_while_paused_extend_the_pause(self):
        # TLS records already decrypted may still be handed over.
        self.conn.input_received(20000, 0.0)
        self.conn.input_received(10000, 0.5)
        self.assertEqual(self.broker.stats.rate_limited, 1)
        self.broker.run_timers(1.0)
        self.assertFalse(self.sink.reading)
        self.broker.run_timers(2.0)
        self.assertTrue(self.sink.reading)

    def test_keepalive_does_not_expire_while_we_do_not_read(self):
        # keepalive 2 s x 1.5: silence for 3 s ends the connection, but the
        # silence of a 10 s pause is the broker's own doing.
        self.conn.input_received(110000, 0.0)
        for now in range(1, 10):
            self.broker.run_timers(float(now))
            self.assertFalse(self.sink.closed, now)
        self.broker.run_timers(10.0)
        self.assertTrue(self.sink.reading)
        self.broker.run_timers(12.9)
        self.assertFalse(self.sink.closed)
        # Keepalive counts again from the resume.
        self.broker.run_timers(13.0)
        self.broker.run_timers(16.0)
        self.broker.flush()
        self.assertTrue(self.sink.closed)

    def test_closing_cancels_the_pause(self):
        self.conn.input_received(30000, 0.0)
        self.conn.connection_lost(0.5)
        self.assertIsNone(self.conn.meter.timer)
        self.broker.run_timers(5.0)
        self.assertFalse(self.sink.reading)  # nobody to resume

    def test_off_by_default(self):
        broker = make_broker()
        conn, sink = accepted(broker)
        self.assertIsNone(conn.meter)
        conn.input_received(10 ** 9, 0.0)
        self.assertTrue(sink.reading)
