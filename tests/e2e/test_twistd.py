"""
The product as a user starts it: ``twistd -n nanomq -c FILE`` in a
subprocess, from a directory that is not the source tree, so the plugin
must be discovered from the installed package.
"""

import gc
import os
import re
import shutil
import signal
import sys

from twisted.internet import defer, error, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

from nanomq_twisted.config.schema import SystemConfig
from nanomq_twisted.tap import tune_collector

LISTENING = re.compile(rb"tcp listening on 127\.0\.0\.1:(\d+)")

#: CONNECT, MQTT 3.1.1, clean session, keepalive 60, client id "smoke"
#: (hand-written from [MQTT-3.1]).
CONNECT = bytes.fromhex("101100044d5154540402003c0005736d6f6b65")
CONNACK_ACCEPTED = bytes.fromhex("20020000")


class _Twistd(protocol.ProcessProtocol):
    def __init__(self):
        self.output = b""
        self.port = defer.Deferred()
        self.ended = defer.Deferred()

    def outReceived(self, data):
        self.output += data
        if not self.port.called:
            found = LISTENING.search(self.output)
            if found:
                self.port.callback(int(found.group(1)))

    errReceived = outReceived

    def processEnded(self, reason):
        if not self.port.called:
            self.port.errback(RuntimeError(self.output.decode("utf-8", "replace")))
        self.ended.callback(reason.value)


class _Probe(protocol.Protocol):
    def __init__(self):
        self.received = b""
        self.got = defer.Deferred()

    def connectionMade(self):
        self.transport.write(CONNECT)

    def dataReceived(self, data):
        self.received += data
        if len(self.received) >= 4 and not self.got.called:
            self.got.callback(self.received)


def _twistd_command():
    script = shutil.which("twistd") or os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(script):
        return [sys.executable, script]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


class _WhenRunning:
    """Records what ``callWhenRunning`` is given."""

    def __init__(self):
        self.calls = []

    def callWhenRunning(self, fn, *args):
        self.calls.append(fn)


class CollectorTuningTests(TestCase):
    """tap.tune_collector: what twistd's process gets (docs/performance.md,
    "Garbage collection")."""

    def setUp(self):
        self.addCleanup(gc.set_threshold, *gc.get_threshold())

    def test_threshold_set_and_start_up_frozen_when_running(self):
        reactor = _WhenRunning()
        tune_collector(SystemConfig(gc_threshold=12345), reactor)
        self.assertEqual(gc.get_threshold(), (12345, 50, 100))
        # Frozen only once the reactor runs: after everything start-up
        # builds, not before.
        self.assertEqual(reactor.calls, [gc.freeze])

    def test_zero_keeps_the_interpreter_settings(self):
        before = gc.get_threshold()
        reactor = _WhenRunning()
        tune_collector(SystemConfig(gc_threshold=0), reactor)
        self.assertEqual(gc.get_threshold(), before)
        self.assertEqual(reactor.calls, [])


class TwistdPluginTests(TestCase):
    timeout = 60

    def _write_conf(self, text):
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        path = os.path.join(workdir, "nanomq.conf")
        with open(path, "w") as f:
            f.write(text)
        return workdir, path

    def _spawn(self, workdir, args):
        proc = _Twistd()
        env = dict(os.environ)
        env.pop("NANOMQ_CONF_PATH", None)
        transport = reactor.spawnProcess(
            proc, _twistd_command()[0], _twistd_command() + args, env=env, path=workdir
        )
        return proc, transport

    @defer.inlineCallbacks
    def test_twistd_starts_listener_from_config(self):
        workdir, conf = self._write_conf(
            'listeners.tcp { bind = "127.0.0.1:0" }\nmqtt { max_packet_size = 1MB }\n'
        )
        proc, transport = self._spawn(
            workdir, ["-n", "--pidfile=", "--logfile=-", "nanomq", "-c", conf]
        )

        def kill():
            try:
                transport.signalProcess(signal.SIGKILL)
            except error.ProcessExitedAlready:
                pass

        self.addCleanup(kill)
        port = yield proc.port
        probe = _Probe()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), probe)
        received = yield probe.got
        probe.transport.loseConnection()
        self.assertEqual(received[:4], CONNACK_ACCEPTED)
        transport.signalProcess(signal.SIGTERM)
        yield proc.ended
        # twistd shuts down cleanly, then (Twisted >= 22) re-raises SIGTERM so
        # the parent sees the signal; the log shows the orderly stop.
        self.assertIn(b"TCP Port %d Closed" % (port,), proc.output)
        self.assertIn(b"Server Shut Down", proc.output)

    @defer.inlineCallbacks
    def test_bad_config_exits_non_zero_naming_the_key(self):
        workdir, conf = self._write_conf(
            'listeners.tcp { bind = "127.0.0.1:0" }\nmqtt { retry_interval = "ten" }\n'
        )
        proc, _ = self._spawn(workdir, ["-n", "--pidfile=", "nanomq", "-c", conf])
        proc.port.addErrback(lambda failure: None)
        ended = yield proc.ended
        self.assertIsInstance(ended, error.ProcessTerminated)
        self.assertNotEqual(ended.exitCode, 0)
        self.assertIn(b"mqtt.retry_interval", proc.output)
        self.assertNotIn(b"listening", proc.output)


class ConsoleLogLevelTests(TestCase):
    """In the foreground without ``--logfile``, the console follows
    ``log.level`` and ``log.to`` as NanoMQ's does."""

    timeout = 60

    def run_broker(self, log_block):
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        conf = os.path.join(workdir, "nanomq.conf")
        with open(conf, "w") as f:
            f.write('listeners.tcp { bind = "127.0.0.1:0" }\n' + log_block + "\n")
        proc = _Twistd()
        proc.port.addErrback(lambda failure: None)
        env = dict(os.environ)
        env.pop("NANOMQ_CONF_PATH", None)
        transport = reactor.spawnProcess(
            proc,
            sys.executable,
            [sys.executable, "-m", "nanomq_twisted", "-c", conf],
            env=env,
            path=workdir,
        )
        def stop():
            _kill(transport)
            return proc.ended

        self.addCleanup(stop)
        return proc, transport

    @defer.inlineCallbacks
    def test_info_level_shows_listeners(self):
        proc, _ = self.run_broker("log { to = [console], level = info }")
        port = yield proc.port
        self.assertIn(b"starting up", proc.output)
        self.assertIn(b"tcp listening on 127.0.0.1:%d" % (port,), proc.output)

    @defer.inlineCallbacks
    def test_warn_level_hides_info(self):
        # A bad second listener makes the process log an error and exit:
        # the error is shown, the info lines before it are not.
        proc, _ = self.run_broker(
            "log { to = [console], level = warn }\n"
            'listeners.tcp.other { bind = "999.1.1.1:1" }'
        )
        yield proc.ended
        self.assertNotIn(b"listening on", proc.output)
        self.assertNotIn(b"starting up", proc.output)
        self.assertIn(b"other", proc.output)


def _kill(transport):
    try:
        transport.signalProcess(signal.SIGKILL)
    except error.ProcessExitedAlready:
        pass
