"""
Hypothesis strategies for MQTT 3.1.1 and 5.0 cases: valid packets of every
type a client sends, and broken variants, each with the answer the
specification asks for (``Expect``).

Reason codes are the ones the specification names for the situation
(section 4.13 and the packet sections): a broken packet after CONNECT gets
a 5.0 DISCONNECT with 0x81 Malformed Packet or 0x82 Protocol Error (the
exact one where the text names it: 0x90 for a wildcard topic name, 0x94
for a bad topic alias), and a plain close in 3.1.1, which has no codes
[MQTT-4.8.0-1].  A broken CONNECT is closed, optionally after a CONNACK
with an error code [MQTT-3.1.4-1], [MQTT-3.2.2-6].
"""

from dataclasses import dataclass, field

from hypothesis import strategies as st

from . import wire
from .wire import (
    AUTH,
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    packet,
    properties,
    string,
    u16,
    u32,
    vbi,
)

MALFORMED, PROTOCOL_ERROR = 0x81, 0x82
BAD = frozenset({MALFORMED, PROTOCOL_ERROR})


@dataclass
class Expect:
    """What the broker must do with a case.

    ``kind``: ``"answer"`` -- the connection stays open and ``answers``
    (``(packet type, check(flags, body) -> bool)``, server PUBLISHes left
    out) come back in order; ``"close"`` -- the broker closes, after a 5.0
    DISCONNECT (or, before CONNECT was accepted, a CONNACK) whose reason
    is in ``reasons``, or silently when ``silent`` (or for 3.1.1 after
    CONNECT); ``"any"`` -- no promise but no crash and no hang (the
    runner half-closes and the broker must then close).
    """

    kind: str
    answers: list = field(default_factory=list)
    reasons: frozenset = frozenset()
    silent: bool = False


@dataclass
class Case:
    label: str
    level: int
    #: True: the runner first sends a valid CONNECT at ``level`` (clean,
    #: a unique client id) and expects CONNACK 0.
    connected: bool
    data: bytes
    expect: Expect

    def __repr__(self):
        return f"Case({self.label!r}, level={self.level}, data={self.data!r})"


def answer(*answers):
    return Expect("answer", list(answers))


def refused(*reasons, silent=False):
    return Expect("close", reasons=frozenset(reasons) or BAD, silent=silent)


ANY = Expect("any")


def ack_of(ptype, packet_id, v5, codes=frozenset({0x00, 0x10})):
    """An ack of ``ptype`` for ``packet_id``; 5.0 reason in ``codes``
    (0x10 No matching subscribers is a success [MQTT-3.4.2])."""
    def check(flags, body):
        if body[:2] != u16(packet_id):
            return False
        if not v5 or len(body) == 2:
            return len(body) == 2 or v5
        return body[2] in codes
    return (ptype, check)


# -- field strategies -----------------------------------------------------------

LEVEL = st.sampled_from([4, 5])
TOPIC_CHARS = st.sampled_from(list("abcxyz019/_-. ") + ["é", "中", "\u00ff", "$"])
topic_names = st.text(TOPIC_CHARS, min_size=1, max_size=40).filter(
    lambda t: not t.startswith(("$share/", "$queue/")) and not t.startswith("$SYS"))
packet_ids = st.integers(1, 65535)


def text(max_size):
    """Well-formed UTF-8 strings: any character but U+0000 [MQTT-1.5.4-2]
    and the surrogates [MQTT-1.5.4-1]."""
    return st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                   max_size=max_size)

payloads = st.binary(max_size=200)
user_property = st.tuples(text(max_size=8), text(max_size=8)).map(
    lambda kv: b"\x26" + string(kv[0]) + string(kv[1]))


def _props(*choices):
    """A 5.0 property block from distinct optional choices."""
    # One of each property id: a repeated one is a Protocol Error
    # [MQTT-2.2.2-?]; user properties (0x26) may repeat.
    return st.lists(st.one_of(*choices), max_size=4,
                    unique_by=lambda item: item[0] if item[0] != 0x26 else item).map(properties)


# Valid client-side properties, by packet.
publish_props = _props(
    st.just(b"\x01\x00"),
    st.integers(0, 2**32 - 1).map(lambda n: b"\x02" + u32(n)),
    text(max_size=12).map(lambda t: b"\x03" + string(t)),
    topic_names.map(lambda t: b"\x08" + string(t)),
    st.binary(max_size=12).map(lambda b: b"\x09" + wire.binary(b)),
    user_property,
)
connect_props = _props(
    st.integers(0, 600).map(lambda n: b"\x11" + u32(n)),
    st.integers(1, 65535).map(lambda n: b"\x21" + u16(n)),
    st.integers(0, 100).map(lambda n: b"\x22" + u16(n)),
    st.integers(1024, 2**28).map(lambda n: b"\x27" + u32(n)),
    st.sampled_from([b"\x17\x00", b"\x17\x01"]),
    st.sampled_from([b"\x19\x00", b"\x19\x01"]),
    user_property,
)
subscribe_props = _props(st.integers(1, 2**28 - 1).map(lambda n: b"\x0b" + vbi(n)),
                         user_property)
plain_props = _props(text(max_size=20).map(lambda t: b"\x1f" + string(t)), user_property)
user_props = _props(user_property)  # UNSUBSCRIBE: User Property only [MQTT-3.10.2.1]

# Broken 5.0 property blocks: an unknown id, a property of another packet,
# a duplicate, a bad value, a length that overruns.
bad_props = st.sampled_from([
    properties([b"\x00\x00"]),
    properties([b"\x7f\x00"]),
    properties([b"\x04\x00\x00"]),
    properties([b"\x12" + string("id")]),          # assigned client id: CONNACK only
    properties([b"\x24\x01"]),                    # maximum QoS: CONNACK only
    properties([b"\x1f" + string(b"\xc0\xaf")]),   # ill-formed UTF-8 reason string
    b"\x05\x1f\x00\x09ab",                        # the string overruns the block
    b"\x7f",                                      # block length past the packet
])
bad_publish_props = st.sampled_from([
    properties([b"\x01\x00", b"\x01\x00"]),        # duplicate [MQTT-2.2.2-?]
    properties([b"\x0b\x01"]),                     # subscription id from a client
    properties([b"\x11" + u32(5)]),                # session expiry in PUBLISH
    properties([b"\x08" + string("a/+")]),         # wildcard response topic
])

bad_utf8 = st.sampled_from([b"a\xc0\xaf", b"\xed\xa0\x80", b"a\xe2\x82", b"\xff", b"a\x00b",
                            b"\xf8\x88\x80\x80\x80", b"\xc1\xbf"])


# -- CONNECT ----------------------------------------------------------------------

def connect_bytes(level, client_id="", clean=True, keepalive=60, props=b"\x00",
                  will=None, username=None, password=None, flags_extra=0,
                  name=None):
    """A CONNECT; ``will`` = (topic, payload, qos, retain, props)."""
    flags = 0x02 if clean else 0
    if will is not None:
        flags |= 0x04 | (will[2] << 3) | (0x20 if will[3] else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    flags |= flags_extra
    if name is None:
        name = "MQIsdp" if level == 3 else "MQTT"
    body = string(name) + bytes([level, flags]) + u16(keepalive)
    if level == 5:
        body += props
    body += string(client_id)
    if will is not None:
        if level == 5:
            body += will[4]
        body += string(will[0]) + wire.binary(will[1])
    if username is not None:
        body += string(username)
    if password is not None:
        body += wire.binary(password)
    return packet(CONNECT, body)


def connack_ok(v5):
    def check(flags, body):
        return body[1:2] == b"\x00" and (len(body) > 2 if v5 else len(body) == 2)
    return (CONNACK, check)


@st.composite
def connect_cases(draw):
    """A first packet: valid CONNECTs (3.1, 3.1.1, 5.0) and broken ones."""
    level = draw(st.sampled_from([3, 4, 5]))
    v5 = level == 5
    client_id = draw(st.text(st.sampled_from(list("abc09-_")), min_size=1, max_size=23))
    will = None
    if draw(st.booleans()):
        will = (draw(topic_names), draw(payloads), draw(st.integers(0, 2)), draw(st.booleans()),
                draw(publish_props) if v5 else b"")
    username = draw(st.one_of(st.none(), text(max_size=10)))
    password = draw(st.one_of(st.none(), st.binary(max_size=10))) if (username or v5) else None
    props = draw(connect_props) if v5 else b"\x00"
    fields = dict(client_id=client_id, clean=True, props=props, will=will, username=username,
                  password=password)
    variant = draw(st.sampled_from([
        "valid", "valid", "valid", "bad-name", "bad-level", "reserved-flag", "will-qos-3",
        "will-flags-without-will", "bad-utf8-client-id", "wildcard-will-topic",
        "bad-properties", "zero-receive-maximum", "not-connect-first", "truncated",
        "empty-id-persistent",
    ]))
    if variant == "valid":
        return Case("connect/valid", level, False, connect_bytes(level, **fields),
                    answer(connack_ok(v5)))
    if variant == "bad-name":
        data = connect_bytes(level, **fields, name=draw(st.sampled_from(["MQTX", "mqtt", ""])))
        return Case("connect/bad-name", level, False, data,
                    refused(0x01, 0x84, MALFORMED, PROTOCOL_ERROR, silent=True))
    if variant == "bad-level":
        bad = draw(st.sampled_from([0, 1, 2, 6, 7, 0x83, 255]))
        body = connect_bytes(level, **fields)
        data = body.replace(string("MQTT" if level != 3 else "MQIsdp") + bytes([level]),
                            string("MQTT") + bytes([bad]), 1)
        # [MQTT-3.1.2-2]: CONNACK 0x01 (3.1.1 form) or 0x84 (5.0), then close.
        return Case("connect/bad-level", level, False, data, refused(0x01, 0x84, silent=True))
    if variant == "reserved-flag":
        data = connect_bytes(level, **fields, flags_extra=0x01)
        return Case("connect/reserved-flag", level, False, data,
                    refused(MALFORMED, silent=True))  # [MQTT-3.1.2-3]
    if variant == "will-qos-3":
        fields["will"] = ("t", b"", 3, False, b"\x00" if v5 else b"")
        return Case("connect/will-qos-3", level, False, connect_bytes(level, **fields),
                    refused(MALFORMED, silent=True))  # [MQTT-3.1.2-12]
    if variant == "will-flags-without-will":
        fields["will"] = None
        data = connect_bytes(level, **fields, flags_extra=draw(st.sampled_from([0x08, 0x20])))
        return Case("connect/will-flags-without-will", level, False, data,
                    refused(MALFORMED, silent=True))  # [MQTT-3.1.2-11/13]
    if variant == "bad-utf8-client-id":
        fields["client_id"] = draw(bad_utf8)
        return Case("connect/bad-utf8-client-id", level, False, connect_bytes(level, **fields),
                    refused(MALFORMED, silent=True))  # [MQTT-1.5.4-1/2]
    if variant == "wildcard-will-topic":
        fields["will"] = (draw(st.sampled_from(["a/+", "#", "a/#/b"])), b"x", 0, False,
                          b"\x00" if v5 else b"")
        return Case("connect/wildcard-will-topic", level, False, connect_bytes(level, **fields),
                    refused(0x90, MALFORMED, silent=True))  # [MQTT-3.1.3-11]
    if variant == "bad-properties" and v5:
        fields["props"] = draw(bad_props)
        return Case("connect/bad-properties", level, False, connect_bytes(level, **fields),
                    refused(MALFORMED, PROTOCOL_ERROR, silent=True))
    if variant == "zero-receive-maximum" and v5:
        fields["props"] = properties([draw(st.sampled_from([b"\x21\x00\x00", b"\x27" + u32(0)]))])
        # [MQTT-3.1.2-?]: Receive Maximum / Maximum Packet Size 0 is a Protocol Error.
        return Case("connect/zero-limit", level, False, connect_bytes(level, **fields),
                    refused(PROTOCOL_ERROR, silent=True))
    if variant == "not-connect-first":
        data = draw(st.sampled_from([wire.PINGREQ_BYTES, packet(PUBLISH, string("t") + b"x"),
                                     packet(SUBSCRIBE, u16(1) + string("t") + b"\x00")]))
        return Case("connect/not-first", level, False, data,
                    refused(silent=True))  # [MQTT-3.1.0-1]: close, nothing sent
    if variant == "truncated":
        data = connect_bytes(level, **fields)
        cut = draw(st.integers(1, len(data) - 1))
        return Case("connect/truncated", level, False, data[:cut], ANY)
    if variant == "empty-id-persistent" and level == 4:
        fields.update(client_id="", clean=False)
        # [MQTT-3.1.3-8]: CONNACK 0x02 Identifier rejected, then close.
        return Case("connect/empty-id-persistent", level, False, connect_bytes(level, **fields),
                    refused(0x02))
    return Case("connect/valid", level, False, connect_bytes(level, **fields),
                answer(connack_ok(v5)))


# -- packets after CONNECT ---------------------------------------------------------

def publish_bytes(topic, payload, qos, packet_id, v5, props=b"\x00", retain=False, dup=False,
                  flags=None):
    body = string(topic)
    if qos:
        body += u16(packet_id)
    if v5:
        body += props
    if flags is None:
        flags = (qos << 1) | (1 if retain else 0) | (0x08 if dup and qos else 0)
    return packet(PUBLISH, body + payload, flags)


def subscribe_bytes(packet_id, entries, v5, props=b"\x00"):
    body = u16(packet_id) + (props if v5 else b"")
    for topic_filter, options in entries:
        body += string(topic_filter) + bytes([options])
    return packet(SUBSCRIBE, body)


def unsubscribe_bytes(packet_id, topic_filters, v5, props=b"\x00"):
    body = u16(packet_id) + (props if v5 else b"")
    for topic_filter in topic_filters:
        body += string(topic_filter)
    return packet(UNSUBSCRIBE, body)


def suback_check(packet_id, entries, v5):
    def check(flags, body):
        if body[:2] != u16(packet_id):
            return False
        pos = 2
        if v5:
            length, pos = _read_vbi(body, pos)
            pos += length
        codes = body[pos:]
        if len(codes) != len(entries):
            return False
        for code, (topic_filter, options, valid) in zip(codes, entries):
            granted_ok = code <= (options & 3)
            if not valid:
                if code not in ((0x8F, 0x80) if v5 else (0x80,)):
                    return False
            elif not (granted_ok or code >= 0x80):
                return False
        return True
    return (SUBACK, check)


def _read_vbi(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


VALID_FILTERS = st.sampled_from(["a", "a/b", "a/+", "a/#", "+", "#", "+/+/c", "é/中",
                                 "$share/g/a/#", "$queue/q/+", "sport/tennis/+"])
INVALID_FILTERS = st.sampled_from(["a/#/b", "a+", "#a", "a/b#", "$share/g", "$share//a",
                                   "$share/g+/a"])


@st.composite
def after_connect_cases(draw, level=None):
    """One packet sent after a successful CONNECT, valid or broken."""
    level = draw(LEVEL) if level is None else level
    v5 = level == 5
    pid = draw(packet_ids)
    family = draw(st.sampled_from([
        "publish", "publish", "publish-broken", "subscribe", "subscribe-broken",
        "unsubscribe", "acks", "pingreq", "disconnect", "server-only", "reserved-type",
        "reserved-flags", "length", "corrupt", "auth",
    ]))
    if family == "publish":
        qos = draw(st.integers(0, 2))
        topic = draw(topic_names)
        props = draw(publish_props) if v5 else b"\x00"
        data = publish_bytes(topic, draw(payloads), qos, pid, v5, props,
                             retain=draw(st.booleans()), dup=draw(st.booleans()))
        answers = [] if qos == 0 else [ack_of(PUBACK if qos == 1 else PUBREC, pid, v5)]
        return Case(f"publish/qos{qos}", level, True, data, answer(*answers))
    if family == "publish-broken":
        variant = draw(st.sampled_from(["qos3", "wildcard", "bad-utf8", "packet-id-0",
                                        "share-prefix", "alias-0", "alias-too-big",
                                        "empty-topic", "bad-props", "bad-publish-props",
                                        "dup-on-qos0"]))
        topic = draw(topic_names)
        if variant == "qos3":
            data = publish_bytes(topic, b"x", 1, pid, v5, flags=0x06)
            return Case("publish/qos3", level, True, data, refused(MALFORMED))  # [MQTT-3.3.1-4]
        if variant == "wildcard":
            wild = draw(st.sampled_from(["a/+", "#", "a/#", "+/b", "x+y"]))
            return Case("publish/wildcard-topic", level, True,
                        publish_bytes(wild, b"x", 0, pid, v5), refused(0x90))  # [MQTT-3.3.2-2]
        if variant == "bad-utf8":
            return Case("publish/bad-utf8-topic", level, True,
                        publish_bytes(draw(bad_utf8), b"x", 1, pid, v5), refused(MALFORMED))
        if variant == "packet-id-0":
            return Case("publish/packet-id-0", level, True,
                        publish_bytes(topic, b"x", draw(st.integers(1, 2)), 0, v5),
                        refused())  # [MQTT-2.2.1-3]
        if variant == "share-prefix":
            return Case("publish/share-prefix", level, True,
                        publish_bytes("$share/g/" + topic, b"x", 1, pid, v5), refused(0x90))
        if not v5:
            return Case("publish/qos3", level, True,
                        publish_bytes(topic, b"x", 1, pid, v5, flags=0x06), refused(MALFORMED))
        if variant == "alias-0":
            props = properties([b"\x23" + u16(0)])
            return Case("publish/topic-alias-0", level, True,
                        publish_bytes(topic, b"x", 0, pid, v5, props),
                        refused(0x94))  # [MQTT-3.3.2-8]
        if variant == "alias-too-big":
            props = properties([b"\x23" + u16(65535)])
            return Case("publish/topic-alias-too-big", level, True,
                        publish_bytes(topic, b"x", 0, pid, v5, props),
                        refused(0x94))  # [MQTT-3.3.2-9]
        if variant == "empty-topic":
            return Case("publish/empty-topic-no-alias", level, True,
                        publish_bytes("", b"x", 0, pid, v5), refused())  # [MQTT-3.3.2-1]
        if variant == "bad-props":
            return Case("publish/bad-properties", level, True,
                        publish_bytes(topic, b"x", 1, pid, v5, draw(bad_props)), refused())
        if variant == "bad-publish-props":
            return Case("publish/bad-publish-properties", level, True,
                        publish_bytes(topic, b"x", 1, pid, v5, draw(bad_publish_props)),
                        refused())
        return Case("publish/dup-on-qos0", level, True,
                    publish_bytes(topic, b"x", 0, pid, v5, flags=0x08),
                    refused())  # [MQTT-3.3.1-2]
    if family == "subscribe":
        entries = []
        for _ in range(draw(st.integers(1, 4))):
            valid = draw(st.booleans()) or draw(st.booleans())
            topic_filter = draw(VALID_FILTERS if valid else INVALID_FILTERS)
            options = draw(st.integers(0, 2))
            if v5:
                options |= draw(st.sampled_from([0, 0x08, 0x10, 0x18, 0x20]))
                if not topic_filter.startswith(("$share/", "$queue/")):
                    options |= draw(st.sampled_from([0, 0x04]))
            entries.append((topic_filter, options, valid))
        props = draw(subscribe_props) if v5 else b"\x00"
        data = subscribe_bytes(pid, [(f, o) for f, o, _ in entries], v5, props)
        return Case("subscribe/valid", level, True, data,
                    answer(suback_check(pid, entries, v5)))
    if family == "subscribe-broken":
        variant = draw(st.sampled_from(["no-filters", "qos3", "reserved-bits", "packet-id-0",
                                        "bad-utf8", "no-local-shared", "bad-props"]))
        if variant == "no-filters":
            data = packet(SUBSCRIBE, u16(pid) + (b"\x00" if v5 else b""))
            return Case("subscribe/no-filters", level, True, data, refused())  # [MQTT-3.8.3-2]
        if variant == "qos3":
            return Case("subscribe/qos3", level, True, subscribe_bytes(pid, [("a", 3)], v5),
                        refused(MALFORMED))  # [MQTT-3.8.3-4]
        if variant == "reserved-bits":
            bits = draw(st.sampled_from([0x40, 0x80, 0xC0] + ([] if v5 else [0x04, 0x08])))
            return Case("subscribe/reserved-bits", level, True,
                        subscribe_bytes(pid, [("a", bits)], v5), refused(MALFORMED))
        if variant == "packet-id-0":
            return Case("subscribe/packet-id-0", level, True,
                        subscribe_bytes(0, [("a", 0)], v5), refused())
        if variant == "bad-utf8":
            return Case("subscribe/bad-utf8", level, True,
                        subscribe_bytes(pid, [(draw(bad_utf8), 0)], v5), refused(MALFORMED))
        if variant == "no-local-shared" and v5:
            return Case("subscribe/no-local-shared", level, True,
                        subscribe_bytes(pid, [("$share/g/a", 0x04)], v5),
                        refused(PROTOCOL_ERROR))  # [MQTT-3.8.3-4]
        if variant == "bad-props" and v5:
            return Case("subscribe/bad-properties", level, True,
                        subscribe_bytes(pid, [("a", 0)], v5, draw(bad_props)), refused())
        return Case("subscribe/qos3", level, True, subscribe_bytes(pid, [("a", 3)], v5),
                    refused(MALFORMED))
    if family == "unsubscribe":
        variant = draw(st.sampled_from(["valid", "valid", "no-filters", "bad-utf8",
                                        "packet-id-0"]))
        if variant == "no-filters":
            data = packet(UNSUBSCRIBE, u16(pid) + (b"\x00" if v5 else b""))
            return Case("unsubscribe/no-filters", level, True, data, refused())  # [MQTT-3.10.3-2]
        if variant == "bad-utf8":
            return Case("unsubscribe/bad-utf8", level, True,
                        unsubscribe_bytes(pid, [draw(bad_utf8)], v5), refused(MALFORMED))
        if variant == "packet-id-0":
            return Case("unsubscribe/packet-id-0", level, True,
                        unsubscribe_bytes(0, ["a"], v5), refused())
        topic_filters = draw(st.lists(VALID_FILTERS, min_size=1, max_size=4))
        props = draw(user_props) if v5 else b"\x00"

        def unsuback(flags, body, count=len(topic_filters)):
            if body[:2] != u16(pid):
                return False
            if not v5:
                return len(body) == 2
            length, pos = _read_vbi(body, 2)
            codes = body[pos + length:]
            return len(codes) == count and all(c in (0x00, 0x11) for c in codes)
        return Case("unsubscribe/valid", level, True,
                    unsubscribe_bytes(pid, topic_filters, v5, props),
                    answer((UNSUBACK, unsuback)))
    if family == "acks":
        ptype = draw(st.sampled_from([PUBACK, PUBREC, PUBREL, PUBCOMP]))
        body = u16(pid)
        reason = 0
        if v5 and draw(st.booleans()):
            # The reason codes each ack may carry [MQTT-3.4.2.1, 3.5.2.1, ...].
            codes = [0, 0x92] if ptype in (PUBREL, PUBCOMP) else [0, 0x10, 0x80, 0x87, 0x99]
            reason = draw(st.sampled_from(codes))
            body += bytes([reason]) + draw(plain_props)
        data = packet(ptype, body)
        # Acks for packet ids nothing is in flight for: PUBREC is answered
        # with PUBREL and PUBREL with PUBCOMP (5.0: 0x92 Packet Identifier
        # not found allowed); PUBACK/PUBCOMP are ignored [MQTT-4.3].
        if ptype == PUBREC and reason < 0x80:
            return Case("ack/pubrec-unknown", level, True, data,
                        answer(ack_of(PUBREL, pid, v5, {0x00, 0x92})))
        if ptype == PUBREC:
            # A failed PUBREC ends the flow: no PUBREL [MQTT-4.3.3-4].
            return Case("ack/pubrec-failed", level, True, data, answer())
        if ptype == PUBREL:
            return Case("ack/pubrel-unknown", level, True, data,
                        answer(ack_of(PUBCOMP, pid, v5, {0x00, 0x92})))
        return Case(f"ack/{'puback' if ptype == PUBACK else 'pubcomp'}-unknown", level, True,
                    data, answer())
    if family == "pingreq":
        return Case("pingreq", level, True, wire.PINGREQ_BYTES,
                    answer((PINGRESP, lambda f, b: b == b"")))
    if family == "disconnect":
        if v5:
            reason = draw(st.sampled_from([0x00, 0x04]))
            body = draw(st.sampled_from([b"", bytes([reason]),
                                         bytes([reason]) + draw(plain_props)]))
        else:
            body = b""
        return Case("disconnect", level, True, packet(DISCONNECT, body), refused(silent=True))
    if family == "server-only":
        ptype = draw(st.sampled_from([CONNACK, SUBACK, UNSUBACK, PINGRESP, CONNECT]))
        body = {CONNACK: b"\x00\x00", SUBACK: u16(pid) + b"\x00", UNSUBACK: u16(pid),
                PINGRESP: b"", CONNECT: connect_bytes(level)[2:]}[ptype]
        # [MQTT-3.1.0-2]: a second CONNECT is a Protocol Error; so is a
        # packet only a server sends.
        return Case(f"server-only/{ptype}", level, True, packet(ptype, body), refused())
    if family == "reserved-type":
        ptype = draw(st.sampled_from([0] + ([] if v5 else [AUTH])))
        return Case(f"reserved-type/{ptype}", level, True, packet(ptype, b"", 0),
                    refused())  # [MQTT-2.1.2]
    if family == "reserved-flags":
        ptype = draw(st.sampled_from([PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, UNSUBSCRIBE,
                                      PINGREQ, DISCONNECT]))
        good = wire.FLAGS[ptype]
        flags = draw(st.integers(0, 15).filter(lambda f: f != good))
        body = {SUBSCRIBE: subscribe_bytes(pid, [("a", 0)], v5)[2:],
                UNSUBSCRIBE: unsubscribe_bytes(pid, ["a"], v5)[2:],
                PINGREQ: b"", DISCONNECT: b""}.get(ptype, u16(pid))
        return Case(f"reserved-flags/{ptype}", level, True, packet(ptype, body, flags),
                    refused(MALFORMED))  # [MQTT-2.1.3-1]
    if family == "length":
        body = string(draw(topic_names)) + u16(pid) + (b"\x00" if v5 else b"") + draw(payloads)
        variant = draw(st.sampled_from(["five-byte-length", "longer", "shorter"]))
        if variant == "five-byte-length":
            data = b"\x32\xff\xff\xff\xff\x7f"
            return Case("length/five-byte-vbi", level, True, data,
                        refused(MALFORMED))  # [MQTT-1.5.5]
        base = b"\x32"
        extra = draw(st.integers(1, 1000))
        if variant == "longer":
            return Case("length/longer-than-sent", level, True,
                        bytes([base[0]]) + vbi(len(body) + extra) + body, ANY)
        return Case("length/shorter-than-sent", level, True,
                    bytes([base[0]]) + vbi(max(0, len(body) - extra % (len(body) + 1))) + body,
                    ANY)
    if family == "corrupt":
        base = draw(st.sampled_from([
            publish_bytes("a/b", b"payload", 1, pid, v5, properties([b"\x01\x00"]) if v5 else
                          b"\x00"),
            subscribe_bytes(pid, [("a/+", 1), ("b", 2)], v5),
            unsubscribe_bytes(pid, ["a"], v5),
        ]))
        position = draw(st.integers(0, len(base) - 1))
        value = draw(st.integers(0, 255))
        data = base[:position] + bytes([value]) + base[position + 1:]
        return Case("corrupt/byte", level, True, data, ANY)
    # AUTH: 5.0 only and only after a CONNECT with an Authentication
    # Method; without one it is a Protocol Error [MQTT-4.12.0-?].
    if v5:
        body = draw(st.sampled_from([b"", b"\x18\x00", b"\x19" + properties(
            [b"\x15" + string("SCRAM")])]))
        return Case("auth/unrequested", level, True, packet(AUTH, body), refused())
    return Case("reserved-type/15", level, True, packet(AUTH, b""), refused())


cases = st.one_of(connect_cases(), after_connect_cases())
