# -*- test-case-name: tests.unit.test_client_session -*-
"""
What the broker's MQTT client is told, carries and counts: ``ClientOptions``
(how to connect and behave, built by each owner from its own
configuration), ``OutboundMessage`` (what a flow carries) and
``ClientStats``.  Plain values, apart from the session that uses them
(session.py).
"""

from dataclasses import dataclass, field

from zope.interface import implementer

from ..mqtt.packets import Will
from .interfaces import IOutboundMessage

#: NanoMQ's client library keeps at most this many unacknowledged messages.
SEND_WINDOW = 64

#: Seconds to wait for CONNACK after the transport connected.
CONNACK_TIMEOUT = 10.0


@dataclass(frozen=True)
class ClientOptions:
    """How a client connects and behaves; the owner builds it from its
    own configuration (bridge/client.py, rules/client.py).

    ``properties`` are the MQTT 5 CONNECT properties (their
    ``receive_maximum``, ``maximum_packet_size`` and
    ``topic_alias_maximum`` are also the limits we hold the server to).
    ``bridge`` sets the 3.1.1 bridge bit.  With ``retry_interval`` a tick
    runs that long apart while connected: flows first sent
    ``give_up_after`` seconds ago or more are forgotten, then up to
    ``retry_limit`` flows last sent ``retry_wait`` seconds ago or more are
    resent (3.x allows that; 5.0 resends only on reconnect, so leave
    ``retry_wait`` None to follow it).  ``ping_timeout`` (default: the
    keepalive) is how long PINGRESP may take."""

    level: int = 4
    client_id: str = ""
    clean_start: bool = True
    keepalive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: dict = field(default_factory=dict)
    bridge: bool = False
    generated_id_prefix: str = "nanomq-client-"
    window: int = SEND_WINDOW
    retry_interval: float | None = None
    retry_wait: float | None = None
    retry_limit: int | None = None
    give_up_after: float | None = None
    ping_timeout: float | None = None
    connack_timeout: float = CONNACK_TIMEOUT

    @property
    def max_packet_size(self):
        """The largest packet we accept (5.0's Maximum Packet Size), or None."""
        return self.properties.get("maximum_packet_size") if self.level == 5 else None

    @property
    def topic_alias_maximum(self):
        return self.properties.get("topic_alias_maximum", 0) if self.level == 5 else 0


@implementer(IOutboundMessage)
class OutboundMessage:
    """A message to send (what a ``Flow`` carries for the client)."""

    __slots__ = ("payload", "properties", "qos", "retain", "topic")

    def __init__(self, topic, payload, qos=0, retain=False, properties=None):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties


class ClientStats:
    """A client's counters: PUBLISH packets and their bytes each way (sent
    counts resends), all bytes received, and the flows in flight now."""

    FIELDS = ("sent", "received", "sent_bytes", "received_bytes", "inflight")
    __slots__ = FIELDS

    def __init__(self):
        for name in ClientStats.FIELDS:
            setattr(self, name, 0)
