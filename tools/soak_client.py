# -*- test-case-name: tests.shipped.test_soak -*-
"""
The soak's raw MQTT client: one asyncio Protocol per connection, framing
by hand with ``bench/mqttwire.py`` (the benchmark's own wire code, not the
broker's codec and not paho), over TCP or WebSocket (wsproto drives the
WebSocket framing; the MQTT bytes inside are ours).

Hundreds of these share one event loop, so the generator stays cheap next
to the broker.  What a client must remember between connections to keep
QoS 2 exactly once lives in `Session` [MQTT-4.3.3]: the packet ids of
QoS 2 messages it received and has not seen released.  A message is
handed on when its PUBLISH first arrives (method A of the specification's
figure 4.3); a resent PUBLISH with an id still in the set is answered with
PUBREC again and not handed on.
"""

import asyncio
import socket

import mqttwire as wire  # bench/, put on sys.path by tools/soak.py
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
)
from wsproto.events import Message as WsMessage

HOST = "127.0.0.1"
DISCONNECT = wire.DISCONNECT
#: Keepalive of every raw client (paho's default).  A client that only
#: receives QoS 0 sends nothing on its own, so each connection sends
#: PINGREQ every half keepalive; without it the broker rightly closes it
#: after 1.25 x keepalive [MQTT-3.1.2-24] (the first 30-minute soak lost
#: its QoS 0 subscribers that way, at 750 s with keepalive 600).
KEEPALIVE = 60


class Session:
    """Client-side session state that outlives a connection."""

    def __init__(self, client_id):
        self.client_id = client_id
        #: QoS 2 packet ids received whose PUBREL has not come yet.
        self.awaiting_rel = set()


class Connection(asyncio.Protocol):
    """One MQTT connection.  ``on_message(topic, payload, qos, retain)``
    is called once per message handed on (see the module docstring)."""

    def __init__(self, session, connect, version, on_message, ws):
        loop = asyncio.get_running_loop()
        self.session = session
        self.version = version
        self._connect = connect
        self.on_message = on_message
        self.connack = loop.create_future()
        self.closed = loop.create_future()
        self.transport = None
        self.buf = bytearray()
        self.subacks = {}  # pid -> future of the SUBACK codes
        self.pending = {}  # pid -> (on_ack, on_done) of an outgoing PUBLISH
        self.pids = set()  # outgoing ids in use
        self._next_pid = 0
        self.server_disconnect = None  # 5.0 DISCONNECT reason from the broker
        self.ws = WSConnection(ConnectionType.CLIENT) if ws else None
        self._ws_open = False
        self._ws_queue = []
        self._out = []

    # -- transport ---------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ws is not None:
            transport.write(self.ws.send(Request(host=HOST, target="/mqtt",
                                                 subprotocols=["mqtt"])))
        self.write(self._connect)
        self._ping = asyncio.get_running_loop().call_later(KEEPALIVE / 2, self._pingreq)

    def _pingreq(self):
        if self.closed.done():
            return
        self.write(wire.PINGREQ)
        self._ping = asyncio.get_running_loop().call_later(KEEPALIVE / 2, self._pingreq)

    def write(self, data):
        """Queue ``data``; everything queued in one turn of the event loop
        goes out in one send (one WebSocket message): a syscall per packet
        would make the generator cost as much as the broker."""
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(data)

    def _flush(self):
        data = b"".join(self._out)
        self._out.clear()
        if self.transport is None or self.transport.is_closing():
            return
        if self.ws is None:
            self.transport.write(data)
        elif self._ws_open:
            self.transport.write(self.ws.send(WsMessage(data=data)))
        else:
            self._ws_queue.append(data)

    def data_received(self, data):
        if self.ws is None:
            self._feed(data)
            return
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self._ws_open = True
                queued, self._ws_queue = self._ws_queue, []
                if queued:
                    self.transport.write(self.ws.send(WsMessage(data=b"".join(queued))))
            elif isinstance(event, BytesMessage):
                self._feed(event.data)
            elif isinstance(event, Ping):
                self.transport.write(self.ws.send(event.response()))
            elif isinstance(event, (CloseConnection, RejectConnection)):
                self.transport.close()

    def connection_lost(self, exc):
        self._ping.cancel()
        if not self.connack.done():
            self.connack.set_exception(ConnectionError(f"closed before CONNACK: {exc}"))
        for future in self.subacks.values():
            if not future.done():
                future.set_exception(ConnectionError("closed before SUBACK"))
        self.subacks.clear()
        if not self.closed.done():
            self.closed.set_result(exc)

    # -- MQTT --------------------------------------------------------------

    def _feed(self, data):
        buf = self.buf
        buf += data
        packets, consumed = wire.walk(buf)
        for first, start, end in packets:
            self._packet(first, start, end)
        del buf[:consumed]

    def _pid_at(self, start):
        return (self.buf[start] << 8) | self.buf[start + 1]

    def _reason(self, start, end):
        return self.buf[start + 2] if end - start > 2 else 0

    def _packet(self, first, start, end):
        kind = first >> 4
        buf = self.buf
        if kind == 3:
            qos = (first >> 1) & 3
            topic, pid, at = wire.publish_fields(buf, first, start, end, self.version)
            payload = bytes(buf[at:end])
            if qos == 2:
                if pid not in self.session.awaiting_rel:
                    self.session.awaiting_rel.add(pid)
                    self.on_message(topic, payload, qos, first & 1)
                self.write(wire.ack_packet(wire.PUBREC, pid))
                return
            self.on_message(topic, payload, qos, first & 1)
            if qos == 1:
                self.write(wire.ack_packet(wire.PUBACK, pid))
        elif kind in (4, 5, 7):  # PUBACK, PUBREC, PUBCOMP
            pid = self._pid_at(start)
            entry = self.pending.get(pid)
            if entry is None:
                return
            ok = self._reason(start, end) < 0x80
            if kind == 5:
                if ok:
                    self.write(wire.ack_packet(wire.PUBREL, pid))
                entry[0](ok)
                if ok:
                    return
            elif kind == 4:
                entry[0](ok)
            del self.pending[pid]
            self.pids.discard(pid)
            entry[1](ok)
        elif kind == 6:  # PUBREL
            pid = self._pid_at(start)
            self.session.awaiting_rel.discard(pid)
            self.write(wire.ack_packet(wire.PUBCOMP, pid))
        elif kind == 2:
            if not self.connack.done():
                self.connack.set_result((buf[start] & 1, buf[start + 1]))
        elif kind == 9:
            pid = self._pid_at(start)
            skip = 0
            if self.version == 5:
                skip = 1 + buf[start + 2]  # property length (< 128 from us)
            future = self.subacks.pop(pid, None)
            if future is not None and not future.done():
                future.set_result(bytes(buf[start + 2 + skip:end]))
        elif kind == 14:
            self.server_disconnect = buf[start] if end > start else 0

    def _pid(self):
        for _ in range(65535):
            self._next_pid = self._next_pid % 65535 + 1
            if self._next_pid not in self.pids:
                self.pids.add(self._next_pid)
                return self._next_pid
        raise RuntimeError("no free packet id")

    def subscribe(self, filters):
        """SUBSCRIBE ``[(filter, qos), ...]``; a future of the codes."""
        pid = self._pid()
        self.pids.discard(pid)
        future = asyncio.get_running_loop().create_future()
        self.subacks[pid] = future
        self.write(wire.subscribe_packet(pid, filters, self.version))
        return future

    def publish(self, topic, payload, qos=0, retain=False, on_ack=None, on_done=None):
        """PUBLISH; for QoS 1/2 ``on_ack(ok)`` runs at PUBACK/PUBREC (the
        broker took the message) and ``on_done(ok)`` at PUBACK/PUBCOMP
        (the packet id is free again)."""
        pid = 0
        if qos:
            pid = self._pid()
            self.pending[pid] = (on_ack or _ignore, on_done or _ignore)
        self.write(wire.publish_packet(topic, payload, qos, pid, retain, self.version))

    def disconnect(self):
        """A normal DISCONNECT, then close."""
        self.write(DISCONNECT)
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def abort(self):
        """Drop the TCP connection without DISCONNECT (a crashed client)."""
        if self.transport is not None:
            self.transport.abort()

    @property
    def is_open(self):
        return self.transport is not None and not self.closed.done()


def _ignore(_ok):
    return None


async def connect(port, client_id, on_message, *, version=4, ws=False, clean=True,
                  session_expiry=None, session=None, timeout=60.0):
    """Open a connection and wait for CONNACK; returns ``(connection,
    session_present)``.  Raises ConnectionError when refused."""
    loop = asyncio.get_running_loop()
    packet = wire.connect_packet(client_id, KEEPALIVE, clean=clean, version=version,
                                 session_expiry=session_expiry)
    session = session or Session(client_id)
    _, conn = await asyncio.wait_for(
        loop.create_connection(lambda: Connection(session, packet, version, on_message, ws), HOST, port),
        timeout)
    try:
        present, code = await asyncio.wait_for(asyncio.shield(conn.connack), timeout)
    except BaseException:
        conn.abort()
        raise
    if code != 0:
        conn.abort()
        raise ConnectionError(f"CONNACK {code:#x} for {client_id}")
    return conn, bool(present)
