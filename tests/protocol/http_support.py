"""
Helpers for the REST API tests: a real ``Broker`` (pure core) with the
Klein API in front of it through ``treq.testing.StubTreq``, and MQTT
clients driven by hand through ``ClientConnection`` with a fake sink.

The population mirrors the clients of the golden transcript
(`../shared/golden/transcript.md`) so its requests can be replayed.
"""

import base64
import json

from treq.testing import StubTreq
from twisted.internet.task import Clock

from nanomq_twisted.app import BrokerApp
from nanomq_twisted.config import loads
from nanomq_twisted.core.connection import ClientConnection
from nanomq_twisted.core.info import TransportInfo
from nanomq_twisted.mqtt.codec import Decoder
from nanomq_twisted.mqtt.packets import (
    Connect,
    Publish,
    Subscribe,
    SubscriptionOptions,
    Will,
)

from ..sinks import FakeSink

BASE_CONF = 'listeners.tcp { bind = "127.0.0.1:1883" }\nhttp_server { port = 8081 }\n'

BASIC = b"Basic " + base64.b64encode(b"admin:public")


class Peer:
    """One MQTT client of the core, driven by hand."""

    def __init__(self, harness, client_id, level=4, clean=True, username=None,
                 keepalive=60, properties=None, will=None):
        self.harness = harness
        self.sink = FakeSink()
        self.conn = ClientConnection(harness.broker, self.sink, TransportInfo(("127.0.0.1", 50000)))
        self.decoder = Decoder(protocol_level=level)
        self.level = level
        self.connect_packet = Connect(
            client_id=client_id,
            protocol_level=level,
            protocol_name="MQIsdp" if level == 3 else "MQTT",
            clean_start=clean,
            keepalive=keepalive,
            username=username,
            will=will,
            properties=properties or {},
        )
        self._next_id = 1

    def connect(self):
        self.conn.receive(self.connect_packet, self.harness.clock.seconds())
        return self.received()

    def received(self):
        self.harness.broker.flush()
        packets = list(self.decoder.feed(bytes(self.sink.data)))
        del self.sink.data[:]
        return packets

    def subscribe(self, topic_filter, qos=0):
        pid = self._next_id
        self._next_id += 1
        self.conn.receive(
            Subscribe(pid, (SubscriptionOptions(topic_filter, qos),)),
            self.harness.clock.seconds(),
        )
        return self.received()

    def publishes(self):
        return [p for p in self.received() if isinstance(p, Publish)]

    def lost(self):
        self.conn.connection_lost(self.harness.clock.seconds())


class Harness:
    """A broker, its REST API and a synchronous request helper."""

    def __init__(self, conf="", path="<test>", clock=None):
        self.config = loads(BASE_CONF + conf, path=path)
        #: A ``Clock``, or a ``MemoryReactorClock`` where a test starts
        #: services that dial out (bridges).
        self.clock = Clock() if clock is None else clock
        self.clock.advance(1000)
        #: The whole application on the test clock, never started: its
        #: REST API (``app.api``) is what the requests reach.
        self.app = BrokerApp(self.config, self.clock)
        self.broker = self.app.broker
        self.broker.sys_events = False
        self.api = self.app.api
        self.stopped = []
        self.app.stop = lambda: self.stopped.append(True)
        self.treq = StubTreq(self.api.app.resource())

    def request(self, method, path, body=None, auth=BASIC, headers=None):
        """``(status, headers, body bytes)`` of one request."""
        all_headers = dict(headers or {})
        if auth is not None:
            all_headers[b"Authorization"] = [auth]
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
        elif isinstance(body, str):
            body = body.encode("utf-8")
        out = []
        # Answers as sent: a redirect (the dashboard's) is not followed.
        d = self.treq.request(method, "http://127.0.0.1:8081" + path,
                              headers=all_headers, data=body, allow_redirects=False)
        d.addCallback(lambda response: out.append(response) or response.content())
        d.addCallback(out.append)
        self.treq.flush()
        if len(out) != 2:
            raise AssertionError(f"no response to {method} {path}: {out!r}")
        response, content = out
        return response.code, response.headers, content

    def json(self, method, path, body=None, **kwargs):
        status, _headers, content = self.request(method, path, body, **kwargs)
        return status, json.loads(content) if content else None

    def peer(self, client_id, **kwargs):
        return Peer(self, client_id, **kwargs)

    def populate(self):
        """The golden transcript's clients (those the core can have)."""
        alice = self.peer("sub_v5_alice", level=5, username="alice")
        alice.connect()
        alice.subscribe("sensor/+/temp", 1)
        alice.subscribe("cmd/#", 1)
        v31 = self.peer("tcp_v31_client", level=3, username="alice", keepalive=120)
        v31.connect()
        v31.subscribe("sensor/+/temp", 2)
        bob = self.peer("sub_persist_bob", level=4, clean=False, username="bob", keepalive=45)
        bob.connect()
        bob.subscribe("persist/topic", 2)
        carol = self.peer("sub_shared_carol", level=5, username="carol")
        carol.connect()
        carol.subscribe("$share/group1/shared/topic", 0)
        dave = self.peer("persist_offline_v5", level=5, username="dave",
                         properties={"session_expiry_interval": 3600},
                         will=Will("will/dave", b"bye", 0, False, {}))
        dave.connect()
        dave.subscribe("offline/queue", 1)
        dave.conn.will = None
        dave.lost()
        watcher = self.peer("sub_repub_watch", level=5)
        watcher.connect()
        watcher.subscribe("topic3", 0)
        self.peers = {
            "alice": alice, "v31": v31, "bob": bob, "carol": carol,
            "dave": dave, "watcher": watcher,
        }
        return self.peers
