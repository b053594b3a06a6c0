"""``python -m nanomq_twisted -c FILE`` (or the ``nanomq-twisted`` script):
run the broker in the foreground.

The same options as ``twistd -n nanomq``; this simply hands them to twistd
so that logging, signals and shutdown behave identically.

``nanomq-twisted passwd USERNAME`` prints a password-file line with a
salted PBKDF2-SHA256 hash of a password read from the terminal (or from
stdin with ``--stdin``): core/passwd.py, docs/configuration.md.
"""

import sys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["passwd"]:
        from .core.passwd import main as passwd

        return passwd(argv[1:], prog="nanomq-twisted passwd")

    from twisted.scripts.twistd import run

    sys.argv = ["twistd", "--nodaemon", "--pidfile=", "nanomq"] + argv
    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
