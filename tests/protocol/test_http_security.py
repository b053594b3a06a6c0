"""
Security of the REST API: JWT attacks with tokens built here by hand
(base64url, JSON, ``hmac`` and ``cryptography`` -- not PyJWT, which the
verifier uses), Basic credentials compared in constant time, and the flag
for the default ``admin``/``public`` beyond loopback.
"""

import base64
import hashlib
import hmac
import json
import os
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from twisted.internet import reactor
from twisted.internet.protocol import Factory
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from nanomq_twisted.config import HttpServerConfig
from nanomq_twisted.http.auth import default_credentials_exposed, is_loopback
from nanomq_twisted.http.service import warn_if_exposed

from .http_support import BASIC, Harness

ISSUER = "jwtRS256.key.pub"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def compact(header, claims, sign):
    """A JWS compact serialisation: ``sign(signing_input) -> bytes``."""
    signing_input = (b64url(json.dumps(header).encode()) + b"."
                     + b64url(json.dumps(claims).encode()))
    return b"Bearer " + signing_input + b"." + b64url(sign(signing_input))


class JwtAttackTests(SynchronousTestCase):
    """http_server.auth_type = jwt refuses every token that is not RS256,
    signed by the configured key, within its validity window."""

    def setUp(self):
        directory = self.mktemp()
        os.makedirs(directory)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        keyfile = os.path.join(directory, ISSUER)
        with open(keyfile, "wb") as handle:
            handle.write(self.public_pem)
        self.h = Harness(
            f'http_server {{ auth_type = jwt, jwt.public.keyfile = "{keyfile}" }}\n')
        self.now = int(time.time())

    def claims(self, **changes):
        claims = {"iss": ISSUER, "exp": self.now + 3600}
        claims.update(changes)
        return claims

    def rs(self, digest=hashes.SHA256):
        return lambda data: self.key.sign(data, padding.PKCS1v15(), digest())

    def answer(self, auth):
        status, body = self.h.json("GET", "/api/v4/brokers", auth=auth)
        return status, body["code"]

    def test_hand_built_rs256_is_accepted(self):
        """The control: a token made here the RS256 way passes, so the
        refusals below are about what differs."""
        token = compact({"alg": "RS256", "typ": "JWT"}, self.claims(), self.rs())
        self.assertEqual(self.answer(token), (200, 0))

    def test_alg_none_refused(self):
        """``alg: none`` with an empty signature, in every spelling."""
        for alg in ("none", "None", "NONE", "nOnE"):
            token = compact({"alg": alg, "typ": "JWT"}, self.claims(), lambda _: b"")
            self.assertEqual(self.answer(token), (401, 103), alg)
        # ... and with the signature of a valid token pasted on.
        token = compact({"alg": "none"}, self.claims(), self.rs())
        self.assertEqual(self.answer(token), (401, 103))

    def test_hs256_with_the_public_key_as_secret_refused(self):
        """Algorithm confusion: HS256 keyed with the RSA public key (the
        file as configured, without its last newline, and as DER)."""
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        for secret in (self.public_pem, self.public_pem.rstrip(b"\n"), der):
            for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
                token = compact({"alg": alg, "typ": "JWT"}, self.claims(),
                                lambda data, s=secret, d=digest: hmac.new(s, data, d).digest())
                self.assertEqual(self.answer(token), (401, 103), alg)

    def test_other_rsa_algorithm_refused(self):
        """Only RS256: even a correct RS512 signature by the right key."""
        token = compact({"alg": "RS512"}, self.claims(), self.rs(hashes.SHA512))
        self.assertEqual(self.answer(token), (401, 103))

    def test_expired_refused(self):
        """``exp`` more than NanoMQ's 200 s leeway ago: 116."""
        for exp in (self.now - 3600, self.now - 201 - 5):
            token = compact({"alg": "RS256"}, self.claims(exp=exp), self.rs())
            self.assertEqual(self.answer(token), (401, 116), exp - self.now)

    def test_not_yet_valid_refused(self):
        """``nbf`` or ``iat`` an hour ahead: 103; within the 200 s clock
        skew allowance: accepted."""
        for claim in ("nbf", "iat"):
            late = compact({"alg": "RS256"}, self.claims(**{claim: self.now + 3600}), self.rs())
            self.assertEqual(self.answer(late), (401, 103), claim)
            skew = compact({"alg": "RS256"}, self.claims(**{claim: self.now + 30}), self.rs())
            self.assertEqual(self.answer(skew), (200, 0), claim)

    def test_tampered_claims_refused(self):
        """A valid signature over other claims: the payload swapped."""
        good = compact({"alg": "RS256"}, self.claims(), self.rs())[len(b"Bearer "):]
        header, _payload, signature = good.split(b".")
        forged = b64url(json.dumps(self.claims(exp=self.now + 10**8)).encode())
        self.assertEqual(self.answer(b"Bearer " + b".".join((header, forged, signature))),
                         (401, 103))


class ConstantTimeTests(SynchronousTestCase):
    def test_basic_credentials_compared_with_compare_digest(self):
        """Every Basic check goes through ``hmac.compare_digest`` with the
        decoded credentials, right or wrong."""
        seen = []
        real = hmac.compare_digest

        def recording(a, b):
            seen.append((a, b))
            return real(a, b)

        self.patch(hmac, "compare_digest", recording)
        h = Harness()
        wrong = b"Basic " + base64.b64encode(b"admin:publix")
        self.assertEqual(h.json("GET", "/api/v4/brokers", auth=wrong)[0], 401)
        self.assertIn((b"admin:publix", b"admin:public"), seen)
        self.assertEqual(h.json("GET", "/api/v4/brokers", auth=BASIC)[0], 200)
        self.assertIn((b"admin:public", b"admin:public"), seen)


class DefaultCredentialsTests(SynchronousTestCase):
    def test_exposed_only_for_admin_public_beyond_loopback(self):
        d = HttpServerConfig()
        self.assertEqual((d.ip_addr, d.username, d.password), ("0.0.0.0", "admin", "public"))
        cases = [
            ({}, True),
            ({"ip_addr": "::"}, True),
            ({"ip_addr": "192.0.2.7"}, True),
            ({"ip_addr": "broker.example"}, True),
            ({"ip_addr": "127.0.0.1"}, False),
            ({"ip_addr": "127.3.2.1"}, False),
            ({"ip_addr": "::1"}, False),
            ({"ip_addr": "::ffff:127.0.0.1"}, False),
            ({"ip_addr": "localhost"}, False),
            ({"password": "s3cret"}, False),
            ({"username": "root"}, False),
            ({"auth_type": "jwt", "jwt_public_keyfile": "k.pub"}, False),
            ({"auth_type": "no_auth"}, False),
        ]
        for changes, exposed in cases:
            http = HttpServerConfig(**changes)
            self.assertEqual(default_credentials_exposed(http), exposed, changes)
        self.assertFalse(is_loopback("0.0.0.0"))

    def flag(self, h):
        _status, body = h.json("GET", "/api/v4/brokers")
        (item,) = body["data"]
        return item["default_credentials"]

    def gauge(self, h):
        _status, _headers, text = h.request("GET", "/api/v4/prometheus")
        (line,) = [line for line in text.decode().splitlines()
                   if line.startswith("nanomq_http_default_credentials ")]
        return line.split()[1]

    def test_rest_flag_and_gauge_follow_the_credentials(self):
        """0.0.0.0 with admin/public: flagged; after ``POST
        /configuration/http_server`` changes the password, not any more."""
        h = Harness()  # http_server { port = 8081 }: ip_addr 0.0.0.0
        self.assertEqual((self.flag(h), self.gauge(h)), (True, "1"))
        status, body = h.json("POST", "/api/v4/configuration/http_server",
                              {"data": {"http_server": {"password": "n3w-secret"}}})
        self.assertEqual((status, body["code"]), (200, 0))
        new = b"Basic " + base64.b64encode(b"admin:n3w-secret")
        _status, body = h.json("GET", "/api/v4/brokers", auth=new)
        self.assertFalse(body["data"][0]["default_credentials"])
        _status, _headers, text = h.request("GET", "/api/v4/prometheus", auth=new)
        self.assertIn("\nnanomq_http_default_credentials 0\n", text.decode())

    def test_loopback_is_not_flagged(self):
        h = Harness('http_server { ip_addr = "127.0.0.1" }\n')
        self.assertEqual((self.flag(h), self.gauge(h)), (False, "0"))


class StartupWarningTests(TestCase):
    def warnings(self):
        seen = []

        def observer(event):
            if "default credentials" in event.get("log_format", ""):
                seen.append(event)

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        return seen

    def test_warned_once_when_exposed(self):
        """The listener's callback warns with the configured address and
        the bound port; nothing is said for a loopback API."""
        seen = self.warnings()
        port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        exposed = Harness()
        self.assertIs(warn_if_exposed(exposed.api, port), port)
        self.assertEqual([(e["host"], e["port"]) for e in seen],
                         [("0.0.0.0", port.getHost().port)])
        self.assertEqual(seen[0]["log_level"].name, "warn")
        warn_if_exposed(Harness('http_server { ip_addr = "127.0.0.1" }\n').api, port)
        self.assertEqual(len(seen), 1)
