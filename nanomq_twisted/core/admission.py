# -*- test-case-name: tests.unit.test_admission -*-
"""
What one peer may cost: inbound rates per connection and connections per
source address.  Pure: time comes in as ``now``.

Rates (``rate_limit.conn_messages_in`` / ``conn_bytes_in``, EMQX 4's
keys).  Each connection gets an `InboundMeter` of one `TokenBucket` per
configured limit: ``"100,10s"`` is a bucket of 100 tokens refilled at
10 per second, so a client may burst 100 and then goes on at 10/s.  The
adapter cannot refuse bytes it has already read (Twisted reads up to 64 KiB
at a time, TLS records and WebSocket frames are decoded whole), so a
bucket may go into debt: the connection is charged after each read, and
when it is in debt its reading stops until the debt is paid back -- the
pause is ``debt / rate``.  Over time the client gets exactly the configured
rate, whatever the size of its reads; nothing it sent is dropped and it is
never disconnected for it (backpressure; its TCP window fills up and its
own writes block).  Messages are PUBLISH packets, as in EMQX; bytes are MQTT
bytes, after TLS and WebSocket framing.

Connections per address (``listeners.max_connections_per_address``).
`Admission` counts the open MQTT connections of each IP address over every
listener; one past the limit is refused at its CONNECT with CONNACK 0x97
Quota exceeded (5.0) / 0x03 Server unavailable (3.1.1), the way a full
listener's ``max_connections`` is (core/connect.py `refuse_over_limit`).
Refusing at CONNECT rather than at accept means the client is told why (a
bare close makes paho and MQTT.js reconnect at once, in a loop); what
bounds the refused connection meanwhile is the CONNECT timeout.  Entries
for addresses with no connection are deleted, so the table is as large as
the set of connected addresses.
"""


class TokenBucket:
    """``amount`` tokens per ``period`` seconds, at most ``amount`` saved."""

    __slots__ = ("capacity", "level", "rate", "stamp")

    def __init__(self, amount, period, now):
        self.capacity = float(amount)
        self.rate = amount / period
        self.level = self.capacity
        self.stamp = now

    def _refill(self, now):
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, amount, now):
        """Spend ``amount`` (even into debt); returns `wait`."""
        self._refill(now)
        self.level -= amount
        return self.wait(now)

    def wait(self, now):
        """Seconds until the bucket is out of debt (0.0 when it is not)."""
        self._refill(now)
        return 0.0 if self.level >= 0 else -self.level / self.rate


class InboundMeter:
    """The buckets of one connection, and its reading pause.

    ``publishes`` is counted by the connection as it handles PUBLISH
    packets and charged, with the bytes, after each read; ``timer`` is the
    core timer that ends a pause (None while reading)."""

    __slots__ = ("bytes", "messages", "publishes", "timer")

    def __init__(self, messages, bytes_, now):
        self.messages = None if messages is None else TokenBucket(*messages, now)
        self.bytes = None if bytes_ is None else TokenBucket(*bytes_, now)
        self.publishes = 0
        self.timer = None

    def charge(self, nbytes, now):
        """Charge one read of ``nbytes`` and the PUBLISHes it carried;
        returns the seconds reading must stop for (0.0: go on)."""
        wait = 0.0
        if self.bytes is not None:
            wait = self.bytes.take(nbytes, now)
        if self.messages is not None:
            wait = max(wait, self.messages.take(self.publishes, now))
        self.publishes = 0
        return wait

    def wait(self, now):
        """Seconds still to wait before reading again."""
        wait = 0.0
        for bucket in (self.bytes, self.messages):
            if bucket is not None:
                wait = max(wait, bucket.wait(now))
        return wait


class Admission:
    """The broker's limits per peer: rates for new connections, and the
    count of open connections per IP address.

    ``messages_in`` and ``bytes_in`` are ``(amount, seconds)`` or None;
    ``per_address`` 0 means unlimited.  `configure` changes them at run
    time (REST ``/ctrl/restart``); rates apply to connections made after
    that, the address limit at the next connection."""

    def __init__(self, messages_in=None, bytes_in=None, per_address=0):
        self.counts = {}
        self.configure(messages_in, bytes_in, per_address)

    def configure(self, messages_in=None, bytes_in=None, per_address=0):
        self.messages_in = messages_in
        self.bytes_in = bytes_in
        self.per_address = per_address

    def meter(self, now):
        """A fresh `InboundMeter`, or None when no rate is limited (the
        common case costs a connection nothing)."""
        if self.messages_in is None and self.bytes_in is None:
            return None
        return InboundMeter(self.messages_in, self.bytes_in, now)

    def admit(self, host):
        """Count a connection from ``host``; False (not counted) when that
        address already has ``per_address`` open.  ``host`` None (a
        transport without an IP address) is always admitted, never
        counted."""
        if host is None:
            return True
        counts = self.counts
        count = counts.get(host, 0)
        if self.per_address and count >= self.per_address:
            return False
        counts[host] = count + 1
        return True

    def release(self, host):
        """A counted connection from ``host`` ended."""
        counts = self.counts
        count = counts.get(host, 0) - 1
        if count > 0:
            counts[host] = count
        else:
            counts.pop(host, None)
