# -*- test-case-name: tests.shipped.test_soak -*-
"""
The soak's exactly counted traffic: numbered flows, their publishers, and
the receivers that must get every message of them.

A flow is one publisher on one topic at one QoS.  Every message carries
``b"<flow> <seq> "`` in its payload, so a receiver can say exactly which
message it got.  A `Ledger` keeps, per receiver, a count per seq (a
bytearray: ~1 byte per message and receiver) and, for the publisher, which
seqs the broker acknowledged (PUBACK for QoS 1, PUBREC for QoS 2: the
moment the broker took the message over [MQTT-4.3.2, MQTT-4.3.3]).  A
receiver is a subscriber that stays connected, a persistent session that
goes offline and comes back, or a shared-subscription group counted as one
receiver (each message to exactly one member [MQTT-4.8.2]).

Publishers are paced (messages per second) and bounded twice: at most
``ack_window`` unacknowledged messages, and at most ``e2e_window`` messages
between the publisher and its slowest receiver, so broker queues never
hold more than the shipped ``max_mqueue_len`` and a QoS 0 drop can only be
the broker's fault.
"""

import asyncio

PAD = b"x" * 32
TICK = 0.05


class Ledger:
    """Exact accounting of one flow."""

    def __init__(self, name, qos, topic, receivers):
        self.name = name
        self.qos = qos
        self.topic = topic
        self.sent = 0
        self.acked = bytearray()
        self.acked_n = 0
        self.refused = 0
        self.got = {r: bytearray() for r in receivers}
        self.distinct = dict.fromkeys(receivers, 0)
        self.members = {}  # shared group member -> messages it got
        self.bogus = 0  # a seq never sent
        self._prefix = name.encode() + b" "

    def payload(self, seq):
        return self._prefix + b"%d " % seq + PAD

    def new_seq(self):
        seq = self.sent
        self.sent += 1
        self.acked.append(0)
        return seq

    def ack(self, seq, ok):
        if not ok:
            self.refused += 1
        elif not self.acked[seq]:
            self.acked[seq] = 1
            self.acked_n += 1

    def receive(self, receiver, seq, member=None):
        got = self.got[receiver]
        if seq >= self.sent:
            self.bogus += 1
            return
        if len(got) <= seq:
            got.extend(bytes(seq + 1 - len(got)))
        count = got[seq]
        if count == 0:
            self.distinct[receiver] += 1
        if count < 255:
            got[seq] = count + 1
        if member is not None:
            self.members[member] = self.members.get(member, 0) + 1

    def lag(self):
        """Messages sent and not yet at the slowest receiver."""
        return self.sent - min(self.distinct.values())

    def complete(self):
        done = all(d >= self.sent for d in self.distinct.values())
        return done and (self.qos == 0 or self.acked_n + self.refused == self.sent)

    def report(self):
        """Exact figures; ``lost`` counts what had to arrive and did not
        (QoS 0: every message sent; QoS 1/2: every message acknowledged)."""
        out = {"qos": self.qos, "topic": self.topic, "sent": self.sent,
               "acknowledged": self.acked_n if self.qos else None,
               "refused": self.refused, "bogus": self.bogus, "receivers": {}}
        if self.members:
            out["shared_members"] = dict(sorted(self.members.items()))
        for receiver, got in self.got.items():
            got = got + bytes(self.sent - len(got))
            must = self.acked if self.qos else b"\x01" * self.sent
            lost = lost_unacked = dup = extra = 0
            for need, count in zip(must, got):
                if count == 0:
                    if need:
                        lost += 1
                    else:
                        lost_unacked += 1
                elif count > 1:
                    dup += 1
                    extra += count - 1
            out["receivers"][receiver] = {
                "expected": sum(must), "received": self.distinct[receiver],
                "lost": lost, "not_acked_not_received": lost_unacked,
                "duplicated": dup, "extra_copies": extra}
        return out


class Router:
    """Hands a received payload to its flow's ledger."""

    def __init__(self):
        self.flows = {}
        self.unexpected = {}  # (receiver, what) -> count: a routing error

    def add(self, ledger):
        self.flows[ledger.name.encode()] = ledger
        return ledger

    def deliver(self, receiver, payload, member=None):
        name, _, rest = payload.partition(b" ")
        ledger = self.flows.get(name)
        if ledger is None or receiver not in ledger.got:
            key = f"{receiver} <- {name.decode('ascii', 'replace')}"
            self.unexpected[key] = self.unexpected.get(key, 0) + 1
            return
        ledger.receive(receiver, int(rest.partition(b" ")[0]), member)

    def handler(self, receiver, member=None):
        """An ``on_message`` for soak_client connections."""
        def on_message(_topic, payload, _qos, _retain):
            self.deliver(receiver, payload, member)
        return on_message

    def complete(self):
        return all(f.complete() for f in self.flows.values())


class Publisher:
    """Paces one flow over a soak_client connection (or a paho adapter
    with the same ``publish`` and ``is_open``)."""

    def __init__(self, ledger, conn, rate, ack_window=100, e2e_window=500):
        self.ledger = ledger
        self.conn = conn
        self.rate = rate
        self.ack_window = ack_window
        self.e2e_window = e2e_window
        self.unacked = 0
        self.blocked_ticks = 0

    def _done(self, _ok):
        self.unacked -= 1

    def send_one(self):
        ledger = self.ledger
        seq = ledger.new_seq()
        if ledger.qos == 0:
            self.conn.publish(ledger.topic, ledger.payload(seq), 0)
            return
        self.unacked += 1
        self.conn.publish(ledger.topic, ledger.payload(seq), ledger.qos,
                          on_ack=lambda ok, s=seq: ledger.ack(s, ok), on_done=self._done)

    async def run(self, stop):
        loop = asyncio.get_running_loop()
        last = loop.time()
        budget = 0.0
        while not stop.is_set():
            await asyncio.sleep(TICK)
            now = loop.time()
            budget = min(budget + self.rate * (now - last), max(self.rate, 1.0))
            last = now
            while budget >= 1 and self.conn.is_open:
                if self.unacked >= self.ack_window or self.ledger.lag() >= self.e2e_window:
                    self.blocked_ticks += 1
                    break
                self.send_one()
                budget -= 1

    async def drain(self, deadline):
        loop = asyncio.get_running_loop()
        while self.unacked and loop.time() < deadline and self.conn.is_open:
            await asyncio.sleep(TICK)
        return self.unacked


async def sleep_or_stop(stop, seconds):
    """Sleep ``seconds`` unless ``stop`` is set first; True if stopped."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True
