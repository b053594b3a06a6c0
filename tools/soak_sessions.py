# -*- test-case-name: tests.shipped.test_soak -*-
"""
Persistent sessions that go offline and come back, raw and paho.

A `Persistent` client subscribes once with a session that outlives its
connection -- 3.1.1 CleanSession=0, or 5.0 Clean Start with a Session
Expiry Interval of an hour -- and then cycles: online for a while, gone
(a normal DISCONNECT or a dropped TCP connection), back with Clean Start
0.  The broker must answer Session Present [MQTT-3.2.2-2] and deliver
everything its flows published meanwhile (the flows' ledgers count it).

`PahoPersistent` does the same with paho-mqtt 2.x (its own thread, its
own QoS 2 state); `PahoPublisher` is a paho client with the `publish` /
`is_open` shape `soak_flows.Publisher` drives.  Their callbacks run in
paho's thread and are handed to the event loop with
``call_soon_threadsafe``, so all counting happens on one thread.
"""

import asyncio

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from soak_client import Session, connect
from soak_flows import sleep_or_stop

EXPIRY = 3600


class Persistent:
    """One raw persistent-session client (see the module docstring)."""

    def __init__(self, key, port, ws, version, filters, router, rng, online, offline, stats):
        self.key = key
        self.port = port
        self.ws = ws
        self.version = version
        self.filters = filters
        self.on_message = router.handler(key)
        self.rng = rng
        self.online = online
        self.offline = offline
        self.stats = stats
        self.session = Session(key)
        self.conn = None
        self.cycles = 0

    async def _connect(self, first):
        expiry = EXPIRY if self.version == 5 else None
        clean = first if self.version == 5 else False
        self.conn, present = await connect(
            self.port, self.key, self.on_message, version=self.version, ws=self.ws,
            clean=clean, session_expiry=expiry, session=self.session)
        if not first:
            self.stats["reconnects"] += 1
            if not present:
                self.stats["session_not_present"] += 1
                self.stats.setdefault("session_not_present_clients", []).append(self.key)

    async def start(self):
        await self._connect(first=True)
        codes = await self.conn.subscribe(self.filters)
        if any(c >= 0x80 for c in codes):
            raise ConnectionError(f"SUBACK {codes!r} for {self.key}")

    async def run(self, stop):
        while True:
            if await sleep_or_stop(stop, self.rng.uniform(*self.online)):
                return
            if self.rng.random() < 0.5:
                self.conn.disconnect()
                self.stats["offline_disconnect"] += 1
            else:
                self.conn.abort()
                self.stats["offline_dropped"] += 1
            await self.conn.closed
            await sleep_or_stop(stop, self.rng.uniform(*self.offline))
            await self._connect(first=False)
            self.cycles += 1
            if stop.is_set():
                return

    def close(self):
        if self.conn is not None and self.conn.is_open:
            self.conn.disconnect()


def _paho(client_id, version, ws, clean_session):
    kwargs = {"client_id": client_id, "transport": "websockets" if ws else "tcp"}
    if version == 5:
        kwargs["protocol"] = mqtt.MQTTv5
    else:
        kwargs["protocol"] = mqtt.MQTTv311
        kwargs["clean_session"] = clean_session
    client = mqtt.Client(CallbackAPIVersion.VERSION2, **kwargs)
    if ws:
        client.ws_set_options(path="/mqtt")
    return client


def _connect_properties(version):
    if version != 5:
        return None
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = EXPIRY
    return props


class PahoPersistent:
    """A paho persistent-session subscriber that goes offline and back."""

    def __init__(self, key, port, ws, version, filters, router, rng, online, offline, stats):
        self.key = key
        self.port = port
        self.version = version
        self.filters = filters
        self.rng = rng
        self.online = online
        self.offline = offline
        self.stats = stats
        self.loop = asyncio.get_running_loop()
        self.client = _paho(key, version, ws, clean_session=False)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.loop.call_soon_threadsafe(
            router.deliver, key, m.payload)
        self.client.on_subscribe = lambda *_a: self.loop.call_soon_threadsafe(
            self._set, self._subscribed, True)
        self._connected = None
        self._subscribed = None
        self.cycles = 0

    @staticmethod
    def _set(future, value):
        if future is not None and not future.done():
            future.set_result(value)

    def _on_connect(self, _client, _userdata, flags, reason, _props):
        self.loop.call_soon_threadsafe(self._set, self._connected,
                                       (bool(flags.session_present), reason.value))

    async def _up(self, first):
        self._connected = self.loop.create_future()
        if not first:
            # Not connect(): it would start a clean session again (paho's
            # default clean_start for 5.0 is "on the first connect only").
            await asyncio.to_thread(self.client.reconnect)
        elif self.version == 5:
            await asyncio.to_thread(self.client.connect, "127.0.0.1", self.port, 600,
                                    properties=_connect_properties(5))
        else:
            await asyncio.to_thread(self.client.connect, "127.0.0.1", self.port, 600)
        self.client.loop_start()
        present, code = await asyncio.wait_for(self._connected, 60)
        if code != 0:
            raise ConnectionError(f"paho {self.key}: CONNACK {code}")
        if not first:
            self.stats["reconnects"] += 1
            if not present:
                self.stats["session_not_present"] += 1
                self.stats.setdefault("session_not_present_clients", []).append(self.key)

    async def _down(self):
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    async def start(self):
        await self._up(first=True)
        self._subscribed = self.loop.create_future()
        self.client.subscribe(self.filters)
        await asyncio.wait_for(self._subscribed, 60)

    async def run(self, stop):
        while True:
            if await sleep_or_stop(stop, self.rng.uniform(*self.online)):
                return
            await self._down()
            self.stats["offline_disconnect"] += 1
            await sleep_or_stop(stop, self.rng.uniform(*self.offline))
            await self._up(first=False)
            self.cycles += 1
            if stop.is_set():
                return

    async def close(self):
        await self._down()


class PahoPublisher:
    """A paho client presenting ``publish``/``is_open`` to a Publisher."""

    def __init__(self, key, port, ws, version):
        self.loop = asyncio.get_running_loop()
        self.key = key
        self.port = port
        self.version = version
        self.client = _paho(key, version, ws, clean_session=True)
        self.client.max_inflight_messages_set(100)
        self.client.on_publish = lambda _c, _u, mid, reason, _p: self.loop.call_soon_threadsafe(
            self._acked, mid, not reason.is_failure)
        self.client.on_connect = lambda *_a: self.loop.call_soon_threadsafe(
            self._set_connected)
        self.callbacks = {}  # mid -> (on_ack, on_done)
        self._connected = None
        self.is_open = False

    def _set_connected(self):
        self.is_open = True
        if not self._connected.done():
            self._connected.set_result(None)

    def _acked(self, mid, ok):
        on_ack, on_done = self.callbacks.pop(mid)
        on_ack(ok)
        on_done(ok)

    async def start(self):
        self._connected = self.loop.create_future()
        self.client.connect("127.0.0.1", self.port, 600)
        self.client.loop_start()
        await asyncio.wait_for(self._connected, 60)

    def publish(self, topic, payload, qos, on_ack=None, on_done=None):
        info = self.client.publish(topic, payload, qos)
        if qos:
            self.callbacks[info.mid] = (on_ack, on_done)

    async def close(self):
        self.is_open = False
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)
