# -*- test-case-name: tests.unit.test_codec -*-
"""
The fifteen MQTT control packets as plain value objects.

One class per packet type, shared by MQTT 3.1, 3.1.1 and 5.0: fields that
only exist in 5.0 (reason codes, properties) have defaults that mean "absent",
so a 3.1.1 packet is simply a 5.0 packet that leaves them alone.  The codec
(`codec.py`) turns bytes into these objects and back; nothing here knows
about bytes.

Properties are a plain ``dict`` keyed by the snake_case property name from
`properties.py` (``"session_expiry_interval"``, ``"user_property"`` ...).
Properties that may appear more than once hold a list: ``user_property`` is
a list of ``(name, value)`` string pairs, ``subscription_identifier`` in a
PUBLISH is a list of ints.  An absent property is an absent key.

The classes are slotted dataclasses.  ``Publish`` and the four publish
acknowledgements are created per message on the hot path, so they are
*not* frozen (a frozen dataclass pays ``object.__setattr__`` per field in
``__init__``); treat every packet as immutable all the same and use
``dataclasses.replace`` to derive variants.
"""

from dataclasses import dataclass, field

# Packet type numbers, [MQTT-2.1.2] table 2.1.
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

# Protocol levels carried in CONNECT.
MQTT_3_1 = 3
MQTT_3_1_1 = 4
MQTT_5 = 5


def _props():
    return {}


@dataclass(frozen=True, slots=True)
class Will:
    """The will message carried inside CONNECT."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    properties: dict = field(default_factory=_props)


@dataclass(frozen=True, slots=True)
class Connect:
    """CONNECT.  ``protocol_level`` is 3 (``MQIsdp``), 4 or 5.

    ``bridge`` is the non-standard 0x80 bit of the protocol level byte that
    Mosquitto and NanoMQ bridges set to ask the remote not to echo their own
    messages back (a 3.1.1 stand-in for MQTT 5's No Local).
    """

    client_id: str = ""
    protocol_level: int = MQTT_3_1_1
    protocol_name: str = "MQTT"
    clean_start: bool = True
    keepalive: int = 0
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: dict = field(default_factory=_props)
    bridge: bool = False
    type = CONNECT


@dataclass(frozen=True, slots=True)
class Connack:
    """CONNACK.  ``reason_code`` is the 3.1.1 return code for levels 3/4."""

    session_present: bool = False
    reason_code: int = 0
    properties: dict = field(default_factory=_props)
    type = CONNACK


@dataclass(slots=True)
class Publish:
    """PUBLISH.  ``packet_id`` is None exactly when ``qos`` is 0.

    ``raw`` is the complete packet as it arrived on the wire (set by the
    decoder, never by callers), so a broker can forward it unchanged when
    the outgoing packet would be byte-identical.  It takes no part in
    equality.
    """

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: dict = field(default_factory=_props)
    raw: bytes | None = field(default=None, compare=False, repr=False)
    type = PUBLISH


@dataclass(slots=True)
class Puback:
    packet_id: int
    reason_code: int = 0
    properties: dict = field(default_factory=_props)
    type = PUBACK


@dataclass(slots=True)
class Pubrec:
    packet_id: int
    reason_code: int = 0
    properties: dict = field(default_factory=_props)
    type = PUBREC


@dataclass(slots=True)
class Pubrel:
    packet_id: int
    reason_code: int = 0
    properties: dict = field(default_factory=_props)
    type = PUBREL


@dataclass(slots=True)
class Pubcomp:
    packet_id: int
    reason_code: int = 0
    properties: dict = field(default_factory=_props)
    type = PUBCOMP


@dataclass(frozen=True, slots=True)
class SubscriptionOptions:
    """One topic filter of a SUBSCRIBE with its option byte, [MQTT-3.8.3.1].

    For 3.1.1 only ``qos`` is meaningful; the other options keep their
    defaults, which is exactly how a 3.1.1 subscription behaves.
    """

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    subscriptions: tuple = ()  # of SubscriptionOptions
    properties: dict = field(default_factory=_props)
    type = SUBSCRIBE


@dataclass(frozen=True, slots=True)
class Suback:
    """SUBACK.  ``reason_codes`` holds granted QoS 0-2 or a failure code
    (0x80 for 3.1.1, any v5 SUBACK reason code for 5.0)."""

    packet_id: int
    reason_codes: tuple = ()
    properties: dict = field(default_factory=_props)
    type = SUBACK


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    topic_filters: tuple = ()  # of str
    properties: dict = field(default_factory=_props)
    type = UNSUBSCRIBE


@dataclass(frozen=True, slots=True)
class Unsuback:
    """UNSUBACK.  3.1.1 has no payload: ``reason_codes`` stays empty."""

    packet_id: int
    reason_codes: tuple = ()
    properties: dict = field(default_factory=_props)
    type = UNSUBACK


@dataclass(frozen=True, slots=True)
class Pingreq:
    type = PINGREQ


@dataclass(frozen=True, slots=True)
class Pingresp:
    type = PINGRESP


@dataclass(frozen=True, slots=True)
class Disconnect:
    reason_code: int = 0
    properties: dict = field(default_factory=_props)
    type = DISCONNECT


@dataclass(frozen=True, slots=True)
class Auth:
    reason_code: int = 0
    properties: dict = field(default_factory=_props)
    type = AUTH


PACKET_CLASSES = {
    CONNECT: Connect,
    CONNACK: Connack,
    PUBLISH: Publish,
    PUBACK: Puback,
    PUBREC: Pubrec,
    PUBREL: Pubrel,
    PUBCOMP: Pubcomp,
    SUBSCRIBE: Subscribe,
    SUBACK: Suback,
    UNSUBSCRIBE: Unsubscribe,
    UNSUBACK: Unsuback,
    PINGREQ: Pingreq,
    PINGRESP: Pingresp,
    DISCONNECT: Disconnect,
    AUTH: Auth,
}
