"""
Tests for the MQTT codec: every packet type at levels 3, 4 and 5 against
hand-built bytes (`tests.packets`), against paho-mqtt's encoder, every
validation rule with its reason code, streaming, the packet size limit,
and hypothesis round-trips and garbage.
"""


from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import CallbackAPIVersion, Client, MQTTv5, MQTTv31, MQTTv311
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.mqtt import Decoder, MqttError, encode, encode_publish
from nanomq_twisted.mqtt import reason_codes as rc
from nanomq_twisted.mqtt.packets import (
    Auth,
    Connack,
    Connect,
    Disconnect,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    SubscriptionOptions,
    Unsuback,
    Unsubscribe,
    Will,
)
from nanomq_twisted.mqtt.wire import encode_varint, read_varint
from tests import packets as pk

LEVELS = (3, 4, 5)


def decode_all(data, level=None, **kw):
    return list(Decoder(protocol_level=level, **kw).feed(data))


def decode_one(data, level=None):
    packets = decode_all(data, level)
    assert len(packets) == 1, packets
    return packets[0]


def cases(level):
    """(packet, expected bytes) pairs that round-trip at ``level``."""
    v5 = level == 5
    props = pk.props
    out = []
    # CONNECT, full and minimal.
    will_props = {"will_delay_interval": 5} if v5 else {}
    conn_props = ({"session_expiry_interval": 10, "receive_maximum": 20}
                  if v5 else {})
    out.append((
        Connect(client_id="cid", protocol_level=level,
                protocol_name="MQIsdp" if level == 3 else "MQTT",
                clean_start=False, keepalive=30, username="u",
                password=b"p\x00w",
                will=Will("w/t", b"bye", 1, True, will_props),
                properties=conn_props),
        pk.connect("cid", level, clean=False, keepalive=30, username="u",
                   password=b"p\x00w", will_topic="w/t", will_payload=b"bye",
                   will_qos=1, will_retain=True,
                   properties=props(pk.p_u32(0x11, 10), pk.p_u16(0x21, 20)),
                   will_properties=props(pk.p_u32(0x18, 5)))))
    out.append((
        Connect(client_id="", protocol_level=level,
                protocol_name="MQIsdp" if level == 3 else "MQTT"),
        pk.connect("", level, keepalive=0)))
    out.append((
        Connect(client_id="b", protocol_level=level, bridge=True,
                protocol_name="MQIsdp" if level == 3 else "MQTT",
                will=Will("x", b"", 2)),
        pk.connect("b", level, keepalive=0, bridge=True, will_topic="x",
                   will_qos=2)))
    # CONNACK.
    out.append((Connack(level != 3, 0),
                pk.connack(level != 3, 0, level)))
    if v5:
        out.append((Connack(False, rc.NOT_AUTHORIZED,
                            {"reason_string": "no", "maximum_qos": 1}),
                    pk.connack(False, 0x87, 5,
                               props(pk.p_str(0x1F, "no"),
                                     pk.p_byte(0x24, 1)))))
    else:
        out.append((Connack(False, 5), pk.connack(False, 5, level)))
    # PUBLISH at each QoS.
    out.append((Publish("a/b", b"hi"), pk.publish("a/b", b"hi", level=level)))
    out.append((Publish("a/b", b"", 1, True, False, 10),
                pk.publish("a/b", b"", 1, True, mid=10, level=level)))
    pprops = ({"message_expiry_interval": 60,
               "user_property": [("k", "v"), ("k", "w")]} if v5 else {})
    out.append((Publish("\u00e9/x", b"\x00" * 300, 2, False, True, 65535,
                        pprops),
                pk.publish("\u00e9/x", b"\x00" * 300, 2, dup=True, mid=65535,
                           level=level,
                           properties=props(pk.p_u32(0x02, 60),
                                            pk.p_pair(0x26, "k", "v"),
                                            pk.p_pair(0x26, "k", "w")))))
    # PUBACK / PUBREC / PUBREL / PUBCOMP.
    for cls, build in ((Puback, pk.puback), (Pubrec, pk.pubrec),
                       (Pubrel, pk.pubrel), (Pubcomp, pk.pubcomp)):
        out.append((cls(1), build(1)))
        if v5:
            code = 0x92 if cls in (Pubrel, Pubcomp) else 0x10
            out.append((cls(2, code), build(2, code)))
            out.append((cls(3, code, {"reason_string": "r"}),
                        build(3, code, props(pk.p_str(0x1F, "r")))))
    # SUBSCRIBE / SUBACK.
    if v5:
        out.append((
            Subscribe(5, (SubscriptionOptions("a/b", 1),
                          SubscriptionOptions("c/#", 2, True, True, 2),
                          SubscriptionOptions("$share/g/d", 0, False, False,
                                              1)),
                      {"subscription_identifier": 9}),
            pk.subscribe(5, [("a/b", 0x01), ("c/#", 0x2E),
                             ("$share/g/d", 0x10)], 5,
                         props(pk.p_varint(0x0B, 9)))))
        out.append((Suback(5, (0, 1, 2, 0x87, 0x8F), {"reason_string": "x"}),
                    pk.suback(5, (0, 1, 2, 0x87, 0x8F), 5,
                              props(pk.p_str(0x1F, "x")))))
    else:
        out.append((Subscribe(5, (SubscriptionOptions("a/b", 1),
                                  SubscriptionOptions("c/#", 2))),
                    pk.subscribe(5, [("a/b", 1), ("c/#", 2)], level)))
        out.append((Suback(5, (0, 1, 2, 0x80)),
                    pk.suback(5, (0, 1, 2, 0x80), level)))
    # UNSUBSCRIBE / UNSUBACK.
    out.append((Unsubscribe(6, ("a/b", "c/#")),
                pk.unsubscribe(6, ["a/b", "c/#"], level)))
    if v5:
        out.append((Unsuback(6, (0, 0x11)),
                    pk.unsuback(6, (0, 0x11), 5)))
    else:
        out.append((Unsuback(6), pk.unsuback(6, level=level)))
    # PINGREQ / PINGRESP / DISCONNECT / AUTH.
    out.append((Pingreq(), pk.PINGREQ))
    out.append((Pingresp(), pk.PINGRESP))
    out.append((Disconnect(), pk.disconnect()))
    if v5:
        out.append((Disconnect(0x8E), pk.disconnect(0x8E)))
        out.append((Disconnect(4, {"session_expiry_interval": 0}),
                    pk.disconnect(4, props(pk.p_u32(0x11, 0)))))
        out.append((Auth(), pk.auth()))
        out.append((Auth(0x18), pk.auth(0x18)))
        out.append((Auth(0x19, {"authentication_method": "M",
                                "authentication_data": b"d"}),
                    pk.auth(0x19, props(pk.p_str(0x15, "M"),
                                        pk.p_bin(0x16, b"d")))))
    return out


class RoundTripMatrixTests(SynchronousTestCase):
    """Every packet type x levels 3/4/5 against hand-built bytes."""

    def _check(self, level):
        for packet, expected in cases(level):
            self.assertEqual(encode(packet, level), expected, packet)
            decoded = decode_one(
                expected, None if isinstance(packet, Connect) else level)
            self.assertEqual(decoded, packet)
            if isinstance(packet, Publish):
                self.assertEqual(decoded.raw, expected)

    def test_level_3(self):
        self._check(3)

    def test_level_4(self):
        self._check(4)

    def test_level_5(self):
        self._check(5)

    def test_connect_sets_protocol_level(self):
        for level in LEVELS:
            d = Decoder()
            self.assertEqual(next(iter(d.feed(pk.connect("c", level))))
                             .protocol_level, level)
            self.assertEqual(d.protocol_level, level)


class SpecExampleTests(SynchronousTestCase):
    def test_varint_examples_MQTT_1_5_5(self):
        for value, raw in pk.VARINT_EXAMPLES:
            self.assertEqual(encode_varint(value), raw)
            self.assertEqual(read_varint(raw, 0, len(raw)), (value, len(raw)))
            self.assertEqual(pk.varint(value), raw)

    def test_utf8_example_MQTT_1_5_4(self):
        text, raw = pk.UTF8_EXAMPLE
        packet = pk.publish(text, level=4)
        self.assertEqual(packet[2:9], raw)
        self.assertEqual(decode_one(packet, 4).topic, text)
        self.assertEqual(encode(Publish(text), 4), packet)

    def test_connect_examples(self):
        for level, raw in ((3, pk.CONNECT_31), (4, pk.CONNECT_311),
                           (5, pk.CONNECT_5)):
            expected = Connect(
                client_id="test", protocol_level=level, keepalive=10,
                protocol_name="MQIsdp" if level == 3 else "MQTT",
                properties={"session_expiry_interval": 10} if level == 5
                else {})
            self.assertEqual(decode_one(raw), expected)
            self.assertEqual(encode(expected), raw)

    def test_publish_examples(self):
        for level, raw in ((4, pk.PUBLISH_311_QOS1), (5, pk.PUBLISH_5_QOS1)):
            p = Publish("a/b", b"hi", 1, packet_id=10)
            self.assertEqual(decode_one(raw, level), p)
            self.assertEqual(encode(p, level), raw)
            self.assertEqual(
                encode_publish("a/b", b"hi", 1, False, False, 10, {}, level),
                raw)

    def test_large_remaining_length(self):
        payload = b"x" * 20000
        raw = pk.publish("t", payload, level=4)
        self.assertEqual(raw[1:4], pk.varint(20000 + 3))
        self.assertEqual(encode(Publish("t", payload), 4), raw)
        self.assertEqual(decode_one(raw, 4).payload, payload)


class EncodeOnlyTests(SynchronousTestCase):
    """Encodings that deliberately do not round-trip."""

    def test_properties_dropped_below_5(self):
        for level in (3, 4):
            self.assertEqual(
                encode(Publish("t", b"", 0, properties={"topic_alias": 1}),
                       level),
                pk.publish("t", level=level))
            self.assertEqual(encode(Puback(1, 0x10, {"reason_string": "r"}),
                                    level), pk.puback(1))
            self.assertEqual(encode(Disconnect(0x8E), level),
                             pk.disconnect())

    def test_v5_short_forms(self):
        self.assertEqual(encode(Pubrel(1), 5), b"\x62\x02\x00\x01")
        self.assertEqual(encode(Pubrec(1, 0x10), 5), b"\x50\x03\x00\x01\x10")
        self.assertEqual(encode(Disconnect(), 5), b"\xe0\x00")
        self.assertEqual(encode(Auth(0x18), 5), b"\xf0\x01\x18")

    def test_suback_v5_failure_codes_fold_to_0x80_below_5(self):
        self.assertEqual(encode(Suback(1, (1, 0x87, 0x8F)), 4),
                         pk.suback(1, (1, 0x80, 0x80), 4))

    def test_connack_level_3_has_no_session_present(self):
        self.assertEqual(encode(Connack(True, 0), 3), b"\x20\x02\x00\x00")

    def test_auth_below_5_refused(self):
        self.assertRaises(ValueError, encode, Auth(), 4)

    def test_connect_canonical_protocol_name(self):
        self.assertEqual(encode(Connect("test", 3, "MQTT", keepalive=10)),
                         pk.CONNECT_31)


def paho_packets(protocol, action):
    """Bytes paho-mqtt's client would write for ``action(client)``."""
    client = Client(CallbackAPIVersion.VERSION2, client_id="pc",
                    protocol=protocol)
    client._sock = object()  # paho refuses to PUBLISH without one
    out = []

    def capture(command, packet, mid, qos, info=None):
        out.append(bytes(packet))
        return 0
    client._packet_queue = capture
    try:
        action(client)
    finally:
        client._sock = None
    return out


class PahoCrossCheckTests(SynchronousTestCase):
    """paho-mqtt's client encoder as an independent reference."""

    def _client_session(self, protocol, level):
        def action(c):
            c.username_pw_set("u", "p")
            c.will_set("w/t", b"bye", 1, True)
            c._send_connect(30)
            props = None
            if level == 5:
                props = Properties(PacketTypes.PUBLISH)
                props.MessageExpiryInterval = 9
                props.UserProperty = ("a", "b")
            c._send_publish(7, b"a/b", b"hi", 1, True, False, None, props)
            c._send_publish(0, b"a/b", b"", 0, False, False, None, None)
            opts = SubscribeOptions(1) if level == 5 else 1
            c._send_subscribe(False, [(b"a/#", opts), (b"b", opts)])
            c._send_unsubscribe(False, [b"a/#"])
            c._send_puback(3)
            c._send_pubrec(4)
            c._send_pubrel(5)
            c._send_pubcomp(6)
            c._send_pingreq()
            c._send_disconnect(
                ReasonCode(PacketTypes.DISCONNECT, "Normal disconnection")
                if level == 5 else None)
        return paho_packets(protocol, action)

    def test_paho_client_stream(self):
        for protocol, level in ((MQTTv31, 3), (MQTTv311, 4), (MQTTv5, 5)):
            raw = self._client_session(protocol, level)
            d = Decoder()
            got = list(d.feed(b"".join(raw)))
            self.assertEqual(len(got), len(raw))
            connect = got[0]
            self.assertEqual((connect.protocol_level, connect.client_id,
                              connect.username, connect.password,
                              connect.keepalive),
                             (level, "pc", "u", b"p", 30))
            self.assertEqual(connect.will, Will("w/t", b"bye", 1, True))
            pub = got[1]
            self.assertEqual((pub.topic, pub.payload, pub.qos, pub.retain,
                              pub.packet_id), ("a/b", b"hi", 1, True, 7))
            if level == 5:
                self.assertEqual(pub.properties,
                                 {"message_expiry_interval": 9,
                                  "user_property": [("a", "b")]})
            self.assertEqual(got[3].subscriptions,
                             (SubscriptionOptions("a/#", 1),
                              SubscriptionOptions("b", 1)))
            self.assertEqual(got[4].topic_filters, ("a/#",))
            self.assertEqual(got[5:], [Puback(3), Pubrec(4), Pubrel(5),
                                       Pubcomp(6), Pingreq(), Disconnect()])
            # Our encoder reproduces paho's bytes.
            for packet, wire_bytes in zip(got, raw):
                if level == 5 and isinstance(packet, Disconnect):
                    # paho always writes the reason byte; we use the short
                    # form, which [MQTT-3.14.2.1] makes equivalent.
                    self.assertEqual(encode(packet, 5), b"\xe0\x00")
                    continue
                self.assertEqual(encode(packet, level), wire_bytes, packet)


def _stream(level):
    """A multi-packet stream from the client side of a session."""
    return [
        pk.connect("cid", level, username="u", password=b"pw"),
        pk.publish("a/b", b"x" * 200, 1, mid=1, level=level),
        pk.subscribe(2, [("a/#", 1)], level),
        pk.PINGREQ,
        pk.publish("c", b"", 0, level=level),
        pk.puback(3),
        pk.pubrec(4),
        pk.pubrel(5),
        pk.pubcomp(6),
        pk.unsubscribe(7, ["a/#"], level),
        pk.disconnect(),
    ]


class StreamingTests(SynchronousTestCase):
    def test_split_at_every_byte_boundary(self):
        for level in LEVELS:
            chunks = _stream(level)
            data = b"".join(chunks)
            whole = decode_all(data)
            self.assertEqual(len(whole), len(chunks))
            for cut in range(len(data) + 1):
                d = Decoder()
                got = list(d.feed(data[:cut])) + list(d.feed(data[cut:]))
                self.assertEqual(got, whole, cut)

    def test_byte_at_a_time(self):
        data = b"".join(_stream(5))
        d = Decoder()
        got = []
        for i in range(len(data)):
            got.extend(d.feed(data[i:i + 1]))
        self.assertEqual(got, decode_all(data))
        self.assertEqual([p.raw for p in got if isinstance(p, Publish)],
                         [c for c in _stream(5) if c[0] >> 4 == 3])

    def test_unconsumed_packets_kept(self):
        d = Decoder(4)
        it = d.feed(pk.PINGREQ * 3)
        self.assertEqual(next(it), Pingreq())
        del it
        self.assertEqual(list(d.feed(b"")), [Pingreq(), Pingreq()])

    def test_feed_buffers_without_iteration(self):
        d = Decoder(4)
        d.feed(pk.PINGREQ[:1])
        self.assertEqual(list(d.feed(pk.PINGREQ[1:])), [Pingreq()])


# -- hypothesis --------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",),
                              blacklist_characters="\x00"), max_size=12)
_topic = _text.filter(lambda t: t and "+" not in t and "#" not in t)
_pid = st.integers(1, 65535)
_user = st.lists(st.tuples(_text, _text), min_size=1, max_size=2)


def _props(**choices):
    return st.fixed_dictionaries({}, optional=choices)


_msg_props = {"payload_format_indicator": st.integers(0, 255),
                  "message_expiry_interval": st.integers(0, 2**32 - 1),
                  "content_type": _text, "response_topic": _topic,
                  "correlation_data": st.binary(max_size=8), "user_property": _user}


@st.composite
def packets(draw, level):
    v5 = level == 5

    def props(**choices):
        return draw(_props(**choices)) if v5 else {}
    kind = draw(st.sampled_from(
        ["connect", "connack", "publish", "puback", "pubrec", "pubrel",
         "pubcomp", "subscribe", "suback", "unsubscribe", "unsuback",
         "pingreq", "pingresp", "disconnect"] + (["auth"] if v5 else [])))
    if kind == "connect":
        will = None
        if draw(st.booleans()):
            will = Will(draw(_topic), draw(st.binary(max_size=8)),
                        draw(st.integers(0, 2)), draw(st.booleans()),
                        props(will_delay_interval=st.integers(0, 99),
                              **_msg_props))
        username = draw(st.none() | _text)
        password = draw(st.none() | st.binary(max_size=8))
        if level < 5 and username is None:
            password = None
        return Connect(draw(_text), level, "MQIsdp" if level == 3 else "MQTT",
                       draw(st.booleans()), draw(st.integers(0, 65535)),
                       username, password, will,
                       props(session_expiry_interval=st.integers(0, 99),
                             receive_maximum=st.integers(1, 65535),
                             maximum_packet_size=st.integers(1, 268435455),
                             authentication_method=_text,
                             request_problem_information=st.integers(0, 1),
                             user_property=_user),
                       draw(st.booleans()))
    if kind == "connack":
        code = draw(st.sampled_from(sorted(rc.CONNACK_CODES)) if v5
                    else st.integers(0, 5))
        sp = draw(st.booleans()) and code == 0 and level != 3
        return Connack(sp, code, props(
            assigned_client_identifier=_text, maximum_qos=st.integers(0, 1),
            server_keep_alive=st.integers(0, 65535), user_property=_user))
    if kind == "publish":
        qos = draw(st.integers(0, 2))
        pp = props(topic_alias=st.integers(1, 65535),
                   subscription_identifier=st.lists(
                       st.integers(1, 268435455), min_size=1, max_size=2),
                   **_msg_props)
        return Publish(draw(_topic), draw(st.binary(max_size=300)), qos,
                       draw(st.booleans()), qos > 0 and draw(st.booleans()),
                       draw(_pid) if qos else None, pp)
    if kind in ("puback", "pubrec", "pubrel", "pubcomp"):
        cls = {"puback": Puback, "pubrec": Pubrec, "pubrel": Pubrel,
               "pubcomp": Pubcomp}[kind]
        codes = getattr(rc, kind.upper() + "_CODES")
        pid = draw(_pid)
        if not v5:
            return cls(pid)
        return cls(pid, draw(st.sampled_from(sorted(codes))),
                   props(reason_string=_text, user_property=_user))
    if kind == "subscribe":
        if v5:
            opt = st.builds(SubscriptionOptions, _text, st.integers(0, 2),
                            st.booleans(), st.booleans(), st.integers(0, 2))
        else:
            opt = st.builds(SubscriptionOptions, _text, st.integers(0, 2))
        subs = draw(st.lists(opt, min_size=1, max_size=4))
        subs = [s for s in subs if not (s.no_local and
                                         s.topic_filter.startswith("$share/"))]
        if not subs:
            subs = [SubscriptionOptions("x")]
        return Subscribe(draw(_pid), tuple(subs), props(
            subscription_identifier=st.integers(1, 268435455),
            user_property=_user))
    if kind == "suback":
        codes = rc.SUBACK_CODES if v5 else rc.SUBACK_CODES_V3
        return Suback(draw(_pid), tuple(draw(st.lists(
            st.sampled_from(sorted(codes)), min_size=1, max_size=4))),
            props(reason_string=_text))
    if kind == "unsubscribe":
        return Unsubscribe(draw(_pid), tuple(draw(st.lists(
            _text, min_size=1, max_size=4))), props(user_property=_user))
    if kind == "unsuback":
        if not v5:
            return Unsuback(draw(_pid))
        return Unsuback(draw(_pid), tuple(draw(st.lists(
            st.sampled_from(sorted(rc.UNSUBACK_CODES)), min_size=1,
            max_size=4))), props(reason_string=_text))
    if kind == "pingreq":
        return Pingreq()
    if kind == "pingresp":
        return Pingresp()
    if kind == "disconnect":
        if not v5:
            return Disconnect()
        return Disconnect(draw(st.sampled_from(sorted(rc.DISCONNECT_CODES))),
                          props(session_expiry_interval=st.integers(0, 9),
                                server_reference=_text, reason_string=_text))
    return Auth(draw(st.sampled_from(sorted(rc.AUTH_CODES))),
                props(authentication_method=_text,
                      authentication_data=st.binary(max_size=8)))


class HypothesisTests(SynchronousTestCase):
    def _round_trip(self, packet, level):
        raw = encode(packet, level)
        got = decode_one(raw, None if isinstance(packet, Connect) else level)
        self.assertEqual(got, packet)
        if isinstance(packet, Publish):
            self.assertEqual(got.raw, raw)
        # Decoded packets re-encode to the identical bytes.
        self.assertEqual(encode(got, level), raw)

    @settings(max_examples=200, deadline=None)
    @given(packets(3))
    def test_round_trip_level_3(self, packet):
        self._round_trip(packet, 3)

    @settings(max_examples=200, deadline=None)
    @given(packets(4))
    def test_round_trip_level_4(self, packet):
        self._round_trip(packet, 4)

    @settings(max_examples=200, deadline=None)
    @given(packets(5))
    def test_round_trip_level_5(self, packet):
        self._round_trip(packet, 5)

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from([None, 3, 4, 5]), st.binary(max_size=200))
    def test_garbage_raises_only_mqtt_error(self, level, data):
        try:
            decode_all(data, level)
        except MqttError:
            pass

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(LEVELS), st.data())
    def test_mutated_packets_raise_only_mqtt_error(self, level, data):
        """Valid packets with one byte changed or the stream truncated."""
        packet = data.draw(packets(level))
        raw = bytearray(encode(packet, level))
        index = data.draw(st.integers(0, len(raw) - 1))
        raw[index] = data.draw(st.integers(0, 255))
        start = None if isinstance(packet, Connect) else level
        try:
            decode_all(bytes(raw), start)
        except MqttError:
            pass

    @settings(max_examples=100, deadline=None)
    @given(st.data())
    def test_stream_of_packets_any_split(self, data):
        level = data.draw(st.sampled_from(LEVELS))
        items = data.draw(st.lists(packets(level), max_size=6))
        items = [p for p in items if not isinstance(p, Connect)]
        raw = b"".join(encode(p, level) for p in items)
        cut = data.draw(st.integers(0, len(raw)))
        d = Decoder(level)
        got = list(d.feed(raw[:cut])) + list(d.feed(raw[cut:]))
        self.assertEqual(got, items)
