"""
Throw-away certificates for the TLS, WSS and QUIC tests, made at test time.

``make_certs(directory)`` writes a small PKI into ``directory``:

- ``ca.pem``: the test CA that signed everything below;
- ``server.pem``/``server.key``: CN=localhost, SAN ``localhost`` and
  ``127.0.0.1``, for server authentication;
- ``server-encrypted.key``: the same key encrypted with ``KEY_PASSWORD``;
- ``client.pem``/``client.key``: CN=``CLIENT_CN``, for client authentication;
- ``other-ca.pem``: an unrelated CA, for "wrong CA" scenarios.

Keys are P-256 (instant to generate; TLS 1.2/1.3 and aioquic accept them).
"""

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_PASSWORD = "test-key-password"
CLIENT_CN = "test-client"


@dataclass(frozen=True)
class CertPaths:
    ca: str
    server_cert: str
    server_key: str
    server_key_encrypted: str
    client_cert: str
    client_key: str
    other_ca: str


def _name(common_name):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nanomq-twisted tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(subject, issuer, public_key):
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )


def make_ca(common_name):
    """A self-signed CA: ``(certificate, private_key)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(ca, common_name, server):
    """A certificate signed by ``ca``: for a server (SAN localhost and
    127.0.0.1) when ``server`` is true, else for a client."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(_name(common_name), ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(ca_key, hashes.SHA256()), key


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key, password=None):
    encryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def make_certs(directory, client_cn=CLIENT_CN):
    """Write the test PKI into ``directory`` (created if needed); the client
    certificate's subject CN is ``client_cn``."""
    os.makedirs(directory, exist_ok=True)
    ca = make_ca("nanomq-twisted TEST CA")
    server_cert, server_key = make_leaf(ca, "localhost", server=True)
    client_cert, client_key = make_leaf(ca, client_cn, server=False)
    other_ca_cert, _ = make_ca("unrelated TEST CA")
    files = {
        "ca.pem": cert_pem(ca[0]),
        "server.pem": cert_pem(server_cert),
        "server.key": key_pem(server_key),
        "server-encrypted.key": key_pem(server_key, KEY_PASSWORD),
        "client.pem": cert_pem(client_cert),
        "client.key": key_pem(client_key),
        "other-ca.pem": cert_pem(other_ca_cert),
    }
    for name, data in files.items():
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    path = lambda name: os.path.abspath(os.path.join(directory, name))
    return CertPaths(
        ca=path("ca.pem"),
        server_cert=path("server.pem"),
        server_key=path("server.key"),
        server_key_encrypted=path("server-encrypted.key"),
        client_cert=path("client.pem"),
        client_key=path("client.key"),
        other_ca=path("other-ca.pem"),
    )
