#!/usr/bin/env python3
"""
Generate the TEST certificates used by etc/examples/tls.conf (and the wss
listener it implies).  FOR THE EXAMPLE CONFIG ONLY -- the private keys are
public in this repository, so never use these files in production.

    python etc/certs/make_test_certs.py [directory]   # default: this folder

Writes cacert.pem (a self-signed TEST CA), cert.pem/key.pem (server,
CN=localhost, SAN localhost + 127.0.0.1) and client-cert.pem/client-key.pem
(a client certificate for trying verify_peer), all P-256, valid ten years.
"""

import datetime
import hashlib
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LABEL = "nanomq-twisted TEST ONLY - DO NOT USE IN PRODUCTION"
DAYS = 3650


def name(common_name):
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, LABEL),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def builder(subject, issuer, key):
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=DAYS))
    )


def leaf(ca_cert, ca_key, common_name, usage, sans=None):
    key = ec.generate_private_key(ec.SECP256R1())
    b = (
        builder(name(common_name), ca_cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def main(directory):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name("nanomq-twisted TEST CA")
    ca_cert = (
        builder(ca_name, ca_name, ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = leaf(ca_cert, ca_key, "localhost", ExtendedKeyUsageOID.SERVER_AUTH,
                  [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client = leaf(ca_cert, ca_key, "nanomq-twisted-test-client", ExtendedKeyUsageOID.CLIENT_AUTH)
    pem = serialization.Encoding.PEM
    outputs = {
        "cacert.pem": ca_cert.public_bytes(pem),
        "cert.pem": server[0].public_bytes(pem),
        "client-cert.pem": client[0].public_bytes(pem),
    }
    for file_name, key in (("key.pem", server[1]), ("client-key.pem", client[1])):
        outputs[file_name] = key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    for file_name, data in outputs.items():
        with open(os.path.join(directory, file_name), "wb") as f:
            f.write(data)
        print("wrote", os.path.join(directory, file_name))
    # The broker refuses these keys unless allow_test_certificates is set:
    # put the new fingerprints into transport/published_keys.py.
    for file_name, key in (("key.pem", server[1]), ("client-key.pem", client[1])):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        print("PUBLISHED_KEYS entry for", file_name, hashlib.sha256(der).hexdigest())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
