"""
Schemathesis against the running REST API: the OpenAPI document served at
``/api/v4/openapi.json`` drives a bounded, deterministic run over every
operation (``/ctrl/{action}`` excepted: it would stop or restart the
broker under test) from a worker thread, with ``requests``.

Every response must be a non-5xx that conforms to the document: the
documented status codes, content type and body schema.  ``/config_update``
is fuzzed against a temporary copy of a configuration file; rules created
by the fuzzer never reach the network (their remote republish client and
MySQL backend are replaced by inert stand-ins; SQLite tables go below the
test's temporary directory).  Afterwards the broker must still answer HTTP
and MQTT.
"""

import base64
import json
import os

import treq
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from nanomq_twisted.rules import service as rules_service
from nanomq_twisted.rules.actions import SqliteBackend

from .support import Clients, in_thread, start_broker

#: Hypothesis examples per operation and generation mode.  The run is
#: bounded by this count (derandomized: the same requests every time), not
#: by a wall-clock budget, so a slow machine runs the same test, only
#: slower; raise it locally to fuzz more.
MAX_EXAMPLES = 12

AUTH_HEADER = "Basic " + base64.b64encode(b"admin:public").decode("ascii")

CONF = """
http_server {{ port = 0, ip_addr = "127.0.0.1" }}
rules.sqlite {{ path = "{sqlite}" }}
"""

#: (method, path) pairs not fuzzed: they end or rebuild the broker under test.
EXCLUDED = {("POST", "/ctrl/{action}")}


def fuzz(document, base_url, max_examples=MAX_EXAMPLES):
    """Run schemathesis over ``document`` against ``base_url`` (blocking).

    Returns ``(failures, ran)``: ``failures`` is a list of
    ``"METHOD path: error"`` strings, ``ran`` the number of requests made.
    """
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_dict(document)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    session = requests.Session()
    headers = {"Authorization": AUTH_HEADER}
    failures = []
    ran = [0]
    hypothesis_settings = settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    try:
        for result in schema.get_all_operations():
            operation = result.ok()
            key = (operation.method.upper(), operation.path)
            if key in EXCLUDED:
                continue
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @hypothesis_settings
                @given(case=operation.as_strategy(generation_mode=mode))
                def check(case):
                    ran[0] += 1
                    response = case.call(base_url=base_url, session=session,
                                         headers=headers, timeout=10)
                    # Invalid requests too must get a documented answer
                    # (NanoMQ's contract: bad parameters are mostly HTTP 200
                    # with a result code, so acceptance is not checked).
                    case.validate_response(response, checks=checks)

                try:
                    check()
                except Exception as error:  # noqa: BLE001 -- collected, reported
                    failures.append(f"{key[0]} {key[1]} ({mode.value}): {error}")
        # Methods the document does not declare: 405 with an Allow header.
        for path in document["paths"]:
            concrete = path.replace("{", "x").replace("}", "")
            response = session.request("TRACE", base_url + concrete, headers=headers,
                                       timeout=10)
            ran[0] += 1
            if response.status_code != 405 or not response.headers.get("Allow"):
                failures.append(f"TRACE {path}: {response.status_code} "
                                f"Allow={response.headers.get('Allow')!r}")
    finally:
        session.close()
    return failures, ran[0]


class _InertRepubClient:
    """Stands in for a remote republish client: no connection is made."""

    def __init__(self, *args, **kwargs):
        pass

    def start(self):
        pass

    def stop(self):
        pass

    def publish(self, topic, payload):
        pass


class OpenAPIFuzzTests(TestCase):
    timeout = 180

    def setUp(self):
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.tmp = self.mktemp()
        os.makedirs(self.tmp)
        mysql = os.path.join(os.path.abspath(self.tmp), "mysql-standin.db")
        self.patch(rules_service, "RepubClient", _InertRepubClient)
        self.patch(rules_service, "MysqlBackend", lambda *a, **k: SqliteBackend(mysql))

    @defer.inlineCallbacks
    def request(self, method, path, body=None):
        url = f"http://127.0.0.1:{self.http_port}/api/v4{path}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        response = yield treq.request(
            method, url, headers={b"Authorization": [AUTH_HEADER.encode()]}, data=data,
            pool=self.pool)
        content = yield response.content()
        return response.code, content

    def get(self, path):
        return self.request("GET", path)

    @defer.inlineCallbacks
    def test_fuzz_finds_no_server_error(self):
        sqlite = os.path.join(os.path.abspath(self.tmp), "rules.db")
        conf = CONF.format(sqlite=sqlite)
        running = yield start_broker(self, conf)
        self.http_port = yield running.app.port("http")
        # /config_update writes here, never to a real configuration file.
        config_copy = os.path.join(self.tmp, "nanomq.conf")
        with open(config_copy, "w", encoding="utf-8") as handle:
            handle.write("listeners.tcp { bind = \"127.0.0.1:0\" }\n" + conf)
        running.app.api.config_path = config_copy

        # A connected client and a subscription give the lookups data.
        clients = Clients(self, running.port)
        client = clients("fuzz-client", protocol=5)

        def connect():
            client.connect()
            client.subscribe("fuzz/#", 1)

        yield in_thread(connect)

        status, body = yield self.get("/reload")
        hot = json.loads(body)["data"]
        status, body = yield self.get("/openapi.json")
        self.assertEqual(status, 200)
        document = json.loads(body)
        base_url = f"http://127.0.0.1:{self.http_port}/api/v4"
        failures, ran = yield in_thread(fuzz, document, base_url)
        self.assertEqual(failures, [], "\n".join(failures))
        self.assertGreater(ran, 100)

        # Still alive: HTTP answers (with the same credentials) and, once
        # the hot settings the fuzzer changed are put back, MQTT routes.
        status, body = yield self.get("/brokers")
        self.assertEqual((status, json.loads(body)["code"]), (200, 0))
        status, body = yield self.request("POST", "/reload", {"data": hot})
        self.assertEqual((status, json.loads(body)), (200, {"code": 0}))
        probe = clients("fuzz-probe", protocol=4)

        def roundtrip():
            probe.connect()
            probe.subscribe("alive/check", 0)
            probe.publish("alive/check", b"yes")
            return probe.expect().payload

        self.assertEqual((yield in_thread(roundtrip)), b"yes")
