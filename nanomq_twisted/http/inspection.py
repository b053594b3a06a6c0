# -*- test-case-name: tests.protocol.test_http_inspection,tests.e2e.test_rest_dashboard -*-
"""
Our additions for looking inside the broker (NanoMQ has none of these):

- ``GET /api/v4/sessions/{clientid}``: one client's session in detail --
  keepalive, session expiry, where it connected from, its subscriptions
  with their options, queue length, messages in flight each way;
- ``GET /api/v4/shared``: the shared subscription groups and their
  members;
- ``GET /api/v4/retained`` (``?topic=<filter>``, ``?limit=<n>``) and
  ``DELETE /api/v4/retained?topic=<name>``: the retained messages, and
  clearing one.

Reads go through the core's public attributes (``Session.subscriptions``,
``queue``, ``inflight``, ``awaiting_rel``, ``expiry_interval``, ``info``;
``ClientConnection.receive_maximum``, ``connected_at``;
``RetainStore.iter_all``) and never change them: expired retained
messages are skipped here, not deleted.  Clearing a retained message does
what an empty retained PUBLISH does to the store [MQTT-3.3.1-6], without
delivering one to subscribers.
"""

import base64

from ..mqtt.topics import match, validate_topic_filter, validate_topic_name
from .clients import client_object
from .common import MISSING_PARAMS, PARAM_ERROR, ApiError, ok, query_pairs
from .overview import shared_groups

#: Retained messages listed when ``limit`` is not given.
DEFAULT_LIMIT = 1000


def _payload(payload):
    """``(text, encoding)``: UTF-8 text when it decodes, else base64."""
    try:
        return payload.decode("utf-8"), "plain"
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode("ascii"), "base64"


def _subscription(topic_filter, sub):
    return {
        "topic": topic_filter,
        "qos": sub.qos,
        "no_local": bool(sub.no_local),
        "retain_as_published": bool(sub.retain_as_published),
        "retain_handling": sub.retain_handling,
        "share_group": sub.share_group,
        "identifier": sub.identifier,
    }


def session_detail(api, request, client_id):
    """404/108 when the broker has no session for ``client_id``."""
    broker = api.broker
    session = broker.sessions.get(client_id)
    if session is None:
        raise ApiError(404, PARAM_ERROR)
    now = broker.now()
    conn = session.conn
    record = client_object(api, session)
    info = session.info
    peer = info.peer if info is not None else None
    record.update({
        "session_expiry_interval": session.expiry_interval,
        "listener": info.listener if info is not None else None,
        "peer": f"{peer[0]}:{peer[1]}" if peer else None,
        "connected_for": (int(now - conn.connected_at)
                          if conn is not None and conn.connected_at is not None else None),
        "subscriptions": [_subscription(f, s) for f, s in session.subscriptions.items()],
        "mqueue_len": len(session.queue),
        "mqueue_max": session.max_queue,
        "inflight": len(session.inflight),
        "inflight_max": conn.receive_maximum if conn is not None else None,
        "awaiting_rel": len(session.awaiting_rel),
    })
    return ok(data=record)


def shared(api, request):
    data = [
        {"group": group, "topic": topic_filter,
         "members": [{"clientid": cid, "qos": sub.qos} for cid, sub in members]}
        for (group, topic_filter), members in sorted(shared_groups(api.broker).items())
    ]
    return ok(data=data)


def _retained_query(request):
    topic_filter, limit = "#", DEFAULT_LIMIT
    for key, value in query_pairs(request):
        if key == "topic":
            if not validate_topic_filter(value):
                raise ApiError(400, PARAM_ERROR)
            topic_filter = value
        elif key == "limit":
            if not value.isdigit() or int(value) < 1:
                raise ApiError(400, PARAM_ERROR)
            limit = int(value)
    return topic_filter, limit


def retained(api, request):
    """Retained messages whose topic matches ``topic`` (a filter, default
    ``#``, which like any wildcard skips ``$`` topics [MQTT-4.7.2-1]),
    sorted by topic, at most ``limit``; ``total`` counts all matches."""
    topic_filter, limit = _retained_query(request)
    now = api.broker.now()
    found = []
    for topic, message, stored_at, interval in api.broker.retained.iter_all():
        if interval is not None and now >= stored_at + interval:
            continue
        if match(topic_filter, topic):
            found.append((topic, message, stored_at, interval))
    found.sort(key=lambda item: item[0])
    data = []
    for topic, message, stored_at, interval in found[:limit]:
        text, encoding = _payload(message.payload)
        data.append({
            "topic": topic,
            "qos": message.qos,
            "payload": text,
            "encoding": encoding,
            "size": len(message.payload),
            "age": int(now - stored_at),
            "expiry_interval": interval,
            "from": message.sender,
        })
    return ok(data=data, total=len(found))


def delete_retained(api, request):
    """``?topic=<name>``: 400/107 without it, 400/108 for a name a PUBLISH
    could not carry, 404/108 when nothing is retained there."""
    topics = [value for key, value in query_pairs(request) if key == "topic"]
    if not topics:
        raise ApiError(400, MISSING_PARAMS)
    topic = topics[0]
    if not validate_topic_name(topic):
        raise ApiError(400, PARAM_ERROR)
    broker = api.broker
    if not broker.retained.delete(topic):
        raise ApiError(404, PARAM_ERROR)
    broker.store.retained_deleted(topic)
    return ok()
