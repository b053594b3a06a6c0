# -*- test-case-name: tests.unit.test_broker,tests.unit.test_acl -*-
"""
SUBSCRIBE and UNSUBSCRIBE from a connected client: each filter validated
([MQTT-4.7]), checked against No Local on shared subscriptions and against
the ACL, answered in SUBACK/UNSUBACK, then handed to the broker's
subscription trie (``Broker.subscribe``/``unsubscribe``).
"""

from ..mqtt import reason_codes as rc
from ..mqtt.errors import MqttError, ProtocolError
from ..mqtt.packets import Suback, Unsuback
from ..mqtt.topics import is_shared, validate_topic_filter


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
    for option in packet.subscriptions:
        topic_filter = option.topic_filter
        if not validate_topic_filter(topic_filter):
            codes.append(rc.TOPIC_FILTER_INVALID if conn.v5 else failure)
            continue
        if option.no_local and is_shared(topic_filter):
            # [MQTT-3.8.3-4]
            raise ProtocolError("No Local on a shared subscription")
        if not broker.acl.check(conn, "subscribe", topic_filter):
            # SUBACK 0x87 (0x80 for 3.1.1), then, with deny_action =
            # disconnect, DISCONNECT 0x87 (docs/compatibility.md).
            denied = True
            codes.append(rc.NOT_AUTHORIZED if conn.v5 else failure)
            continue
        qos = min(option.qos, 2)
        codes.append(qos)
        granted.append((option, qos))
    # SUBACK first: retained messages follow it, so the client knows
    # the subscription is in place when they arrive.
    conn.send(Suback(packet.packet_id, tuple(codes)))
    for option, qos in granted:
        broker.subscribe(conn.session, option, qos, sub_id, now)
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
