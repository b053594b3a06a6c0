"""
The grammar-aware fuzzer (tests/fuzzing) against the shipped configuration
(etc/nanomq.conf as users run it, tests.shipped.support), over real
loopback sockets: MQTT 3.1.1 and 5.0 packets of every type and their
broken variants, and the same over WebSocket frames.

Each case must get the answer the specification names (runner.py), and
after each one a fresh client must still be served; nothing may be logged
at error level.  Hypothesis is derandomised and bounded by example count,
so the run is the same every time; tools/fuzz_broker.py is the long,
seeded version (docs/reliability.md).
"""

import itertools

from hypothesis import HealthCheck, given, settings
from twisted.internet import defer
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase

from ..e2e.support import in_thread
from ..fuzzing import grammar, websocket
from ..fuzzing.runner import check_alive, run_case
from .support import start_shipped

#: Cases per run: about 10 ms each for MQTT, 50 ms for WebSocket, on this
#: machine (each followed by the liveness check): about 45 s in all.
MQTT_CASES = 2500
WEBSOCKET_CASES = 400

SETTINGS = settings(max_examples=MQTT_CASES, derandomize=True, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))


class ErrorLog:
    """Every event logged at error level or above, or with a failure."""

    def __init__(self, testcase):
        self.events = []
        globalLogPublisher.addObserver(self)
        testcase.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event):
        level = event.get("log_level")
        if "log_failure" in event or (level is not None and level >= LogLevel.error):
            self.events.append(event)


class FuzzTests(TestCase):
    timeout = 300

    @defer.inlineCallbacks
    def setUp(self):
        self.errors = ErrorLog(self)
        self.shipped = yield start_shipped(self)

    def assert_nothing_logged(self):
        from twisted.logger import formatEvent

        self.assertEqual([formatEvent(e) for e in self.errors.events], [])

    @defer.inlineCallbacks
    def test_mqtt_packets(self):
        port = self.shipped.port
        numbers = itertools.count()
        labels = {}

        @SETTINGS
        @given(grammar.cases)
        def fuzz(case):
            n = next(numbers)
            outcome = run_case(port, case, f"fuzz-{n}")
            labels[case.label, outcome] = labels.get((case.label, outcome), 0) + 1
            check_alive(port, f"alive-{n}")

        yield in_thread(fuzz)
        self.assert_nothing_logged()
        # The grammar reached every family (a change that starves one fails).
        families = {label.split("/")[0] for label, _ in labels}
        self.assertEqual(families, {
            "connect", "publish", "subscribe", "unsubscribe", "ack", "pingreq", "disconnect",
            "server-only", "reserved-type", "reserved-flags", "length", "corrupt", "auth"})
        self.assertGreaterEqual(sum(labels.values()), MQTT_CASES // 2)

    @defer.inlineCallbacks
    def test_websocket_frames(self):
        port = self.shipped.ports["ws"]
        tcp = self.shipped.port
        numbers = itertools.count()
        seen = set()

        @settings(SETTINGS, max_examples=WEBSOCKET_CASES)
        @given(websocket.ws_cases())
        def fuzz(case):
            n = next(numbers)
            seen.add(websocket.run_ws_case(port, case, f"ws-fuzz-{n}"))
            check_alive(tcp, f"ws-alive-{n}")

        yield in_thread(fuzz)
        self.assert_nothing_logged()
        self.assertGreaterEqual(len(seen), 5)
