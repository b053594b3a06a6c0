"""
Running fuzz cases against a broker on loopback, with blocking sockets
(call from a thread when the broker runs on this process's reactor).

``run_case(port, case, client_id)`` sends one ``grammar.Case`` and checks
the answer against its ``Expect``; ``check_alive(port, client_id)``
connects a fresh client (CONNECT, PINGREQ, DISCONNECT).  Both raise
``CaseFailure`` with what was sent and received.  A read that times out
is a hang: every case ends with the broker either answering a final
PINGREQ or closing the connection.
"""

import socket

from . import wire
from .grammar import connect_bytes
from .wire import CONNACK, DISCONNECT, PINGRESP, PUBLISH, split_packets

TIMEOUT = 10.0


class CaseFailure(AssertionError):
    def __init__(self, case, why, received=b""):
        super().__init__(f"{why}: {case!r}, received {received!r}")
        self.case = case
        self.why = why
        self.received = received


class Peer:
    """A blocking socket that reads whole MQTT packets."""

    def __init__(self, port, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buffer = b""
        self.raw = b""
        self.closed = False

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.closed = True

    def read_more(self):
        """False at EOF (a reset counts as EOF); ``socket.timeout`` = hang."""
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buffer += chunk
        self.raw += chunk
        return True

    def packets_until(self, done):
        """Packets until ``done(packets)`` or EOF; (packets, closed)."""
        packets = []
        while True:
            whole, self.buffer = split_packets(self.buffer)
            packets.extend(whole)
            if done(packets):
                return packets, False
            if self.closed or not self.read_more():
                whole, self.buffer = split_packets(self.buffer)
                packets.extend(whole)
                return packets, True

    def close(self):
        self.sock.close()


def _connack_code(body):
    return body[1] if len(body) >= 2 else None


def _connect(peer, case, level, client_id):
    peer.send(connect_bytes(level, client_id=client_id))
    packets, closed = peer.packets_until(lambda p: any(t == CONNACK for t, _, _ in p))
    acks = [b for t, _, b in packets if t == CONNACK]
    if closed or not acks or _connack_code(acks[0]) != 0:
        raise CaseFailure(case, "the runner's own CONNECT was refused", peer.raw)


def run_case(port, case, client_id, timeout=TIMEOUT):
    """Send ``case``; returns a short outcome text; ``CaseFailure`` when the
    broker's answer breaks the case's ``Expect``."""
    peer = Peer(port, timeout)
    try:
        if case.connected:
            _connect(peer, case, case.level, client_id)
            peer.raw = b""
        expect = case.expect
        try:
            if expect.kind == "any":
                peer.send(case.data)
                if not peer.closed:
                    peer.sock.shutdown(socket.SHUT_WR)
                peer.packets_until(lambda p: False)
                return "closed"
            peer.send(case.data + wire.PINGREQ_BYTES)
            # The runner's PINGRESP may overtake an acknowledgement the
            # broker holds for its store (``sqlite.sync_ack``): the spec
            # orders acknowledgements among themselves, not against
            # PINGRESP.  So wait for both.
            wanted = sum(1 for t, _ in expect.answers if t == PINGRESP) + 1
            others = sum(1 for t, _ in expect.answers if t != PINGRESP)

            def complete(p):
                pings = sum(1 for t, _, _ in p if t == PINGRESP)
                rest = sum(1 for t, _, _ in p if t not in (PINGRESP, PUBLISH))
                return pings >= wanted and (expect.kind != "answer" or rest >= others)

            packets, closed = peer.packets_until(complete)
        except TimeoutError:
            raise CaseFailure(case, "hang: no answer and no close", peer.raw) from None
        # Messages routed to the subscriptions a case made may interleave.
        answers = [(t, f, b) for t, f, b in packets if t != PUBLISH]
        if expect.kind == "answer":
            if closed:
                raise CaseFailure(case, "closed instead of answering", peer.raw)
            # Without the runner's PINGRESP (the last one).
            last_ping = max(i for i, (t, _, _) in enumerate(answers) if t == PINGRESP)
            got = answers[:last_ping] + answers[last_ping + 1:]
            if len(got) != len(expect.answers):
                raise CaseFailure(case, "unexpected packets", peer.raw)
            for (ptype, flags, body), (want, check) in zip(got, expect.answers):
                if ptype != want or not check(flags, body):
                    raise CaseFailure(case, f"wrong answer, wanted type {want}", peer.raw)
            return "answered"
        # expect.kind == "close"
        if not closed:
            raise CaseFailure(case, "not refused: the connection stayed open", peer.raw)
        return _judge_refusal(case, answers, peer.raw)
    finally:
        peer.close()


def _judge_refusal(case, answers, raw):
    expect = case.expect
    v5 = case.level == 5
    if not answers:
        if expect.silent or (case.connected and not v5):
            return "closed"
        raise CaseFailure(case, "closed without the reason code", raw)
    if len(answers) > 1:
        raise CaseFailure(case, "more than one packet before the close", raw)
    (ptype, _flags, body), = answers
    if case.connected:
        if not v5:
            raise CaseFailure(case, "3.1.1 has no reason codes: expected a bare close", raw)
        if ptype != DISCONNECT or not body or body[0] not in expect.reasons:
            raise CaseFailure(case, f"wanted DISCONNECT with one of "
                              f"{sorted(hex(r) for r in expect.reasons)}", raw)
        return f"DISCONNECT 0x{body[0]:02x}"
    if ptype != CONNACK or _connack_code(body) not in expect.reasons:
        raise CaseFailure(case, f"wanted CONNACK with one of "
                          f"{sorted(hex(r) for r in expect.reasons)}", raw)
    return f"CONNACK 0x{body[1]:02x}"


def check_alive(port, client_id, timeout=TIMEOUT):
    """A fresh 3.1.1 client is served: CONNACK 0, PINGRESP; else
    ``AssertionError``."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as error:
        raise AssertionError(f"broker not accepting connections: {error}") from None
    try:
        sock.sendall(connect_bytes(4, client_id=client_id) + wire.PINGREQ_BYTES)
        data = b""
        while len(data) < 6:
            chunk = sock.recv(64)
            if not chunk:
                break
            data += chunk
        if data[:6] != b"\x20\x02\x00\x00\xd0\x00":
            raise AssertionError(f"a fresh client got {data!r} instead of CONNACK + PINGRESP")
        sock.sendall(b"\xe0\x00")
    except TimeoutError:
        raise AssertionError("a fresh client got no answer: broker hung") from None
    finally:
        sock.close()
