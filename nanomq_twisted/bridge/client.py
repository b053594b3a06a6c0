# -*- test-case-name: tests.protocol.test_bridge_client -*-
"""
What is bridge-specific about a bridge's MQTT client: how a
``BridgeConfig`` becomes the shared client's ``ClientOptions``
(client/session.py), how its subscription entries become SUBSCRIBE
options, and the factory a bridge link dials with.  The protocol itself
is the broker's one MQTT client (client/protocol.py).

NanoMQ's client timer drives the options: one tick every
``resend_interval`` (at most half the keepalive, so a PINGRESP is never
awaited longer than that), each resending the oldest message
unacknowledged for ``resend_wait`` and forgetting those unacknowledged
for ``cancel_timeout``.
"""

from ..client.options import SEND_WINDOW, ClientOptions
from ..client.protocol import MQTTClientFactory
from ..mqtt.packets import SubscriptionOptions, Will


def tick_interval(config):
    """Seconds between two ticks of the bridge's client timer."""
    interval = config.resend_interval / 1000.0
    if config.keepalive:
        interval = min(interval, config.keepalive / 2.0)
    return max(interval, 0.05)


def client_options(config):
    """The ``ClientOptions`` of a bridge link, from its ``BridgeConfig``."""
    level = config.proto_ver
    tick = tick_interval(config)
    return ClientOptions(
        level=level,
        client_id=config.clientid or "",
        clean_start=config.clean_start,
        keepalive=int(config.keepalive),
        username=config.username,
        password=None if config.password is None else config.password.encode("utf-8"),
        will=_will(config, level),
        properties=_connect_properties(config.conn_properties) if level == 5 else {},
        bridge=config.no_local_v4,
        generated_id_prefix="nanomq-bridge-",
        window=SEND_WINDOW,
        retry_interval=tick,
        retry_wait=config.resend_wait / 1000.0,
        retry_limit=1,
        give_up_after=config.cancel_timeout / 1000.0,
        ping_timeout=tick,
    )


def _connect_properties(cp):
    if cp is None:
        return {}
    properties = {}
    if cp.maximum_packet_size:
        properties["maximum_packet_size"] = cp.maximum_packet_size
    if cp.receive_maximum != 65535:
        properties["receive_maximum"] = cp.receive_maximum
    if cp.topic_alias_maximum:
        properties["topic_alias_maximum"] = cp.topic_alias_maximum
    if cp.request_problem_information != 1:
        properties["request_problem_information"] = cp.request_problem_information
    if cp.request_response_information:
        properties["request_response_information"] = cp.request_response_information
    if cp.session_expiry_interval:
        properties["session_expiry_interval"] = cp.session_expiry_interval
    if cp.user_property:
        properties["user_property"] = list(cp.user_property)
    return properties


def _will(config, level):
    will = config.will
    if will is None or not will.topic or will.payload is None:
        return None
    return Will(
        will.topic,
        will.payload.encode("utf-8"),
        will.qos,
        will.retain,
        _will_properties(will.properties) if level == 5 else {},
    )


def _will_properties(wp):
    if wp is None:
        return {}
    out = {}
    if wp.payload_format_indicator:
        out["payload_format_indicator"] = wp.payload_format_indicator
    if wp.message_expiry_interval:
        out["message_expiry_interval"] = wp.message_expiry_interval
    if wp.content_type:
        out["content_type"] = wp.content_type
    if wp.response_topic:
        out["response_topic"] = wp.response_topic
    if wp.correlation_data:
        out["correlation_data"] = wp.correlation_data.encode("utf-8")
    if wp.will_delay_interval:
        out["will_delay_interval"] = wp.will_delay_interval
    if wp.user_property:
        out["user_property"] = list(wp.user_property)
    return out


def subscription_options(entries):
    """``SubscriptionOptions`` for ``BridgeSubscription`` entries."""
    return tuple(
        SubscriptionOptions(
            entry.remote_topic,
            entry.qos,
            bool(entry.nolocal),
            bool(entry.retain_as_published),
            entry.retain_handling,
        )
        for entry in entries
    )


def subscribe_properties(sub_properties):
    """v5 SUBSCRIBE properties from ``sub_properties``."""
    if sub_properties is None:
        return {}
    out = {}
    if sub_properties.identifier:
        out["subscription_identifier"] = sub_properties.identifier
    if sub_properties.user_property:
        out["user_property"] = list(sub_properties.user_property)
    return out


class BridgeClientFactory(MQTTClientFactory):
    """The shared client's factory for one bridge link: every connection
    attempt of the link shares its ``ClientSession``."""

    def __init__(self, bridge, clock):
        super().__init__(bridge, bridge.session.client, clock)
