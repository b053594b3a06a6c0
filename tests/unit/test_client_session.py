"""
The broker's MQTT client without I/O (nanomq_twisted/client/session.py):
packets in, ``now`` stepped by hand, bytes out compared with the
hand-written frames of tests/packets.py.
"""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.client.options import ClientOptions, OutboundMessage
from nanomq_twisted.client.session import (
    ClientSession,
    ConnectRefused,
    ServerDisconnected,
    ServerTimeout,
)
from nanomq_twisted.mqtt.errors import MqttError
from nanomq_twisted.mqtt.packets import (
    Connack,
    Disconnect,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    SubscriptionOptions,
    Will,
)

from .. import packets as P

T0 = 1000.0


def options(**overrides):
    values = {"client_id": "c1", "keepalive": 10}
    values.update(overrides)
    return ClientOptions(**values)


class SessionTestCase(SynchronousTestCase):
    def start(self, session_present=False, connack_properties=None, **overrides):
        """A session connected at T0, its CONNECT already taken."""
        self.session = ClientSession(options(**overrides), token=lambda n: "ab" * n)
        self.session.connection_made(T0)
        self.session.data_to_send()
        unsent = self.session.receive_connack(
            Connack(session_present, 0, connack_properties or {}), T0)
        return unsent

    def sent(self):
        return b"".join(self.session.data_to_send())


class ConnectTests(SessionTestCase):
    def connect_bytes(self, **overrides):
        session = ClientSession(options(**overrides), token=lambda n: "ab" * n)
        session.connection_made(T0)
        return b"".join(session.data_to_send())

    def test_311_connect(self):
        self.assertEqual(
            self.connect_bytes(username="u", password=b"p", keepalive=30),
            P.connect("c1", keepalive=30, username="u", password=b"p"),
        )

    def test_5_connect_with_properties_and_will(self):
        data = self.connect_bytes(
            level=5, clean_start=False,
            properties={"session_expiry_interval": 30, "receive_maximum": 20},
            will=Will("w/t", b"gone", 1, True, {"will_delay_interval": 5}),
        )
        expected = P.connect(
            "c1", level=5, clean=False, keepalive=10,
            properties=P.props(P.p_u32(0x11, 30), P.p_u16(0x21, 20)),
            will_topic="w/t", will_payload=b"gone", will_qos=1, will_retain=True,
            will_properties=P.props(P.p_u32(0x18, 5)),
        )
        self.assertEqual(data, expected)

    def test_311_bridge_bit_is_not_sent_in_5(self):
        self.assertEqual(self.connect_bytes(bridge=True), P.connect("c1", keepalive=10,
                                                                    bridge=True))
        self.assertEqual(self.connect_bytes(bridge=True, level=5), P.connect("c1", level=5,
                                                                             keepalive=10))

    def test_generated_id_for_31_is_kept_across_connections_MQTT_3_1_3_7(self):
        session = ClientSession(options(client_id="", level=3, generated_id_prefix="x-"),
                                token=lambda n: "cd" * n)
        first = session.connection_made(T0)
        self.assertEqual(b"".join(session.data_to_send()),
                         P.connect("x-cdcdcdcd", level=3, keepalive=10))
        session.connection_lost()
        self.assertEqual(session.connection_made(T0 + 5).client_id, first.client_id)

    def test_empty_id_with_clean_start_is_left_to_the_server(self):
        self.assertEqual(self.connect_bytes(client_id=""), P.connect("", keepalive=10))

    def test_connack_timeout(self):
        session = ClientSession(options(connack_timeout=10.0))
        session.connection_made(T0)
        self.assertEqual(session.next_deadline(), T0 + 10)
        self.assertEqual(session.handle_timer(T0 + 9.5), [])
        self.assertRaises(ServerTimeout, session.handle_timer, T0 + 10)

    def test_refused_connack(self):
        session = ClientSession(options())
        session.connection_made(T0)
        error = self.assertRaises(ConnectRefused, session.receive_connack, Connack(False, 5), T0)
        self.assertEqual(error.connack.reason_code, 5)

    def test_session_present_after_clean_start_MQTT_3_2_2_4(self):
        session = ClientSession(options(clean_start=True))
        session.connection_made(T0)
        error = self.assertRaises(MqttError, session.receive_connack, Connack(True, 0), T0)
        self.assertEqual(error.reason_code, 0x82)

    def test_packets_before_connack_and_a_second_connack_MQTT_3_2_0_1_and_2(self):
        session = ClientSession(options())
        session.connection_made(T0)
        self.assertRaises(MqttError, session.receive_publish, Publish("t", b"", 0))
        session.receive_connack(Connack(), T0)
        self.assertRaises(MqttError, session.receive_connack, Connack(), T0)

    def test_v5_connack_sets_client_id_window_and_limit(self):
        self.start(level=5, connack_properties={
            "assigned_client_identifier": "given", "receive_maximum": 1,
            "maximum_packet_size": 20})
        session = self.session
        self.assertEqual(session.client_id, "given")
        self.assertTrue(session.publish(OutboundMessage("t", b"x", 1), T0))
        self.assertFalse(session.has_room())
        # Larger than the server's Maximum Packet Size: never sent [MQTT-3.2.2-15].
        self.sent()
        self.assertFalse(session.publish(OutboundMessage("t", b"x" * 30, 0), T0))
        self.assertEqual(self.sent(), b"")
        self.assertEqual(len(session.flows), 1)


class KeepaliveTests(SessionTestCase):
    def test_pingreq_every_keepalive_then_timeout(self):
        self.start(keepalive=10, ping_timeout=2.0)
        session = self.session
        self.assertEqual(session.next_deadline(), T0 + 10)
        self.assertEqual(session.handle_timer(T0 + 9), [])
        self.assertEqual(self.sent(), b"")
        session.handle_timer(T0 + 10)
        self.assertEqual(self.sent(), P.PINGREQ)
        self.assertEqual(session.next_deadline(), T0 + 12)
        session.receive_pingresp(Pingresp())
        self.assertEqual(session.next_deadline(), T0 + 20)
        session.handle_timer(T0 + 20)
        self.assertEqual(self.sent(), P.PINGREQ)
        session.handle_timer(T0 + 21.9)
        self.assertRaises(ServerTimeout, session.handle_timer, T0 + 22)

    def test_server_keep_alive_replaces_ours_MQTT_3_2_2_21(self):
        self.start(level=5, keepalive=60, connack_properties={"server_keep_alive": 5})
        self.assertEqual(self.session.next_deadline(), T0 + 5)

    def test_no_keepalive_no_deadline(self):
        self.start(keepalive=0)
        self.assertIsNone(self.session.next_deadline())


class OutboundTests(SessionTestCase):
    def test_qos1(self):
        self.start()
        message = OutboundMessage("a/b", b"hi", 1)
        self.assertTrue(self.session.publish(message, T0))
        self.assertEqual(self.sent(), P.publish("a/b", b"hi", qos=1, mid=1))
        self.assertEqual(self.session.stats.inflight, 1)
        self.assertIsNone(self.session.receive_ack(Puback(9), T0))
        self.assertIs(self.session.receive_ack(Puback(1), T0), message)
        self.assertEqual((self.session.stats.inflight, self.session.stats.sent), (0, 1))

    def test_qos2(self):
        self.start()
        message = OutboundMessage("a/b", b"hi", 2, retain=True)
        self.session.publish(message, T0)
        self.assertEqual(self.sent(), P.publish("a/b", b"hi", qos=2, retain=True, mid=1))
        self.assertIsNone(self.session.receive_ack(Pubrec(1), T0))
        self.assertEqual(self.sent(), P.pubrel(1))
        # A PUBCOMP is what ends it; a PUBACK for a QoS 2 flow does not.
        self.assertIsNone(self.session.receive_ack(Puback(1), T0))
        self.assertIs(self.session.receive_ack(Pubcomp(1), T0), message)

    def test_v5_refused_pubrec_ends_the_flow_MQTT_4_3_3_4(self):
        self.start(level=5)
        message = OutboundMessage("a/b", b"hi", 2)
        self.session.publish(message, T0)
        self.sent()
        self.assertIs(self.session.receive_ack(Pubrec(1, 0x87), T0), message)
        self.assertEqual(self.sent(), b"")  # no PUBREL
        self.assertEqual(len(self.session.flows), 0)

    def test_unknown_pubrec_is_released_with_0x92_in_v5(self):
        self.start(level=5)
        self.session.receive_ack(Pubrec(7), T0)
        self.assertEqual(self.sent(), P.pubrel(7, 0x92))

    def test_resent_with_dup_when_the_server_kept_the_session_MQTT_4_4_0_1(self):
        self.start(clean_start=False)
        session = self.session
        one = OutboundMessage("a", b"1", 1)
        two = OutboundMessage("b", b"2", 2)
        session.publish(one, T0)
        session.publish(two, T0)
        session.receive_ack(Pubrec(2), T0)
        self.sent()
        self.assertTrue(session.connection_lost())
        session.connection_made(T0 + 5)
        self.assertEqual(self.sent(), P.connect("c1", clean=False, keepalive=10))
        self.assertEqual(session.receive_connack(Connack(True, 0), T0 + 6), [])
        self.assertEqual(self.sent(), P.publish("a", b"1", qos=1, dup=True, mid=1) + P.pubrel(2))
        self.assertIs(session.receive_ack(Puback(1), T0 + 6), one)
        self.assertIs(session.receive_ack(Pubcomp(2), T0 + 6), two)

    def test_handed_back_when_the_server_kept_no_session(self):
        self.start()
        session = self.session
        one = OutboundMessage("a", b"1", 1)
        two = OutboundMessage("b", b"2", 2)
        session.publish(one, T0)
        session.publish(two, T0)
        session.receive_publish(Publish("in", b"", 2, packet_id=4))
        session.connection_lost()
        session.connection_made(T0 + 5)
        self.sent()
        self.assertEqual(session.receive_connack(Connack(False, 0), T0 + 6), [one, two])
        self.assertEqual(self.sent(), b"")
        self.assertEqual((len(session.flows), session.incoming_qos2, session.stats.inflight),
                         (0, set(), 0))

    def test_packet_ids_skip_those_in_use(self):
        self.start()
        session = self.session
        session.publish(OutboundMessage("a", b"", 1), T0)  # 1
        pid = session.subscribe([SubscriptionOptions("s/#", 1)])
        self.assertEqual(pid, 2)
        self.assertEqual(self.sent(), P.publish("a", b"", qos=1, mid=1)
                         + P.subscribe(2, [("s/#", 1)]))
        session.publish(OutboundMessage("b", b"", 1), T0)
        self.assertEqual(self.sent(), P.publish("b", b"", qos=1, mid=3))
        self.assertEqual(session.receive_suback(Suback(2, (0x80,))), ["s/#"])
        self.assertEqual(session.requests, {})


class RetryTests(SessionTestCase):
    """NanoMQ's client timer, as bridges configure it: a tick every
    second, the oldest message unacknowledged for 3 s resent (one per
    tick), messages unacknowledged for 10 s forgotten."""

    def start_retrying(self):
        self.start(keepalive=0, retry_interval=1.0, retry_wait=3.0, retry_limit=1,
                   give_up_after=10.0)
        self.one = OutboundMessage("a", b"1", 1)
        self.two = OutboundMessage("b", b"2", 1)
        self.session.publish(self.one, T0)
        self.session.publish(self.two, T0)
        self.sent()

    def test_oldest_first_one_per_tick(self):
        self.start_retrying()
        session = self.session
        for t in (1, 2):
            self.assertEqual(session.next_deadline(), T0 + t)
            session.handle_timer(T0 + t)
            self.assertEqual(self.sent(), b"")
        session.handle_timer(T0 + 3)
        self.assertEqual(self.sent(), P.publish("a", b"1", qos=1, dup=True, mid=1))
        session.handle_timer(T0 + 4)
        self.assertEqual(self.sent(), P.publish("b", b"2", qos=1, dup=True, mid=2))
        self.assertEqual(session.stats.sent, 4)

    def test_given_up_after_cancel_timeout(self):
        self.start_retrying()
        session = self.session
        for t in range(1, 10):
            self.assertEqual(session.handle_timer(T0 + t), [])
        self.assertEqual(session.handle_timer(T0 + 10), [self.one, self.two])
        self.assertEqual((len(session.flows), session.stats.inflight), (0, 0))


class InboundTests(SessionTestCase):
    def test_qos1_acknowledged(self):
        self.start()
        self.assertEqual(self.session.receive_publish(Publish("t", b"x", 1, packet_id=3)), "t")
        self.assertEqual(self.sent(), P.puback(3))

    def test_qos2_once_until_pubrel(self):
        self.start()
        session = self.session
        publish = Publish("t", b"x", 2, packet_id=9)
        self.assertEqual(session.receive_publish(publish), "t")
        self.assertEqual(self.sent(), P.pubrec(9))
        # The server resends before our PUBREC reached it: acknowledged,
        # not delivered again [MQTT-4.3.3-10].
        self.assertIsNone(session.receive_publish(Publish("t", b"x", 2, dup=True, packet_id=9)))
        self.assertEqual(self.sent(), P.pubrec(9))
        session.receive_pubrel(Pubrel(9))
        self.assertEqual(self.sent(), P.pubcomp(9))
        self.assertEqual(session.incoming_qos2, set())
        self.assertEqual(session.receive_publish(publish), "t")  # a new message now
        self.assertEqual(session.stats.received, 3)

    def test_unknown_pubrel_in_v5(self):
        self.start(level=5)
        self.session.receive_pubrel(Pubrel(4))
        self.assertEqual(self.sent(), P.pubcomp(4, 0x92))

    def test_topic_aliases(self):
        self.start(level=5, properties={"topic_alias_maximum": 5})
        session = self.session
        self.assertEqual(session.receive_publish(
            Publish("a/b", b"", 0, properties={"topic_alias": 5})), "a/b")
        self.assertEqual(session.receive_publish(
            Publish("", b"", 0, properties={"topic_alias": 5})), "a/b")
        unknown = self.assertRaises(MqttError, session.receive_publish,
                                    Publish("", b"", 0, properties={"topic_alias": 2}))
        self.assertEqual(unknown.reason_code, 0x82)
        # Above the maximum we announced [MQTT-3.3.2-11].
        above = self.assertRaises(MqttError, session.receive_publish,
                                  Publish("c", b"", 0, properties={"topic_alias": 6}))
        self.assertEqual(above.reason_code, 0x94)

    def test_aliases_do_not_outlive_the_connection_MQTT_3_3_2_7(self):
        self.start(level=5, properties={"topic_alias_maximum": 5})
        session = self.session
        session.receive_publish(Publish("a/b", b"", 0, properties={"topic_alias": 1}))
        session.connection_lost()
        session.connection_made(T0)
        session.receive_connack(Connack(), T0)
        self.assertRaises(MqttError, session.receive_publish,
                          Publish("", b"", 0, properties={"topic_alias": 1}))

    def test_server_disconnect(self):
        self.start(level=5)
        error = self.assertRaises(ServerDisconnected, self.session.receive_disconnect,
                                  Disconnect(0x8B))
        self.assertEqual(error.reason_code, 0x8B)
