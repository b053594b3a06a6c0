"""
``etc/nanomq.conf`` as users run it, on free ports.

`shipped_copy` writes a copy of the shipped file next to a fresh data
folder, changing only where it listens and where it writes: every other
key -- ``max_packet_size = 256MB``, ``max_inflight_window = 2048``, the HTTP
API with admin/public, SQLite persistence -- is the file's own.  Each
change must match exactly once, so a change to the shipped file that moves
one of these lines fails here loudly instead of silently testing something
else.

`start_shipped` runs that copy in this process (the real application,
app.py) and reports the bound ports; `tests.shipped.
test_twistd` runs it as ``twistd -n nanomq -c`` instead.
"""

import json
import os
import re

from twisted.internet import defer

from nanomq_twisted.config import load

from ..e2e.support import TIMEOUT, Client, start_app

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
SHIPPED = os.path.join(ROOT, "etc", "nanomq.conf")
EXAMPLES = os.path.join(ROOT, "etc", "examples")

#: Default REST credentials of the shipped file.
ADMIN = ("admin", "public")


def q(value):
    """A HOCON string literal."""
    return json.dumps(value)


def rewrite(text, changes, source):
    """Apply ``(pattern, replacement)`` pairs, each exactly once."""
    for pattern, replacement in changes:
        text, count = re.subn(pattern, lambda _m, r=replacement: r, text)
        if count != 1:
            raise AssertionError(
                f"{source}: expected one match of {pattern!r}, found {count}; "
                "update tests/shipped/support.py with the file"
            )
    return text


def shipped_copy(workdir):
    """Write ``workdir/nanomq.conf``: the shipped file on 127.0.0.1 port 0
    with its database and log folder inside ``workdir``; returns its path."""
    data = os.path.join(workdir, "data")
    os.makedirs(data, exist_ok=True)
    with open(SHIPPED, encoding="utf-8") as f:
        text = f.read()
    text = rewrite(text, [
        (r'bind = "0\.0\.0\.0:1883"', 'bind = "127.0.0.1:0"'),
        (r'bind = "0\.0\.0\.0:8083/mqtt"', 'bind = "127.0.0.1:0/mqtt"'),
        (r"\bport = 8081\n", 'port = 0\n    ip_addr = "127.0.0.1"\n'),
        (r'mounted_file_path = "data"', f"mounted_file_path = {q(data)}"),
        (r'dir = "/tmp"', f"dir = {q(workdir)}"),
    ], SHIPPED)
    path = os.path.join(workdir, "nanomq.conf")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


class ShippedBroker:
    """A running service tree and the ports its listeners bound."""

    def __init__(self, app, ports, workdir):
        self.app = app
        self.service = app.service
        self.broker = app.broker
        self.ports = ports
        self.workdir = workdir

    @property
    def port(self):
        return self.ports["tcp"]

    def client(self, client_id="", protocol=4, transport="tcp", **kwargs):
        """A paho client (tests.e2e.support.Client) for ``transport`` "tcp"
        or "ws"; the caller stops it (see `Clients`)."""
        if transport == "ws":
            client = Client(self.ports["ws"], client_id, protocol,
                            transport="websockets", **kwargs)
            client.paho.ws_set_options(path="/mqtt")
        else:
            client = Client(self.ports["tcp"], client_id, protocol, **kwargs)
        return client


@defer.inlineCallbacks
def start_config(testcase, path, names=("tcp",)):
    """Load ``path`` with the real loader, start the application on it and
    stop it in cleanup; returns ``(app, {listener: port})``."""
    app = start_app(testcase, load(path))
    ports = {}
    for name in names:
        ports[name] = yield app.port(name)
    return app, ports


@defer.inlineCallbacks
def start_shipped(testcase):
    workdir = os.path.abspath(testcase.mktemp())
    os.makedirs(workdir)
    path = shipped_copy(workdir)
    app, ports = yield start_config(testcase, path, ("tcp", "ws", "http"))
    return ShippedBroker(app, ports, workdir)


class PahoClients:
    """Makes paho clients of one ``ShippedBroker`` and stops them all in
    cleanup (as tests.e2e.support.Clients does for one port)."""

    def __init__(self, testcase, shipped):
        self.shipped = shipped
        self.made = []
        testcase.addCleanup(self.stop_all)

    def __call__(self, client_id="", protocol=4, transport="tcp", **kwargs):
        client = self.shipped.client(client_id, protocol, transport, **kwargs)
        self.made.append(client)
        return client

    def stop_all(self):
        from twisted.internet import threads

        def stop():
            for client in self.made:
                client.paho.disconnect()
                client.paho.loop_stop()

        return threads.deferToThread(stop)


__all__ = ["ADMIN", "EXAMPLES", "ROOT", "SHIPPED", "TIMEOUT", "PahoClients",
           "q", "rewrite", "shipped_copy", "start_config", "start_shipped"]
