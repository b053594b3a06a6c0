"""
A real Mosquitto for bridge tests: generated config, a free loopback port,
started with ``spawnProcess`` and stopped (then killed if need be) in the
test's cleanup.  ``wait_for`` is the bounded, Deferred-driven polling the
tests use instead of sleeping.
"""

import contextlib
import datetime
import ipaddress
import os
import shutil

from twisted.internet import defer, protocol, reactor, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ProcessExitedAlready

from .support import free_port

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
)


@defer.inlineCallbacks
def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Poll ``predicate`` every ``interval`` s until true or ``timeout``."""
    for _ in range(int(timeout / interval) + 1):
        if predicate():
            return
        yield task.deferLater(reactor, interval, lambda: None)
    raise AssertionError("timed out waiting for " + what)


class _Ended(protocol.ProcessProtocol):
    def __init__(self):
        self.ended = defer.Deferred()
        self.output = []

    def outReceived(self, data):
        self.output.append(data)

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback(None)


class Mosquitto:
    """One mosquitto process; ``start``/``stop`` can be repeated on the
    same port (with ``persistence`` the sessions survive a restart)."""

    def __init__(self, testcase, tls=None, persistence=False):
        self.testcase = testcase
        self.port = free_port()
        self.dir = os.path.abspath(testcase.mktemp())
        os.makedirs(self.dir)
        self.conf = os.path.join(self.dir, "mosquitto.conf")
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            f"user {_user()}",
        ]
        if persistence:
            lines += ["persistence true", f"persistence_location {self.dir}/"]
        if tls is not None:
            lines += [
                "cafile {}".format(tls["ca"]),
                "certfile {}".format(tls["cert"]),
                "keyfile {}".format(tls["key"]),
            ]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.process = None
        self.proto = None
        testcase.addCleanup(self.stop)

    @defer.inlineCallbacks
    def start(self):
        self.proto = _Ended()
        self.process = reactor.spawnProcess(
            self.proto, MOSQUITTO, [MOSQUITTO, "-c", self.conf], env=os.environ.copy()
        )
        yield self.wait_accepting()

    @defer.inlineCallbacks
    def wait_accepting(self, timeout=10.0):
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port, timeout=1)
        for _ in range(int(timeout / 0.05)):
            if self.proto.ended.called:
                raise AssertionError(
                    "mosquitto exited: {!r}".format(b"".join(self.proto.output)[-500:])
                )
            try:
                conn = yield endpoint.connect(
                    protocol.Factory.forProtocol(protocol.Protocol)
                )
            except Exception:  # noqa: BLE001 -- not accepting yet
                yield task.deferLater(reactor, 0.05, lambda: None)
                continue
            conn.transport.abortConnection()
            return
        raise AssertionError(f"mosquitto did not accept connections on {self.port}")

    @defer.inlineCallbacks
    def stop(self):
        """SIGTERM (mosquitto saves its persistence file), KILL after 5 s."""
        proto, self.proto = self.proto, None
        if proto is None or proto.ended.called:
            return
        self.process.signalProcess("TERM")
        killer = reactor.callLater(5.0, self._kill, self.process)
        yield proto.ended
        if killer.active():
            killer.cancel()

    @staticmethod
    def _kill(process):
        with contextlib.suppress(ProcessExitedAlready):
            process.signalProcess("KILL")


def _user():
    import pwd

    return pwd.getpwuid(os.getuid()).pw_name


def make_certificates(directory):
    """A CA and a server certificate for 127.0.0.1/localhost, as PEM files
    in ``directory``; returns ``{"ca", "cert", "key"}`` paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=2)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("bridge test CA"))
        .issuer_name(name("bridge test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = {
        "ca": os.path.join(directory, "ca.pem"),
        "cert": os.path.join(directory, "server.pem"),
        "key": os.path.join(directory, "server.key"),
    }
    with open(paths["ca"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert"], "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(paths["key"], "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    return paths
