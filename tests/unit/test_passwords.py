"""
Tests for L{nanomq_twisted.core.passwd} and the password-table
authenticator in L{nanomq_twisted.core.auth}.
"""

import io
import sys

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.config import loads
from nanomq_twisted.core import passwd
from nanomq_twisted.core.auth import (
    PENDING,
    AuthChain,
    PasswordAuthenticator,
)
from nanomq_twisted.core.info import ConnectInfo, TransportInfo
from nanomq_twisted.mqtt import reason_codes as rc

FAST = 1000  # iterations for tests


def request(username=None, password=None, client_id="c"):
    return ConnectInfo(client_id, username, password, 4, "MQTT", True, 60, {},
                       TransportInfo(("127.0.0.1", 1), "tcp"))


def sync(authenticator, req):
    answers = []
    result = authenticator.authenticate(req, answers.append)
    if result is PENDING:
        return answers
    return result


class HashFormatTests(SynchronousTestCase):
    def test_round_trip(self):
        entry = passwd.hash_password("s3cret", FAST)
        self.assertTrue(entry.startswith("$pbkdf2-sha256$1000$"))
        parsed = passwd.parse(entry)
        self.assertTrue(parsed.verify(b"s3cret"))
        self.assertFalse(parsed.verify(b"s3cre"))
        self.assertFalse(parsed.verify(b""))

    def test_known_vector(self):
        """Independent of hash_password: digest computed by hashlib here."""
        import base64
        import hashlib

        digest = hashlib.pbkdf2_hmac("sha256", b"pw", b"salt", 7)
        entry = "$pbkdf2-sha256$7${}${}".format(
            base64.b64encode(b"salt").decode(), base64.b64encode(digest).decode()
        )
        self.assertTrue(passwd.parse(entry).verify(b"pw"))
        self.assertEqual(passwd.hash_password("pw", 7, b"salt"), entry.replace("=", ""))

    def test_salted(self):
        self.assertNotEqual(passwd.hash_password("a", FAST), passwd.hash_password("a", FAST))

    def test_malformed(self):
        for entry in (
            "$pbkdf2-sha256$x$YWJj$eHl6",
            "$pbkdf2-sha256$0$YWJj$" + "A" * 43,
            "$pbkdf2-sha256$10$$" + "A" * 43,
            "$pbkdf2-sha256$10$YWJj$eHl6",  # hash not 32 bytes
            "$pbkdf2-sha256$10$YW!j$" + "A" * 43,
            "$pbkdf2-sha256$10$YWJj",
        ):
            self.assertRaises(ValueError, passwd.parse, entry)
        error = self.assertRaises(
            ValueError, passwd.compile_table, {"bob": "$pbkdf2-sha256$x$a$b"}
        )
        self.assertIn("'bob'", str(error))

    def test_plain_values_are_plain(self):
        self.assertEqual(passwd.compile_table({"u": "$notahash"}), {"u": b"$notahash"})

    def test_entry_in_a_config_file(self):
        entry = passwd.hash_password("pw", FAST)
        cfg = loads('auth { password { "u": "' + entry + '" } }', env={})
        self.assertTrue(passwd.parse(cfg.auth.password["u"]).verify(b"pw"))

    def test_cli(self):
        out = io.StringIO()
        self.patch(sys, "stdin", io.StringIO("hunter2\n"))
        self.patch(sys, "stdout", out)
        self.assertEqual(passwd.main(["alice", "--stdin", "-i", str(FAST)]), 0)
        line = out.getvalue().strip()
        user = line.partition(": ")[0]
        self.assertEqual(user, '"alice"')
        cfg = loads("auth { password { " + line + " } }", env={})
        self.assertTrue(passwd.parse(cfg.auth.password["alice"]).verify(b"hunter2"))


class PasswordAuthenticatorTests(SynchronousTestCase):
    def setUp(self):
        self.table = {"plain": "public", "hashed": passwd.hash_password("pw", FAST)}

    def test_plain_and_hashed(self):
        auth = PasswordAuthenticator(False, self.table)
        self.assertEqual(sync(auth, request("plain", b"public")), rc.SUCCESS)
        self.assertEqual(sync(auth, request("plain", b"nope")), rc.BAD_USER_NAME_OR_PASSWORD)
        self.assertEqual(sync(auth, request("hashed", b"pw")), rc.SUCCESS)
        self.assertEqual(sync(auth, request("hashed", b"px")), rc.BAD_USER_NAME_OR_PASSWORD)
        self.assertEqual(sync(auth, request("hashed", None)), rc.BAD_USER_NAME_OR_PASSWORD)
        self.assertEqual(sync(auth, request("ghost", b"pw")), rc.BAD_USER_NAME_OR_PASSWORD)

    def test_anonymous(self):
        self.assertEqual(sync(PasswordAuthenticator(False, self.table), request()),
                         rc.NOT_AUTHORIZED)
        self.assertEqual(sync(PasswordAuthenticator(True, self.table), request()), rc.SUCCESS)
        # allow_anonymous does not excuse a wrong password (unlike NanoMQ).
        self.assertEqual(sync(PasswordAuthenticator(True, self.table), request("plain", b"x")),
                         rc.BAD_USER_NAME_OR_PASSWORD)
        self.assertEqual(sync(PasswordAuthenticator(True, None), request("any", b"x")),
                         rc.SUCCESS)
        self.assertEqual(sync(PasswordAuthenticator(False, None), request("any", b"x")),
                         rc.BAD_USER_NAME_OR_PASSWORD)

    def test_offload(self):
        """Hashed checks go to ``offload`` and answer through ``done``."""
        jobs = []
        auth = PasswordAuthenticator(
            False, self.table, offload=lambda fn, args, done: jobs.append((fn, args, done))
        )
        self.assertEqual(sync(auth, request("plain", b"public")), rc.SUCCESS)
        for user, password, expected in (
            ("hashed", b"pw", rc.SUCCESS),
            ("hashed", b"no", rc.BAD_USER_NAME_OR_PASSWORD),
            ("ghost", b"pw", rc.BAD_USER_NAME_OR_PASSWORD),
        ):
            answers = sync(auth, request(user, password))
            self.assertEqual(answers, [])
            fn, args, done = jobs.pop()
            done(fn(*args))
            self.assertEqual(answers, [expected])

    def test_replace(self):
        auth = PasswordAuthenticator(False, {"a": "1"})
        auth.replace(True, {"b": "2"})
        self.assertEqual(sync(auth, request("a", b"1")), rc.BAD_USER_NAME_OR_PASSWORD)
        self.assertEqual(sync(auth, request("b", b"2")), rc.SUCCESS)
        self.assertEqual(sync(auth, request()), rc.SUCCESS)
        self.assertRaises(ValueError, auth.replace, False, {"c": "$pbkdf2-sha256$bad"})
        self.assertEqual(sync(auth, request("b", b"2")), rc.SUCCESS)
        self.assertTrue(auth.allow_anonymous)


class Deferred:
    """An authenticator answering later, when the test says so."""

    def __init__(self):
        self.calls = []

    def authenticate(self, req, done):
        self.calls.append(done)
        return PENDING


class Fixed:
    def __init__(self, code):
        self.code = code
        self.asked = 0

    def authenticate(self, req, done):
        self.asked += 1
        return self.code


class AuthChainTests(SynchronousTestCase):
    def test_sync(self):
        ok, bad = Fixed(rc.SUCCESS), Fixed(rc.NOT_AUTHORIZED)
        self.assertEqual(sync(AuthChain(ok, ok), request()), rc.SUCCESS)
        after = Fixed(rc.SUCCESS)
        self.assertEqual(sync(AuthChain(bad, after), request()), rc.NOT_AUTHORIZED)
        self.assertEqual(after.asked, 0)

    def test_async_then_sync(self):
        first, last = Deferred(), Fixed(rc.BANNED)
        answers = sync(AuthChain(first, last), request())
        self.assertEqual(answers, [])
        first.calls[0](rc.SUCCESS)
        self.assertEqual(answers, [rc.BANNED])

    def test_async_refusal_stops(self):
        first, last = Deferred(), Fixed(rc.SUCCESS)
        answers = sync(AuthChain(first, last), request())
        first.calls[0](rc.BAD_USER_NAME_OR_PASSWORD)
        self.assertEqual(answers, [rc.BAD_USER_NAME_OR_PASSWORD])
        self.assertEqual(last.asked, 0)

    def test_two_async(self):
        first, second = Deferred(), Deferred()
        answers = sync(AuthChain(first, second), request())
        first.calls[0](rc.SUCCESS)
        self.assertEqual(answers, [])
        second.calls[0](rc.SUCCESS)
        self.assertEqual(answers, [rc.SUCCESS])
