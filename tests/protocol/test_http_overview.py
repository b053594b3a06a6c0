"""
Our overview additions through ``StubTreq`` on the test clock:
``/stats``, ``/listeners`` (connection counts per listener),
``/metrics/history`` (the ring and its rates) and ``/bridge-status``.
"""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.core.connection import ClientConnection
from nanomq_twisted.core.info import TransportInfo
from nanomq_twisted.http.history import INTERVAL, SPAN, HistoryService, MetricsHistory

from .http_support import Harness
from .test_http_bridges import BRIDGE

LISTENERS = """
listeners.tcp.second { bind = "127.0.0.1:1884" }
listeners.ws { bind = "127.0.0.1:8083/mqtt" }
"""


class StatsTests(SynchronousTestCase):
    def test_counts_of_the_golden_population(self):
        h = Harness()
        h.populate()
        h.broker.publish_internal("keep/one", b"x", h.clock.seconds(), retain=True)
        h.broker.publish_internal("keep/two", b"y", h.clock.seconds(), retain=True)
        status, body = h.json("GET", "/api/v4/stats")
        self.assertEqual(status, 200)
        data = body["data"]
        # Online: alice, v31, bob, carol, watcher; dave's session is offline.
        self.assertEqual((data["connections"], data["sessions"]), (5, 6))
        # alice 2, v31 1, bob 1, carol 1, dave 1, watcher 1.
        self.assertEqual(data["subscriptions"], 7)
        self.assertEqual((data["retained"], data["shared_groups"]), (2, 1))
        self.assertEqual(data["uptime"], 0)
        h.clock.advance(61)
        self.assertEqual(h.json("GET", "/api/v4/stats")[1]["data"]["uptime"], 61)

    def test_needs_credentials(self):
        status, body = Harness().json("GET", "/api/v4/stats", auth=None)
        self.assertEqual((status, body), (401, {"code": 104}))


class ListenerTests(SynchronousTestCase):
    def connect_through(self, h, listener, client_id):
        peer = h.peer(client_id)
        peer.conn = ClientConnection(h.broker, peer.sink,
                                     TransportInfo(("127.0.0.1", 50001), listener=listener))
        peer.connect()
        return peer

    def test_connections_counted_per_listener(self):
        h = Harness(LISTENERS)
        self.connect_through(h, "tcp", "a")
        self.connect_through(h, "tcp", "b")
        self.connect_through(h, "ws", "c")
        gone = self.connect_through(h, "tcp.second", "d")
        gone.lost()
        status, body = h.json("GET", "/api/v4/listeners")
        self.assertEqual(status, 200)
        by_name = {item["name"]: item for item in body["data"]}
        self.assertEqual(sorted(by_name), ["tcp", "tcp.second", "ws"])
        self.assertEqual(
            {name: (item["type"], item["connections"]) for name, item in by_name.items()},
            {"tcp": ("tcp", 2), "tcp.second": ("tcp", 0), "ws": ("ws", 1)})
        ws = by_name["ws"]
        # Never started here: the configured port, not running.
        self.assertEqual((ws["host"], ws["port"], ws["path"], ws["running"]),
                         ("127.0.0.1", 8083, "/mqtt", False))
        self.assertIsNone(by_name["tcp"]["path"])


class HistoryTests(SynchronousTestCase):
    def test_rates_between_samples(self):
        h = Harness()
        h.populate()
        history = h.app.history
        history.sample(h.clock.seconds())
        watcher = h.peers["watcher"]
        watcher.received()
        for n in range(10):
            h.broker.publish_internal("topic3", b"%d" % n, h.clock.seconds())
        h.clock.advance(INTERVAL)
        history.sample(h.clock.seconds())
        status, body = h.json("GET", "/api/v4/metrics/history")
        self.assertEqual(status, 200)
        data = body["data"]
        self.assertEqual((data["interval"], data["span"]), (INTERVAL, SPAN))
        first, second = data["samples"]
        self.assertEqual(second["time"] - first["time"], INTERVAL)
        self.assertEqual(second["received"] - first["received"], 10)
        self.assertEqual(second["received_rate"], 10 / INTERVAL)
        self.assertEqual(second["sent_rate"], 10 / INTERVAL)
        self.assertEqual((second["connections"], second["sessions"]), (5, 6))

    def test_since(self):
        h = Harness()
        history = h.app.history
        for _ in range(3):
            h.clock.advance(INTERVAL)
            history.sample(h.clock.seconds())
        times = [s["time"] for s in history.samples]
        status, body = h.json("GET", f"/api/v4/metrics/history?since={times[0]}")
        self.assertEqual((status, [s["time"] for s in body["data"]["samples"]]),
                         (200, times[1:]))
        self.assertEqual(h.json("GET", "/api/v4/metrics/history?since=soon"),
                         (400, {"code": 108}))

    def test_ring_keeps_the_span(self):
        h = Harness()
        history = h.app.history
        for _ in range(300):
            h.clock.advance(INTERVAL)
            history.sample(h.clock.seconds())
        samples = h.json("GET", "/api/v4/metrics/history")[1]["data"]["samples"]
        self.assertEqual(len(samples), int(SPAN / INTERVAL) + 1)
        self.assertEqual(samples[-1]["time"] - samples[0]["time"], SPAN)

    def test_service_samples_on_the_clock(self):
        h = Harness()
        history = MetricsHistory(h.broker, h.clock.seconds())
        service = HistoryService(history, h.clock)
        service.startService()
        self.assertEqual(len(history.samples), 1)
        h.clock.advance(INTERVAL)
        self.assertEqual(len(history.samples), 2)
        service.stopService()
        h.clock.advance(INTERVAL)
        self.assertEqual((len(history.samples), h.clock.getDelayedCalls()), (2, []))


class BridgeStatusTests(SynchronousTestCase):
    def test_configured_bridge_reported_down(self):
        h = Harness(BRIDGE)
        status, body = h.json("GET", "/api/v4/bridge-status")
        self.assertEqual(status, 200)
        self.assertEqual(body["data"], [{
            "name": "emqx", "server": "mqtt-tcp://127.0.0.1:1883", "enabled": True,
            "connected": 0, "connections": 1, "sent": 0, "received": 0, "dropped": 0,
            "reconnects": 0}])

    def test_no_bridges(self):
        self.assertEqual(Harness().json("GET", "/api/v4/bridge-status"),
                         (200, {"code": 0, "data": []}))
