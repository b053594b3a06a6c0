# -*- test-case-name: tests.e2e.test_auth -*-
"""
Password login, the file ACL and its ``deny_action``, the example auth
configuration and hot reload, end to end with real paho-mqtt clients.
"""

import os
import queue
import signal

from twisted.internet import defer
from twisted.trial import unittest

from nanomq_twisted.config import load, loads
from nanomq_twisted.core.passwd import hash_password

from .support import TIMEOUT, Clients, RunningBroker, in_thread, start_app, start_broker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "etc", "examples")

BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
V3_FAILURE = 0x80

PASSWORDS = """
auth {
    allow_anonymous = false
    password = { "admin": "public", "hashed": "HASH" }
}
""".replace("HASH", hash_password("letmein", 1000))

ACL = """
auth {
    deny_action = %s
    acl {
        rules = [
            { permit = deny, action = publish, topics = ["closed/#"] }
            { permit = deny, action = subscribe, topics = ["secret/#"] }
            { permit = allow }
        ]
    }
}
"""


def raw_connect(client_id, username=None, password=None, level=4):
    """A CONNECT framed by hand (3.1.1 or 5.0 with no properties)."""

    def string(data):
        data = data.encode() if isinstance(data, str) else data
        return len(data).to_bytes(2, "big") + data

    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = string("MQTT") + bytes([level, flags]) + (60).to_bytes(2, "big")
    if level == 5:
        body += b"\x00"
    body += string(client_id)
    if username is not None:
        body += string(username)
    if password is not None:
        body += string(password)
    return bytes([0x10, len(body)]) + body


@defer.inlineCallbacks
def play_conf(testcase, scenario, conf):
    running = yield start_broker(testcase, conf)
    clients = Clients(testcase, running.port)
    yield in_thread(scenario, clients)
    return running


class PasswordTests(unittest.TestCase):
    def _refused(self, protocol, username, password, expected):
        def scenario(clients):
            client = clients("c", protocol)
            if username is not None:
                client.paho.username_pw_set(username, password)
            _, code, _ = client.connect(expect_success=False)
            self.assertEqual(code.value, expected)

        return play_conf(self, scenario, PASSWORDS)

    def test_wrong_password_v5_0x86(self):
        return self._refused(5, "admin", "wrong", BAD_USER_NAME_OR_PASSWORD)

    def test_wrong_password_v311_4(self):
        # paho reports 3.1.1 return code 4 as 0x86; the raw test checks bytes.
        return self._refused(4, "admin", "wrong", BAD_USER_NAME_OR_PASSWORD)

    def test_unknown_user_v5(self):
        return self._refused(5, "nobody", "public", BAD_USER_NAME_OR_PASSWORD)

    def test_anonymous_refused_v5(self):
        return self._refused(5, None, None, NOT_AUTHORIZED)

    def test_anonymous_refused_v311(self):
        return self._refused(4, None, None, NOT_AUTHORIZED)

    def test_wrong_password_raw_bytes(self):
        def scenario(clients):
            v3 = clients.raw()
            v3.send(raw_connect("r3", "admin", "nope"))
            self.assertEqual(v3.recv_until_closed(), b"\x20\x02\x00\x04")
            anon = clients.raw()
            anon.send(raw_connect("r4"))
            self.assertEqual(anon.recv_until_closed(), b"\x20\x02\x00\x05")
            v5 = clients.raw()
            v5.send(raw_connect("r5", "admin", "nope", level=5))
            self.assertEqual(v5.recv_until_closed(), b"\x20\x03\x00\x86\x00")

        return play_conf(self, scenario, PASSWORDS)

    def test_right_passwords(self):
        def scenario(clients):
            for protocol in (4, 5):
                plain = clients(f"plain{protocol}", protocol)
                plain.paho.username_pw_set("admin", "public")
                plain.connect()
                hashed = clients(f"hashed{protocol}", protocol)
                hashed.paho.username_pw_set("hashed", "letmein")
                hashed.connect()
                hashed.subscribe("t")
                plain.publish("t", b"x")
                self.assertEqual(hashed.expect().payload, b"x")
            wrong = clients("wrong", 5)
            wrong.paho.username_pw_set("hashed", "letmeout")
            _, code, _ = wrong.connect(expect_success=False)
            self.assertEqual(code.value, BAD_USER_NAME_OR_PASSWORD)

        return play_conf(self, scenario, PASSWORDS)


class DenyActionTests(unittest.TestCase):
    """auth-acl.md section 3.5, the port's (spec-correct) column."""

    def _publish_denied(self, protocol, action):
        def scenario(clients):
            watcher = clients("watcher", 4)
            watcher.connect()
            watcher.subscribe("#", 1)
            pub = clients("pub", protocol)
            acks = queue.Queue()
            pub.paho.on_publish = lambda c, u, mid, code, p: acks.put(code)
            pub.connect()
            pub.paho.publish("closed/x", b"no", 1)
            if action == "ignore":
                code = acks.get(timeout=TIMEOUT)
                self.assertEqual(code.value, NOT_AUTHORIZED if protocol == 5 else 0)
                pub.publish("open/sentinel", b"s", 1)
            else:
                reason, _ = pub.disconnects.get(timeout=TIMEOUT)
                if protocol == 5:
                    self.assertEqual(reason.value, NOT_AUTHORIZED)
                self.assertTrue(acks.empty())
                other = clients("other", 4)
                other.connect()
                other.publish("open/sentinel", b"s", 1)
            watcher.expect_sentinel("open/sentinel")

        return play_conf(self, scenario, ACL % action)

    def test_publish_denied_ignore_v5_puback_0x87(self):
        return self._publish_denied(5, "ignore")

    def test_publish_denied_ignore_v311_silent(self):
        return self._publish_denied(4, "ignore")

    def test_publish_denied_disconnect_v5(self):
        return self._publish_denied(5, "disconnect")

    def test_publish_denied_disconnect_v311(self):
        return self._publish_denied(4, "disconnect")

    def _subscribe_denied(self, protocol, action):
        def scenario(clients):
            sub = clients("sub", protocol)
            sub.connect()
            codes = sub.subscribe([("secret/a", 1), ("open/a", 1)])
            failure = NOT_AUTHORIZED if protocol == 5 else V3_FAILURE
            self.assertEqual([c.value for c in codes], [failure, 1])
            if action == "disconnect":
                reason, _ = sub.disconnects.get(timeout=TIMEOUT)
                if protocol == 5:
                    self.assertEqual(reason.value, NOT_AUTHORIZED)
                return
            pub = clients("pub", 4)
            pub.connect()
            pub.publish("secret/a", b"hidden", 1)
            pub.publish("open/a", b"visible", 1)
            self.assertEqual(sub.expect_sentinel("open/a").payload, b"visible")

        return play_conf(self, scenario, ACL % action)

    def test_subscribe_denied_ignore_v5_suback_0x87(self):
        return self._subscribe_denied(5, "ignore")

    def test_subscribe_denied_ignore_v311_suback_0x80(self):
        return self._subscribe_denied(4, "ignore")

    def test_subscribe_denied_disconnect_v5(self):
        return self._subscribe_denied(5, "disconnect")

    def test_subscribe_denied_disconnect_v311(self):
        return self._subscribe_denied(4, "disconnect")

    def test_will_checked_by_acl(self):
        def scenario(clients):
            watcher = clients("watcher", 4)
            watcher.connect()
            watcher.subscribe("$SYS/brokers/client_status")
            watcher.subscribe("#", 1)
            dying = clients("dying", 4)
            dying.paho.will_set("closed/will", b"w", 1)
            dying.connect()
            dying.drop()
            watcher.wait_status("dying", "offline")
            other = clients("other", 4)
            other.connect()
            other.publish("open/sentinel", b"s", 1)
            # Status notices are not ACL-checked; skip them.
            while True:
                message = watcher.expect()
                if not message.topic.startswith("$SYS/"):
                    break
            self.assertEqual(message.topic, "open/sentinel")

        return play_conf(self, scenario, ACL % "ignore")


@defer.inlineCallbacks
def start_from_file(testcase, path, extra='listeners.tcp { bind = "127.0.0.1:0" }'):
    """Start the broker from the file at ``path`` (includes resolve next to
    it), with its listener moved to a free loopback port."""
    with open(path) as handle:
        text = handle.read()
    config = loads(text + "\n" + extra + "\n", path=path, env={})
    running = RunningBroker(start_app(testcase, config))
    running.port = yield running.app.port("tcp")
    return running


class ExampleConfigTests(unittest.TestCase):
    """etc/examples/auth.conf with nanomq_pwd.conf and nanomq_acl.conf."""

    @defer.inlineCallbacks
    def test_example(self):
        running = yield start_from_file(self, os.path.join(EXAMPLES, "auth.conf"))

        def scenario(clients):
            anon = clients("anon", 5)
            self.assertEqual(anon.connect(expect_success=False)[1].value, NOT_AUTHORIZED)
            admin = clients("adm", 5)
            admin.paho.username_pw_set("admin", "public")
            admin.connect()
            # admin from 127.0.0.1 may do anything but subscribe to "#"/$SYS.
            codes = admin.subscribe([("#", 0), ("$SYS/#", 0), ("any/+", 1)])
            self.assertEqual([c.value for c in codes], [NOT_AUTHORIZED, NOT_AUTHORIZED, 1])
            admin.disconnects.get(timeout=TIMEOUT)  # deny_action = disconnect
            admin = clients("adm2", 5)
            admin.paho.username_pw_set("admin", "public")
            admin.connect()
            self.assertEqual([c.value for c in admin.subscribe("any/+", 1)], [1])
            device = clients("d7", 4)
            device.paho.username_pw_set("device-7", "s3cret")
            device.connect()
            self.assertEqual([c.value for c in device.subscribe("dev/d7/#", 1)], [1])
            admin.publish("any/x", b"admin")
            self.assertEqual(admin.expect().payload, b"admin")
            device.publish("dev/d7/up", b"mine", 1)
            self.assertEqual(device.expect().payload, b"mine")
            # Not its topic: no_match = deny, deny_action = disconnect.
            device.paho.publish("dev/d8/up", b"theirs", 1)
            device.disconnects.get(timeout=TIMEOUT)
            alice = clients("alice", 5)  # the hashed entry
            alice.paho.username_pw_set("alice", "wonderland")
            alice.connect()
            wrong = clients("w", 4)
            wrong.paho.username_pw_set("client", "nope")
            self.assertEqual(wrong.connect(expect_success=False)[1].value,
                             BAD_USER_NAME_OR_PASSWORD)

        clients = Clients(self, running.port)
        yield in_thread(scenario, clients)


class ReloadTests(unittest.TestCase):
    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as handle:
            handle.write(text)
        return path

    @defer.inlineCallbacks
    def setUp(self):
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.write("pwd.conf", '"u": "one"\n')
        self.write("acl.conf", 'rules = [{permit = deny, action = publish, topics = ["a"]}]\n')
        self.conf = self.write("nanomq.conf", """
listeners.tcp { bind = "127.0.0.1:0" }
auth {
    allow_anonymous = false
    password = {include "pwd.conf"}
    acl = {include "acl.conf"}
}
""")
        self.running = yield start_from_file(self, self.conf, "")
        self.broker = self.running.broker

    def login(self, password):
        def scenario(clients):
            client = clients("c", 5)
            client.paho.username_pw_set("u", password)
            return client.connect(expect_success=False)[1].value

        return in_thread(scenario, Clients(self, self.running.port))

    def allowed(self, topic):
        class Client:
            client_id, username, peer = "c", "u", ("127.0.0.1", 1)

        return self.broker.acl.check(Client(), "publish", topic)

    @defer.inlineCallbacks
    def test_reload_swaps_password_and_acl(self):
        self.assertEqual((yield self.login("one")), 0)
        self.assertFalse(self.allowed("a"))
        self.write("pwd.conf", '"u": "two"\n')
        self.write("acl.conf", 'rules = [{permit = deny, action = publish, topics = ["b"]}]\n')
        self.assertTrue(self.running.app.reload_auth())
        self.assertEqual((yield self.login("one")), BAD_USER_NAME_OR_PASSWORD)
        self.assertEqual((yield self.login("two")), 0)
        self.assertTrue(self.allowed("a"))
        self.assertFalse(self.allowed("b"))

    @defer.inlineCallbacks
    def test_invalid_file_keeps_old_rules(self):
        for name, text in (
            ("acl.conf", "rules = [{permit = maybe}]\n"),
            ("pwd.conf", '"u": "$pbkdf2-sha256$x$y$z"\n'),
            ("pwd.conf", '"u": {\n'),
        ):
            self.write(name, text)
            result = self.running.app.reload_auth()
            self.assertFalse(result)
            self.assertTrue(result.error)
            self.assertFalse(self.allowed("a"))
            self.assertEqual((yield self.login("one")), 0)
            self.write("pwd.conf", '"u": "one"\n')
            self.write("acl.conf", 'rules = [{permit = deny, action = publish, topics = ["a"]}]\n')

    @defer.inlineCallbacks
    def test_sighup(self):
        if not hasattr(signal, "SIGHUP"):
            raise unittest.SkipTest("no SIGHUP here")
        sighup = self.running.app.sighup
        self.write("pwd.conf", '"u": "three"\n')
        reloaded = sighup.next_reload()
        os.kill(os.getpid(), signal.SIGHUP)
        result = yield reloaded
        self.assertTrue(result)
        self.assertEqual((yield self.login("three")), 0)

    def test_root_reload_auth(self):
        self.write("pwd.conf", '"u": "four"\n')
        self.assertTrue(self.running.app.reload_auth())
        self.assertEqual(load(self.conf, env={}).auth.password, {"u": "four"})


class FileWatchReloadE2ETests(unittest.TestCase):
    """``auth.reload_interval``: editing the included password file is
    picked up without SIGHUP or REST, on the real reactor."""

    @defer.inlineCallbacks
    def test_edited_password_file_is_reloaded(self):
        directory = self.mktemp()
        os.makedirs(directory)
        with open(os.path.join(directory, "pwd.conf"), "w") as handle:
            handle.write('"u": "one"\n')
        conf = os.path.join(directory, "nanomq.conf")
        with open(conf, "w") as handle:
            handle.write("""
auth {
    allow_anonymous = false
    reload_interval = 50ms
    password = {include "pwd.conf"}
}
""")
        running = yield start_from_file(self, conf)
        watch = running.app.file_watch
        reloaded = watch.next_reload()
        with open(os.path.join(directory, "pwd.conf"), "w") as handle:
            handle.write('"u": "changed"\n')
        result = yield reloaded
        self.assertTrue(result)

        def scenario(clients):
            codes = []
            for password in ("changed", "one"):
                client = clients("c-" + password, 5)
                client.paho.username_pw_set("u", password)
                codes.append(client.connect(expect_success=False)[1].value)
            return codes

        codes = yield in_thread(scenario, Clients(self, running.port))
        self.assertEqual(codes, [0, BAD_USER_NAME_OR_PASSWORD])
