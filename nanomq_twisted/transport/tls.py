# -*- test-case-name: tests.e2e.test_tls -*-
"""
MQTT over TLS: pyOpenSSL through Twisted's memory-BIO TLS wrapper.

Three small pieces:

- ``certificate_options(listener)`` turns the certificate keys of an
  ``SslListener`` (or a ``WsListener`` carrying the main ssl block's keys,
  for WSS) into Twisted ``CertificateOptions``: TLS 1.2 and 1.3 only,
  and for TLS 1.2 only the AEAD suites with forward secrecy
  (``TLS12_CIPHERS``; TLS 1.3's suites are all of that kind).  The
  published TEST certificates of ``etc/certs/`` are refused unless the
  block sets ``allow_test_certificates`` (published_keys.py).
- ``HandshakeGate`` sits between the TLS layer and the application
  protocol and builds that protocol only once the handshake has
  completed.  A failed handshake (wrong CA, missing client certificate,
  garbage instead of a ClientHello, a port scanner) is logged once with
  the peer address and never reaches the broker core: no
  ``ClientConnection`` is ever created for it.  A peer that connects but
  never finishes the handshake is dropped after ``handshake_timeout``.
- ``TLSServerEndpoint`` loads the certificates when the listener starts
  (a bad path or a wrong ``key_password`` fails the start loudly, through
  ``ListenerService``) and listens on TCP with the factory wrapped in
  ``TLSMemoryBIOFactory`` and the gate.

Client certificate policy follows NanoMQ: ``verify_peer`` asks for a
client certificate and verifies it against ``cacertfile``;
``fail_if_no_peer_cert`` additionally refuses clients that send none.
``fail_if_no_peer_cert`` without ``verify_peer`` has no effect, as in
NanoMQ.

``use_identity_as_username`` (our extension, Mosquitto's option) and the
certificate details: after the handshake the gate calls the application
protocol's ``tls_established(TlsPeer(common_name, subject, identity))``
(through ``WebSocketProtocol`` for WSS) before ``makeConnection``.
Whenever the client presented a certificate that OpenSSL verified
(``verify_peer``), ``common_name`` and ``subject`` (OpenSSL's one-line form,
``/O=Org/CN=alice``; see ``subject_oneline``) describe it, for HTTP auth's
``%C`` and ``%d``; with the option, ``identity`` is the common name, which
the core uses as the MQTT user name in place of CONNECT's, before
authentication.  The protocol puts them in the connection's
``TransportInfo`` (core/info.py).
"""

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import AcceptableCiphers, CertificateOptions, TLSVersion
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from .listeners import tcp_endpoint
from .protocol import TlsPeer
from .published_keys import published_material, refusal

#: Seconds a client has to complete the TLS (or WebSocket) handshake.
HANDSHAKE_TIMEOUT = 10.0

#: TLS 1.2 cipher suites: Mozilla's "intermediate" list -- ECDHE/DHE key
#: exchange (forward secrecy) with AES-GCM or ChaCha20-Poly1305.  No RSA
#: key exchange, no CBC, no SHA-1 MACs.  The DHE suites stay unused unless
#: DH parameters are configured (they are not), as in most servers.
TLS12_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-CHACHA20-POLY1305",
))


class TLSConfigError(Exception):
    """The listener's certificate settings cannot be used."""


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as error:
        raise TLSConfigError(f"cannot read {what} {path!r}: {error.strerror}")


def _load_certs(path, what):
    try:
        certs = x509.load_pem_x509_certificates(_read(path, what))
    except ValueError as error:
        raise TLSConfigError(f"{what} {path!r} holds no PEM certificate: {error}")
    return [crypto.X509.from_cryptography(cert) for cert in certs]


def _load_key(path, password):
    data = _read(path, "keyfile")
    secret = password.encode("utf-8") if password else None
    try:
        key = load_pem_private_key(data, secret)
    except TypeError as error:
        # Encrypted key without a password, or a password for a plain key.
        raise TLSConfigError(f"keyfile {path!r}: {error}")
    except ValueError as error:
        raise TLSConfigError(f"keyfile {path!r} cannot be loaded (wrong key_password?): {error}")
    return crypto.PKey.from_cryptography_key(key)


def certificate_options(listener, block="listeners.ssl"):
    """``CertificateOptions`` for a server listener's certificate keys.

    ``listener`` has ``keyfile``, ``certfile``, ``cacertfile``,
    ``key_password``, ``verify_peer``, ``fail_if_no_peer_cert`` and
    ``allow_test_certificates``; ``block`` is its configuration path, for
    errors.  The certificate file may hold a chain (leaf first).  Raises
    ``TLSConfigError`` for anything unusable, including a key that does not
    match the certificate and, without ``allow_test_certificates``, the
    published TEST certificates.
    """
    if not listener.certfile or not listener.keyfile:
        raise TLSConfigError("a TLS listener needs certfile and keyfile")
    chain = _load_certs(listener.certfile, "certfile")
    key = _load_key(listener.keyfile, listener.key_password)
    if not listener.allow_test_certificates:
        found = published_material(listener.keyfile, listener.certfile,
                                   listener.cacertfile, listener.key_password)
        if found is not None:
            raise TLSConfigError(refusal(block, found))
    kwargs = {}
    if listener.verify_peer:
        if not listener.cacertfile:
            raise TLSConfigError("verify_peer needs cacertfile (the CA of client certificates)")
        kwargs.update(
            verify=True,
            caCerts=_load_certs(listener.cacertfile, "cacertfile"),
            requireCertificate=bool(listener.fail_if_no_peer_cert),
        )
    options = CertificateOptions(
        privateKey=key,
        certificate=chain[0],
        extraCertChain=chain[1:],
        raiseMinimumTo=TLSVersion.TLSv1_2,
        acceptableCiphers=AcceptableCiphers.fromOpenSSLCipherString(TLS12_CIPHERS),
        **kwargs,
    )
    try:
        # Builds the SSL context now: a key that does not match the
        # certificate fails here, at start-up, not on the first client.
        options.getContext()
    except SSL.Error as error:
        raise TLSConfigError(f"certfile/keyfile rejected by OpenSSL: {error}")
    return options


def _value(attribute):
    value = attribute.value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _peer_subject(tls_transport):
    """The subject (a cryptography ``Name``) of the peer certificate of a
    completed TLS connection (OpenSSL verified it, or the handshake would
    have failed), or None without one."""
    cert = tls_transport.getPeerCertificate()
    if cert is None:
        return None
    return cert.to_cryptography().subject


def _common_name(subject):
    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME) if subject else ()
    return _value(names[0]) if names else None


def peer_common_name(tls_transport):
    """The first subject CN of the peer certificate, or None without a
    certificate or a CN."""
    return _common_name(_peer_subject(tls_transport))


#: OpenSSL's short names (``OBJ_nid2sn``) of the usual subject attributes.
_SHORT_NAMES = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.STREET_ADDRESS: "street",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.SURNAME: "SN",
    NameOID.GIVEN_NAME: "GN",
    NameOID.TITLE: "title",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.USER_ID: "UID",
    NameOID.EMAIL_ADDRESS: "emailAddress",
}


def subject_oneline(subject):
    """``subject`` in OpenSSL's one-line form (``X509_NAME_oneline``, what
    ``openssl x509 -subject -nameopt compat`` prints): each attribute, in
    certificate order, as ``/<short name>=<value>``, e.g.
    ``/C=DE/O=Example/CN=alice``.  Attributes without a short name here
    use their dotted OID.  Values are the decoded text, not escaped."""
    return "".join(
        f"/{_SHORT_NAMES.get(attr.oid, attr.oid.dotted_string)}={_value(attr)}"
        for attr in subject
    )


@implementer(IHandshakeListener)
class HandshakeGate(Protocol):
    """Wrapped by TLS; builds the real protocol after the handshake.

    Until ``handshakeCompleted`` nothing but this object knows about the
    connection.  Afterwards it only forwards ``dataReceived`` and
    ``connectionLost``; the application protocol's transport is the TLS
    transport itself, so writes and producer calls go straight there.
    """

    _log = Logger()

    def __init__(self, factory, addr):
        self.gate_factory = factory
        self.addr = addr
        self.wrapped = None
        self._timeout = None

    def connectionMade(self):
        clock = self.gate_factory.clock
        self._timeout = clock.callLater(self.gate_factory.handshake_timeout, self._timed_out)

    def handshakeCompleted(self):
        self._cancel_timeout()
        self.wrapped = self.gate_factory.wrapped_factory.buildProtocol(self.addr)
        if self.wrapped is None:
            self.transport.loseConnection()
            return
        subject = _peer_subject(self.transport)
        common_name = _common_name(subject)
        identity = common_name if self.gate_factory.identity_as_username else None
        if subject is not None or identity is not None:
            self.wrapped.tls_established(TlsPeer(
                common_name or "",
                subject_oneline(subject) if subject is not None else "",
                identity,
            ))
        self.wrapped.makeConnection(self.transport)

    def dataReceived(self, data):
        if self.wrapped is not None:
            self.wrapped.dataReceived(data)

    def connectionLost(self, reason):
        self._cancel_timeout()
        if self.wrapped is not None:
            wrapped, self.wrapped = self.wrapped, None
            wrapped.connectionLost(reason)
            return
        self._log.info(
            "TLS handshake with {host}:{port} on {listener} failed: {reason}",
            host=getattr(self.addr, "host", "?"),
            port=getattr(self.addr, "port", "?"),
            listener=self.gate_factory.name,
            reason=_describe(reason.value),
        )

    def _timed_out(self):
        self._timeout = None
        stats = self.gate_factory.stats
        if stats is not None:
            stats.handshake_timeouts += 1
        self._log.info(
            "TLS handshake with {host}:{port} timed out",
            host=getattr(self.addr, "host", "?"),
            port=getattr(self.addr, "port", "?"),
        )
        self.transport.abortConnection()

    def _cancel_timeout(self):
        if self._timeout is not None:
            if self._timeout.active():
                self._timeout.cancel()
            self._timeout = None


def _describe(error):
    """OpenSSL errors are nested lists of tuples; make them one line."""
    args = getattr(error, "args", ())
    if args and isinstance(args[0], list):
        parts = [entry[-1] for entry in args[0] if isinstance(entry, tuple) and entry]
        if parts:
            return "; ".join(str(part) for part in parts)
    return f"{type(error).__name__}: {error}"


class HandshakeGateFactory(Factory):
    """Builds ``HandshakeGate``s in front of ``wrapped_factory``."""

    def __init__(self, wrapped_factory, clock, name="ssl", handshake_timeout=HANDSHAKE_TIMEOUT,
                 identity_as_username=False, stats=None):
        self.wrapped_factory = wrapped_factory
        self.clock = clock
        self.name = name
        self.handshake_timeout = handshake_timeout
        self.identity_as_username = identity_as_username
        #: The broker's ``Stats`` (``handshake_timeouts``), or None.
        self.stats = stats

    def buildProtocol(self, addr):
        gate = HandshakeGate(self, addr)
        gate.factory = self
        return gate


class TLSServerEndpoint:
    """An ``IStreamServerEndpoint``: TCP, TLS from ``listener``'s keys, and
    the handshake gate in front of the listened factory."""

    def __init__(self, reactor, listener, host, port, backlog=1024, name="ssl",
                 handshake_timeout=HANDSHAKE_TIMEOUT, stats=None):
        self.reactor = reactor
        self.listener = listener
        self.host = host
        self.port = port
        self.backlog = backlog
        self.name = name
        self.handshake_timeout = handshake_timeout
        self.stats = stats

    def listen(self, factory):
        try:
            # WSS takes the main listeners.ssl block's keys.
            block = "listeners.ssl" if self.name == "wss" else "listeners." + self.name
            options = certificate_options(self.listener, block)
        except TLSConfigError:
            return defer.fail()
        gated = HandshakeGateFactory(
            factory, self.reactor, self.name, self.handshake_timeout,
            identity_as_username=self.listener.use_identity_as_username,
            stats=self.stats,
        )
        tls_factory = TLSMemoryBIOFactory(options, False, gated)
        endpoint = tcp_endpoint(self.reactor, self.host, self.port, self.backlog)
        return endpoint.listen(tls_factory)
