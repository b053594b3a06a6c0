# -*- test-case-name: tests.unit.test_passwords -*-
"""
Password-file entries: NanoMQ's plain text, or our PBKDF2-SHA256 hashes.

A hashed entry looks like (docs/configuration.md, "Password file")::

    "alice": "$pbkdf2-sha256$600000$<salt, base64>$<digest, base64>"

The digest is ``hashlib.pbkdf2_hmac("sha256", password, salt, iterations)``
(32 bytes).  Any other value is a plain-text password, compared
byte-for-byte as NanoMQ does.  Every comparison is constant-time.

Make an entry with ``nanomq-twisted passwd USERNAME`` (also ``python -m
nanomq_twisted passwd`` or ``python -m nanomq_twisted.core.passwd``; the
password is read from the terminal, or from stdin with ``--stdin``).  A
fresh random salt is drawn for every entry.
"""

import argparse
import base64
import binascii
import getpass
import hashlib
import hmac
import os
import sys

SCHEME = "pbkdf2-sha256"
PREFIX = "$" + SCHEME + "$"
#: OWASP's 2023 figure for PBKDF2-HMAC-SHA256 (about 0.1 s per check).
DEFAULT_ITERATIONS = 600_000
SALT_BYTES = 16


class HashedPassword:
    """A parsed ``$pbkdf2-sha256$...`` entry."""

    __slots__ = ("digest", "iterations", "salt")

    def __init__(self, iterations, salt, digest):
        self.iterations = iterations
        self.salt = salt
        self.digest = digest

    def verify(self, password):
        """Constant-time check of ``password`` (bytes)."""
        candidate = hashlib.pbkdf2_hmac("sha256", password, self.salt, self.iterations)
        return hmac.compare_digest(candidate, self.digest)


def is_hashed(entry):
    return isinstance(entry, str) and entry.startswith(PREFIX)


def parse(entry):
    """``HashedPassword`` for a hashed entry; ``ValueError`` if malformed."""
    parts = entry.split("$")
    # "", scheme, iterations, salt, digest
    if len(parts) != 5 or parts[0] or parts[1] != SCHEME:
        raise ValueError("expected $pbkdf2-sha256$<iterations>$<salt>$<hash>")
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(_pad(parts[3]), validate=True)
        digest = base64.b64decode(_pad(parts[4]), validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("bad iterations or base64 in a pbkdf2-sha256 entry") from None
    if iterations < 1 or not salt or len(digest) != 32:
        raise ValueError("pbkdf2-sha256 entry needs iterations >= 1, a salt and a 32-byte hash")
    return HashedPassword(iterations, salt, digest)


def _pad(text):
    return text + "=" * (-len(text) % 4)


def hash_password(password, iterations=DEFAULT_ITERATIONS, salt=None):
    """A new ``$pbkdf2-sha256$...`` entry for ``password`` (str or bytes)."""
    if isinstance(password, str):
        password = password.encode("utf-8")
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    return "{}{}${}${}".format(
        PREFIX,
        iterations,
        base64.b64encode(salt).decode("ascii").rstrip("="),
        base64.b64encode(digest).decode("ascii").rstrip("="),
    )


def compile_table(passwords):
    """Username -> str (plain) or HashedPassword.  ``ValueError`` names the
    user whose hashed entry is malformed."""
    table = {}
    for user, entry in passwords.items():
        if is_hashed(entry):
            try:
                table[user] = parse(entry)
            except ValueError as error:
                raise ValueError(f"password entry for {user!r}: {error}") from None
        else:
            table[user] = entry.encode("utf-8") if isinstance(entry, str) else entry
    return table


def main(argv=None, prog="python -m nanomq_twisted.core.passwd"):
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Print a hashed password-file line for nanomq_pwd.conf.",
    )
    parser.add_argument("username")
    parser.add_argument("-i", "--iterations", type=int, default=DEFAULT_ITERATIONS)
    parser.add_argument("--stdin", action="store_true",
                        help="read the password from the first line of stdin")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            parser.error("the passwords differ")
    if not password:
        parser.error("empty password")
    print('"{}": "{}"'.format(args.username.replace('"', '\\"'),
                              hash_password(password, args.iterations)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
