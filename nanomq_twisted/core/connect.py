# -*- test-case-name: tests.unit.test_broker,tests.unit.test_limits,tests.protocol.test_protocol -*-
"""
CONNECT: from the first packet of a connection to its CONNACK.

A connection is ``NEW`` until its CONNECT arrives, ``AUTHENTICATING`` while
the authenticator decides (packets pipelined meanwhile are held by the
connection and replayed after the CONNACK), ``CONNECTED`` once the broker
has attached it to a session, and ``CLOSED`` for good after that.

``accept_connect`` negotiates what the CONNECT asks for against the
broker's limits (protocol level, keepalive and Server Keep Alive, client
identifier, Receive Maximum, Maximum Packet Size, Topic Alias Maximum),
records the frozen `ConnectInfo` and asks the authenticator;
``finish_connect`` attaches the session and sends the CONNACK with the
properties that tell a 5.0 client our limits [MQTT-3.2.2].  Refusals are a
CONNACK with a failure code, then close [MQTT-3.2.2-6].

These are functions of the connection rather than its methods so that
`ClientConnection` holds the steady state (output, input, acks) and this
module the handshake, each readable on its own.
"""

from ..mqtt import reason_codes as rc
from ..mqtt.packets import MQTT_5, Connack
from .auth import PENDING
from .info import ConnectInfo
from .quotas import topic_too_big

NEW, AUTHENTICATING, CONNECTED, CLOSED = range(4)


def accept_connect(conn, connect, now):
    """Take the CONNECT ``connect`` and ask the authenticator about it."""
    conn.level = connect.protocol_level
    v5 = conn.v5 = conn.level == MQTT_5
    props = connect.properties
    broker = conn.broker
    limits = broker.limits
    conn.keepalive = connect.keepalive
    # A 5.0 server may impose its own keepalive with Server Keep Alive in
    # CONNACK [MQTT-3.2.2-21]; ``mqtt.max_keepalive`` caps it (a client
    # asking for 0, "never", gets the cap too).
    limit = limits.server_keep_alive
    conn.server_keepalive = None
    if v5 and limit and (conn.keepalive == 0 or conn.keepalive > limit):
        conn.keepalive = conn.server_keepalive = limit
    conn.clean_start = connect.clean_start
    # A TLS listener's use_identity_as_username: the certificate's CN.
    identity = conn.transport.tls_identity
    conn.username = identity if identity is not None else connect.username
    client_id = connect.client_id
    assigned = False
    if not client_id:
        if not v5 and not connect.clean_start:
            # [MQTT-3.1.3-8]: a 3.1.1 client with CleanSession=0 must supply
            # an id.  NanoMQ invents one; we follow the spec.
            conn.info = _connect_info(conn, connect, None, False)
            refuse(conn, rc.CLIENT_IDENTIFIER_NOT_VALID, now)
            return
        client_id = broker.assign_client_id()
        assigned = True
    conn.client_id = client_id
    conn.info = _connect_info(conn, connect, client_id, assigned)
    if connect.will is not None and topic_too_big(limits, connect.will.topic):
        # The will would be published to a topic no client may publish to
        # (mqtt.max_topic_length/_levels): CONNACK 0x90 Topic Name Invalid
        # (3.1.1 has no such code: 0x03 Server unavailable).
        broker.stats.refused_topics += 1
        refuse(conn, rc.TOPIC_NAME_INVALID, now)
        return
    # ``mqtt.max_inflight_window`` bounds the QoS 1/2 messages in flight
    # towards any client; the rest wait in the queue.
    window = limits.receive_maximum
    if v5:
        if "authentication_method" in props:
            refuse(conn, rc.BAD_AUTHENTICATION_METHOD, now)
            return
        # Never more in flight than the client allows [MQTT-3.3.4-9], nor
        # than our own window.
        conn.receive_maximum = min(props.get("receive_maximum", 65535), window)
        if "maximum_packet_size" in props:
            conn.max_outgoing = props["maximum_packet_size"]
        else:
            conn.max_outgoing = broker.config.client_max_packet_size
        conn.topic_alias_max = props.get("topic_alias_maximum", 0)
        if conn.topic_alias_max:
            conn.aliases_out = {}
        conn.request_problem_information = bool(props.get("request_problem_information", 1))
    else:
        conn.max_outgoing = broker.config.client_max_packet_size
        conn.receive_maximum = window
    conn.will = connect.will
    if connect.will is not None and v5:
        conn.will_delay = connect.will.properties.get("will_delay_interval", 0)
    conn.state = AUTHENTICATING
    # Also while an asynchronous authenticator is still answering.
    conn.start_keepalive(now)
    events = broker.events
    if events.client_connect:
        events.emit("client_connect", conn=conn, now=now)
    result = broker.authenticator.authenticate(conn.info, conn.authenticator_answered)
    if result is not PENDING:
        finish_connect(conn, result, now)


def _connect_info(conn, connect, client_id, assigned):
    return ConnectInfo(
        client_id, conn.username, connect.password, conn.level,
        connect.protocol_name, connect.clean_start, conn.keepalive,
        connect.properties, conn.transport, assigned, connect.will,
    )


def finish_connect(conn, code, now):
    """The authenticator said ``code``: CONNACK, session, held input."""
    broker = conn.broker
    if code != rc.SUCCESS:
        broker.stats.auth_failures += 1
        refuse(conn, code, now)
        return
    session_present = broker.attach(conn, now)
    conn.state = CONNECTED
    conn.connected_at = now
    props = {}
    if conn.v5:
        if conn.info.assigned:
            props["assigned_client_identifier"] = conn.client_id
        limits = broker.limits
        # How many QoS 1/2 PUBLISHes it may have unacknowledged towards us;
        # one more is DISCONNECT 0x93 [MQTT-3.3.4-7] (InboundPublishes).
        props["receive_maximum"] = limits.receive_maximum
        if limits.topic_alias_maximum:
            props["topic_alias_maximum"] = limits.topic_alias_maximum
        props["maximum_packet_size"] = limits.maximum_packet_size
        if conn.server_keepalive is not None:
            props["server_keep_alive"] = conn.server_keepalive
    conn.send(Connack(session_present, rc.SUCCESS, props))
    broker.on_connected(conn, now)
    session = conn.session
    session.resend_inflight(now)
    if not conn.v5 and session.inflight:
        # The 3.x retry timer was cancelled when the previous connection
        # closed; re-arm it, or what was just resent is never retried.
        broker.retry_needed(session, now)
    session.pump(now)
    conn.replay_held(now)


def refuse(conn, code, now):
    """CONNACK with a failure code, then close [MQTT-3.2.2-6]."""
    if conn.v5:
        conn.send(Connack(False, code))
    else:
        conn.send(Connack(False, rc.connack_code_for_v3(code)))
    conn.state = CLOSED
    conn.will = None
    conn.drop_held()
    conn.broker.on_refused(conn, code, now)
    conn.close_now()


def refuse_over_limit(conn, connect, now):
    """``max_connections`` reached: CONNACK 0x97 Quota exceeded (5.0) or
    0x03 Server unavailable (3.x); the client never reaches the broker."""
    conn.level = connect.protocol_level
    conn.v5 = conn.level == MQTT_5
    code = rc.QUOTA_EXCEEDED if conn.v5 else rc.CONNACK_REFUSED_SERVER_UNAVAILABLE
    conn.send(Connack(False, code))
    conn.state = CLOSED
    conn.close_now()
