# -*- test-case-name: tests.unit.test_config_flood -*-
"""
Our keys against floods and slow peers (NanoMQ has none of them; see
docs/configuration.md "Rates, connections per address and timeouts").

- ``rate_limit { conn_messages_in, conn_bytes_in }``: EMQX 4's names
  (``zone.external.rate_limit.conn_messages_in = "100,10s"``), EMQX 5's
  ``"100/10s"`` form accepted too;
- in ``listeners``, beside the listener blocks and for all of them:
  ``connect_timeout``, ``handshake_timeout``,
  ``max_connections_per_address``.

``http_server.request_timeout`` is read with the rest of ``http_server``
(sections.py), through `positive_duration` here.

Kept apart from sections.py so that the one concern -- what a single peer
may cost the broker -- reads in one place.
"""

from __future__ import annotations

from .reader import MISSING, Node
from .schema import ListenersConfig, RateLimitConfig
from .units import parse_rate

#: The keys `listener_limits` reads from the ``listeners`` block.
LISTENER_KEYS = ("connect_timeout", "handshake_timeout", "max_connections_per_address")


def positive_duration(node: Node, name: str, default: float) -> float:
    """A duration key that must be > 0 (a zero timeout would close every
    connection at once; "never" is not offered: it is what slowloris
    needs)."""
    value = node.duration(name, default)
    if value <= 0:
        raise node.error(name, f"expected a duration > 0, got {value}")
    return value


def _rate(node: Node, name: str, sized: bool):
    value = node.raw(name)
    if value is MISSING:
        return None
    try:
        return parse_rate(value, sized)
    except ValueError as exc:
        raise node.error(name, str(exc)) from None


def build_rate_limit(node: Node | None) -> RateLimitConfig:
    """``rate_limit``; absent: no limit."""
    if node is None:
        return RateLimitConfig()
    cfg = RateLimitConfig(
        conn_messages_in=_rate(node, "conn_messages_in", False),
        conn_bytes_in=_rate(node, "conn_bytes_in", True),
    )
    node.finish()
    return cfg


def listener_limits(node: Node | None) -> dict:
    """The ``ListenersConfig`` fields of `LISTENER_KEYS` from the
    ``listeners`` block (defaults when it is absent)."""
    d = ListenersConfig()
    if node is None:
        return {}
    return {
        "connect_timeout": positive_duration(node, "connect_timeout", d.connect_timeout),
        "handshake_timeout": positive_duration(node, "handshake_timeout", d.handshake_timeout),
        "max_connections_per_address": node.integer(
            "max_connections_per_address", d.max_connections_per_address, minimum=0),
    }
