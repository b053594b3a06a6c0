"""
Attempts to get round the file ACL, with real paho clients (3.1.1 and 5)
and, for what paho refuses to send, raw sockets with hand-framed bytes.

The ACL lets each client publish below ``devices/${clientid}/`` and each
user below ``users/${username}/``, denies ``secret/#``, lets ``open/#``
and ``sentinel`` through and denies everything else.  A watcher subscribed
to everything (``#``, ``$share/g/#``-style filters, the targets) must see
nothing but the sentinel after each attempt: anything leaked would arrive
first ([MQTT-4.6.0-6] ordering, tests.e2e.support ``expect_sentinel``).
"""

import queue

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from .support import TIMEOUT, Clients, in_thread, start_broker
from .transport_support import frame

ACL = """
auth {
    allow_anonymous = true
    no_match = deny
    deny_action = ignore
    acl {
        rules = [
            { permit = allow, action = publish, topics = ["devices/${clientid}/#"] }
            { permit = allow, action = publish, topics = ["users/${username}/#"] }
            { permit = deny, action = publish, topics = ["secret/#"] }
            { permit = allow, action = subscribe }
            { permit = allow, action = publish, topics = ["open/#", "sentinel"] }
        ]
    }
}
"""

NOT_AUTHORIZED = 0x87
MALFORMED = 0x81
TOPIC_NAME_INVALID = 0x90
WATCHED = ["#", "secret/#", "devices/#", "users/#", "$share/g/secret/#",
           "$queue/secret/#", "$share/g/devices/#"]


def string(data):
    data = data.encode() if isinstance(data, str) else data
    return len(data).to_bytes(2, "big") + data


def connect_bytes(client_id, level, username=None):
    """A hand-framed CONNECT (no properties for 5.0), clean start."""
    flags = 0x02 | (0x80 if username is not None else 0)
    body = string("MQTT") + bytes([level, flags]) + (60).to_bytes(2, "big")
    if level == 5:
        body += b"\x00"
    body += string(client_id)
    if username is not None:
        body += string(username)
    return frame(0x10, body)


def disconnect_reason(data):
    """The reason code of the 5.0 DISCONNECT that starts ``data``."""
    assert data[:1] == b"\xe0" and len(data) >= 3, data
    return data[2]


def publish_bytes(topic, level, qos=1, packet_id=1):
    body = string(topic)
    if qos:
        body += packet_id.to_bytes(2, "big")
    if level == 5:
        body += b"\x00"
    return frame(0x30 | (qos << 1), body + b"leak")


class AclBypassTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        running = yield start_broker(self, ACL)
        self.clients = Clients(self, running.port)
        self.watcher = yield in_thread(self._watch)

    def _watch(self):
        watcher = self.clients("watcher", 5)
        watcher.connect()
        for topic in WATCHED + ["sentinel"]:
            watcher.subscribe(topic, 1)
        return watcher

    def control(self, client, topic):
        """``client`` may publish to ``topic``: a subscriber of just that
        topic gets it; the watcher gets one copy per matching filter, read
        up to a sentinel (nothing else may come before it)."""
        subscriber = self.clients("control-sub", 4)
        subscriber.connect()
        subscriber.subscribe(topic, 1)
        client.publish(topic, b"ok", 1)
        self.assertEqual(subscriber.expect().topic, topic)
        subscriber.disconnect()
        sender = self.clients("sentinel-sender", 4)
        sender.connect()
        sender.publish("sentinel", b"s", 1)
        while True:
            message = self.watcher.expect()
            if message.topic == "sentinel":
                break
            self.assertEqual(message.topic, topic)
        sender.disconnect()

    def nothing_leaked(self):
        sender = self.clients("sentinel-sender", 4)
        sender.connect()
        sender.publish("sentinel", b"s", 1)
        self.watcher.expect_sentinel("sentinel")
        sender.disconnect()

    def paho_outcome(self, client, topic):
        """Publish QoS 1 with paho; the PUBACK reason code, or ("closed",
        the DISCONNECT reason paho reports) if the broker closed instead."""
        outcome = queue.Queue()
        client.paho.on_publish = lambda c, u, mid, code, p: outcome.put(code.value)
        client.paho.on_disconnect = lambda c, u, f, code, p: outcome.put(("closed", code.value))
        client.paho.publish(topic, b"leak", 1)
        return outcome.get(timeout=TIMEOUT)

    def raw_outcome(self, client_id, level, packet, username=None):
        """CONNECT by hand, then ``packet``: what came back before the close."""
        raw = self.clients.raw()
        raw.send(connect_bytes(client_id, level, username))
        connack = raw.recv_packet()
        self.assertEqual(connack[0], 0x20, connack)
        self.assertEqual(connack[3], 0, connack)
        raw.send(packet)
        return raw.recv_until_closed()

    # -- wildcards and shared-subscription prefixes in PUBLISH topics -------

    def test_wildcards_in_publish_topic_refused(self):
        """[MQTT-3.3.2-2]: paho will not even send them; by hand, 5.0 gets
        DISCONNECT 0x90 and 3.1.1 a close, for allowed and denied trees."""
        def scenario():
            paho = self.clients("paho-wild", 5)
            paho.connect()
            with self.assertRaises(ValueError):
                paho.paho.publish("secret/+", b"x", 1)
            for topic in ("secret/+", "secret/#", "open/+", "#", "devices/+/x"):
                answer = self.raw_outcome("w5", 5, publish_bytes(topic, 5))
                self.assertEqual(disconnect_reason(answer), TOPIC_NAME_INVALID, topic)
                self.assertEqual(self.raw_outcome("w4", 4, publish_bytes(topic, 4)), b"",
                                 topic)
            self.nothing_leaked()

        return in_thread(scenario)

    def test_share_and_queue_prefixes_in_publish_topic_refused(self):
        """``$share/g/secret/x`` and ``$queue/secret/x`` as topic *names*:
        5.0 DISCONNECT 0x90, 3.1.1 closed; a shared subscriber of
        ``secret/#`` gets nothing."""
        def scenario():
            for protocol in (5, 4):
                for topic in ("$share/g/secret/x", "$queue/secret/x", "$share/g/open/x",
                              "$queue/devices/p/x"):
                    client = self.clients(f"p{protocol}", protocol)
                    client.connect()
                    outcome = self.paho_outcome(client, topic)
                    if protocol == 5:
                        self.assertEqual(outcome, ("closed", TOPIC_NAME_INVALID), topic)
                    else:
                        self.assertEqual(outcome[0], "closed", topic)
                    client.paho.loop_stop()
            self.nothing_leaked()

        return in_thread(scenario)

    # -- placeholders with wildcard characters --------------------------------

    def test_clientid_placeholder_with_wildcard_characters(self):
        """``devices/${clientid}/#`` for client ids ``+``, ``#``, ``x/y``:
        nothing is allowed through it (5.0 PUBACK 0x87, 3.1.1 dropped),
        while an ordinary id is (the control)."""
        def scenario():
            for protocol in (5, 4):
                control = self.clients(f"dev{protocol}", protocol)
                control.connect()
                self.control(control, f"devices/dev{protocol}/t")
                for client_id, topic in (("+", "devices/victim/t"), ("#", "devices/victim/t"),
                                         ("x/y", "devices/x/y/t"), ("a/b/c", "devices/a/b/c/t")):
                    client = self.clients(client_id, protocol)
                    client.connect()
                    code = self.paho_outcome(client, topic)
                    self.assertEqual(code, NOT_AUTHORIZED if protocol == 5 else 0,
                                     (client_id, topic))
                    client.disconnect()
                self.nothing_leaked()

        return in_thread(scenario)

    def test_username_placeholder_with_wildcard_characters(self):
        def scenario():
            for protocol in (5, 4):
                control = self.clients(f"alice{protocol}", protocol)
                control.paho.username_pw_set("alice")
                control.connect()
                self.control(control, "users/alice/t")
                for username, topic in (("+", "users/bob/t"), ("#", "users/bob/t"),
                                        ("bob/x", "users/bob/x/t")):
                    client = self.clients(f"u{protocol}", protocol)
                    client.paho.username_pw_set(username)
                    client.connect()
                    code = self.paho_outcome(client, topic)
                    self.assertEqual(code, NOT_AUTHORIZED if protocol == 5 else 0,
                                     (username, topic))
                    client.disconnect()
                self.nothing_leaked()

        return in_thread(scenario)

    # -- NUL and overlong UTF-8 -----------------------------------------------

    def test_nul_and_overlong_utf8_in_topics_refused(self):
        """U+0000 [MQTT-1.5.4-2] and ill-formed UTF-8 [MQTT-1.5.4-1] -- an
        overlong ``/`` (C0 AF) that a lax decoder would read as a level
        separator, a surrogate, a truncated sequence: 5.0 DISCONNECT 0x81,
        3.1.1 a close."""
        topics = [b"open/\x00secret", b"secret\x00", b"open\xc0\xafsecret",
                  b"devices\xc0\xafw5\xc0\xafx", b"open/\xed\xa0\x80", b"open/\xe2\x82",
                  b"open/\xf8\x88\x80\x80\x80"]

        def scenario():
            for topic in topics:
                answer = self.raw_outcome("w5", 5, publish_bytes(topic, 5))
                self.assertEqual(disconnect_reason(answer), MALFORMED, topic)
                self.assertEqual(self.raw_outcome("w4", 4, publish_bytes(topic, 4)), b"",
                                 topic)
            self.nothing_leaked()

        return in_thread(scenario)

    def test_nul_and_overlong_utf8_in_client_id_and_username_refused(self):
        """A CONNECT whose client id or user name holds U+0000 or ill-formed
        UTF-8 is malformed: closed without a session ([MQTT-3.1.4-1]; a 5.0
        server MAY send CONNACK 0x81 first, 3.1.1 has no code for it)."""
        cases = [(b"dev\x00x", None), (b"x\xc0\xafy", None), (b"ok-id", b"alice\x00"),
                 (b"ok-id", b"bob\xc0\xafx"), (b"\xed\xa0\x80", None)]

        def scenario():
            for client_id, username in cases:
                for level in (5, 4):
                    raw = self.clients.raw()
                    raw.send(connect_bytes(client_id, level, username))
                    answer = raw.recv_until_closed()
                    allowed = {b""}
                    if level == 5:
                        allowed.add(b"\x20\x03\x00" + bytes([MALFORMED]) + b"\x00")
                    self.assertIn(answer, allowed, (client_id, username, level))
            self.nothing_leaked()

        return in_thread(scenario)
