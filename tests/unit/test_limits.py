# -*- test-case-name: tests.unit.test_limits -*-
"""
What a 5.0 CONNACK advertises, derived from configuration and clamped into
the ranges of its properties (core/limits.py), and the inbound side of
Receive Maximum [MQTT-4.9]: a client with more unacknowledged QoS 1/2
PUBLISHes than the broker allowed is refused with 0x93.

Expected bytes are built with ``tests.packets`` (hand-laid from the
specification), never with the project's encoder.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.config import load, loads
from nanomq_twisted.core.broker import Broker
from nanomq_twisted.core.connection import ClientConnection
from nanomq_twisted.core.info import TransportInfo
from nanomq_twisted.core.limits import server_limits
from nanomq_twisted.mqtt.errors import MqttError
from nanomq_twisted.mqtt.packets import (
    Connect,
    Publish,
    Pubrel,
    Subscribe,
    SubscriptionOptions,
)

from .. import packets as pk
from ..sinks import FakeSink

SHIPPED = os.path.join(
    os.path.dirname(__file__), os.pardir, os.pardir, "etc", "nanomq.conf"
)


def mqtt_section(text):
    return loads('listeners.tcp { bind = "127.0.0.1:0" }\n' + text, path="<test>").mqtt


class ServerLimitsTests(SynchronousTestCase):
    def test_shipped_configuration(self):
        """``max_packet_size = 256MB`` is 268,435,456 bytes, one more than a
        Maximum Packet Size may be [MQTT-3.2.2.3.6]: clients are told
        268,435,455 and the clamp is reported; ``max_inflight_window =
        2048`` becomes the Receive Maximum."""
        limits = server_limits(load(SHIPPED).mqtt)
        self.assertEqual(limits.maximum_packet_size, 268435455)
        self.assertEqual(limits.receive_maximum, 2048)
        self.assertEqual(limits.topic_alias_maximum, 1024)
        self.assertEqual(limits.server_keep_alive, 0)
        (note,) = limits.notes
        self.assertIn("mqtt.max_packet_size = 268435456", note)
        self.assertIn("268435455", note)

    def test_defaults_need_no_clamp(self):
        limits = server_limits(mqtt_section(""))
        self.assertEqual(limits.notes, ())
        self.assertEqual(limits.maximum_packet_size, 10485760)
        self.assertEqual(limits.receive_maximum, 2048)

    def test_receive_maximum_clamped_to_65535(self):
        limits = server_limits(mqtt_section("mqtt { max_inflight_window = 100000 }"))
        self.assertEqual(limits.receive_maximum, 65535)
        (note,) = limits.notes
        self.assertIn("mqtt.max_inflight_window = 100000", note)

    def test_zero_window_means_the_protocol_maximum(self):
        limits = server_limits(mqtt_section("mqtt { max_inflight_window = 0 }"))
        self.assertEqual(limits.receive_maximum, 65535)
        self.assertEqual(limits.notes, ())

    def test_every_note_is_kept(self):
        limits = server_limits(mqtt_section(
            "mqtt { max_packet_size = 1GB, max_inflight_window = 70000 }"))
        self.assertEqual(len(limits.notes), 2)

    def test_broker_rederives_limits_with_its_config(self):
        broker = Broker(mqtt_section(""), sys_events=False)
        self.assertEqual(broker.limits.receive_maximum, 2048)
        broker.config = mqtt_section("mqtt { max_inflight_window = 7 }")
        self.assertEqual(broker.limits.receive_maximum, 7)


class Peer:
    """A 5.0 (or 3.1.1) connection of the core, read back as raw bytes."""

    def __init__(self, broker, client_id, level=5):
        self.broker = broker
        self.sink = FakeSink()
        self.conn = ClientConnection(broker, self.sink, TransportInfo(("127.0.0.1", 50000)))
        self.conn.receive(Connect(client_id=client_id, protocol_level=level,
                                  clean_start=True, keepalive=60), 0.0)

    def take(self):
        self.broker.flush()
        data = bytes(self.sink.data)
        del self.sink.data[:]
        return data


class ConnackTests(SynchronousTestCase):
    def test_v5_connack_on_the_shipped_configuration(self):
        """Receive Maximum 2048, Topic Alias Maximum 1024 and Maximum Packet
        Size 268,435,455, byte for byte -- every value in range, which is
        what paho-mqtt checks before it accepts the connection."""
        broker = Broker(load(SHIPPED).mqtt, sys_events=False)
        peer = Peer(broker, "c1")
        expected = pk.connack(level=5, properties=pk.props(
            pk.p_u16(0x21, 2048), pk.p_u16(0x22, 1024), pk.p_u32(0x27, 268435455)))
        self.assertEqual(peer.take(), expected)

    def test_v311_connack_has_no_properties(self):
        broker = Broker(load(SHIPPED).mqtt, sys_events=False)
        self.assertEqual(Peer(broker, "c1", level=4).take(), pk.connack())


class InboundReceiveMaximumTests(SynchronousTestCase):
    """[MQTT-3.3.4-7]/[MQTT-3.3.4-8]: the client may have at most our
    Receive Maximum QoS 1/2 PUBLISHes unacknowledged; one more is a
    protocol violation answered with DISCONNECT 0x93 (the transport turns
    the ``MqttError`` into that packet)."""

    def setUp(self):
        self.broker = Broker(mqtt_section("mqtt { max_inflight_window = 3 }"),
                             sys_events=False)
        self.pub = Peer(self.broker, "pub")
        self.pub.take()

    def publish(self, pid, qos=2, dup=False):
        self.pub.conn.receive(Publish("t", b"x", qos, False, dup, pid, {}), 0.0)
        return self.pub.take()

    def test_one_qos2_more_than_receive_maximum(self):
        for pid in (1, 2, 3):
            self.assertEqual(self.publish(pid), pk.pubrec(pid, 0x10))
        error = self.assertRaises(MqttError, self.publish, 4)
        self.assertEqual(error.reason_code, 0x93)

    def test_pubrel_returns_quota(self):
        for pid in (1, 2, 3):
            self.publish(pid)
        self.pub.conn.receive(Pubrel(2), 0.0)
        self.assertEqual(self.pub.take(), pk.pubcomp(2))
        self.assertEqual(self.publish(4), pk.pubrec(4, 0x10))
        self.assertRaises(MqttError, self.publish, 5)

    def test_dup_of_an_awaited_message_is_not_a_new_one(self):
        for pid in (1, 2, 3):
            self.publish(pid)
        # [MQTT-4.3.3-10]: the re-send is acknowledged again, not counted.
        self.assertEqual(self.publish(3, dup=True), pk.pubrec(3))

    def test_awaited_id_without_dup_is_a_new_message_MQTT_3_3_1_1(self):
        """A stale "awaiting PUBREL" id (a crash after PUBCOMP, before the
        commit that forgot it) must not swallow the client's next message
        under that id: DUP 0 is a first attempt [MQTT-3.3.1-1]."""
        sub = Peer(self.broker, "sub")
        sub.take()
        sub.conn.receive(Subscribe(1, (SubscriptionOptions("t", 0),), {}), 0.0)
        sub.take()
        self.pub.conn.session.rel_awaited(7, 0.0)  # as restored from the store
        self.assertEqual(self.publish(7), pk.pubrec(7))
        self.assertEqual(sub.take(), pk.publish("t", b"x", level=5))
        self.assertEqual(self.broker.stats.reused_packet_ids, 1)
        # ... while a DUP re-send of it is still not routed again.
        self.assertEqual(self.publish(7, dup=True), pk.pubrec(7))
        self.assertEqual(sub.take(), b"")

    def test_qos1_acknowledged_at_once_never_accumulates(self):
        for pid in range(1, 20):
            self.assertEqual(self.publish(pid, qos=1), pk.puback(pid, 0x10))

    def test_v311_has_no_receive_maximum(self):
        v3 = Peer(self.broker, "v3", level=4)
        v3.take()
        for pid in range(1, 10):
            v3.conn.receive(Publish("t", b"x", 2, False, False, pid, {}), 0.0)
        self.assertEqual(v3.take(), b"".join(pk.pubrec(pid) for pid in range(1, 10)))


class SubscriptionIdentifierTests(SynchronousTestCase):
    def test_shared_identifier_carried_once_MQTT_3_3_4_3(self):
        """Three overlapping subscriptions, two of them with identifier 7
        and one with 9: one PUBLISH carrying 7 and 9, each once."""
        broker = Broker(mqtt_section(""), sys_events=False)
        sub = Peer(broker, "sub")
        sub.take()
        for pid, (topic_filter, ident) in enumerate(
                (("a/+", 7), ("a/b", 7), ("#", 9)), start=1):
            sub.conn.receive(Subscribe(
                pid, (SubscriptionOptions(topic_filter, 0),),
                {"subscription_identifier": ident}), 0.0)
        sub.take()
        pub = Peer(broker, "pub")
        pub.conn.receive(Publish("a/b", b"hi", 0, False, False, None, {}), 0.0)
        # The specification fixes no order among the identifiers.
        either = {
            pk.publish("a/b", b"hi", level=5, properties=pk.props(
                pk.p_varint(0x0B, first), pk.p_varint(0x0B, second)))
            for first, second in ((7, 9), (9, 7))
        }
        self.assertIn(sub.take(), either)


class PayloadFormatIndicatorTests(SynchronousTestCase):
    def test_unknown_value_forwarded_unaltered_MQTT_3_3_2_4(self):
        broker = Broker(mqtt_section(""), sys_events=False)
        sub = Peer(broker, "sub")
        sub.conn.receive(Subscribe(1, (SubscriptionOptions("t", 0),), {}), 0.0)
        sub.take()
        pub = Peer(broker, "pub")
        pub.conn.receive(Publish("t", b"\xff", 0, False, False, None,
                                 {"payload_format_indicator": 2}), 0.0)
        expected = pk.publish("t", b"\xff", level=5,
                              properties=pk.props(pk.p_byte(0x01, 2)))
        self.assertEqual(sub.take(), expected)


class _HeldCommits:
    """A store whose commits the test completes by hand: ``sync_ack`` holds
    every PUBACK until ``commit()`` (core/store.py's contract)."""

    enabled = True
    sync_ack = True
    changes = 0
    max_rows = 0
    rows = 0

    def __init__(self):
        self.waiting = []

    def message_queued(self, *args):
        self.changes += 1

    def after_commit(self, callback):
        self.waiting.append(callback)

    def commit(self):
        waiting, self.waiting = self.waiting, []
        for callback in waiting:
            callback()

    def __getattr__(self, name):
        # Every other report of core/store.py's StoreOps is a no-op here.
        return lambda *args, **kwargs: None


class HeldPubackQuotaTests(SynchronousTestCase):
    def test_pubacks_waiting_for_the_disk_count_against_receive_maximum(self):
        """With ``sqlite.sync_ack`` a QoS 1 PUBLISH stays unacknowledged
        until its commit: three held PUBACKs fill a Receive Maximum of 3,
        a fourth PUBLISH is 0x93; once committed the quota is back."""
        store = _HeldCommits()
        broker = Broker(mqtt_section("mqtt { max_inflight_window = 3 }"), sys_events=False)
        broker.set_store(store)
        durable = ClientConnection(broker, FakeSink(), TransportInfo(("127.0.0.1", 1)))
        durable.receive(Connect(client_id="keeper", protocol_level=5, clean_start=False,
                                keepalive=60,
                                properties={"session_expiry_interval": 60}), 0.0)
        durable.receive(Subscribe(1, (SubscriptionOptions("t", 1),), {}), 0.0)
        durable.connection_lost(0.0)  # offline: every message is queued
        pub = Peer(broker, "pub")
        pub.take()
        for pid in (1, 2, 3):
            pub.conn.receive(Publish("t", b"x", 1, False, False, pid, {}), 0.0)
        self.assertEqual(pub.take(), b"")
        self.assertRaises(MqttError, pub.conn.receive,
                          Publish("t", b"x", 1, False, False, 4, {}), 0.0)
        store.commit()
        self.assertEqual(pub.take(), b"".join(pk.puback(pid) for pid in (1, 2, 3)))
        pub.conn.receive(Publish("t", b"x", 1, False, False, 5, {}), 0.0)
        store.commit()
        self.assertEqual(pub.take(), pk.puback(5))

    def test_pubcomp_of_a_durable_publisher_waits_for_the_commit(self):
        """A publisher with a durable session: its PUBCOMP leaves only after
        the commit that forgets the "awaiting PUBREL" id, so a crash cannot
        leave an id the client was told is free (docs/durability.md)."""
        store = _HeldCommits()
        broker = Broker(mqtt_section(""), sys_events=False)
        broker.set_store(store)
        sink = FakeSink()
        pub = ClientConnection(broker, sink, TransportInfo(("127.0.0.1", 2)))
        pub.receive(Connect(client_id="q2", protocol_level=5, clean_start=False,
                            keepalive=60, properties={"session_expiry_interval": 60}), 0.0)
        broker.flush()
        del sink.data[:]
        pub.receive(Publish("t", b"x", 2, False, False, 9, {}), 0.0)
        broker.flush()
        # No subscriber: nothing stored, the PUBREC goes at once (0x10).
        self.assertEqual(bytes(sink.data), pk.pubrec(9, 0x10))
        del sink.data[:]
        pub.receive(Pubrel(9), 0.0)
        broker.flush()
        self.assertEqual(bytes(sink.data), b"")
        store.commit()
        broker.flush()
        self.assertEqual(bytes(sink.data), pk.pubcomp(9))
