# -*- test-case-name: tests.shipped.test_kill9 -*-
"""
Acknowledged means durable (issue 18), tested as a user would break it:
``twistd -n nanomq -c`` on the shipped ``etc/nanomq.conf`` (ports moved to
free ones, data folder in a temp dir), a QoS 1 and a QoS 2 flood from real
paho-mqtt clients with persistent sessions into persistent subscribers,
and ``kill -9`` of the broker in the middle, five times.

The kill moments are chosen by message counts, not by time: cycle ``k``
kills once both publishers have had ``KILL_AT[k]`` acknowledgements since
the broker started (a PUBACK for QoS 1, a PUBCOMP for QoS 2, as paho's
``on_publish`` reports them), while both floods still run.  After the last
kill the broker starts once more, the clients reconnect (their sessions are
still there: CONNACK says Session Present), paho resends what was not
acknowledged, and the test checks, per publisher:

- every message acknowledged to the publisher -- before any of the kills
  too -- reached the subscriber (nothing acknowledged was lost);
- QoS 2: every message arrived exactly once [MQTT-4.3.3];
- QoS 1: every message arrived at least once [MQTT-4.3.2].

The clients are driven from one thread with ``select`` over their sockets
(paho's own external-loop calls), so the test decides exactly when a
packet is read and when the broker dies; nothing sleeps.  The harness --
and the retained-message and database-integrity checks also made here --
is `floods.py`, shared with ``tools/crash_cycles.py``, the long random
version whose figures are in docs/reliability.md.
"""

import os
import signal

from twisted.internet import defer, error, reactor
from twisted.trial.unittest import TestCase

from nanomq_twisted.config.loader import load
from nanomq_twisted.persistence.sqlite_rows import DB_NAME

from ..e2e.support import in_thread
from ..e2e.test_twistd import _twistd_command
from .floods import Campaign, integrity
from .support import shipped_copy
from .test_twistd import _ShippedTwistd

#: Acknowledgements per publisher after which cycle k kills the broker.
KILL_AT = (150, 400, 250, 600, 300)
#: Cycles whose subscribers stay offline during the flood, so the broker
#: queues every message for them (the queue is what a kill -9 can lose);
#: in the others they are online and messages are in flight to them.
OFFLINE = (1, 3)


class KillNineTests(TestCase):
    timeout = 120

    def setUp(self):
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.conf = shipped_copy(self.workdir)
        config = load(self.conf)
        self.db_path = os.path.join(config.sqlite.mounted_file_path, DB_NAME)
        #: ``mqtt.max_mqueue_len`` of the shipped file: what the broker
        #: queues for a subscriber before it drops (and counts) new
        #: messages.  The floods stay under it (the campaign checks that
        #: at every kill), or the test would measure the queue limit, not
        #: the disk.
        self.campaign = Campaign(config.mqtt.max_mqueue_len)
        self.addCleanup(self.campaign.close)

    @defer.inlineCallbacks
    def _start(self):
        """twistd -n nanomq on the copy; (process protocol, transport, ports)."""
        proc = _ShippedTwistd()
        proc.port.addErrback(lambda _: None)
        env = dict(os.environ)
        env.pop("NANOMQ_CONF_PATH", None)
        command = _twistd_command()
        transport = reactor.spawnProcess(
            proc, command[0],
            command + ["-n", "--pidfile=", "--logfile=-", "nanomq", "-c", self.conf],
            env=env, path=self.workdir)

        def kill():
            try:
                transport.signalProcess(signal.SIGKILL)
            except error.ProcessExitedAlready:
                return None
            return proc.ended

        self.addCleanup(kill)
        ports = yield proc.ports
        return proc, transport, ports

    @defer.inlineCallbacks
    def test_acknowledged_messages_survive_kill_9(self):
        campaign = self.campaign
        outputs = []
        for cycle, kill_at in enumerate(KILL_AT):
            proc, transport, ports = yield self._start()
            pid = transport.pid
            yield in_thread(campaign.flood_and_kill, ports["tcp"],
                            lambda pid=pid: os.kill(pid, signal.SIGKILL),
                            kill_at, cycle == 0, cycle not in OFFLINE)
            yield proc.ended
            outputs.append(proc.output)
            self.assertEqual(integrity(self.db_path), "ok", f"after kill {cycle}")
        proc, transport, ports = yield self._start()
        yield in_thread(campaign.drain, ports["tcp"])
        transport.signalProcess(signal.SIGTERM)
        yield proc.ended
        outputs.append(proc.output)
        for output in outputs:
            self.assertNotIn(b"Traceback", output)

        verdict = campaign.verdict()
        for qos in (1, 2):
            self.assertEqual(verdict[f"lost_q{qos}"], [],
                             f"QoS {qos}: acknowledged before a kill -9, never delivered")
            self.assertEqual(verdict[f"missing_q{qos}"], [])
        self.assertEqual(verdict["twice_q2"], [], "QoS 2 messages delivered more than once")
        self.assertEqual(verdict["stale_retained"], [],
                         "retained topics older than their last acknowledged message")
