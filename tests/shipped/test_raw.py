"""
The shipped configuration at the byte level, over a raw TCP socket: what
the broker sends is compared with packets laid out by hand
(``tests.packets``), never with the project's encoder.
"""

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from .. import packets as pk
from ..e2e.support import RawClient, in_thread
from .support import start_shipped

#: The Receive Maximum of the shipped file (``mqtt.max_inflight_window``).
RECEIVE_MAXIMUM = 2048


def v5_connect(client_id):
    return pk.connect(client_id, level=5)


class RawShippedConfigTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.shipped = yield start_shipped(self)

    def raw(self):
        client = RawClient(self.shipped.port)
        self.addCleanup(client.close)
        return client

    def test_v5_connack_bytes(self):
        """Receive Maximum 2048, Topic Alias Maximum 1024, Maximum Packet
        Size 268,435,455: the shipped 256MB clamped into the property's
        range [MQTT-3.2.2.3.6]."""
        def scenario():
            client = self.raw()
            client.send(v5_connect("raw-connack"))
            self.assertEqual(client.recv_packet(), pk.connack(level=5, properties=pk.props(
                pk.p_u16(0x21, RECEIVE_MAXIMUM), pk.p_u16(0x22, 1024),
                pk.p_u32(0x27, 268435455))))

        return in_thread(scenario)

    def test_receive_maximum_plus_one_qos2_is_disconnect_0x93(self):
        """[MQTT-3.3.4-7]/[MQTT-3.3.4-8]: 2048 QoS 2 PUBLISHes without
        PUBREL are all PUBREC'd; the 2049th is answered with DISCONNECT
        0x93 Receive Maximum exceeded, and the connection closes."""
        def scenario():
            client = self.raw()
            client.send(v5_connect("raw-flood"))
            client.recv_packet()  # CONNACK
            client.send(b"".join(
                pk.publish("flood/t", b"x", qos=2, mid=pid, level=5)
                for pid in range(1, RECEIVE_MAXIMUM + 2)))
            for pid in range(1, RECEIVE_MAXIMUM + 1):
                # 0x10: nobody is subscribed, the flow still goes on.
                self.assertEqual(client.recv_packet(), pk.pubrec(pid, 0x10))
            self.assertEqual(client.recv_packet(), pk.disconnect(0x93, pk.props(
                pk.p_str(0x1F, "more unacknowledged QoS 1/2 PUBLISHes than Receive Maximum"))))
            self.assertEqual(client.recv_until_closed(), b"")

        return in_thread(scenario)

    def test_pubrel_makes_room_again(self):
        """After PUBREL/PUBCOMP the quota is back: 2048 more go through."""
        def scenario():
            client = self.raw()
            client.send(v5_connect("raw-window"))
            client.recv_packet()
            for round_ in range(2):
                base = round_ * RECEIVE_MAXIMUM
                pids = range(base + 1, base + RECEIVE_MAXIMUM + 1)
                client.send(b"".join(
                    pk.publish("w/t", b"x", qos=2, mid=pid, level=5) for pid in pids))
                for pid in pids:
                    self.assertEqual(client.recv_packet(), pk.pubrec(pid, 0x10))
                client.send(b"".join(pk.pubrel(pid) for pid in pids))
                for pid in pids:
                    self.assertEqual(client.recv_packet(), pk.pubcomp(pid))

        return in_thread(scenario)
