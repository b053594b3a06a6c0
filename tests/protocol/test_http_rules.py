"""
``/api/v4/rules`` (http/rules.py) through the REST root with StubTreq,
replaying the golden transcript's rule exchanges (#169-#198).

The rules service runs on a ``Clock`` and is never started: no repub
connection is opened and no table is written (that is tests/e2e/test_rules).
"""

import json

from treq.testing import StubTreq
from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.http.rules import RulesAPI, rule_id_from_path
from nanomq_twisted.rules.service import RulesService
from tests.protocol.http_support import Harness

GOLDEN_RULES = r"""
rules.sqlite {
    path = "/nonexistent/sqlite_rule.db"
    rules = [ { sql = "SELECT topic, payload FROM \"rule/sqlite/#\"", table = broker } ]
}
rules.repub {
    rules = [ {
        server = "mqtt-tcp://127.0.0.1:1883", topic = "repub/out", proto_ver = 4
        clientid = "repub_client1", keepalive = 60s, clean_start = true
        username = repubuser, password = repubpass
        sql = "SELECT topic, payload FROM \"rule/repub/#\""
    } ]
}
"""

RULE1 = ('{"name":"sqlite","rawsql":"SELECT topic, payload FROM \\"rule/sqlite/#\\"",'
         '"id":1,"enabled":true}')
RULE2 = ('{"name":"repub","rawsql":"SELECT topic, payload FROM \\"rule/repub/#\\"",'
         '"id":2,"enabled":true}')


class RulesRestTests(SynchronousTestCase):
    def setUp(self):
        self.h = Harness(GOLDEN_RULES)
        self.rules = self.h.app.rules

    def call(self, method, path, body=None):
        status, _headers, content = self.h.request(method, "/api/v4/rules" + path, body)
        return status, content.decode()

    def test_golden_sequence(self):
        both = '{"data":[' + RULE1 + "," + RULE2 + '],"code":0}'
        self.assertEqual(self.call("GET", ""), (200, both))
        self.assertEqual(self.call("GET", "/"), (200, both))
        self.assertEqual(self.call("GET", "/rule:1"), (200, '{"data":' + RULE1 + ',"code":0}'))
        self.assertEqual(self.call("GET", "/1"), (400, '{"code":107}'))
        self.assertEqual(self.call("GET", "/rule:999"), (400, '{"code":107}'))
        body = ('{"rawsql":"SELECT payload, qos FROM \\"rule/rest/#\\"","actions":[{"name":'
                '"repub","params":{"topic":"repub/rest","address":"mqtt-tcp://127.0.0.1:1883",'
                '"clean_start":"true","clientid":"repub_rest_client","username":"admin",'
                '"password":"public","proto_ver":4,"keepalive":60}}],"description":"repub-rule"}')
        self.assertEqual(self.call("POST", "", body), (200, (
            '{"data":{"rawsql":"SELECT payload, qos FROM \\"rule/rest/#\\"","id":3,'
            '"enabled":true},"actions":[],"code":0}')))
        body = {"rawsql": 'SELECT topic, payload FROM "rule/rest/#"',
                "actions": [{"name": "sqlite", "params": {"table": "rest_table"}}],
                "description": "sqlite-rule"}
        created4 = ('{"data":{"rawsql":"SELECT topic, payload FROM \\"rule/rest/#\\"","id":4,'
                    '"enabled":true},"actions":[],"code":0}')
        self.assertEqual(self.call("POST", "", body), (200, created4))
        self.assertEqual(self.call("POST", "", {"rawsql": 'SELECT * FROM "x/#"', "actions": [
            {"name": "sqlite", "params": {"table": "broker"}}]}), (400, '{"code":108}'))
        self.assertEqual(self.call("POST", "", {"rawsql": 'SELECT * FROM "x/#"', "actions": [
            {"name": "postgresql", "params": {"table": "t"}}]}), (400, '{"code":111}'))
        self.assertEqual(self.call("POST", "", {"rawsql": 'SELECT * FROM "x/#"', "actions": [
            {"name": "repub", "params": {"topic": "repub/x"}}]}), (400, '{"code":107}'))
        self.assertEqual(self.call("POST", "", {"rawsql": 'SELECT * FROM "noaction/#"'}),
                         (200, created4))
        self.assertEqual(self.call("POST", "", '{"rawsql": "SELECT'), (400, '{"code":109}'))
        self.assertEqual(self.call("POST", "", "[]"), (400, '{"code":109}'))
        new_sql = {"rawsql": 'SELECT payload FROM "rule/rest2/#"'}
        self.assertEqual(self.call("PUT", "/rule:3", new_sql),
                         (200, ('{"data":{"rawsql":"SELECT payload FROM \\"rule/rest2/#\\"",'
                                '"id":3,"enabled":true},"actions":[],"code":0}')))
        self.assertEqual(self.call("PUT", "/rule:3", {"enabled": False}),
                         (200, ('{"data":{"rawsql":"SELECT payload FROM \\"rule/rest2/#\\"",'
                                '"id":3,"enabled":false},"actions":[],"code":0}')))
        self.assertEqual(self.call("PUT", "/rule:3", {"actions": [
            {"name": "sqlite", "params": {"table": "other"}}]}), (400, '{"code":108}'))
        self.assertEqual(self.call("PUT", "/rule:999", {"enabled": False}),
                         (400, '{"code":108}'))
        self.assertEqual(self.call("PUT", "/rule:1", '{"enabled":'), (400, '{"code":109}'))
        _status, content = self.call("GET", "")
        self.assertEqual([r["id"] for r in json.loads(content)["data"]], [1, 2, 4, 3])
        self.assertEqual(self.call("DELETE", "/rule:3"), (200, '{"code":0}'))
        self.assertEqual(self.call("DELETE", "/rule:3"), (400, '{"code":107}'))
        self.assertEqual(self.call("DELETE", "/abc"), (400, '{"code":107}'))
        self.assertEqual(self.call("DELETE", ""), (404, '{"code":102}'))
        _status, content = self.call("GET", "")
        self.assertEqual([r["id"] for r in json.loads(content)["data"]], [1, 2, 4])

    def test_bad_sql_is_108_with_the_position(self):
        status, content = self.call("POST", "", {"rawsql": 'SELECT nope FROM "a"', "actions": [
            {"name": "sqlite", "params": {"table": "t9"}}]})
        self.assertEqual(status, 400)
        body = json.loads(content)
        self.assertEqual(body["code"], 108)
        self.assertIn("at offset 7", body["message"])
        self.assertEqual(len(self.rules.engine), 2)
        status, content = self.call("PUT", "/rule:1", {"rawsql": "SELECT"})
        self.assertEqual((status, json.loads(content)["code"]), (400, 108))
        self.assertEqual(self.rules.engine.get(1).rawsql,
                         'SELECT topic, payload FROM "rule/sqlite/#"')

    def test_seed_document_examples(self):
        """The seed's REST walk-through (select * from "t/a", then t/b,
        disable, delete)."""
        status, content = self.call("POST", "", {
            "rawsql": 'select * from "t/a"',
            "actions": [{"name": "repub", "params": {
                "topic": "repub1", "address": "mqtt-tcp://broker.emqx.io:1883",
                "clean_start": "true", "clientid": "id", "username": "admin",
                "password": "public", "proto_ver": 4, "keepalive": 60}}],
            "description": "repub-rule"})
        self.assertEqual((status, json.loads(content)["data"]["id"]), (200, 3))
        self.assertEqual(self.call("PUT", "/rule:3", '{"rawsql":"select * from \\"t/b\\""}'),
                         (200, ('{"data":{"rawsql":"select * from \\"t/b\\"","id":3,'
                                '"enabled":true},"actions":[],"code":0}')))
        self.assertEqual(self.rules.engine.rules_for("t/b")[0].id, 3)
        self.assertEqual(self.call("PUT", "/rule:3", '{"enabled": false}')[0], 200)
        self.assertEqual(self.rules.engine.rules_for("t/b"), ())
        self.assertEqual(self.call("DELETE", "/rule:3"), (200, '{"code":0}'))

    def test_mysql_params(self):
        ok = {"rawsql": 'SELECT * FROM "m"', "actions": [{"name": "MySQL", "params": {
            "table": "t", "host": "127.0.0.1", "username": "u", "password": "p"}}]}
        self.assertEqual(self.call("POST", "", ok)[0], 200)
        missing = {"rawsql": 'SELECT * FROM "m"', "actions": [{"name": "mysql", "params": {
            "table": "t", "host": "127.0.0.1"}}]}
        self.assertEqual(self.call("POST", "", missing), (400, '{"code":107}'))
        unknown = {"rawsql": 'SELECT * FROM "m"', "actions": [{"name": "mysql", "params": {
            "table": "t", "host": "h", "username": "u", "password": "p", "colour": 1}}]}
        self.assertEqual(self.call("POST", "", unknown), (400, '{"code":108}'))


class ParameterErrorTests(SynchronousTestCase):
    """A refused rule names the parameter (``X-NanoMQ-Error-Param``) and
    says why (``X-NanoMQ-Error-Message``); the body stays NanoMQ's bare
    ``{"code":N}`` (golden #176, #178, #187)."""

    def setUp(self):
        self.h = Harness(GOLDEN_RULES)

    def refused(self, method, path, body):
        status, headers, content = self.h.request(method, "/api/v4/rules" + path, body)
        param = headers.getRawHeaders(b"x-nanomq-error-param")
        message = headers.getRawHeaders(b"x-nanomq-error-message")
        return (status, content.decode(), param and param[0].decode(),
                message and message[0].decode())

    def post(self, name, params, rawsql='SELECT * FROM "p/#"'):
        return self.refused("POST", "", {"rawsql": rawsql,
                                         "actions": [{"name": name, "params": params}]})

    def test_create(self):
        cases = [
            ("repub", {"address": "mqtt-tcp://127.0.0.1:1883"}, '{"code":107}', "topic"),
            ("repub", {"topic": "t"}, '{"code":107}', "address"),  # golden #178
            ("repub", {"topic": "t", "address": "http://x"}, '{"code":108}', "address"),
            ("repub", {"topic": "t", "address": "mqtt-tcp://h:99999"}, '{"code":108}',
             "address"),
            ("repub", {"topic": "t", "address": "mqtt-tcp://h:1", "keepalive": "often"},
             '{"code":108}', "keepalive"),
            ("sqlite", {}, '{"code":107}', "table"),
            ("sqlite", {"table": "broker"}, '{"code":108}', "table"),  # golden #176
            ("mysql", {"table": "t", "host": "h"}, '{"code":107}', "username"),
            ("mysql", {"table": "t", "host": "h", "username": "u", "password": "p",
                       "colour": 1}, '{"code":108}', "colour"),
            ("postgresql", {"table": "t"}, '{"code":111}', "name"),
            ("sqlite", "table=t", '{"code":108}', "params"),
        ]
        for name, params, body, param in cases:
            status, got, got_param, message = self.post(name, params)
            self.assertEqual((status, got, got_param), (400, body, param), (name, params))
            self.assertIn(param, message)
        self.assertEqual(self.refused("POST", "", {"actions": [{"name": "sqlite"}]})[:3],
                         (400, '{"code":107}', "rawsql"))
        self.assertEqual(self.refused("POST", "", {"rawsql": "x", "actions": [1]})[:3],
                         (400, '{"code":108}', "name"))

    def test_sql_error_keeps_its_message(self):
        status, got, param, message = self.post("sqlite", {"table": "t2"}, rawsql="SELEC *")
        self.assertEqual((status, param), (400, "rawsql"))
        body = json.loads(got)
        self.assertEqual(body["code"], 108)
        self.assertEqual(" ".join(body["message"].split()), message)

    def test_update(self):
        self.assertEqual(self.refused("PUT", "/rule:2", {"actions": [
            {"name": "sqlite", "params": {"table": "x"}}]})[:3],
            (400, '{"code":108}', "name"))  # golden #187
        self.assertEqual(self.refused("PUT", "/rule:2", {"actions": [
            {"name": "repub", "params": {"topic": "t", "address": "mqtt-tcp://h:1",
                                         "qos": 1}}]})[:3],
            (400, '{"code":108}', "qos"))
        self.assertEqual(self.refused("PUT", "/rule:2", {"enabled": "yes"})[:3],
                         (400, '{"code":108}', "enabled"))
        # An unknown rule is about no parameter: no headers.
        self.assertEqual(self.refused("PUT", "/rule:99", {"enabled": True}),
                         (400, '{"code":108}', None, None))

    def test_message_header_is_one_ascii_line(self):
        _status, _body, _param, message = self.post(
            "repub", {"topic": "t", "address": "ftp://h\u00e9\n:1"})
        self.assertNotIn("\n", message)
        message.encode("ascii")


class SubAppTests(SynchronousTestCase):
    """The Klein sub-app on its own, as mounted (paths relative)."""

    def test_routes_relative_to_mount(self):
        h = Harness()
        rules = RulesService(None, h.broker, h.clock)
        treq = StubTreq(RulesAPI(rules).app.resource())
        out = []
        d = treq.get("http://x/")
        d.addCallback(lambda r: r.content()).addCallback(out.append)
        treq.flush()
        self.assertEqual(out, [b'{"data":[],"code":0}'])

    def test_rule_id_from_path(self):
        self.assertEqual(rule_id_from_path("rule:12"), 12)
        for text in ("12", "rule:", "rule:x", "rule:-1", "abc"):
            self.assertEqual(rule_id_from_path(text), 0)
