# -*- test-case-name: tests.shipped.test_soak -*-
"""
The soak's crowd: clients that come and go, retained messages, REST polls.

`Churn` runs ``n`` client slots.  Each slot, over and over: connects (TCP
or WebSocket, 3.1.1 or 5.0; a few 5.0 ones leave a session that expires a
couple of seconds after they go), then either checks the retained
messages or chats on a churn topic at QoS 0/1, stays a while, and goes (a
DISCONNECT, or the TCP connection dropped), then waits a while.  Ids are
per slot, so the broker's client table does not grow with time.

The retained check: a `Retained` publisher keeps ``n`` retained topics
``soak/ret/<k>`` updated at QoS 1 with a version number.  A slot that
subscribes to ``soak/ret/#`` notes the version acknowledged for each topic
when it sends SUBSCRIBE; it must then get, for every topic, that version
or a newer one [MQTT-3.3.1-6, MQTT-3.3.1-9].  A check that does not finish
within its timeout counts as failed.

`rest_poll` GETs /api/v4/clients, /api/v4/prometheus and /api/v4/brokers
with the shipped admin/public credentials, one after the other (the
shipped ``limit_conn = 2``), and counts the answers.
"""

import asyncio
import base64
import json
import urllib.error
import urllib.request

from soak_client import connect
from soak_flows import sleep_or_stop

GROUPS = 50
RETAINED_TIMEOUT = 60.0
REST_PATHS = ("/api/v4/clients", "/api/v4/prometheus", "/api/v4/brokers")


class Retained:
    """Keeps ``count`` retained topics updated; knows what was acknowledged."""

    def __init__(self, conn, count, rate):
        self.conn = conn
        self.count = count
        self.rate = rate
        self.sent = [-1] * count
        self.acked = [-1] * count
        self.published = 0
        self._next = 0

    def _publish(self, k):
        version = self.sent[k] + 1
        self.sent[k] = version
        self.published += 1

        def on_ack(ok, k=k, version=version):
            if ok and version > self.acked[k]:
                self.acked[k] = version
        self.conn.publish(f"soak/ret/{k}", b"ret %d %d" % (k, version), 1, retain=True,
                          on_ack=on_ack)

    async def seed(self, timeout=60.0):
        for k in range(self.count):
            self._publish(k)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while min(self.acked) < 0:
            if loop.time() > deadline:
                raise TimeoutError("retained seed not acknowledged")
            await asyncio.sleep(0.05)

    async def run(self, stop):
        while not await sleep_or_stop(stop, 1.0 / self.rate):
            if self.conn.is_open and len(self.conn.pending) < 100:
                self._publish(self._next)
                self._next = (self._next + 1) % self.count


class Churn:
    """``n`` slots of clients coming and going (see the module docstring)."""

    def __init__(self, ports, n, rng, retained, hold, off, ramp, stats):
        self.ports = ports
        self.n = n
        self.rng = rng
        self.retained = retained
        self.hold = hold
        self.off = off
        self.ramp = ramp
        self.stats = stats
        self.connected = 0
        self.failures = {}

    def _acked(self, ok):
        self.stats["acked" if ok else "refused"] += 1

    def _fail(self, what):
        self.stats["failures"] += 1
        self.failures[what] = self.failures.get(what, 0) + 1

    async def slot(self, i, stop):
        if await sleep_or_stop(stop, self.rng.uniform(0, self.ramp)):
            return
        while not stop.is_set():
            try:
                await self._once(i, stop)
            except (OSError, asyncio.TimeoutError) as exc:
                self._fail(f"{type(exc).__name__}: {exc}"[:120])
            if await sleep_or_stop(stop, self.rng.uniform(*self.off)):
                return

    async def _once(self, i, stop):
        rng = self.rng
        ws = rng.random() < 0.25
        version = 5 if rng.random() < 0.5 else 4
        expiry = 2 if version == 5 and rng.random() < 0.2 else None
        check = rng.random() < 0.2
        state = {"seen": None, "floor": None, "done": None}
        stats = self.stats

        def on_message(topic, payload, _qos, _retain):
            stats["received"] += 1
            if state["seen"] is not None and topic.startswith(b"soak/ret/"):
                _, k, version_seen = payload.split(b" ")
                k = int(k)
                version_seen = int(version_seen)
                if version_seen > self.retained.sent[k]:
                    self._fail("retained version never published")
                state["seen"][k] = max(state["seen"][k], version_seen)
                if (not state["done"].done()
                        and all(s >= f for s, f in zip(state["seen"], state["floor"]))):
                    state["done"].set_result(True)

        port = self.ports["ws" if ws else "tcp"]
        conn, _present = await connect(port, f"churn-{i}", on_message, version=version, ws=ws,
                                       clean=True, session_expiry=expiry)
        stats["connects"] += 1
        stats["ws_connects" if ws else "tcp_connects"] += 1
        self.connected += 1
        stats["peak_connected"] = max(stats["peak_connected"], self.connected)
        try:
            if check:
                state["floor"] = list(self.retained.acked)
                state["seen"] = [-1] * self.retained.count
                state["done"] = asyncio.get_running_loop().create_future()
                codes = await asyncio.wait_for(conn.subscribe([("soak/ret/#", 1)]), 60)
                if any(c >= 0x80 for c in codes):
                    self._fail("SUBACK refused")
                try:
                    await asyncio.wait_for(asyncio.shield(state["done"]), RETAINED_TIMEOUT)
                    stats["retained_checks_ok"] += 1
                except asyncio.TimeoutError:
                    stats["retained_checks_failed"] += 1
                    self._fail("retained check incomplete")
            else:
                qos = rng.randrange(2)
                await asyncio.wait_for(conn.subscribe([(f"soak/churn/{i % GROUPS}", qos)]), 60)
                for _ in range(rng.randrange(6)):
                    mqos = rng.randrange(2)
                    conn.publish(f"soak/churn/{rng.randrange(GROUPS)}", b"churn", mqos,
                                 on_ack=self._acked)
                    stats["published"] += 1
            await sleep_or_stop(stop, rng.uniform(*self.hold))
        finally:
            if rng.random() < 0.8 or stop.is_set():
                conn.disconnect()
                stats["disconnects"] += 1
            else:
                conn.abort()
                stats["dropped"] += 1
            await conn.closed
            self.connected -= 1

    async def run(self, stop):
        await asyncio.gather(*(self.slot(i, stop) for i in range(self.n)))


def _get(port, path):
    token = base64.b64encode(b"admin:public").decode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except OSError as exc:
        return type(exc).__name__, b""


async def rest_poll(port, interval, stop, stats):
    """Poll the three paths every ``interval`` seconds until ``stop``."""
    while True:
        for path in REST_PATHS:
            status, body = await asyncio.to_thread(_get, port, path)
            entry = stats.setdefault(path, {})
            entry[str(status)] = entry.get(str(status), 0) + 1
            if status != 200:
                stats["failures"] = stats.get("failures", 0) + 1
                continue
            if path == "/api/v4/clients":
                count = len(json.loads(body)["data"])
                stats["max_clients_listed"] = max(stats.get("max_clients_listed", 0), count)
            elif path == "/api/v4/brokers":
                json.loads(body)
            elif b"nanomq_" not in body:
                stats["failures"] = stats.get("failures", 0) + 1
        if await sleep_or_stop(stop, interval):
            return
