"""
``nanomq-twisted passwd`` as users run it (``python -m nanomq_twisted
passwd``, a real process): the default output is a salted PBKDF2 hash that
the password-file reader accepts next to NanoMQ's plain entries.
"""

import base64
import hashlib
import os
import sys

from twisted.internet import defer, utils
from twisted.trial.unittest import TestCase

from nanomq_twisted.config import loads
from nanomq_twisted.core.auth import PasswordAuthenticator
from nanomq_twisted.core.info import ConnectInfo, TransportInfo
from nanomq_twisted.mqtt import reason_codes as rc

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))


def run_tool(*args, stdin):
    """Fires with (stdout, stderr, exit code) of the tool given ``stdin``."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    # getProcessOutputAndValue has no stdin: let a shell pipe it in.
    command = "printf '%s\\n' \"$PW\" | exec \"$0\" -m nanomq_twisted passwd \"$@\""
    env["PW"] = stdin
    return utils.getProcessOutputAndValue(
        "/bin/sh", ["-c", command, sys.executable, *args], env=env, path=ROOT)


def connect_info(username, password):
    return ConnectInfo("c", username, password, 4, "MQTT", True, 60, {},
                       TransportInfo(("127.0.0.1", 1), "tcp"))


class PasswdToolTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_default_output_is_a_salted_hash(self):
        lines = []
        for _ in range(2):
            out, err, code = yield run_tool("alice", "--stdin", stdin="wonderland")
            self.assertEqual((code, err), (0, b""))
            lines.append(out.decode().strip())
        for line in lines:
            user, _, value = line.partition(": ")
            self.assertEqual(user, '"alice"')
            scheme, iterations, salt, digest = value.strip('"').split("$")[1:]
            self.assertEqual((scheme, iterations), ("pbkdf2-sha256", "600000"))
            salt = base64.b64decode(salt + "=" * (-len(salt) % 4))
            self.assertEqual(len(salt), 16)
            # Checked here with hashlib, not with the project's verifier.
            expected = hashlib.pbkdf2_hmac("sha256", b"wonderland", salt, 600000)
            self.assertEqual(base64.b64decode(digest + "=" * (-len(digest) % 4)), expected)
        self.assertNotEqual(lines[0], lines[1])  # a fresh salt each time

        # The reader takes the line beside a plain NanoMQ entry.
        config = loads("auth { allow_anonymous = false, password { " + lines[0]
                       + '\n"admin": "public" } }', env={})
        table = PasswordAuthenticator(False, config.auth.password)
        answers = {(user, pw): table.authenticate(connect_info(user, pw), None)
                   for user, pw in (("alice", b"wonderland"), ("alice", b"public"),
                                    ("admin", b"public"), ("admin", b"wonderland"))}
        self.assertEqual(answers, {
            ("alice", b"wonderland"): rc.SUCCESS,
            ("alice", b"public"): rc.BAD_USER_NAME_OR_PASSWORD,
            ("admin", b"public"): rc.SUCCESS,
            ("admin", b"wonderland"): rc.BAD_USER_NAME_OR_PASSWORD,
        })

    @defer.inlineCallbacks
    def test_empty_password_refused(self):
        out, err, code = yield run_tool("alice", "--stdin", stdin="")
        self.assertEqual((out, code), (b"", 2))
        self.assertIn(b"empty password", err)
        self.assertIn(b"nanomq-twisted passwd", err)
