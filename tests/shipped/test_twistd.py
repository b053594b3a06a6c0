"""
Exactly what a new user does: ``twistd -n nanomq -c etc/nanomq.conf`` in a
subprocess (the shipped file, on free ports), then paho-mqtt 2.x at MQTT 5
over TCP and over WebSocket -- the clients the 256MB Maximum Packet Size
once locked out.
"""

import os
import re
import signal

from twisted.internet import defer, error, reactor
from twisted.trial.unittest import TestCase

from ..e2e.support import Client, in_thread
from ..e2e.test_twistd import _Twistd, _twistd_command
from .support import shipped_copy

LISTENING = re.compile(rb"(tcp|ws|http) listening on 127\.0\.0\.1:(\d+)")


class _ShippedTwistd(_Twistd):
    """Fires ``ports`` with ``{name: port}`` once tcp, ws and http listen."""

    def __init__(self):
        super().__init__()
        self.ports = defer.Deferred()

    def outReceived(self, data):
        super().outReceived(data)
        if not self.ports.called:
            found = {n.decode(): int(p) for n, p in LISTENING.findall(self.output)}
            if len(found) == 3:
                self.ports.callback(found)

    errReceived = outReceived

    def processEnded(self, reason):
        if not self.ports.called:
            self.ports.errback(RuntimeError(self.output.decode("utf-8", "replace")))
        super().processEnded(reason)


def _client(ports, transport_name, client_id):
    """A paho MQTT 5 client of the subprocess over "tcp" or "ws"."""
    if transport_name == "ws":
        client = Client(ports["ws"], client_id, 5, transport="websockets")
        client.paho.ws_set_options(path="/mqtt")
        return client
    return Client(ports["tcp"], client_id, 5)


class ShippedTwistdTests(TestCase):
    timeout = 60

    @defer.inlineCallbacks
    def test_paho_v5_over_tcp_and_websocket(self):
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        conf = shipped_copy(workdir)
        proc = _ShippedTwistd()
        proc.port.addErrback(lambda _: None)
        env = dict(os.environ)
        env.pop("NANOMQ_CONF_PATH", None)
        command = _twistd_command()
        transport = reactor.spawnProcess(
            proc, command[0],
            command + ["-n", "--pidfile=", "--logfile=-", "nanomq", "-c", conf],
            env=env, path=workdir)

        def kill():
            try:
                transport.signalProcess(signal.SIGKILL)
            except error.ProcessExitedAlready:
                return None
            return proc.ended

        self.addCleanup(kill)
        ports = yield proc.ports

        def scenario():
            for transport_name in ("tcp", "ws"):
                sub, pub = (_client(ports, transport_name, f"twistd-{role}-{transport_name}")
                            for role in ("sub", "pub"))
                try:
                    _flags, code, props = sub.connect()
                    self.assertEqual((code, props.MaximumPacketSize), (0, 268435455))
                    sub.subscribe("twistd/" + transport_name, 2)
                    pub.connect()
                    for qos in (0, 1, 2):
                        pub.publish("twistd/" + transport_name, b"q%d" % qos, qos)
                        message = sub.expect()
                        self.assertEqual((message.payload, message.qos),
                                         (b"q%d" % qos, qos))
                finally:
                    sub.disconnect()
                    pub.disconnect()

        yield in_thread(scenario)
        transport.signalProcess(signal.SIGTERM)
        yield proc.ended
        self.assertIn(b"Server Shut Down", proc.output)
        self.assertNotIn(b"Traceback", proc.output)
