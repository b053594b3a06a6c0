# -*- test-case-name: tests.e2e.test_broker_sessions,tests.protocol.test_bridge_client -*-
"""
``$SYS`` payloads: NanoMQ's client status notices and Mosquitto-style
statistics.

NanoMQ formats ``$SYS/brokers/client_status`` with ``printf``; clients parse
it as JSON, and some compare bytes.  We keep its exact key order and its odd
spacing (a space after the first comma, after the username in the online
form, and before ``"IPv4"``), but escape string values as JSON so a client
id with a quote cannot produce broken JSON, and we do not cut the payload at
255 bytes (docs/compatibility.md).
"""

import json


def _s(value):
    """A JSON string literal; a missing value prints as NanoMQ's ``(null)``."""
    return json.dumps("(null)" if value is None else value, ensure_ascii=False)


def _ipv4(info):
    peer = info.peer
    if peer and ":" not in str(peer[0]):
        return peer[0]
    return ""


def client_online_payload(info, return_code, now):
    """The ``"status":"online"`` notice sent after every CONNACK, for the
    client described by ``info`` (core/info.py ``ConnectInfo``)."""
    text = (
        f'{{"status":"online", "username":{_s(info.username)}, '
        f'"ts":{int(now * 1000)},"proto_name":{_s(info.protocol_name)},'
        f'"keepalive":{info.keepalive},"return_code":"{return_code:x}",'
        f'"proto_ver":{info.protocol_level},"client_id":{_s(info.client_id)},'
        f'"clean_start":{1 if info.clean_start else 0}, "IPv4":{_s(_ipv4(info))}}}'
    )
    return text.encode("utf-8")


def client_offline_payload(info, reason_code, now):
    """The ``"status":"offline"`` notice sent when a connection closes."""
    text = (
        f'{{"status":"offline", "username":{_s(info.username)},'
        f'"ts":{int(now * 1000)},"reason_code":"{reason_code:x}",'
        f'"client_id":{_s(info.client_id)},"IPv4":{_s(_ipv4(info))}}}'
    )
    return text.encode("utf-8")


def statistics(broker, now):
    """``(topic, payload)`` pairs of the periodic ``$SYS/broker/...`` topics,
    named as Mosquitto names them (NanoMQ publishes none)."""
    stats = broker.stats
    uptime = int(now - broker.started) if broker.started is not None else 0
    values = (
        ("uptime", f"{uptime} seconds"),
        ("clients/connected", broker.connection_count),
        ("clients/total", broker.session_count),
        ("clients/disconnected", broker.session_count - broker.connection_count),
        ("messages/received", stats.received),
        ("messages/sent", stats.sent),
        ("messages/dropped", stats.dropped),
        ("bytes/received", stats.bytes_received),
        ("bytes/sent", stats.bytes_sent),
        ("subscriptions/count", broker.subscriptions.subscription_count),
        ("retained messages/count", len(broker.retained)),
    )
    return [("$SYS/broker/" + name, str(value).encode()) for name, value in values]
