# -*- test-case-name: tests.e2e.test_broker_mosquitto_clients -*-
"""
Interoperability with Eclipse Mosquitto's command-line clients, run as
subprocesses next to paho clients.
"""

import shutil
import subprocess

from twisted.internet import defer
from twisted.trial import unittest

from .support import play

MOSQUITTO_PUB = shutil.which("mosquitto_pub")
MOSQUITTO_SUB = shutil.which("mosquitto_sub")


def run(args, timeout=15):
    return subprocess.run(args, capture_output=True, timeout=timeout, check=False)


class MosquittoClientTests(unittest.TestCase):
    if MOSQUITTO_PUB is None or MOSQUITTO_SUB is None:
        skip = "mosquitto_pub/mosquitto_sub not installed (apt-get install mosquitto-clients)"

    def _pub(self, port, *args):
        return run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(port)] + list(args))

    @defer.inlineCallbacks
    def test_mosquitto_pub_to_paho(self):
        def scenario(clients):
            for version, protocol in (("mqttv311", 4), ("mqttv5", 5)):
                sub = clients("paho-" + version, protocol)
                sub.connect()
                sub.subscribe("mosq/in", 2)
                done = self._pub(clients.port, "-V", version, "-q", "2",
                                 "-t", "mosq/in", "-m", "from " + version)
                self.assertEqual(done.returncode, 0, done.stderr)
                message = sub.expect()
                self.assertEqual((message.payload, message.qos),
                                 (b"from " + version.encode(), 2))

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_paho_to_mosquitto_sub(self):
        def scenario(clients):
            status = clients("status", 4)
            status.connect()
            status.subscribe("$SYS/brokers/client_status")
            proc = subprocess.Popen(
                [MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(clients.port), "-V", "mqttv5",
                 "-i", "mosq-sub", "-q", "1", "-C", "1", "-W", "10", "-v", "-t", "mosq/+"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                status.wait_status("mosq-sub", "online")
                # Online is sent after CONNACK; the SUBSCRIBE may still be
                # in flight, so publish retained: it arrives either way.
                pub = clients("pub", 4)
                pub.connect()
                pub.publish("mosq/out", b"to mosquitto", 1, retain=True)
                out, err = proc.communicate(timeout=15)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
            self.assertEqual(proc.returncode, 0, err)
            self.assertEqual(out, b"mosq/out to mosquitto\n")

        yield play(self, scenario)

    @defer.inlineCallbacks
    def test_mosquitto_pub_retained_to_mosquitto_sub(self):
        def scenario(clients):
            done = self._pub(clients.port, "-r", "-q", "1", "-t", "mosq/r", "-m", "kept")
            self.assertEqual(done.returncode, 0, done.stderr)
            got = run([MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(clients.port),
                       "-C", "1", "-W", "10", "-v", "-t", "mosq/#"])
            self.assertEqual(got.returncode, 0, got.stderr)
            self.assertEqual(got.stdout, b"mosq/r kept\n")

        yield play(self, scenario)
