"""
Shared helpers for end-to-end tests.

``start_broker`` builds the real service tree from a HOCON snippet with its
TCP listener on ``127.0.0.1:0`` and stops it in the test's cleanup, so no
test leaves a listener behind.  Blocking clients (paho-mqtt) run inside
``deferToThread`` scenarios; they wait on ``queue.Queue``/``threading.Event``
with timeouts, never on ``sleep``.
"""

import json
import queue
import socket
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from twisted.internet import defer, protocol, reactor, task, threads

from nanomq_twisted.config import loads
from nanomq_twisted.tap import make_app


def free_port():
    """A loopback TCP port nobody listens on right now (for a process the
    test starts, which must be told its port in advance)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

TIMEOUT = 10.0

BASE_CONF = """
listeners.tcp { bind = "127.0.0.1:0" }
"""


class RunningBroker:
    """A started application (app.py ``BrokerApp``): its parts are the
    app's attributes (``app.rules``, ``app.bridges``, ``app.api``, ...)."""

    def __init__(self, app):
        self.app = app
        self.service = app.service
        self.broker = app.broker
        self.port = None

    def listener(self, name="tcp"):
        return self.app.listeners[name]


def start_app(testcase, config):
    """Start the application for ``config``; stopped in cleanup."""
    app = make_app(config, reactor)
    app.service.startService()
    testcase.addCleanup(app.service.stopService)
    return app


@defer.inlineCallbacks
def start_broker(testcase, conf=""):
    """Start a broker for ``testcase``; ``conf`` is appended to BASE_CONF."""
    config = loads(BASE_CONF + conf, path="<test>")
    running = RunningBroker(start_app(testcase, config))
    running.port = yield running.app.port("tcp")
    return running


@defer.inlineCallbacks
def play(testcase, scenario, conf=""):
    """Start a broker with ``conf``, then run ``scenario(clients)`` in a
    thread; every client it makes is stopped in cleanup.  Returns the
    ``RunningBroker`` (still running until cleanup)."""
    running = yield start_broker(testcase, conf)
    clients = Clients(testcase, running.port)
    yield in_thread(scenario, clients)
    return running


def in_thread(fn, *args, **kwargs):
    """Run a blocking scenario off the reactor thread."""
    return threads.deferToThread(fn, *args, **kwargs)


PROTOCOLS = {3: mqtt.MQTTv31, 4: mqtt.MQTTv311, 5: mqtt.MQTTv5}


class Client:
    """A paho-mqtt client whose events land in queues a scenario can wait
    on.  ``protocol`` is 3 (3.1), 4 (3.1.1) or 5."""

    def __init__(self, port, client_id="", protocol=4, clean=True, **kwargs):
        self.port = port
        self.protocol = protocol
        version = PROTOCOLS[protocol]
        if protocol == 5:
            self.paho = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version, **kwargs
            )
        else:
            self.paho = mqtt.Client(
                CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=version,
                clean_session=clean,
                **kwargs,
            )
        # Tests never want paho's automatic reconnect (it would race a
        # takeover, for one): push it out of any test's lifetime.
        self.paho.reconnect_delay_set(60, 60)
        self.clean = clean
        self.messages = queue.Queue()
        self.connacks = queue.Queue()
        self.disconnects = queue.Queue()
        self.subacks = queue.Queue()
        self.paho.on_message = lambda c, u, m: self.messages.put(m)
        self.paho.on_connect = lambda c, u, f, rc, p: self.connacks.put((f, rc, p))
        self.paho.on_disconnect = lambda c, u, f, rc, p: self.disconnects.put((rc, p))
        self.paho.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put((mid, rcs))

    def connect(self, keepalive=60, properties=None, expect_success=True, **kwargs):
        if self.protocol == 5:
            kwargs.setdefault("clean_start", self.clean)
        self.paho.connect(
            "127.0.0.1", self.port, keepalive=keepalive, properties=properties, **kwargs
        )
        self.paho.loop_start()
        flags, code, props = self.connacks.get(timeout=TIMEOUT)
        if expect_success and code != 0:
            raise AssertionError(f"CONNACK refused: {code!r}")
        return flags, code, props

    def subscribe(self, topic, qos=0, **kwargs):
        self.paho.subscribe(topic, qos, **kwargs)
        return self.subacks.get(timeout=TIMEOUT)[1]

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.paho.publish(topic, payload, qos, retain, properties)
        info.wait_for_publish(TIMEOUT)
        if not info.is_published():
            raise AssertionError(f"publish to {topic!r} not acknowledged")
        return info

    def expect(self, timeout=TIMEOUT):
        return self.messages.get(timeout=timeout)

    def expect_sentinel(self, topic, timeout=TIMEOUT):
        """Assert that the next message is on ``topic``: publish a sentinel
        after an action that must deliver nothing, then call this; anything
        delivered by mistake arrives first (per-session ordering,
        [MQTT-4.6.0-6]), so no fixed wait is needed."""
        message = self.messages.get(timeout=timeout)
        if message.topic != topic:
            raise AssertionError(
                f"unexpected message on {message.topic!r}: {message.payload!r}"
            )
        return message

    def wait_status(self, client_id, status="offline", timeout=TIMEOUT):
        """Read ``$SYS/brokers/client_status`` notices (this client must be
        subscribed to them) until ``client_id`` is reported ``status``:
        proof that the broker has processed that connect/close."""
        while True:
            message = self.messages.get(timeout=timeout)
            if message.topic != "$SYS/brokers/client_status":
                continue
            body = json.loads(message.payload)
            if body["client_id"] == client_id and body["status"] == status:
                return body

    def disconnect(self):
        self.paho.disconnect()
        self.paho.loop_stop()

    def drop(self):
        """Close the socket without DISCONNECT (an abnormal close)."""
        self.paho.loop_stop()
        sock = self.paho.socket()
        if sock is not None:
            sock.close()


class RawClient:
    """A blocking raw-socket MQTT peer for byte-level scenarios.

    Packets are framed by hand (fixed header + Variable Byte Integer), never
    by the project's codec, so what the broker sends is checked against
    bytes the test writes itself.
    """

    def __init__(self, port, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed with {self._buf!r} buffered")
            self._buf += chunk

    def recv_packet(self):
        """One whole packet as bytes (fixed header included)."""
        self._fill(2)
        length = 0
        shift = 0
        i = 1
        while True:
            self._fill(i + 1)
            byte = self._buf[i]
            i += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        self._fill(i + length)
        packet, self._buf = self._buf[: i + length], self._buf[i + length :]
        return packet

    def recv_until_closed(self):
        """Everything the broker sends until it closes the connection."""
        data, self._buf = self._buf, b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return data
            data += chunk

    def close(self):
        self.sock.close()


class Clients:
    """Makes clients and guarantees they are all stopped afterwards."""

    def __init__(self, testcase, port):
        self.port = port
        self.made = []
        testcase.addCleanup(self.stop_all)

    def __call__(self, client_id="", protocol=4, **kwargs):
        client = Client(self.port, client_id, protocol, **kwargs)
        self.made.append(client)
        return client

    def raw(self):
        client = RawClient(self.port)
        self.made.append(client)
        return client

    def stop_all(self):
        def stop():
            for client in self.made:
                if isinstance(client, RawClient):
                    client.close()
                    continue
                # paho reports "not connected" as a return code, no raise.
                client.paho.disconnect()
                client.paho.loop_stop()

        return threads.deferToThread(stop)


class Dribbler(protocol.Protocol):
    """A slowloris: sends ``data`` one byte per ``interval`` seconds (on
    the reactor) until the peer closes; ``closed`` fires then."""

    def __init__(self, data, interval):
        self.data = data
        self.interval = interval
        self.sent = 0
        self.received = b""
        self.closed = defer.Deferred()
        self._loop = None

    def connectionMade(self):
        self._loop = task.LoopingCall(self._one)
        self._loop.start(self.interval)

    def _one(self):
        if self.sent < len(self.data):
            self.transport.write(self.data[self.sent:self.sent + 1])
            self.sent += 1

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self.closed.callback(None)


__all__ = [
    "TIMEOUT",
    "Client",
    "Clients",
    "Dribbler",
    "RawClient",
    "in_thread",
    "play",
    "start_app",
    "start_broker",
    "threading",
]
