"""
MQTT over WebSocket (``listeners.ws``) and secure WebSocket
(``listeners.wss``): paho-mqtt with ``transport="websockets"``, plus a raw
wsproto client on a blocking socket for frame-level cases, with MQTT bytes
framed by hand.
"""

import socket
from collections import deque

from twisted.internet import defer
from twisted.trial.unittest import TestCase
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

from .support import TIMEOUT, Clients, in_thread
from .transport_support import (
    CONNACK_OK,
    mqtt_connect,
    mqtt_publish,
    mqtt_subscribe,
    new_certs,
    read_until_closed,
    ssl_block,
    start_with,
)

WS_CONF = 'listeners.ws { bind = "127.0.0.1:0/mqtt" }\n'


class RawWebSocket:
    """A blocking wsproto client: events in order, MQTT packets reassembled
    from binary messages."""

    def __init__(self, port, path="/mqtt", subprotocols=("mqtt",)):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events = deque()
        self.mqtt = b""
        self.sock.sendall(
            self.ws.send(Request(host="localhost", target=path, subprotocols=list(subprotocols)))
        )

    def next_event(self):
        while not self.events:
            data = self.sock.recv(65536)
            self.ws.receive_data(data or None)
            self.events.extend(self.ws.events())
            if not data and not self.events:
                raise EOFError("closed")
        return self.events.popleft()

    def send_message(self, data):
        self.sock.sendall(self.ws.send(BytesMessage(data=data)))

    def recv_packet(self):
        """The next whole MQTT packet (by fixed-header length)."""
        while True:
            packet = self._split()
            if packet is not None:
                return packet
            event = self.next_event()
            if not isinstance(event, BytesMessage):
                raise TypeError(f"expected binary data, got {event!r}")
            self.mqtt += event.data

    def _split(self):
        buf = self.mqtt
        length, shift, i = 0, 0, 1
        while True:
            if len(buf) <= i:
                return None
            byte = buf[i]
            i += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if len(buf) < i + length:
            return None
        self.mqtt = buf[i + length:]
        return buf[: i + length]

    def close(self):
        self.sock.close()


class WebSocketTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def start(self, conf=WS_CONF, names=("tcp", "ws")):
        self.running, ports = yield start_with(self, conf, names)
        self.ports = ports
        self.raws = []
        self.addCleanup(lambda: [raw.close() for raw in self.raws])
        return ports

    def raw(self, **kwargs):
        raw = RawWebSocket(self.ports["ws"], **kwargs)
        self.raws.append(raw)
        return raw

    def accepted(self, **kwargs):
        raw = self.raw(**kwargs)
        event = raw.next_event()
        self.assertIsInstance(event, AcceptConnection)
        return raw, event

    @defer.inlineCallbacks
    def test_paho_ws_v311_and_v5_cross_tcp(self):
        """paho over ws for 3.1.1 and 5; TCP -> WS and WS -> TCP delivery."""
        ports = yield self.start()
        ws_clients = Clients(self, ports["ws"])
        tcp_clients = Clients(self, ports["tcp"])

        def scenario():
            for protocol in (4, 5):
                ws = ws_clients(f"ws-{protocol}", protocol, transport="websockets")
                ws.paho.ws_set_options(path="/mqtt")
                ws.connect()
                tcp = tcp_clients(f"tcp-{protocol}", protocol)
                tcp.connect()
                ws.subscribe(f"to/ws/{protocol}", 2)
                tcp.subscribe(f"to/tcp/{protocol}", 2)
                for qos in (0, 1, 2):
                    tcp.publish(f"to/ws/{protocol}", b"hello ws", qos)
                    message = ws.expect()
                    self.assertEqual((message.payload, message.qos), (b"hello ws", qos))
                    ws.publish(f"to/tcp/{protocol}", b"hello tcp", qos)
                    message = tcp.expect()
                    self.assertEqual((message.payload, message.qos), (b"hello tcp", qos))

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_paho_wss(self):
        """paho over wss (certificates of the main ssl block), 3.1.1 and 5,
        to and from a TLS client."""
        certs = new_certs(self)
        conf = ssl_block(certs) + 'listeners.wss { bind = "127.0.0.1:0/mqtt" }\n'
        ports = yield self.start(conf, ("tcp", "ssl", "wss"))
        wss_clients = Clients(self, ports["wss"])
        tls_clients = Clients(self, ports["ssl"])

        def scenario():
            for protocol in (4, 5):
                wss = wss_clients(f"wss-{protocol}", protocol, transport="websockets")
                wss.paho.ws_set_options(path="/mqtt")
                wss.paho.tls_set(ca_certs=certs.ca)
                wss.connect()
                tls = tls_clients(f"tls-{protocol}", protocol)
                tls.paho.tls_set(ca_certs=certs.ca)
                tls.connect()
                wss.subscribe("to/wss", 1)
                tls.subscribe("to/tls", 1)
                tls.publish("to/wss", b"a", 1)
                self.assertEqual(wss.expect().payload, b"a")
                wss.publish("to/tls", b"b", 1)
                self.assertEqual(tls.expect().payload, b"b")

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_subprotocols(self):
        """``mqtt`` is preferred, ``mqttv3.1`` answered, none offered means
        none echoed."""
        yield self.start()

        def scenario():
            offered = [(["mqtt"], "mqtt"), (["foo", "mqttv3.1", "mqtt"], "mqtt"),
                       (["mqttv3.1"], "mqttv3.1"), ([], None)]
            for subprotocols, chosen in offered:
                raw, accept = self.accepted(subprotocols=subprotocols)
                self.assertEqual(accept.subprotocol, chosen)
                raw.close()

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_packets_split_across_and_packed_in_frames(self):
        """CONNECT split over three frames; SUBSCRIBE + PUBLISH in one frame;
        a ping in between is answered."""
        yield self.start()

        def scenario():
            raw, _ = self.accepted()
            connect = mqtt_connect("split")
            for part in (connect[:1], connect[1:5], connect[5:]):
                raw.send_message(part)
            self.assertEqual(raw.recv_packet(), CONNACK_OK)
            raw.sock.sendall(raw.ws.send(Ping(payload=b"hi")))
            self.assertEqual(raw.next_event(), Pong(payload=b"hi"))
            raw.send_message(mqtt_subscribe(1, "ws/packed") + mqtt_publish("ws/packed", b"x"))
            self.assertEqual(raw.recv_packet(), b"\x90\x03\x00\x01\x00")
            self.assertEqual(raw.recv_packet(), mqtt_publish("ws/packed", b"x"))
            raw.sock.sendall(raw.ws.send(CloseConnection(code=1000)))
            event = raw.next_event()
            self.assertIsInstance(event, CloseConnection)
            self.assertEqual(event.code, 1000)

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_text_frame_closes_1003(self):
        """[MQTT-6.0.0-1]: a text frame closes the connection with 1003."""
        yield self.start()

        def scenario():
            raw, _ = self.accepted()
            raw.send_message(mqtt_connect("text"))
            self.assertEqual(raw.recv_packet(), CONNACK_OK)
            raw.sock.sendall(raw.ws.send(TextMessage(data="hello")))
            event = raw.next_event()
            self.assertIsInstance(event, CloseConnection)
            self.assertEqual(event.code, 1003)
            self.assertEqual(read_until_closed(raw.sock), b"")

        yield in_thread(scenario)
        self.assertEqual(self.running.broker.connections, {})

    @defer.inlineCallbacks
    def test_wrong_path_404(self):
        """A WebSocket upgrade or a plain GET to another path gets 404; a
        plain GET to the path gets 400; the listener keeps serving."""
        yield self.start()

        def scenario():
            raw = self.raw(path="/other")
            event = raw.next_event()
            self.assertIsInstance(event, RejectConnection)
            self.assertEqual(event.status_code, 404)
            for path, status in ((b"/other", b"404"), (b"/mqtt", b"400")):
                sock = socket.create_connection(("127.0.0.1", self.ports["ws"]), timeout=TIMEOUT)
                try:
                    sock.sendall(b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    response = read_until_closed(sock)
                finally:
                    sock.close()
                self.assertTrue(response.startswith(b"HTTP/1.1 " + status), response)
            raw, _ = self.accepted()
            raw.send_message(mqtt_connect("after-404"))
            self.assertEqual(raw.recv_packet(), CONNACK_OK)

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_unterminated_frame(self):
        """A frame header announcing more payload than ever arrives, then a
        close: nothing reaches MQTT, the broker keeps serving."""
        yield self.start()

        def scenario():
            raw, _ = self.accepted()
            raw.send_message(mqtt_connect("unterminated"))
            self.assertEqual(raw.recv_packet(), CONNACK_OK)
            # Binary, FIN, masked, 126 -> 16-bit length 100; 10 bytes sent.
            raw.sock.sendall(b"\x82\xfe\x00\x64" + b"\x00\x00\x00\x00" + b"\x30" * 10)
            raw.close()
            again, _ = self.accepted()
            again.send_message(mqtt_connect("unterminated"))
            self.assertEqual(again.recv_packet(), CONNACK_OK)

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_bad_frame_closes_1002(self):
        """An unmasked client frame is a protocol error: close 1002."""
        yield self.start()

        def scenario():
            raw, _ = self.accepted()
            raw.sock.sendall(b"\x82\x02\x10\x00")
            event = raw.next_event()
            self.assertIsInstance(event, CloseConnection)
            self.assertEqual(event.code, 1002)

        yield in_thread(scenario)
