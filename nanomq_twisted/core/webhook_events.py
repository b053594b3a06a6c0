# -*- test-case-name: tests.e2e.test_webhook -*-
"""
WebHook bodies, exactly as NanoMQ emits them (spec broker.md §10), and the
event filter of ``webhook.events``.  Pure: the Twisted sender is
`nanomq_twisted/webhook.py`.

Key order matters to byte-comparing consumers, so every body is built as a
dict in emission order and dumped compactly.  NanoMQ fires only
``on_client_connack``, ``on_client_disconnected`` and ``on_message_publish``;
it accepts nine more names and never fires them.  We fire all twelve; the
bodies of the nine are ours (same style: the fields, then ``action``).
"""

import base64
import json

from ..mqtt.topics import match

__all__ = [
    "EVENTS",
    "EventFilter",
    "base62",
    "body_for",
    "encode_payload",
]

EVENTS = (
    "on_client_connect", "on_client_connack", "on_client_connected",
    "on_client_disconnected", "on_client_subscribe", "on_client_unsubscribe",
    "on_session_subscribed", "on_session_unsubscribed", "on_session_terminated",
    "on_message_publish", "on_message_delivered", "on_message_acked",
)

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(data):
    """Big-integer base62 (``0-9A-Za-z``); each leading zero byte is a
    ``0``; empty input is ``""``."""
    if not data:
        return ""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "0" * zeros + "".join(reversed(digits))


def encode_payload(payload, encoding):
    """The ``payload`` field by ``webhook.body.encoding``."""
    payload = bytes(payload or b"")
    if encoding == "base64":
        return base64.b64encode(payload).decode("ascii") if payload else None
    if encoding == "base62":
        return base62(payload)
    # plain: NanoMQ formats the payload as a C string -- up to the first NUL.
    return payload.split(b"\0", 1)[0].decode("utf-8", "replace")


class EventFilter:
    """Which events fire, from ``webhook.events``: an event fires if any
    entry names it; message events also need the entry's ``topic`` (if
    given) to match.  One request per event however many entries match."""

    def __init__(self, events):
        self._topics = {}
        for entry in events:
            filters = self._topics.setdefault(entry.event, [])
            filters.append(entry.topic)

    def __contains__(self, event):
        return event in self._topics

    def topics(self, event):
        """The topic filters of ``event``'s entries (None: any topic)."""
        return tuple(self._topics.get(event, ()))

    def wants(self, event, topic=None):
        filters = self._topics.get(event)
        if filters is None:
            return False
        if topic is None or not event.startswith("on_message_"):
            return True
        return any(f is None or match(f, topic, dollar_rule=False) for f in filters)


def _user(username):
    return username if username is not None else "undefined"


def _dump(body):
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def message_publish(message, encoding, now):
    return _dump({
        "ts": int(now * 1000),
        "topic": message.topic,
        "retain": bool(message.retain),
        "qos": message.qos,
        "action": "message_publish",
        "from_username": _user(message.username),
        "from_client_id": message.sender,
        "payload": encode_payload(message.payload, encoding),
    })


def _message_to(action, session, message, encoding, now):
    return _dump({
        "ts": int(now * 1000),
        "clientid": session.client_id,
        "username": _user(session.username),
        "topic": message.topic,
        "retain": bool(message.retain),
        "qos": message.qos,
        "from_username": _user(message.username),
        "from_client_id": message.sender,
        "payload": encode_payload(message.payload, encoding),
        "action": action,
    })


def client_connack(conn, code):
    return _dump({
        "proto_ver": conn.level,
        "keepalive": conn.keepalive,
        "conn_ack": "success" if code == 0 else "fail",
        "username": _user(conn.username),
        "clientid": conn.client_id,
        "action": "client_connack",
    })


def _client(action, conn, now, **extra):
    body = {
        "clientid": conn.client_id,
        "username": _user(conn.username),
    }
    body.update(extra)
    body["ts"] = int(now * 1000)
    body["action"] = action
    return _dump(body)


def client_disconnected(conn):
    # NanoMQ always says "normal"; we say "abnormal" when the client did not
    # send DISCONNECT (docs/compatibility.md).
    return _dump({
        "reason": "normal" if conn.graceful else "abnormal",
        "username": _user(conn.username),
        "clientid": conn.client_id,
        "action": "client_disconnected",
    })


def _peer(conn):
    peer = conn.peer
    return peer[0] if isinstance(peer, tuple) and peer else None


def body_for(hook, core_event, fields, encoding, now):
    """The request bodies (bytes) for one core observer event mapped to the
    webhook event ``hook``; a list, since SUBSCRIBE/UNSUBSCRIBE give one
    per topic filter.  Returns [] for combinations that do not apply."""
    conn = fields.get("conn")
    if hook == "on_client_connack":
        return [client_connack(conn, fields.get("code", 0))]
    if hook == "on_client_disconnected":
        return [client_disconnected(conn)]
    if hook == "on_client_connect":
        return [_client("client_connect", conn, now, ipaddress=_peer(conn),
                        keepalive=conn.keepalive, proto_ver=conn.level)]
    if hook == "on_client_connected":
        if fields.get("code", 0) != 0:
            return []
        return [_client("client_connected", conn, now, ipaddress=_peer(conn),
                        keepalive=conn.keepalive, proto_ver=conn.level)]
    if hook == "on_client_subscribe":
        packet = fields["packet"]
        return [_client("client_subscribe", conn, now, topic=o.topic_filter,
                        opts={"qos": o.qos}) for o in packet.subscriptions]
    if hook == "on_client_unsubscribe":
        packet = fields["packet"]
        return [_client("client_unsubscribe", conn, now, topic=t)
                for t in packet.topic_filters]
    session = fields.get("session")
    if hook == "on_session_subscribed":
        sub = fields["subscription"]
        return [_client("session_subscribed", session, now, topic=sub.topic_filter,
                        opts={"qos": sub.qos})]
    if hook == "on_session_unsubscribed":
        return [_client("session_unsubscribed", session, now,
                        topic=fields["topic_filter"])]
    if hook == "on_session_terminated":
        return [_client("session_terminated", session, now)]
    if hook == "on_message_delivered":
        return [_message_to("message_delivered", session, fields["message"], encoding, now)]
    if hook == "on_message_acked":
        return [_message_to("message_acked", session, fields["message"], encoding, now)]
    return []


#: Core observer event -> webhook events it feeds.
CORE_TO_HOOKS = {
    "client_connect": ("on_client_connect",),
    "client_connack": ("on_client_connack", "on_client_connected"),
    "client_disconnected": ("on_client_disconnected",),
    "client_subscribe": ("on_client_subscribe",),
    "client_unsubscribe": ("on_client_unsubscribe",),
    "session_subscribed": ("on_session_subscribed",),
    "session_unsubscribed": ("on_session_unsubscribed",),
    "session_terminated": ("on_session_terminated",),
    "message_delivered": ("on_message_delivered",),
    "message_acked": ("on_message_acked",),
}
