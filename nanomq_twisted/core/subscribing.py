# -*- test-case-name: tests.unit.test_broker,tests.unit.test_acl -*-
"""
SUBSCRIBE and UNSUBSCRIBE from a connected client: each filter validated
([MQTT-4.7]), checked against No Local on shared subscriptions, the topic
quotas, the ACL and the session's ``max_subscriptions``, answered in
SUBACK/UNSUBACK, then handed to the broker's subscription trie
(``Broker.subscribe``/``unsubscribe``).  A filter over a quota gets its
own failure code (0x8F Topic Filter Invalid for length and levels, 0x97
Quota exceeded for the count; 0x80 in 3.1.1) and the others in the packet
are served [MQTT-3.9.3].
"""

from ..mqtt import reason_codes as rc
from ..mqtt.errors import MqttError, ProtocolError
from ..mqtt.packets import Suback, Unsuback
from ..mqtt.topics import is_shared, validate_topic_filter
from .quotas import subscriptions_left, topic_too_big


def subscribe_request(conn, packet, now):
    """SUBSCRIBE: one reason code per filter, then the subscriptions
    (and their retained messages) after the SUBACK [MQTT-3.8.4]."""
    sub_id = packet.properties.get("subscription_identifier") if conn.v5 else None
    if sub_id == 0:
        raise ProtocolError("Subscription Identifier 0 [MQTT-3.8.2.1.2]")
    broker = conn.broker
    events = broker.events
    if events.client_subscribe:
        events.emit("client_subscribe", conn=conn, packet=packet, now=now)
    failure = rc.UNSPECIFIED_ERROR
    denied = False
    codes = []
    granted = []
    stats = broker.stats
    limits = broker.limits
    session = conn.session
    held = session.subscriptions
    # New filters this session may still take (mqtt.max_subscriptions);
    # replacing one it holds costs nothing.
    room = subscriptions_left(limits, session)
    for option in packet.subscriptions:
        topic_filter = option.topic_filter
        if not validate_topic_filter(topic_filter):
            codes.append(rc.TOPIC_FILTER_INVALID if conn.v5 else failure)
            continue
        if option.no_local and is_shared(topic_filter):
            # [MQTT-3.8.3-4]
            raise ProtocolError("No Local on a shared subscription")
        if topic_too_big(limits, topic_filter):
            # mqtt.max_topic_length / max_topic_levels (core/quotas.py).
            stats.refused_topics += 1
            codes.append(rc.TOPIC_FILTER_INVALID if conn.v5 else failure)
            continue
        if not broker.acl.check(conn, "subscribe", topic_filter):
            # SUBACK 0x87 (0x80 for 3.1.1), then, with deny_action =
            # disconnect, DISCONNECT 0x87 (docs/compatibility.md).
            denied = True
            codes.append(rc.NOT_AUTHORIZED if conn.v5 else failure)
            continue
        if topic_filter not in held:
            if room <= 0:
                stats.refused_subscriptions += 1
                codes.append(rc.QUOTA_EXCEEDED if conn.v5 else failure)
                continue
            room -= 1
        qos = min(option.qos, 2)
        codes.append(qos)
        granted.append((option, qos))
    # SUBACK first: retained messages follow it, so the client knows
    # the subscription is in place when they arrive.
    conn.send(Suback(packet.packet_id, tuple(codes)))
    for option, qos in granted:
        broker.subscribe(session, option, qos, sub_id, now)
    if denied and broker.deny_action == "disconnect":
        raise MqttError(rc.NOT_AUTHORIZED, "subscribe denied")

def unsubscribe_request(conn, packet, now):
    """UNSUBSCRIBE: UNSUBACK with one reason code per filter (5.0)
    [MQTT-3.10.4]."""
    broker = conn.broker
    events = broker.events
    if events.client_unsubscribe:
        events.emit("client_unsubscribe", conn=conn, packet=packet, now=now)
    codes = []
    for topic_filter in packet.topic_filters:
        existed = broker.unsubscribe(conn.session, topic_filter)
        codes.append(rc.SUCCESS if existed else rc.NO_SUBSCRIPTION_EXISTED)
    conn.send(Unsuback(packet.packet_id, tuple(codes) if conn.v5 else ()))
