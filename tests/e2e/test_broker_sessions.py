# -*- test-case-name: tests.e2e.test_broker_sessions -*-
"""
Sessions end to end: wills, persistent sessions (3.1.1 clean session 0 and
5.0 session expiry), QoS 2 exactly-once across a reconnect, takeover and
client identifiers.
"""

import queue
import struct

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from twisted.internet import defer
from twisted.trial import unittest

from .. import packets as P
from .support import TIMEOUT, play


def connect_props(**values):
    props = Properties(PacketTypes.CONNECT)
    for name, value in values.items():
        setattr(props, name, value)
    return props


class WillTests(unittest.TestCase):
    def _will_scenario(self, protocol, graceful):
        def scenario(clients):
            watcher = clients("watcher", 4)
            watcher.connect()
            watcher.subscribe("will/#", 1)
            dying = clients("dying", protocol)
            dying.paho.will_set("will/dying", b"gone", 1)
            dying.connect()
            if graceful:
                dying.disconnect()
                other = clients("other", 4)
                other.connect()
                other.publish("will/sentinel", b"s")
                watcher.expect_sentinel("will/sentinel")
            else:
                dying.drop()
                message = watcher.expect()
                self.assertEqual((message.topic, message.payload, message.qos),
                                 ("will/dying", b"gone", 1))

        return scenario

    @defer.inlineCallbacks
    def test_will_sent_on_abnormal_close_MQTT_3_1_2_8_v311(self):
        yield play(self, self._will_scenario(4, graceful=False))

    @defer.inlineCallbacks
    def test_will_sent_on_abnormal_close_MQTT_3_1_2_8_v5(self):
        yield play(self, self._will_scenario(5, graceful=False))

    @defer.inlineCallbacks
    def test_will_not_sent_after_disconnect_MQTT_3_14_4_3_v311(self):
        yield play(self, self._will_scenario(4, graceful=True))

    @defer.inlineCallbacks
    def test_will_not_sent_after_disconnect_MQTT_3_14_4_3_v5(self):
        yield play(self, self._will_scenario(5, graceful=True))

    @defer.inlineCallbacks
    def test_will_retained(self):
        def scenario(clients):
            watcher = clients("watcher", 4)
            watcher.connect()
            watcher.subscribe("$SYS/brokers/client_status")
            dying = clients("dying", 4)
            dying.paho.will_set("will/kept", b"last", 1, retain=True)
            dying.connect()
            dying.drop()
            watcher.wait_status("dying", "offline")
            watcher.subscribe("will/kept", 1)
            message = watcher.expect()
            self.assertEqual((message.payload, message.retain), (b"last", True))

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_will_delay_interval_MQTT_3_1_3_9(self):
        """With Will Delay 1 s the will is not published at the close, but
        one second later (the session lives longer than that)."""

        def scenario(clients):
            watcher = clients("watcher", 4)
            watcher.connect()
            watcher.subscribe("will/#", 1)
            status = clients("status", 4)
            status.connect()
            status.subscribe("$SYS/brokers/client_status")
            dying = clients("dying", 5)
            will_props = Properties(PacketTypes.WILLMESSAGE)
            will_props.WillDelayInterval = 1
            dying.paho.will_set("will/delayed", b"late", 1, properties=will_props)
            dying.connect(properties=connect_props(SessionExpiryInterval=60))
            dying.drop()
            status.wait_status("dying", "offline")
            other = clients("other", 4)
            other.connect()
            # Nothing yet: the sentinel comes first.
            other.publish("will/sentinel", b"s")
            watcher.expect_sentinel("will/sentinel")
            message = watcher.expect(timeout=3)
            self.assertEqual((message.topic, message.payload), ("will/delayed", b"late"))

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_will_delay_cancelled_by_reconnect_MQTT_3_1_3_9(self):
        def scenario(clients):
            watcher = clients("watcher", 4)
            watcher.connect()
            watcher.subscribe("will/#", 1)
            status = clients("status", 4)
            status.connect()
            status.subscribe("$SYS/brokers/client_status")
            dying = clients("dying", 5, clean=False)
            will_props = Properties(PacketTypes.WILLMESSAGE)
            will_props.WillDelayInterval = 1
            dying.paho.will_set("will/delayed", b"late", 1, properties=will_props)
            dying.connect(properties=connect_props(SessionExpiryInterval=60))
            dying.drop()
            status.wait_status("dying", "offline")
            back = clients("dying", 5, clean=False)
            flags, _, _ = back.connect(properties=connect_props(SessionExpiryInterval=60))
            self.assertTrue(flags.session_present)
            status.wait_status("dying", "online")
            # Wait past the delay on the queue itself: nothing may arrive.
            with self.assertRaises(queue.Empty):
                watcher.messages.get(timeout=1.5)

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_disconnect_with_will_0x04_publishes_will(self):
        def scenario(clients):
            watcher = clients("watcher", 4)
            watcher.connect()
            watcher.subscribe("will/#", 1)
            dying = clients("dying", 5)
            dying.paho.will_set("will/v5", b"bye", 0)
            dying.connect()
            dying.paho.disconnect(reasoncode=mqtt.ReasonCode(PacketTypes.DISCONNECT, identifier=4))
            dying.paho.loop_stop()
            message = watcher.expect()
            self.assertEqual((message.topic, message.payload), ("will/v5", b"bye"))

        yield play(self, scenario)


class PersistentSessionTests(unittest.TestCase):
    def _offline_queue(self, protocol):
        def scenario(clients):
            if protocol == 5:
                props = connect_props(SessionExpiryInterval=300)
            else:
                props = None
            watcher = clients("watcher", 4)
            watcher.connect()
            watcher.subscribe("$SYS/brokers/client_status")
            sub = clients("keeper", protocol, clean=False)
            flags, _, _ = sub.connect(properties=props)
            self.assertFalse(flags.session_present)
            sub.subscribe("stored/#", 2)
            sub.disconnect()
            watcher.wait_status("keeper", "offline")
            pub = clients("pub", 4)
            pub.connect()
            pub.publish("stored/0", b"zero", 0)  # not stored
            pub.publish("stored/1", b"one", 1)
            pub.publish("stored/2", b"two", 2)
            back = clients("keeper", protocol, clean=False)
            flags, _, _ = back.connect(properties=props)
            self.assertTrue(flags.session_present)  # [MQTT-3.2.2-2]
            first = back.expect()
            second = back.expect()
            self.assertEqual(
                [(m.topic, m.payload, m.qos) for m in (first, second)],
                [("stored/1", b"one", 1), ("stored/2", b"two", 2)],
            )
            # The subscription survived; QoS 0 "stored/0" never arrives.
            pub.publish("stored/s", b"s")
            back.expect_sentinel("stored/s")
            back.disconnect()
            watcher.wait_status("keeper", "offline")
            # Clean start discards the session [MQTT-3.1.2-4].
            pub.publish("stored/1", b"lost", 1)
            fresh = clients("keeper", protocol, clean=True)
            flags, _, _ = fresh.connect()
            self.assertFalse(flags.session_present)
            fresh.subscribe("other")
            pub.publish("stored/1", b"nobody", 1)
            pub.publish("other", b"s")
            fresh.expect_sentinel("other")

        return scenario

    @defer.inlineCallbacks
    def test_persistent_session_v311_clean_session_0_MQTT_3_1_2_4(self):
        yield play(self, self._offline_queue(4))

    @defer.inlineCallbacks
    def test_persistent_session_v5_session_expiry_MQTT_3_1_2_23(self):
        yield play(self, self._offline_queue(5))

    @defer.inlineCallbacks
    def test_v5_session_expiry_zero_ends_session(self):
        def scenario(clients):
            watcher = clients("watcher", 4)
            watcher.connect()
            watcher.subscribe("$SYS/brokers/client_status")
            sub = clients("brief", 5, clean=False)
            sub.connect()  # no Session Expiry Interval: 0
            sub.subscribe("x", 1)
            sub.disconnect()
            watcher.wait_status("brief", "offline")
            back = clients("brief", 5, clean=False)
            flags, _, _ = back.connect()
            self.assertFalse(flags.session_present)

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_qos2_exactly_once_across_reconnect_MQTT_4_3_3(self):
        """The subscriber receives PUBLISH QoS 2, answers PUBREC and drops
        the connection before PUBCOMP.  On resuming, the broker re-sends
        PUBREL (not the PUBLISH) [MQTT-4.4.0-1], so the message is
        delivered once."""

        def scenario(clients):
            raw = clients.raw()
            raw.send(P.connect("exact", level=4, clean=False, keepalive=0))
            self.assertEqual(raw.recv_packet(), b"\x20\x02\x00\x00")
            raw.send(P.subscribe(1, [("eq", 2)]))
            self.assertEqual(raw.recv_packet(), b"\x90\x03\x00\x01\x02")
            pub = clients("pub", 4)
            pub.connect()
            pub.publish("eq", b"once", 2)
            publish = raw.recv_packet()
            # QoS 2, no DUP, topic "eq", some packet id, payload "once".
            self.assertEqual(publish[0], 0x34)
            self.assertEqual(publish[2:6], b"\x00\x02eq")
            (pid,) = struct.unpack(">H", publish[6:8])
            self.assertEqual(publish[8:], b"once")
            raw.send(P.pubrec(pid))
            self.assertEqual(raw.recv_packet(), b"\x62\x02" + struct.pack(">H", pid))
            raw.close()
            again = clients.raw()
            again.send(P.connect("exact", level=4, clean=False, keepalive=0))
            self.assertEqual(again.recv_packet(), b"\x20\x02\x01\x00")
            self.assertEqual(again.recv_packet(), b"\x62\x02" + struct.pack(">H", pid))
            again.send(P.pubcomp(pid))
            # Nothing else: the next packet is the PINGRESP.
            again.send(P.PINGREQ)
            self.assertEqual(again.recv_packet(), b"\xd0\x00")

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_qos1_resent_with_dup_after_reconnect_MQTT_4_4_0_1(self):
        def scenario(clients):
            raw = clients.raw()
            raw.send(P.connect("q1", level=5, clean=False, keepalive=0,
                               properties=P.props(P.p_u32(0x11, 60))))
            connack = raw.recv_packet()
            self.assertEqual((connack[0], connack[2], connack[3]), (0x20, 0, 0))
            raw.send(P.subscribe(1, [("r1", 1)], level=5))
            self.assertEqual(raw.recv_packet(), b"\x90\x04\x00\x01\x00\x01")
            pub = clients("pub", 4)
            pub.connect()
            pub.publish("r1", b"again", 1)
            first = raw.recv_packet()
            self.assertEqual(first[0], 0x32)
            raw.close()
            again = clients.raw()
            again.send(P.connect("q1", level=5, clean=False, keepalive=0,
                                 properties=P.props(P.p_u32(0x11, 60))))
            connack = again.recv_packet()
            self.assertEqual(connack[2], 1)  # session present
            resent = again.recv_packet()
            self.assertEqual(resent[0], 0x3A)  # QoS 1 with DUP
            self.assertEqual(resent[1:], first[1:])

        yield play(self, scenario)


class TakeoverAndIdTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_takeover_v5_old_gets_disconnect_0x8e_MQTT_3_1_4_3(self):
        def scenario(clients):
            old = clients("twin", 5)
            old.connect()
            new = clients("twin", 5)
            new.connect()
            reason, _ = old.disconnects.get(timeout=TIMEOUT)
            self.assertEqual(reason.value, 0x8E)
            new.subscribe("tw")
            new.publish("tw", b"works", 1)
            self.assertEqual(new.expect().payload, b"works")

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_takeover_v311_old_closed(self):
        def scenario(clients):
            old = clients("twin", 4)
            old.paho.will_set("tw/will", b"w")
            old.connect()
            watcher = clients("watcher", 4)
            watcher.connect()
            watcher.subscribe("tw/#")
            new = clients("twin", 4)
            new.connect()
            old.disconnects.get(timeout=TIMEOUT)
            # The old connection closed without DISCONNECT: its will goes.
            self.assertEqual(watcher.expect().topic, "tw/will")
            new.subscribe("tw/x")
            new.publish("tw/x", b"ok", 1)
            self.assertEqual(new.expect().payload, b"ok")

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_assigned_client_identifier_v5_MQTT_3_2_2_16(self):
        def scenario(clients):
            anon = clients("", 5)
            _, _, props = anon.connect()
            assigned = props.AssignedClientIdentifier
            self.assertRegex(assigned, r"^nanomq-[0-9a-f]{8}$")

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_empty_id_v311_clean_session_0_refused_MQTT_3_1_3_8(self):
        def scenario(clients):
            raw = clients.raw()
            raw.send(P.connect("", level=4, clean=False))
            self.assertEqual(raw.recv_until_closed(), b"\x20\x02\x00\x02")
            ok = clients("", 4)
            ok.connect()

        yield play(self, scenario)
