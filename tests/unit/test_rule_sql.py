"""The rule SQL parser, evaluator and the rule table (rules/sql.py, engine.py)."""

import json

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.rules.engine import Rule, RuleEngine
from nanomq_twisted.rules.sql import Event, RuleSyntaxError, parse


def event(payload=b"", topic="t/a", qos=0, clientid="c1", username=None, now=1000,
          lookup=None):
    if isinstance(payload, (dict, list)):
        payload = json.dumps(payload).encode()
    return Event(topic, payload, qos, 7 if qos else 0, clientid, username, now, lookup)


class ParseTests(SynchronousTestCase):
    def test_seed_examples(self):
        for sql in (
            'SELECT payload.x.y as y, payload.z as z FROM "#" WHERE y > 10 and z != \'str\'',
            'SELECT * FROM "abc"',
            'SELECT payload, qos FROM "#" WHERE qos > 0',
            'select * from "t/a"',
            'SELECT topic, payload FROM "rule/sqlite/#"',
        ):
            parse(sql)

    def test_topic_forms(self):
        self.assertEqual(parse('SELECT qos FROM "a/+/c"').topic, "a/+/c")
        self.assertEqual(parse("SELECT qos FROM a/b WHERE qos = 1").topic, "a/b")
        self.assertEqual(parse("SELECT qos FROM 'x/#';").topic, "x/#")

    def test_star_is_nanomq_eight_in_fixed_order(self):
        query = parse('SELECT * FROM "t"')
        self.assertEqual(
            [c.name for c in query.columns],
            ["Qos", "Id", "Topic", "Clientid", "Username", "Password", "Timestamp",
             "Payload"],
        )

    def test_plain_fields_fixed_order_then_paths_in_select_order(self):
        query = parse('SELECT payload.b as b, payload, qos, payload.a FROM "#"')
        self.assertEqual([c.key for c in query.columns], ["qos", "payload", "b", "payload.a"])
        self.assertEqual([c.name for c in query.columns], ["Qos", "Payload", "b", "payload.a"])

    def test_alias_renames_key_and_column(self):
        query = parse('SELECT topic as t, clientid AS who FROM "#"')
        self.assertEqual([(c.key, c.name) for c in query.columns],
                         [("t", "t"), ("who", "who")])

    def assertSyntax(self, sql, offset, words):
        with self.assertRaises(RuleSyntaxError) as caught:
            parse(sql)
        error = caught.exception
        self.assertEqual(error.offset, offset, str(error))
        self.assertIn(words, str(error))
        # The caret sits under the offending character.
        lines = str(error).splitlines()
        self.assertEqual(lines[2].index("^") - 2, offset)

    def test_errors_point_at_the_problem(self):
        self.assertSyntax('SELEC qos FROM "a"', 0, "expected SELECT")
        self.assertSyntax('SELECT foo FROM "a"', 7, "unknown field 'foo'")
        self.assertSyntax("SELECT qos", 10, "expected FROM")
        self.assertSyntax("SELECT qos FROM", 15, "topic filter")
        self.assertSyntax('SELECT qos FROM "a/#/b"', 17, "'#'")
        self.assertSyntax('SELECT qos FROM "a/b+"', 17, "'+'")
        self.assertSyntax('SELECT qos FROM "a" WHERE x > 1', 26, "unknown field 'x'")
        self.assertSyntax('SELECT qos FROM "a" WHERE qos >', 31, "expected a value")
        self.assertSyntax('SELECT qos FROM "a" WHERE qos 1', 30, "operator")
        self.assertSyntax('SELECT qos FROM "a" WHERE (qos = 1', 34, "expected ')'")
        self.assertSyntax("SELECT qos FROM 'a", 16, "unterminated")
        self.assertSyntax('SELECT qos FROM "a" LIMIT 1', 20, "unexpected 'LIMIT'")
        self.assertSyntax('SELECT qos as FROM "a"', 14, "alias")
        self.assertSyntax('SELECT qos, FROM "a"', 12, "field name")
        self.assertSyntax('SELECT qos FROM "a" WHERE qos = 1 and', 37, "field name")
        self.assertSyntax('SELECT qos FROM "a" WHERE qos ~ 1', 30, "unexpected character")

    def test_error_on_second_line_shows_that_line(self):
        with self.assertRaises(RuleSyntaxError) as caught:
            parse('SELECT qos\nFROM "a" WHERE bad = 1')
        lines = str(caught.exception).splitlines()
        self.assertEqual(lines[1].strip(), 'FROM "a" WHERE bad = 1')
        self.assertEqual(lines[2].index("^"), lines[1].index("bad"))

    def test_not_a_string(self):
        self.assertRaises(RuleSyntaxError, parse, None)


class EvaluateTests(SynchronousTestCase):
    def test_where_on_json_paths_and_aliases(self):
        query = parse(
            'SELECT payload.x.y as y, payload.z as z FROM "#" WHERE y > 10 and z != \'str\'')
        self.assertEqual(query.evaluate(event({"x": {"y": 12}, "z": "q"})),
                         {"y": 12, "z": "q"})
        self.assertIsNone(query.evaluate(event({"x": {"y": 10}, "z": "q"})))
        self.assertIsNone(query.evaluate(event({"x": {"y": 12}, "z": "str"})))
        # Missing path or non-JSON payload: the rule does not match.
        self.assertIsNone(query.evaluate(event({"z": "q"})))
        self.assertIsNone(query.evaluate(event(b"not json")))

    def test_plain_fields(self):
        query = parse('SELECT * FROM "#"')
        row = query.evaluate(event(b"hi", qos=1, username="u"))
        self.assertEqual(row, {"qos": 1, "id": 7, "topic": "t/a", "clientid": "c1",
                               "username": "u", "password": None, "timestamp": 1000,
                               "payload": "hi"})

    def test_password_and_peerhost_come_from_lookup(self):
        asked = []

        def lookup():
            asked.append(1)
            return "secret", "127.0.0.1:5555"

        query = parse('SELECT password, peerhost FROM "#"')
        self.assertEqual(query.evaluate(event(lookup=lookup)),
                         {"password": "secret", "peerhost": "127.0.0.1:5555"})
        self.assertEqual(len(asked), 1)
        parse('SELECT qos FROM "#"').evaluate(event(lookup=lookup))
        self.assertEqual(len(asked), 1)

    def test_operators_on_numbers(self):
        cases = [("=", 5, True), ("!=", 5, False), ("<>", 4, True), (">", 4, True),
                 ("<", 4, False), (">=", 5, True), ("<=", 4, False)]
        for op, value, expected in cases:
            query = parse(f'SELECT qos FROM "#" WHERE payload.n {op} {value}')
            self.assertEqual(query.evaluate(event({"n": 5})) is not None, expected, op)

    def test_fractions_compare_exactly(self):
        query = parse('SELECT qos FROM "#" WHERE payload.t > 20.5')
        self.assertIsNotNone(query.evaluate(event({"t": 20.7})))
        self.assertIsNone(query.evaluate(event({"t": 20.2})))

    def test_strings_objects_and_booleans(self):
        q = parse("SELECT qos FROM \"#\" WHERE payload.s = 'abc'")
        self.assertIsNotNone(q.evaluate(event({"s": "abc"})))
        self.assertIsNone(q.evaluate(event({"s": "ab"})))  # no NanoMQ prefix quirk
        q = parse('SELECT qos FROM "#" WHERE payload.o = \'{"a": 1}\'')
        self.assertIsNotNone(q.evaluate(event({"o": {"a": 1}})))
        self.assertIsNone(q.evaluate(event({"o": {"a": 2}})))
        q = parse('SELECT qos FROM "#" WHERE payload.on = true')
        self.assertIsNotNone(q.evaluate(event({"on": True})))
        self.assertIsNone(q.evaluate(event({"on": False})))
        q = parse("SELECT qos FROM \"#\" WHERE payload.id = 12")
        self.assertIsNotNone(q.evaluate(event({"id": "12"})))

    def test_message_fields_in_where(self):
        q = parse("SELECT qos FROM \"#\" WHERE clientid = dev1 and topic != 'x'")
        self.assertIsNotNone(q.evaluate(event(clientid="dev1")))
        self.assertIsNone(q.evaluate(event(clientid="dev")))
        q = parse("SELECT qos FROM \"#\" WHERE username = 'andy'")  # 'and' inside a value
        self.assertIsNotNone(q.evaluate(event(username="andy")))
        self.assertIsNone(q.evaluate(event(username=None)))
        q = parse("SELECT qos FROM \"#\" WHERE qos >= '1'")
        self.assertIsNone(q.evaluate(event(qos=0)))
        self.assertIsNotNone(q.evaluate(event(qos=2)))
        q = parse("SELECT qos FROM \"#\" WHERE timestamp > 999")
        self.assertIsNotNone(q.evaluate(event(now=1000.9)))
        q = parse("SELECT qos FROM \"#\" WHERE payload = 'on'")
        self.assertIsNotNone(q.evaluate(event(b"on")))
        self.assertIsNone(q.evaluate(event(b"")))

    def test_or_not_parentheses_three_valued(self):
        q = parse('SELECT qos FROM "#" WHERE (payload.a = 1 or payload.b = 2) and not qos = 2')
        self.assertIsNotNone(q.evaluate(event({"a": 1})))
        self.assertIsNotNone(q.evaluate(event({"b": 2})))
        self.assertIsNone(q.evaluate(event({"a": 1}, qos=2)))
        self.assertIsNone(q.evaluate(event({"c": 1})))
        # NOT of an unknown (missing path) is still unknown.
        q = parse('SELECT qos FROM "#" WHERE not payload.a = 1')
        self.assertIsNone(q.evaluate(event({})))
        self.assertIsNotNone(q.evaluate(event({"a": 2})))

    def test_missing_paths_without_where_are_none(self):
        q = parse('SELECT payload.a as a, payload FROM "#"')
        self.assertEqual(q.evaluate(event(b"raw")), {"payload": "raw", "a": None})

    def test_json_decoded_once_per_event(self):
        e = event({"a": 1, "b": 2})
        for sql in ('SELECT payload.a FROM "#"', 'SELECT payload.b FROM "#"'):
            parse(sql).evaluate(e)
        first = e.json
        self.assertIs(e.json, first)


class EngineTests(SynchronousTestCase):
    def test_ids_and_order(self):
        engine = RuleEngine()
        a = engine.add("sqlite", 'SELECT * FROM "a/#"', {"table": "t"})
        b = engine.add("repub", 'SELECT * FROM "#"', {})
        self.assertEqual((a.id, b.id), (1, 2))
        self.assertEqual(engine.rules_for("a/x"), (a, b))
        engine.update(1, rawsql='SELECT qos FROM "a/+"')
        self.assertEqual(engine.rules_for("a/x"), (b, a))
        self.assertEqual(engine.rules_for("a/x/y"), (b,))
        engine.update(2, enabled=False)
        self.assertEqual(engine.rules_for("a/x"), (a,))
        engine.remove(1)
        self.assertEqual(engine.rules_for("a/x"), ())
        self.assertEqual(engine.add("sqlite", 'SELECT * FROM "q"').id, 3)

    def test_hash_sees_dollar_topics(self):
        engine = RuleEngine()
        rule = engine.add("repub", 'SELECT * FROM "#"')
        self.assertEqual(engine.rules_for("$SYS/brokers/client_status"), (rule,))

    def test_bad_sql_in_update_changes_nothing(self):
        engine = RuleEngine()
        rule = engine.add("repub", 'SELECT * FROM "a"')
        self.assertRaises(RuleSyntaxError, engine.update, rule.id, rawsql="SELECT")
        self.assertEqual(engine.rules_for("a"), (rule,))

    def test_fire(self):
        engine = RuleEngine()
        engine.add("repub", 'SELECT payload.v as v FROM "s/#" WHERE v > 1')
        fired = engine.fire(event({"v": 2}, topic="s/1"))
        self.assertEqual([row for _, row in fired], [{"v": 2}])
        self.assertEqual(engine.fire(event({"v": 0}, topic="s/1")), [])

    def test_round_trip_dict(self):
        rule = Rule(4, "sqlite", 'SELECT * FROM "x"', {"table": "t"}, False, "d")
        again = Rule.from_dict(json.loads(json.dumps(rule.to_dict())))
        self.assertEqual(again.to_dict(), rule.to_dict())
        engine = RuleEngine()
        engine.insert(again)
        self.assertEqual(engine.add("sqlite", 'SELECT * FROM "y"').id, 5)
        self.assertEqual(rule.summary(),
                         {"name": "sqlite", "rawsql": 'SELECT * FROM "x"', "id": 4,
                          "enabled": False})


class PurityTests(SynchronousTestCase):
    def test_parser_and_engine_import_no_twisted(self):
        import subprocess
        import sys

        probe = (
            "import sys, nanomq_twisted.rules.sql, nanomq_twisted.rules.engine\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('twisted', 'klein', 'pymysql')))"
        )
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                text=True, timeout=60, check=False)
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "[]"),
                         result.stderr)
