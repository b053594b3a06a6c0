# -*- test-case-name: tests.unit.test_limits -*-
"""
The limits a 5.0 CONNACK advertises, and the state quotas the broker holds
every client to, derived once from the ``mqtt`` section.

Configuration speaks in NanoMQ's units and ranges (``max_packet_size =
256MB``, ``max_inflight_window = 2048``), properties in the specification's
(a Maximum Packet Size is at most 268,435,455, a Receive Maximum 1..65,535).
`server_limits` moves each configured value into its property's range with
`properties.clamp` and says, in ``notes``, what it had to change, so the
adapter can log it once at start-up instead of a client discovering it by
refusing the CONNACK.

The quotas (subscriptions per session, topic length and levels, retained
count and bytes, queue bytes per session) are carried as configured;
core/quotas.py says how each is checked.
"""

from dataclasses import dataclass

from ..mqtt.properties import clamp


@dataclass(frozen=True)
class ServerLimits:
    """What the broker tells (and holds) 5.0 clients to.

    ``receive_maximum`` is also the window of QoS 1/2 messages the broker
    keeps in flight towards any client, whatever its protocol version;
    ``server_keep_alive`` 0 means none is imposed.
    """

    maximum_packet_size: int
    receive_maximum: int
    topic_alias_maximum: int
    server_keep_alive: int
    notes: tuple = ()
    # The state quotas (core/quotas.py), advertised to nobody: 0 means no
    # limit for the counts and byte totals.
    max_subscriptions: int = 0
    max_topic_levels: int = 65535
    max_topic_length: int = 65535
    max_retained_messages: int = 0
    max_retained_bytes: int = 0
    max_mqueue_bytes: int = 0


def server_limits(mqtt):
    """``ServerLimits`` for an ``MqttConfig``."""
    notes = []

    def fit(key, prop, value):
        fitted, moved = clamp(prop, value)
        if moved:
            notes.append(
                f"mqtt.{key} = {value} is outside the range of the MQTT 5 "
                f"{prop} property; clients are told {fitted}"
            )
        return fitted

    # 0 (NanoMQ: "no limit") is the largest window the protocol has.
    window = mqtt.max_inflight_window or 65535
    return ServerLimits(
        maximum_packet_size=fit("max_packet_size", "maximum_packet_size",
                                mqtt.max_packet_size),
        receive_maximum=fit("max_inflight_window", "receive_maximum", window),
        topic_alias_maximum=fit("max_topic_alias", "topic_alias_maximum",
                                mqtt.max_topic_alias),
        server_keep_alive=fit("max_keepalive", "server_keep_alive",
                              mqtt.max_keepalive),
        notes=tuple(notes),
        max_subscriptions=mqtt.max_subscriptions,
        max_topic_levels=mqtt.max_topic_levels,
        max_topic_length=mqtt.max_topic_length,
        max_retained_messages=mqtt.max_retained_messages,
        max_retained_bytes=mqtt.max_retained_bytes,
        max_mqueue_bytes=mqtt.max_mqueue_bytes,
    )
