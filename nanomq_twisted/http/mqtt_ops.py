"""
``POST /mqtt/publish``, ``/mqtt/publish_batch`` and, beyond NanoMQ,
``/mqtt/subscribe``, ``/mqtt/unsubscribe`` and their ``_batch`` forms.

Publish follows NanoMQ: any JSON object gets HTTP 200 and the result in
``code`` (0, or 108 for a missing/ill-typed ``topic``/``topics``/``payload``
or bad ``properties``); a body that is not a JSON object is 400/109.
Where NanoMQ silently publishes nothing or something else (a wildcard or
empty topic, ``qos`` outside 0..2, ``decoding: base64`` with invalid base64)
we answer 108 and publish nothing (docs/compatibility.md).  Wrongly typed
``qos``/``retain`` are ignored as in NanoMQ.

The message enters the normal routing path (retained store, subscribers,
the taps that feed rules and bridges) with ``clientid`` as sender, after
the ACL check for that client id.

Subscribe/unsubscribe act on the session of an existing ``clientid``
(online, or a persistent offline session): code 112 when there is none.

The state quotas (core/quotas.py) hold here as over MQTT: a topic over
``mqtt.max_topic_length``/``max_topic_levels`` is 108; a publish whose
retained message finds the retained store full, or a subscribe that would
take a session past ``max_subscriptions``, is our code 119 and does
nothing.
"""

import base64
import binascii

from ..core.message import Message
from ..core.quotas import subscriptions_left, topic_too_big
from ..mqtt.packets import SubscriptionOptions
from ..mqtt.topics import validate_topic_filter, validate_topic_name
from .common import (
    CLIENT_OFFLINE,
    NOT_JSON,
    PARAM_ERROR,
    QUOTA_EXCEEDED,
    SUCCESS,
    UNKNOWN,
    ApiError,
    dumps,
    is_int,
    json_body,
    ok,
)

DEFAULT_CLIENT_ID = "NanoMQ-HTTP-Client"

_UINT32 = 0xFFFFFFFF


class _Invalid(Exception):
    """One request item is invalid: its code is 108."""


class _RestClient:
    """What the ACL sees for a REST publish."""

    def __init__(self, client_id):
        self.client_id = client_id
        self.username = None
        self.peer = None


def _user_property_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(value, ".17g")
    if isinstance(value, str):
        return value
    raise _Invalid()


def parse_properties(props):
    """The ``properties`` object -> the core's v5 property dict."""
    if not isinstance(props, dict):
        raise _Invalid()
    out = {}
    for key, value in props.items():
        if key == "payload_format_indicator":
            if not is_int(value) or value not in (0, 1):
                raise _Invalid()
            out[key] = value
        elif key == "message_expiry_interval":
            if not is_int(value) or not 0 <= value <= _UINT32:
                raise _Invalid()
            out[key] = value
        elif key in ("response_topic", "content_type"):
            if not isinstance(value, str):
                raise _Invalid()
            if key == "response_topic" and not validate_topic_name(value):
                raise _Invalid()
            out[key] = value
        elif key == "correlation_data":
            if not isinstance(value, str):
                raise _Invalid()
            out[key] = value.encode("utf-8")
        elif key == "subscription_identifier":
            # Accepted for NanoMQ's sake but not forwarded: a subscription
            # identifier belongs to a subscriber's subscription [MQTT-3.3.4-6].
            if not is_int(value) or not 1 <= value <= 268435455:
                raise _Invalid()
        elif key == "user_properties":
            if not isinstance(value, dict):
                raise _Invalid()
            pairs = [(str(k), _user_property_value(v)) for k, v in value.items()]
            if pairs:
                out["user_property"] = pairs
        else:
            raise _Invalid()
    return out


def parse_publish(item):
    """One publish request object -> (topics, payload, qos, retain,
    properties, client id); raises ``_Invalid``."""
    if "topic" in item:
        if not isinstance(item["topic"], str):
            raise _Invalid()
        topics = [item["topic"]]
    elif "topics" in item:
        if not isinstance(item["topics"], str):
            raise _Invalid()
        topics = item["topics"].split(",")
    else:
        raise _Invalid()
    if not all(validate_topic_name(t) for t in topics):
        raise _Invalid()
    payload = item.get("payload")
    if not isinstance(payload, str):
        raise _Invalid()
    data = payload.encode("utf-8")
    if item.get("encoding") == "base64":
        data = base64.b64encode(data)
    elif item.get("decoding") == "base64":
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _Invalid() from None
    qos = item.get("qos", 0)
    if not is_int(qos):
        qos = 0
    elif qos not in (0, 1, 2):
        raise _Invalid()
    retain = item.get("retain", False)
    if not isinstance(retain, bool):
        retain = False
    client_id = item.get("clientid", DEFAULT_CLIENT_ID)
    if not isinstance(client_id, str) or not client_id:
        client_id = DEFAULT_CLIENT_ID
    properties = None
    if "properties" in item:
        properties = parse_properties(item["properties"]) or None
    return topics, data, qos, retain, properties, client_id


def _publish_one(api, item):
    """Publish one request object; returns its result code."""
    if not isinstance(item, dict):
        return NOT_JSON
    try:
        topics, data, qos, retain, properties, client_id = parse_publish(item)
    except _Invalid:
        return PARAM_ERROR
    broker = api.broker
    if any(topic_too_big(broker.limits, t) for t in topics):
        broker.stats.refused_topics += 1
        return PARAM_ERROR
    sender = _RestClient(client_id)
    if not all(broker.acl.check(sender, "publish", t) for t in topics):
        return UNKNOWN
    if retain and any(broker.router.retain_refused(t, data) for t in topics):
        # The retained store is full: nothing is published, as for a 5.0
        # QoS 1/2 publisher told 0x97 (core/inbound.py).
        broker.stats.refused_retained += 1
        return QUOTA_EXCEEDED
    now = broker.now()
    for topic in topics:
        message = Message(topic, data, qos, retain, properties, now, client_id, None)
        broker.publish(message, now)
    return SUCCESS


def publish(api, request):
    return dumps({"code": _publish_one(api, json_body(request, dict))})


def _text(value):
    """``value`` if it is a string, else None: a batch result echoes only
    what it understood (never a mistyped object back to the caller)."""
    return value if isinstance(value, str) else None


def _batch_topic(item):
    if isinstance(item, dict):
        if "topics" in item:
            return _text(item["topics"])
        if "topic" in item:
            return _text(item["topic"])
    return None


def publish_batch(api, request):
    items = json_body(request, list)
    data = []
    for item in items:
        code = _publish_one(api, item)
        entry = {}
        topic = _batch_topic(item)
        if topic is not None:
            entry["topic"] = topic
        entry["code"] = code
        data.append(entry)
    return dumps({"data": data, "code": SUCCESS})


# -- subscribe / unsubscribe (not in NanoMQ) ---------------------------------


def _session_and_topics(api, item):
    if not isinstance(item, dict):
        raise ApiError(200, NOT_JSON)
    client_id = item.get("clientid")
    if not isinstance(client_id, str) or not client_id:
        raise ApiError(200, PARAM_ERROR)
    if "topic" in item:
        raw = item["topic"]
        if not isinstance(raw, str):
            raise ApiError(200, PARAM_ERROR)
        topics = [raw]
    elif isinstance(item.get("topics"), str):
        topics = item["topics"].split(",")
    else:
        raise ApiError(200, PARAM_ERROR)
    if not all(validate_topic_filter(t) for t in topics):
        raise ApiError(200, PARAM_ERROR)
    if any(topic_too_big(api.broker.limits, t) for t in topics):
        api.broker.stats.refused_topics += 1
        raise ApiError(200, PARAM_ERROR)
    session = api.broker.sessions.get(client_id)
    if session is None:
        raise ApiError(200, CLIENT_OFFLINE)
    return session, topics


def _subscribe_one(api, item):
    session, topics = _session_and_topics(api, item)
    qos = item.get("qos", 0)
    if not is_int(qos) or qos not in (0, 1, 2):
        raise ApiError(200, PARAM_ERROR)
    broker = api.broker
    new = {t for t in topics if t not in session.subscriptions}
    if len(new) > subscriptions_left(broker.limits, session):
        # mqtt.max_subscriptions: none of them is added.
        broker.stats.refused_subscriptions += len(new)
        raise ApiError(200, QUOTA_EXCEEDED)
    now = broker.now()
    for topic in topics:
        broker.subscribe(session, SubscriptionOptions(topic, qos), qos, None, now)


def _unsubscribe_one(api, item):
    session, topics = _session_and_topics(api, item)
    for topic in topics:
        api.broker.unsubscribe(session, topic)


def _single(api, request, action):
    item = json_body(request, dict)
    try:
        action(api, item)
    except ApiError as error:
        if error.status != 200:
            raise
        return dumps({"code": error.code})
    return ok()


def _batch(api, request, action):
    items = json_body(request, list)
    data = []
    for item in items:
        entry = {}
        if isinstance(item, dict):
            entry["clientid"] = _text(item.get("clientid"))
            entry["topic"] = _text(item.get("topic", item.get("topics")))
        try:
            action(api, item)
            entry["code"] = SUCCESS
        except ApiError as error:
            entry["code"] = error.code
        data.append(entry)
    return dumps({"data": data, "code": SUCCESS})


def subscribe(api, request):
    return _single(api, request, _subscribe_one)


def unsubscribe(api, request):
    return _single(api, request, _unsubscribe_one)


def subscribe_batch(api, request):
    return _batch(api, request, _subscribe_one)


def unsubscribe_batch(api, request):
    return _batch(api, request, _unsubscribe_one)
