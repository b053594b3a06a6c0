"""
The TLS policy of the listeners, checked with real TLS clients (Python's
``ssl`` over loopback, OpenSSL underneath): protocol versions and cipher
suites offered by a client, ``verify_peer``/``fail_if_no_peer_cert`` both
ways, and the published TEST certificates of ``etc/certs/`` refused unless
``allow_test_certificates`` is set.
"""

import dataclasses
import os
import socket
import ssl

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from nanomq_twisted.config import loads
from nanomq_twisted.tap import make_app
from nanomq_twisted.transport.published_keys import PUBLISHED_KEYS, key_fingerprint
from nanomq_twisted.transport.quic.server import QuicConfigError, server_configuration
from nanomq_twisted.transport.tls import TLSConfigError

from ..certs import CLIENT_CN, cert_pem, key_pem, make_ca, make_leaf
from .support import BASE_CONF, TIMEOUT, in_thread
from .transport_support import (
    CONNACK_OK,
    mqtt_connect,
    new_certs,
    q,
    ssl_block,
    start_with,
)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
ETC_CERTS = os.path.join(ROOT, "etc", "certs")
NO_WSS = "listeners.wss { enable = false }\n"


def client_context(certs, minimum=None, maximum=None, ciphers=None, cert=None):
    """A client ``SSLContext`` trusting the test CA, limited as asked.
    ``@SECLEVEL=0`` lets this OpenSSL offer TLS 1.0/1.1, so that it is the
    server that refuses them."""
    context = ssl.create_default_context(cafile=certs.ca)
    context.set_ciphers((ciphers or "DEFAULT") + ":@SECLEVEL=0")
    if minimum is not None:
        context.minimum_version = minimum
    if maximum is not None:
        context.maximum_version = maximum
    if cert is not None:
        context.load_cert_chain(*cert)
    return context


def handshake(port, context):
    """Connect and handshake; returns ``(version, cipher name)``."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            return sock.version(), sock.cipher()[0]
    finally:
        raw.close()


def connack(port, context, client_id, keep):
    """CONNECT over TLS: the first 4 bytes back (b"" when refused); the
    socket stays open, in ``keep``, so the broker keeps the connection."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    keep.append(raw)
    try:
        sock = context.wrap_socket(raw, server_hostname="localhost")
    except (ssl.SSLError, ConnectionResetError):
        return b""
    keep.append(sock)
    try:
        sock.sendall(mqtt_connect(client_id))
        return _first(sock)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return b""


def _first(sock):
    data = b""
    while len(data) < 4:
        try:
            chunk = sock.recv(4 - len(data))
        except (ssl.SSLError, ConnectionResetError):
            return data
        if not chunk:
            return data
        data += chunk
    return data


class HandshakeLog:
    """Collects the broker's "TLS handshake ... failed" reasons (logged
    when the server side of the connection is gone, which may be after
    the client saw the alert: ``reached(n)`` waits for them)."""

    def __init__(self, testcase):
        self.reasons = []
        self._waiting = []
        globalLogPublisher.addObserver(self)
        testcase.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event):
        if event.get("log_format", "").startswith("TLS handshake with"):
            self.reasons.append(str(event.get("reason", "")))
            ready = [w for w in self._waiting if len(self.reasons) >= w[0]]
            for waiter in ready:
                self._waiting.remove(waiter)
                waiter[1].callback(self.reasons)

    def reached(self, count):
        if len(self.reasons) >= count:
            return defer.succeed(self.reasons)
        d = defer.Deferred()
        self._waiting.append((count, d))
        return d


class VersionAndCipherTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.certs = new_certs(self)
        _running, ports = yield start_with(self, ssl_block(self.certs) + NO_WSS, ("ssl",))
        self.port = ports["ssl"]
        self.log = HandshakeLog(self)

    @defer.inlineCallbacks
    def test_tls_1_0_and_1_1_refused_by_the_server(self):
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            context = client_context(self.certs, minimum=version, maximum=version)
            with self.assertRaises(ssl.SSLError):
                yield in_thread(handshake, self.port, context)
        # The server saw both ClientHellos and refused their version.
        reasons = yield self.log.reached(2)
        self.assertEqual(len(reasons), 2, reasons)
        for reason in reasons:
            self.assertIn("unsupported protocol", reason)

    @defer.inlineCallbacks
    def test_tls_1_2_without_forward_secrecy_or_aead_refused(self):
        """RSA key exchange, CBC and SHA-1 suites: no shared cipher."""
        for suite in ("ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA",
                      "AES128-GCM-SHA256", "AES256-SHA", "ECDHE-ECDSA-NULL-SHA"):
            context = client_context(self.certs, maximum=ssl.TLSVersion.TLSv1_2, ciphers=suite)
            with self.assertRaises(ssl.SSLError, msg=suite):
                yield in_thread(handshake, self.port, context)
        reasons = yield self.log.reached(5)
        self.assertEqual(len(reasons), 5, reasons)
        for reason in reasons:
            self.assertIn("no shared cipher", reason)

    @defer.inlineCallbacks
    def test_modern_suites_accepted(self):
        for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                      "ECDHE-ECDSA-CHACHA20-POLY1305"):
            context = client_context(self.certs, maximum=ssl.TLSVersion.TLSv1_2, ciphers=suite)
            self.assertEqual((yield in_thread(handshake, self.port, context)),
                             ("TLSv1.2", suite))
        version, _suite = yield in_thread(handshake, self.port, client_context(self.certs))
        self.assertEqual(version, "TLSv1.3")
        self.assertEqual(self.log.reasons, [])


class PeerVerificationTests(TestCase):
    """verify_peer/fail_if_no_peer_cert, with certificates from the right
    CA, from another CA, and none."""

    timeout = 60

    def setUp(self):
        self.certs = new_certs(self)
        directory = self.mktemp()
        os.makedirs(directory)
        stranger_cert, stranger_key = make_leaf(make_ca("stranger CA"), CLIENT_CN, server=False)
        self.stranger = (os.path.join(directory, "c.pem"), os.path.join(directory, "c.key"))
        for path, data in zip(self.stranger, (cert_pem(stranger_cert), key_pem(stranger_key))):
            with open(path, "wb") as f:
                f.write(data)
        self.good = (self.certs.client_cert, self.certs.client_key)

    @defer.inlineCallbacks
    def start(self, **options):
        self.running, ports = yield start_with(
            self, ssl_block(self.certs, **options) + NO_WSS, ("ssl",))
        return ports["ssl"]

    def common_name(self, client_id):
        return self.running.broker.connections[client_id].info.transport.tls_common_name

    @defer.inlineCallbacks
    def outcomes(self, port):
        """CONNACK (or b"") for: no certificate, the CA's, a stranger's."""
        results = []
        keep = []
        self.addCleanup(lambda: [s.close() for s in keep])
        for client_id, cert in (("none", None), ("good", self.good),
                                ("stranger", self.stranger)):
            context = client_context(self.certs, cert=cert)
            results.append((yield in_thread(connack, port, context, client_id, keep)))
        return results

    @defer.inlineCallbacks
    def test_verify_peer_off(self):
        """No certificate is asked for: every client is in, and none is
        seen as authenticated, the stranger's certificate included."""
        port = yield self.start()
        self.assertEqual((yield self.outcomes(port)), [CONNACK_OK] * 3)
        self.assertEqual([self.common_name(c) for c in ("none", "good", "stranger")],
                         ["", "", ""])

    @defer.inlineCallbacks
    def test_verify_peer_optional(self):
        """verify_peer alone: no certificate is fine, the CA's is verified
        (its CN is known), a stranger's fails the handshake."""
        port = yield self.start(verify_peer=True)
        self.assertEqual((yield self.outcomes(port)), [CONNACK_OK, CONNACK_OK, b""])
        self.assertEqual((self.common_name("none"), self.common_name("good")), ("", CLIENT_CN))
        self.assertNotIn("stranger", self.running.broker.connections)

    @defer.inlineCallbacks
    def test_verify_peer_required(self):
        """verify_peer + fail_if_no_peer_cert: only the CA's certificate."""
        port = yield self.start(verify_peer=True, fail_if_no_peer_cert=True)
        self.assertEqual((yield self.outcomes(port)), [b"", CONNACK_OK, b""])
        self.assertEqual(sorted(self.running.broker.connections), ["good"])
        self.assertEqual(self.common_name("good"), CLIENT_CN)

    @defer.inlineCallbacks
    def test_fail_if_no_peer_cert_alone_asks_nothing(self):
        """fail_if_no_peer_cert without verify_peer has no effect (NanoMQ)."""
        port = yield self.start(fail_if_no_peer_cert=True)
        self.assertEqual((yield self.outcomes(port)), [CONNACK_OK] * 3)


def etc(name):
    return os.path.join(ETC_CERTS, name)


class PublishedTestCertificateTests(SynchronousTestCase):
    """The keys of etc/certs/ never serve by accident."""

    def test_published_keys_are_the_files(self):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        found = set()
        for name in ("key.pem", "client-key.pem"):
            with open(etc(name), "rb") as f:
                found.add(key_fingerprint(load_pem_private_key(f.read(), None).public_key()))
        self.assertEqual(found, PUBLISHED_KEYS)

    def start_fails(self, conf):
        service = make_app(loads(BASE_CONF + conf + NO_WSS, path="<test>"), reactor).service
        self.assertRaises((TLSConfigError, QuicConfigError), service.startService)
        errors = self.flushLoggedErrors(TLSConfigError, QuicConfigError)
        self.assertEqual(len(errors), 1)
        service.stopService()
        return errors[0].getErrorMessage()

    def ssl(self, certs, **keys):
        base = {"keyfile": certs.server_key, "certfile": certs.server_cert,
                "cacertfile": certs.ca}
        base.update(keys)
        body = "\n".join(f"{key} = {q(value) if isinstance(value, str) else str(value).lower()}"
                         for key, value in base.items())
        return 'listeners.ssl {\nbind = "127.0.0.1:0"\n' + body + "\n}\n"

    def test_refused_without_the_flag(self):
        certs = new_certs(self)
        cases = [
            ({"keyfile": etc("key.pem"), "certfile": etc("cert.pem")}, "keyfile"),
            # Our own key and certificate, but trusting the test CA, which
            # signed the published client key.
            ({"cacertfile": etc("cacert.pem"), "verify_peer": True}, "cacertfile"),
        ]
        for keys, key in cases:
            message = self.start_fails(self.ssl(certs, **keys))
            self.assertIn(f"listeners.ssl.{key} ", message)
            self.assertIn("allow_test_certificates", message)

    def test_published_key_in_a_new_certificate_refused(self):
        """Re-certifying the published key does not launder it."""
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        directory = self.mktemp()
        os.makedirs(directory)
        ca_cert, ca_key = make_ca("our CA")
        with open(etc("key.pem"), "rb") as f:
            published = load_pem_private_key(f.read(), None)
        cert, _ = make_leaf((ca_cert, ca_key), "localhost", server=True)
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        reissued = (x509.CertificateBuilder().subject_name(cert.subject)
                    .issuer_name(ca_cert.subject).public_key(published.public_key())
                    .serial_number(1).not_valid_before(cert.not_valid_before_utc)
                    .not_valid_after(cert.not_valid_after_utc).sign(ca_key, hashes.SHA256()))
        path = os.path.join(directory, "reissued.pem")
        with open(path, "wb") as f:
            f.write(cert_pem(reissued))
        message = self.start_fails(self.ssl(new_certs(self), keyfile=etc("key.pem"),
                                            certfile=path))
        self.assertIn("listeners.ssl.keyfile", message)

    def test_named_listener_and_quic_refused(self):
        certs = new_certs(self)
        named = ('listeners.ssl.edge { bind = "127.0.0.1:0", '
                 f'keyfile = {q(etc("key.pem"))}, certfile = {q(etc("cert.pem"))} }}\n')
        self.assertIn("listeners.ssl.edge.keyfile", self.start_fails(
            self.ssl(certs) + named))
        config = loads(BASE_CONF + 'listeners.quic { bind = "127.0.0.1:0", '
                       f'keyfile = {q(etc("key.pem"))}, certfile = {q(etc("cert.pem"))} }}\n',
                       path="<test>")
        with self.assertRaises(QuicConfigError) as caught:
            server_configuration(config.listeners.quic)
        self.assertIn("listeners.quic.keyfile", str(caught.exception))
        allowed = dataclasses.replace(config.listeners.quic, allow_test_certificates=True)
        self.assertIsNotNone(server_configuration(allowed))

    def test_allowed_with_the_flag(self):
        conf = ('listeners.ssl { bind = "127.0.0.1:0", '
                f'keyfile = {q(etc("key.pem"))}, certfile = {q(etc("cert.pem"))}, '
                f'cacertfile = {q(etc("cacert.pem"))}, allow_test_certificates = true }}\n')
        service = make_app(loads(BASE_CONF + conf + NO_WSS, path="<test>"), reactor).service
        service.startService()
        return service.stopService()
