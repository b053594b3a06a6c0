# -*- test-case-name: tests.shipped.test_soak -*-
"""
The soak (tools/soak.py) in small: the same script, the same load shape --
``twistd -n nanomq`` on the shipped configuration in its own process,
clients coming and going over TCP and WebSocket, numbered QoS 0/1/2 flows
into steady, shared and persistent subscribers, persistent sessions going
offline and back, retained checks, REST polls -- for 20 seconds with 40
churning clients instead of 30 minutes with 1,000.

The assertions are on counts only, never on how long anything took: the
run drains until every message is where it must be (or its generous drain
limit passes, which the result then reports), and every figure checked
here is exact.  The timing of the load (when a client goes or comes back)
varies with the machine's load; what must hold does not.
"""

import json
import os
import sys

from twisted.internet import utils
from twisted.trial.unittest import TestCase

from .support import ROOT

SOAK = os.path.join(ROOT, "tools", "soak.py")
ARGS = ("--seconds", "20", "--clients", "40", "--persistent", "4", "--retained", "10",
        "--rate", "0.5", "--hold", "1-4", "--off", "0.5-2", "--ramp", "2",
        "--online", "2-4", "--offline", "1-3", "--sample", "2", "--rest-interval", "2")


class SoakTests(TestCase):
    """One soak run, read by every test (the first setUp runs it)."""

    timeout = 600
    _ran = None  # (result, exit status, output) of the one run

    def setUp(self):
        if SoakTests._ran is not None:
            self.result, self.code, self.output = SoakTests._ran
            return None
        self.out = os.path.abspath(self.mktemp()) + ".json"
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        d = utils.getProcessOutputAndValue(sys.executable, (SOAK, *ARGS, "--out", self.out),
                                           env=env, path=ROOT)
        d.addCallback(self._loaded)
        return d

    def _loaded(self, outcome):
        stdout, stderr, code = outcome
        self.output = (stdout + stderr).decode("utf-8", "replace")
        if not os.path.exists(self.out):
            self.fail(f"soak wrote no result (exit {code}):\n{self.output[-4000:]}")
        with open(self.out, encoding="utf-8") as f:
            self.result = json.load(f)
        self.code = code
        SoakTests._ran = (self.result, code, self.output)

    def test_nothing_lost_nothing_logged_nothing_left_open(self):
        r = self.result
        self.assertEqual(r["problems"], [], self.output[-4000:])
        self.assertEqual(self.code, 0)
        self.assertTrue(r["drained"])
        for qos in ("qos0", "qos1", "qos2"):
            self.assertGreater(r["by_qos"][qos]["sent"], 0, qos)
            self.assertEqual(r["by_qos"][qos]["lost"], 0, qos)
            self.assertEqual(r["by_qos"][qos]["received"], r["by_qos"][qos]["expected"], qos)
        # [MQTT-4.3.3] exactly once; QoS 1 may repeat.
        self.assertEqual(r["by_qos"]["qos2"]["duplicated"], 0)
        for flow in r["flows"].values():
            if flow["qos"]:
                self.assertEqual(flow["acknowledged"], flow["sent"], flow)

    def test_persistent_sessions_got_what_was_queued(self):
        s = self.result["persistent_sessions"]
        self.assertGreater(s["cycles"], 0)
        self.assertEqual(s["reconnects"], s["cycles"])
        self.assertEqual(s.get("session_not_present", 0), 0)
        self.assertEqual(s["lost"], 0)
        self.assertEqual(s["received"], s["expected"])
        self.assertEqual(s["duplicated_qos2"], 0)

    def test_shared_groups_deliver_each_message_once(self):
        flows = self.result["flows"]
        for name in ("sh1", "sh2"):
            (group,) = flows[name]["receivers"].values()
            self.assertEqual(group["received"], flows[name]["sent"])
            self.assertEqual(sum(flows[name]["shared_members"].values()),
                             flows[name]["sent"] + group["extra_copies"])
        self.assertEqual(flows["sh2"]["receivers"]["group-sh2"]["duplicated"], 0)

    def test_broker_log_clean_and_descriptors_back(self):
        r = self.result
        self.assertEqual(r["log"]["errors"], 0, r["log"]["error_lines"])
        self.assertEqual(r["log"]["tracebacks"], 0)
        self.assertTrue(r["broker_shut_down"])
        self.assertEqual(r["fds"]["after_clients_left"], r["fds"]["baseline"])
        self.assertGreater(r["fds"]["max"], r["fds"]["baseline"])

    def test_churn_retained_and_rest(self):
        r = self.result
        churn = r["churn"]
        self.assertGreater(churn["connects"], 40)
        self.assertGreater(churn["ws_connects"], 0)
        self.assertEqual(churn.get("failures", 0), 0, churn["failure_kinds"])
        self.assertEqual(churn.get("retained_checks_failed", 0), 0)
        self.assertGreater(churn.get("retained_checks_ok", 0), 0)
        for path in ("/api/v4/clients", "/api/v4/prometheus", "/api/v4/brokers"):
            self.assertEqual(set(r["rest"][path]), {"200"}, path)
