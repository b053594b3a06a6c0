"""
MQTT over QUIC (``listeners.quic``) on loopback: a client made of aioquic's
client ``QuicConnection`` driven by ``connect_quic`` and MQTT 3.1.1 bytes
framed by hand, against the real broker; paho-mqtt on TCP for the
cross-transport cases.
"""

import socket

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from nanomq_twisted.transport.quic.client import client_configuration, connect_quic

from .support import Clients, in_thread
from .transport_support import (
    CONNACK_OK,
    frame,
    mqtt_connect,
    mqtt_publish,
    mqtt_subscribe,
    new_certs,
    q,
    start_with,
)

PUBACK, PUBREC, PUBREL, PUBCOMP = 0x40, 0x50, 0x62, 0x70


def ack(first_byte, packet_id):
    return frame(first_byte, packet_id.to_bytes(2, "big"))


def split_packets(buf):
    """``(packets, rest)``: whole MQTT packets at the front of ``buf``."""
    packets = []
    while True:
        length, shift, i = 0, 0, 1
        while True:
            if len(buf) <= i:
                return packets, buf
            byte = buf[i]
            i += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if len(buf) < i + length:
            return packets, buf
        packets.append(buf[: i + length])
        buf = buf[i + length:]


def parse_publish(packet):
    """``(topic, payload, qos, packet_id)`` of a 3.1.1 PUBLISH."""
    qos = (packet[0] >> 1) & 3
    i = 1
    while packet[i] & 0x80:
        i += 1
    i += 1
    topic_len = int.from_bytes(packet[i:i + 2], "big")
    topic = packet[i + 2:i + 2 + topic_len].decode()
    i += 2 + topic_len
    packet_id = None
    if qos:
        packet_id = int.from_bytes(packet[i:i + 2], "big")
        i += 2
    return topic, packet[i:], qos, packet_id


class QuicMqttClient(Protocol):
    """MQTT 3.1.1 over one QUIC stream.  Sends CONNECT when the stream
    opens; answers the broker's QoS 1/2 deliveries itself; deliveries land
    in ``messages``, every other packet in ``packets``."""

    def __init__(self, client_id):
        self.client_id = client_id
        self.buf = b""
        self.messages = defer.DeferredQueue()
        self.packets = defer.DeferredQueue()
        self.lost = defer.Deferred()

    def connectionMade(self):
        self.transport.write(mqtt_connect(self.client_id))

    def dataReceived(self, data):
        packets, self.buf = split_packets(self.buf + data)
        for packet in packets:
            kind = packet[0] & 0xF0
            if kind == 0x30:
                topic, payload, qos, packet_id = parse_publish(packet)
                if qos == 1:
                    self.transport.write(ack(PUBACK, packet_id))
                elif qos == 2:
                    self.transport.write(ack(PUBREC, packet_id))
                self.messages.put((topic, payload, qos))
            elif kind == 0x60:
                self.transport.write(ack(PUBCOMP, int.from_bytes(packet[2:4], "big")))
            else:
                self.packets.put(packet)

    def connectionLost(self, reason):
        self.lost.callback(reason.value)


class QuicTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.certs = new_certs(self)
        conf = (
            "listeners.quic {\n"
            '  bind = "127.0.0.1:0"\n'
            f"  keyfile = {q(self.certs.server_key)}\n"
            f"  certfile = {q(self.certs.server_cert)}\n"
            "  idle_timeout = 30s\n"
            "}\n"
        )
        self.running, self.ports = yield start_with(self, conf, ("tcp", "quic"))

    @defer.inlineCallbacks
    def connect(self, client_id):
        configuration = client_configuration(server_name="localhost", cafile=self.certs.ca)
        factory = Factory.forProtocol(lambda: QuicMqttClient(client_id))
        client = yield connect_quic(
            reactor, "127.0.0.1", self.ports["quic"], configuration, factory
        )
        self.addCleanup(self.disconnect, client)
        self.assertEqual((yield client.packets.get()), CONNACK_OK)
        return client

    def disconnect(self, client):
        terminated = client.transport.session.terminated_deferred
        client.transport.write(b"\xe0\x00")
        client.transport.loseConnection()
        return terminated

    @defer.inlineCallbacks
    def test_pub_sub_qos_0_1_2(self):
        client = yield self.connect("quic-1")
        client.transport.write(mqtt_subscribe(1, "q/#", 2))
        self.assertEqual((yield client.packets.get()), b"\x90\x03\x00\x01\x02")

        client.transport.write(mqtt_publish("q/0", b"zero"))
        self.assertEqual((yield client.messages.get()), ("q/0", b"zero", 0))

        client.transport.write(mqtt_publish("q/1", b"one", qos=1, packet_id=2))
        self.assertEqual((yield client.packets.get()), ack(PUBACK, 2))
        self.assertEqual((yield client.messages.get()), ("q/1", b"one", 1))

        client.transport.write(mqtt_publish("q/2", b"two", qos=2, packet_id=3))
        self.assertEqual((yield client.packets.get()), ack(PUBREC, 3))
        client.transport.write(ack(PUBREL, 3))
        self.assertEqual((yield client.packets.get()), ack(PUBCOMP, 3))
        self.assertEqual((yield client.messages.get()), ("q/2", b"two", 2))

        # Packets packed in one stream write and split over two.
        both = mqtt_publish("q/a", b"A") + mqtt_publish("q/b", b"B")
        client.transport.write(both[:3])
        client.transport.write(both[3:])
        self.assertEqual((yield client.messages.get()), ("q/a", b"A", 0))
        self.assertEqual((yield client.messages.get()), ("q/b", b"B", 0))

    @defer.inlineCallbacks
    def test_tcp_to_quic_and_back(self):
        """A paho TCP publisher reaches a QUIC subscriber, and the QUIC
        client's publish reaches a TCP subscriber."""
        quic = yield self.connect("quic-sub")
        quic.transport.write(mqtt_subscribe(1, "to/quic", 1))
        yield quic.packets.get()
        clients = Clients(self, self.ports["tcp"])
        tcp = clients("tcp-peer", 4)

        def tcp_side():
            tcp.connect()
            tcp.subscribe("to/tcp", 1)
            tcp.publish("to/quic", b"from tcp", 1)

        yield in_thread(tcp_side)
        self.assertEqual((yield quic.messages.get()), ("to/quic", b"from tcp", 1))
        quic.transport.write(mqtt_publish("to/tcp", b"from quic", qos=1, packet_id=7))
        self.assertEqual((yield quic.packets.get()), ack(PUBACK, 7))
        message = yield in_thread(tcp.expect)
        self.assertEqual((message.topic, message.payload), ("to/tcp", b"from quic"))

    @defer.inlineCallbacks
    def test_junk_datagrams_ignored(self):
        """Datagrams that are not QUIC (short and Initial-sized) are dropped;
        the listener keeps serving."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for junk in (b"junk", b"\xff" * 1300, b"\x40" + b"\x00" * 1300):
                sock.sendto(junk, ("127.0.0.1", self.ports["quic"]))
        finally:
            sock.close()
        client = yield self.connect("after-junk")
        client.transport.write(mqtt_subscribe(1, "j", 0))
        self.assertEqual((yield client.packets.get()), b"\x90\x03\x00\x01\x00")
        quic_listener = self.running.listener("quic").port
        self.assertEqual(len(quic_listener.server.sessions), 1)

    @defer.inlineCallbacks
    def test_client_close_ends_session(self):
        """Closing the QUIC connection (no DISCONNECT) ends the MQTT
        connection on the broker: its offline notice is published."""
        watcher = Clients(self, self.ports["tcp"])("watcher", 4)

        def watch():
            watcher.connect()
            watcher.subscribe("$SYS/brokers/client_status")

        yield in_thread(watch)
        client = yield self.connect("closing")
        self.assertIn("closing", self.running.broker.connections)
        terminated = client.transport.session.terminated_deferred
        client.transport.loseConnection()
        yield client.lost
        yield terminated
        yield in_thread(watcher.wait_status, "closing", "offline")
        self.assertNotIn("closing", self.running.broker.connections)
