"""``python -m nanomq_twisted -c FILE``: run the broker in the foreground.

The same options as ``twistd -n nanomq``; this simply hands them to twistd
so that logging, signals and shutdown behave identically.
"""

import sys


def main(argv=None):
    from twisted.scripts.twistd import run

    argv = list(sys.argv[1:] if argv is None else argv)
    sys.argv = ["twistd", "--nodaemon", "--pidfile=", "nanomq"] + argv
    run()


if __name__ == "__main__":
    main()
