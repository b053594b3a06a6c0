"""
WebSocket cases for the fuzzer: MQTT over ``/mqtt`` in frames built with
wsproto (the client side of ``WSConnection`` for the handshake and valid
frames, ``FrameProtocol`` for frames a client must not send), split and
interleaved as hypothesis draws them, and broken frames with the close
status RFC 6455 names.

``run_ws_case(port, case, client_id)`` plays one and returns an outcome
label; ``CaseFailure`` (runner.py) when the broker's answer is wrong.
"""

import itertools
import socket
from dataclasses import dataclass

from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    Request,
    TextMessage,
)
from wsproto.frame_protocol import FrameProtocol, Opcode

from . import wire
from .grammar import connect_bytes, publish_bytes, subscribe_bytes
from .runner import TIMEOUT, CaseFailure
from .wire import CONNACK, PINGRESP, split_packets

PROTOCOL_ERROR = 1002  # RFC 6455 section 7.4.1
UNSUPPORTED_DATA = 1003  # text frames [MQTT-6.0.0-1]


@dataclass
class WsCase:
    label: str
    #: ("frames", [(kind, bytes)]) where kind is "mqtt" (binary payload,
    #: wsproto frames it), "ping", "raw" (bytes sent as they are).
    steps: list
    #: "answer": CONNACK 0 and the final PINGRESP in binary messages, a
    #: Pong per Ping; "close": a Close frame whose code is in ``codes``,
    #: then the TCP close; "any": half-close, the broker must close.
    expect: str
    codes: frozenset = frozenset()

    def __repr__(self):
        return f"WsCase({self.label!r}, {self.steps!r})"


def _client_frames():
    return FrameProtocol(client=True, extensions=[])


def raw_frame(opcode, payload, fin=True, rsv=0, masked=True):
    """A frame built by wsproto's ``FrameProtocol``, then its first byte
    changed to the opcode/FIN/RSV asked for; ``masked=False`` frames it
    the server's way (no mask), which a client must not do [RFC 6455 5.1]."""
    proto = FrameProtocol(client=masked, extensions=[])
    data = bytearray(proto.send_data(payload, fin=True))
    data[0] = (0x80 if fin else 0) | (rsv << 4) | opcode
    return bytes(data)


def _mqtt_stream(level, client_id, middle):
    return connect_bytes(level, client_id=client_id) + middle + wire.PINGREQ_BYTES


@st.composite
def ws_cases(draw):
    level = draw(st.sampled_from([4, 5]))
    middle = draw(st.sampled_from([
        b"",
        publish_bytes("ws/t", b"payload", 1, 7, level == 5),
        subscribe_bytes(3, [("ws/#", 1)], level == 5),
        wire.PINGREQ_BYTES,
    ]))
    variant = draw(st.sampled_from([
        "split", "split", "split", "fragmented", "text", "rsv", "reserved-opcode", "unmasked",
        "long-control", "fragmented-control", "continuation-first", "close", "bad-close",
        "truncated-frame",
    ]))
    # The MQTT bytes go in as the placeholder None, filled in with the
    # client id at run time.
    if variant in ("split", "fragmented"):
        pieces = draw(st.integers(1, 6))
        cuts = sorted(draw(st.lists(st.integers(0, 40), min_size=pieces - 1,
                                    max_size=pieces - 1)))
        pings = draw(st.lists(st.binary(max_size=20), max_size=2))
        return WsCase(f"ws/{variant}", [(variant, middle, level, cuts, pings)], "answer")
    prefix = (("split", middle, level, [], []),)
    if variant == "text":
        return WsCase("ws/text-frame", [("text", level)], "close",
                      frozenset({UNSUPPORTED_DATA}))
    if variant == "rsv":
        step = ("raw", raw_frame(Opcode.BINARY, b"\xc0\x00", rsv=draw(st.integers(1, 7))))
    elif variant == "reserved-opcode":
        opcode = draw(st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]))
        step = ("raw", raw_frame(opcode, b"\x00"))
    elif variant == "unmasked":
        step = ("raw", raw_frame(Opcode.BINARY, wire.PINGREQ_BYTES, masked=False))
    elif variant == "long-control":
        step = ("raw", raw_frame(Opcode.PING, b"p" * draw(st.integers(126, 300))))
    elif variant == "fragmented-control":
        step = ("raw", raw_frame(Opcode.PING, b"p", fin=False))
    elif variant == "continuation-first":
        step = ("raw", raw_frame(Opcode.CONTINUATION, wire.PINGREQ_BYTES))
    elif variant == "bad-close":
        payload = draw(st.sampled_from([b"\x03", b"\x03\xe7", b"\x03\xed", b"\x03\xee",
                                        b"\x0b\xb8"[:1]]))
        step = ("raw", raw_frame(Opcode.CLOSE, payload))
    elif variant == "close":
        return WsCase("ws/close", [*prefix[:1], ("close",)], "close", frozenset({1000}))
    else:  # truncated-frame
        frame = raw_frame(Opcode.BINARY, b"\x30\x05\x00\x01tab")
        return WsCase("ws/truncated-frame",
                      [("raw", frame[:draw(st.integers(1, len(frame) - 1))])], "any")
    return WsCase(f"ws/{variant}", [step], "close", frozenset({PROTOCOL_ERROR}))


class _WsPeer:
    def __init__(self, port, timeout):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.mqtt = b""
        self.events = []
        self.closed = False

    def handshake(self, case):
        self.send(self.ws.send(Request(host="127.0.0.1", target="/mqtt",
                                       subprotocols=["mqtt"])))
        while not any(isinstance(e, AcceptConnection) for e in self.events):
            if not self.read():
                raise CaseFailure(case, "WebSocket upgrade refused", b"")

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def read(self):
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            self.ws.receive_data(None)
        else:
            self.ws.receive_data(chunk)
        for event in self.ws.events():
            self.events.append(event)
            if isinstance(event, BytesMessage):
                self.mqtt += event.data
        return bool(chunk)


def run_ws_case(port, case, client_id, timeout=TIMEOUT):
    peer = _WsPeer(port, timeout)
    try:
        peer.handshake(case)
        pings = 0
        for step in case.steps:
            kind = step[0]
            if kind in ("split", "fragmented"):
                _, middle, level, cuts, ping_payloads = step
                stream = _mqtt_stream(level, client_id, middle)
                bounds = [0, *[min(c, len(stream)) for c in cuts], len(stream)]
                parts = [stream[a:b] for a, b in itertools.pairwise(bounds)]
                for i, part in enumerate(parts):
                    last = i == len(parts) - 1
                    finished = last or kind == "split"
                    peer.send(peer.ws.send(Message(data=part, message_finished=finished)))
                    if i < len(ping_payloads):
                        peer.send(peer.ws.send(Ping(payload=ping_payloads[i])))
                        pings += 1
            elif kind == "text":
                stream = connect_bytes(step[1], client_id=client_id)
                peer.send(peer.ws.send(Message(data=stream.decode("latin-1"))))
            elif kind == "close":
                peer.send(peer.ws.send(CloseConnection(code=1000)))
            else:
                peer.send(step[1])
        try:
            if case.expect == "any":
                if not peer.closed:
                    peer.sock.shutdown(socket.SHUT_WR)
                while peer.read():
                    pass
                return "closed"
            while not peer.closed:
                if case.expect == "answer" and _answered(peer, pings):
                    break
                peer.read()
        except TimeoutError:
            raise CaseFailure(case, "hang: no answer and no close", peer.mqtt) from None
        if case.expect == "answer":
            packets, _rest = split_packets(peer.mqtt)
            types = [t for t, _, _ in packets]
            if peer.closed or not packets or packets[0][:1] != (CONNACK,) \
                    or packets[0][2][1] != 0 or PINGRESP not in types:
                raise CaseFailure(case, "MQTT over WebSocket not answered", peer.mqtt)
            return "answered"
        closes = [e for e in peer.events if isinstance(e, CloseConnection)]
        if any(isinstance(e, TextMessage) for e in peer.events):
            raise CaseFailure(case, "the broker sent a text frame", peer.mqtt)
        if not closes or closes[0].code not in case.codes:
            raise CaseFailure(case, f"wanted a Close with one of {sorted(case.codes)}, got "
                              f"{[c.code for c in closes]}", peer.mqtt)
        return f"close {closes[0].code}"
    finally:
        peer.sock.close()


def _answered(peer, pings):
    packets, _rest = split_packets(peer.mqtt)
    pongs = sum(1 for e in peer.events if isinstance(e, Pong))
    return pongs >= pings and any(t == PINGRESP for t, _, _ in packets)
