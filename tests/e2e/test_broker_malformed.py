# -*- test-case-name: tests.e2e.test_broker_malformed -*-
"""
Malformed and forbidden input over raw sockets.

Each test sends hand-written bytes (``tests/packets.py`` or literals) and
checks the broker's reaction: a 5.0 connection gets DISCONNECT with the
reason code then a close [MQTT-4.13.1-1], a 3.1.1 connection just a close.
In every test a paho client then proves the broker still serves.
"""

import random

from twisted.internet import defer
from twisted.trial import unittest

from .. import packets as P
from .support import play

MALFORMED = 0x81
PROTOCOL_ERROR = 0x82
TOPIC_NAME_INVALID = 0x90
PACKET_TOO_LARGE = 0x95


def connected(clients, level):
    """A raw client past CONNECT/CONNACK at protocol ``level``."""
    raw = clients.raw()
    raw.send(P.connect(f"raw{level}", level=level))
    connack = raw.recv_packet()
    assert connack[0] == 0x20 and connack[3] == 0, connack
    return raw


class MalformedTests(unittest.TestCase):
    def assertReaction(self, raw, level, reason):
        """5.0: DISCONNECT carrying ``reason`` then close; 3.x: close only."""
        if level == 5:
            packet = raw.recv_packet()
            self.assertEqual(packet[0], 0xE0)
            # Short form "e0 01 <reason>" or with properties.
            self.assertEqual(packet[2], reason)
        self.assertEqual(raw.recv_until_closed(), b"")

    def assertStillServing(self, clients):
        client = clients("healthy", 4)
        client.connect()
        client.subscribe("alive", 1)
        client.publish("alive", b"yes", 1)
        self.assertEqual(client.expect().payload, b"yes")

    def _after_connect(self, data, reason, conf=""):
        """``data`` sent after a good CONNECT, for 3.1.1 and 5.0."""

        def scenario(clients):
            for level in (4, 5):
                raw = connected(clients, level)
                raw.send(data(level) if callable(data) else data)
                self.assertReaction(raw, level, reason)
            self.assertStillServing(clients)

        return play(self, scenario, conf)

    @defer.inlineCallbacks
    def test_first_packet_not_connect_MQTT_3_1_0_1(self):
        def scenario(clients):
            raw = clients.raw()
            raw.send(P.PINGREQ)
            self.assertEqual(raw.recv_until_closed(), b"")
            raw = clients.raw()
            raw.send(P.publish("t", b"x"))
            self.assertEqual(raw.recv_until_closed(), b"")
            self.assertStillServing(clients)

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_remaining_length_five_bytes_MQTT_1_5_5(self):
        yield self._after_connect(b"\x30\xff\xff\xff\xff\x7f", MALFORMED)

    @defer.inlineCallbacks
    def test_reserved_flag_bits_MQTT_2_2_2_2(self):
        # SUBSCRIBE must carry flags 0010; here 0000.
        def subscribe(level):
            return b"\x80" + P.subscribe(1, [("t", 0)], level=level)[1:]

        yield self._after_connect(subscribe, MALFORMED)

    @defer.inlineCallbacks
    def test_pubrel_reserved_flags_MQTT_3_6_1_1(self):
        yield self._after_connect(b"\x60\x02\x00\x01", MALFORMED)

    @defer.inlineCallbacks
    def test_publish_qos_3_MQTT_3_3_1_4(self):
        def publish(level):
            return b"\x36" + P.publish("t", b"x", qos=1, mid=1, level=level)[1:]

        yield self._after_connect(publish, MALFORMED)

    @defer.inlineCallbacks
    def test_invalid_utf8_topic_MQTT_1_5_4_1(self):
        def publish(level):
            body = b"\x00\x02\xff\xfe" + (b"\x00" if level == 5 else b"") + b"x"
            return P.fixed(0x30, body)

        yield self._after_connect(publish, MALFORMED)

    @defer.inlineCallbacks
    def test_wildcard_in_publish_topic_MQTT_3_3_2_2(self):
        def publish(level):
            return P.publish("a/+/b", b"x", level=level)

        yield self._after_connect(publish, TOPIC_NAME_INVALID)

    @defer.inlineCallbacks
    def test_packet_larger_than_max_packet_size(self):
        def publish(level):
            return P.publish("big", b"x" * 2000, level=level)

        yield self._after_connect(publish, PACKET_TOO_LARGE, "mqtt.max_packet_size = 1KB\n")

    @defer.inlineCallbacks
    def test_second_connect_MQTT_3_1_0_2(self):
        def connect(level):
            return P.connect("again", level=level)

        yield self._after_connect(connect, PROTOCOL_ERROR)

    @defer.inlineCallbacks
    def test_unknown_protocol_level_connack_0x01_MQTT_3_1_2_2(self):
        def scenario(clients):
            raw = clients.raw()
            raw.send(P.connect("future", level=6))
            self.assertEqual(raw.recv_until_closed(), b"\x20\x02\x00\x01")
            raw = clients.raw()
            raw.send(P.connect("oddname", level=4, name="MQTX"))
            self.assertEqual(raw.recv_until_closed(), b"\x20\x02\x00\x01")
            self.assertStillServing(clients)

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_truncated_packet_then_close(self):
        def scenario(clients):
            raw = connected(clients, 4)
            whole = P.publish("trunc", b"payload" * 10, qos=1, mid=5)
            raw.send(whole[: len(whole) // 2])
            raw.close()
            raw = clients.raw()
            raw.send(P.connect("half")[:7])
            raw.close()
            self.assertStillServing(clients)

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_random_garbage(self):
        def scenario(clients):
            rng = random.Random(1883)
            for _ in range(5):
                raw = clients.raw()
                garbage = bytes(rng.randrange(256) for _ in range(64))
                # Anything but a CONNECT type byte: refused at once.
                garbage = bytes((garbage[0] & 0x0F | 0xB0,)) + garbage[1:]
                raw.send(garbage)
                self.assertEqual(raw.recv_until_closed(), b"")
            raw = connected(clients, 5)
            garbage = bytes(rng.randrange(256) for _ in range(64))
            # Reserved packet type 0 with random flags and length.
            raw.send(bytes((garbage[0] & 0x0F,)) + garbage[1:])
            packet = raw.recv_packet()
            self.assertEqual(packet[0], 0xE0)
            self.assertIn(packet[2], (MALFORMED, PACKET_TOO_LARGE))
            self.assertEqual(raw.recv_until_closed(), b"")
            self.assertStillServing(clients)

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_subscribe_invalid_filter_v5_suback_0x8f(self):
        def scenario(clients):
            raw = connected(clients, 5)
            raw.send(P.subscribe(3, [("a/#/b", 1), ("ok/+", 1)], level=5))
            self.assertEqual(raw.recv_packet(), b"\x90\x05\x00\x03\x00\x8f\x01")
            raw = connected(clients, 4)
            raw.send(P.subscribe(4, [("a/b#", 1)]))
            self.assertEqual(raw.recv_packet(), b"\x90\x03\x00\x04\x80")
            self.assertStillServing(clients)

        yield play(self, scenario)
