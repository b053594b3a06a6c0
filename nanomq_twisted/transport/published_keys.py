# -*- test-case-name: tests.e2e.test_tls_policy -*-
"""
The TEST certificates of ``etc/certs/``, recognised so that they are never
used by accident.

Their private keys are published in the repository, so a listener serving
``etc/certs/key.pem`` can be impersonated by anyone, and a listener that
trusts ``etc/certs/cacert.pem`` for client certificates admits anyone
holding the published ``client-key.pem``.  A TLS, WSS or QUIC listener
therefore refuses to start with them unless its block says
``allow_test_certificates = true`` (the examples under ``etc/examples/``
do; docs/configuration.md).

Recognised are:

- a key whose public half is one of ``PUBLISHED_KEYS`` (SHA-256 of the
  DER SubjectPublicKeyInfo of ``etc/certs/key.pem`` and
  ``client-key.pem``; a unit test keeps the list equal to the files), even
  inside a certificate issued anew;
- a certificate whose subject or issuer organisation is ``TEST_LABEL``,
  the label ``etc/certs/make_test_certs.py`` writes (so regenerated test
  certificates are recognised too).

Certificates made by the test suite (tests/certs.py) carry neither.
"""

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import NameOID

TEST_LABEL = "nanomq-twisted TEST ONLY - DO NOT USE IN PRODUCTION"

PUBLISHED_KEYS = frozenset({
    # etc/certs/key.pem (server, CN=localhost)
    "ee8d4d36957f46c754ab140c59e31bb6a53a1932d33e9b28a72313926d1515cb",
    # etc/certs/client-key.pem
    "edf3177f1d1fa98f9449d631263587450205aa081aa14bb1e84ec359707bcc50",
})


def key_fingerprint(public_key):
    """SHA-256 (hex) of a public key's DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _labelled(name):
    return any(attr.value == TEST_LABEL
               for attr in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))


def is_test_certificate(cert):
    """True for a cryptography ``Certificate`` of (or issued by) the test CA,
    or carrying a published key."""
    return (_labelled(cert.subject) or _labelled(cert.issuer)
            or key_fingerprint(cert.public_key()) in PUBLISHED_KEYS)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _certificates(path):
    data = _read(path) if path else None
    if data is None:
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return []


def _key(path, password):
    data = _read(path) if path else None
    if data is None:
        return None
    try:
        return load_pem_private_key(data, password.encode("utf-8") if password else None)
    except (TypeError, ValueError):
        return None


def published_material(keyfile=None, certfile=None, cacertfile=None, key_password=None):
    """The first of ``keyfile``/``certfile``/``cacertfile`` that is TEST
    material, as ``(key, path)`` -- e.g. ``("keyfile", "etc/certs/key.pem")``
    -- or None.  Files that cannot be read or parsed are not judged here:
    the loader that needs them reports them."""
    key = _key(keyfile, key_password)
    if key is not None and key_fingerprint(key.public_key()) in PUBLISHED_KEYS:
        return ("keyfile", keyfile)
    for name, path in (("certfile", certfile), ("cacertfile", cacertfile)):
        if any(is_test_certificate(cert) for cert in _certificates(path)):
            return (name, path)
    return None


def refusal(block, found):
    """The error text for ``found`` (from ``published_material``) in the
    configuration block ``block`` (``listeners.ssl``, ...)."""
    key, path = found
    return (
        f"{block}.{key} {path!r} is a published TEST certificate or key (etc/certs/): "
        f"anyone can impersonate it.  Use your own certificates, or set "
        f"{block}.allow_test_certificates = true for tests and demos"
    )
