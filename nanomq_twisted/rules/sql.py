# -*- test-case-name: tests.unit.test_rule_sql -*-
"""
NanoMQ's rule SQL: a recursive-descent parser and an evaluator.

Grammar (keywords case-insensitive; ``as`` too, a superset of NanoMQ)::

    statement  := SELECT items FROM topic [WHERE condition] [";"] END
    items      := item ("," item)*
    item       := "*" | field [AS NAME]
    field      := NAME ("." NAME)*          -- plain field or payload.<path>
    topic      := DQSTRING | BARE_TOPIC     -- one MQTT topic filter
    condition  := conjunct (OR conjunct)*
    conjunct   := negation (AND negation)*
    negation   := NOT negation | primary
    primary    := "(" condition ")" | comparison
    comparison := field OP value
    value      := SQSTRING | DQSTRING | NUMBER | NAME
    OP         := "=" | "!=" | "<>" | ">" | "<" | ">=" | "<="

A NAME used as a ``value`` is a bare word literal, as in NanoMQ
(``clientid = dev1``).  Plain fields are ``qos``, ``id``, ``topic``,
``clientid``, ``username``, ``password``, ``timestamp``, ``payload`` (and our
``peerhost``); ``*`` selects NanoMQ's eight.  A condition operand resolves,
in NanoMQ's order, to a plain field, else a SELECT alias, else a
``payload.<path>``; anything else is a syntax error at that operand.

Evaluation (``Query.evaluate(event)``) returns the selected row -- a dict in
NanoMQ's output order: plain fields in the fixed order above, then payload
paths in SELECT order -- or None when the WHERE clause is not true.  Logic
is three-valued: comparing a missing value (no such JSON path, no username)
is *unknown*, and only a true WHERE fires the rule.

Pure: no I/O, no clock; the event carries the time.
"""

import json

__all__ = [
    "PLAIN_FIELDS",
    "Event",
    "Query",
    "RuleSyntaxError",
    "parse",
]

#: NanoMQ's plain fields in output order; ``peerhost`` is ours (not in ``*``).
PLAIN_FIELDS = (
    "qos", "id", "topic", "clientid", "username", "password", "timestamp",
    "payload", "peerhost",
)
_STAR_FIELDS = PLAIN_FIELDS[:8]
_INT_FIELDS = frozenset(("qos", "id", "timestamp"))
_OPERATORS = ("!=", "<>", ">=", "<=", "=", ">", "<")
_KEYWORDS = frozenset(("select", "from", "where", "and", "or", "not", "as"))
_MISSING = object()


class RuleSyntaxError(ValueError):
    """Unparseable rule SQL; ``offset`` is the 0-based character position."""

    def __init__(self, message, sql, offset):
        self.message = message
        self.sql = sql
        self.offset = offset
        super().__init__(self._render())

    def _render(self):
        start = self.sql.rfind("\n", 0, self.offset) + 1
        end = self.sql.find("\n", self.offset)
        if end < 0:
            end = len(self.sql)
        line = self.sql[start:end]
        caret = " " * (self.offset - start) + "^"
        return f"{self.message} at offset {self.offset}\n  {line}\n  {caret}"


# -- lexer -------------------------------------------------------------------

class _Token:
    __slots__ = ("kind", "pos", "text", "value")

    def __init__(self, kind, text, value, pos):
        self.kind = kind  # NAME, NUMBER, SQ, DQ, OP, PUNCT, END
        self.text = text
        self.value = value
        self.pos = pos

    def keyword(self, word):
        return self.kind == "NAME" and self.text.lower() == word


def _is_name_char(ch):
    return ch.isalnum() or ch == "_"


class _Lexer:
    """Tokens on demand, so the parser can read a bare topic raw."""

    def __init__(self, sql):
        self.sql = sql
        self.pos = 0
        self._peeked = None

    def error(self, message, pos):
        raise RuleSyntaxError(message, self.sql, pos)

    def _skip_space(self):
        sql = self.sql
        while self.pos < len(sql) and sql[self.pos].isspace():
            self.pos += 1

    def peek(self):
        if self._peeked is None:
            self._peeked = self._scan()
        return self._peeked

    def next(self):
        token = self.peek()
        self._peeked = None
        return token

    def _scan(self):
        self._skip_space()
        sql, start = self.sql, self.pos
        if start >= len(sql):
            return _Token("END", "", None, start)
        ch = sql[start]
        if ch in "'\"":
            end = sql.find(ch, start + 1)
            if end < 0:
                self.error("unterminated string", start)
            self.pos = end + 1
            return _Token("SQ" if ch == "'" else "DQ", sql[start:end + 1],
                          sql[start + 1:end], start)
        for op in _OPERATORS:
            if sql.startswith(op, start):
                self.pos = start + len(op)
                return _Token("OP", op, op, start)
        if ch in "(),.*;":
            self.pos = start + 1
            return _Token("PUNCT", ch, ch, start)
        if ch.isdigit() or (ch == "-" and start + 1 < len(sql) and sql[start + 1].isdigit()):
            end = start + 1
            while end < len(sql) and (sql[end].isdigit() or sql[end] == "."):
                end += 1
            text = sql[start:end]
            try:
                value = float(text) if "." in text else int(text)
            except ValueError:
                self.error(f"bad number {text!r}", start)
            if end < len(sql) and _is_name_char(sql[end]):
                self.error("bad number", start)
            self.pos = end
            return _Token("NUMBER", text, value, start)
        if _is_name_char(ch):
            end = start
            while end < len(sql) and _is_name_char(sql[end]):
                end += 1
            self.pos = end
            return _Token("NAME", sql[start:end], sql[start:end], start)
        self.error(f"unexpected character {ch!r}", start)

    def raw_topic(self):
        """A bare topic filter: everything up to whitespace or ';'."""
        assert self._peeked is None
        self._skip_space()
        sql, start = self.sql, self.pos
        end = start
        while end < len(sql) and not sql[end].isspace() and sql[end] != ";":
            end += 1
        self.pos = end
        return sql[start:end], start


# -- compiled form --------------------------------------------------------------

class Column:
    """One output column: ``key`` in republished JSON, ``name`` in a table,
    ``source`` a plain field name or a tuple path below ``payload``."""

    __slots__ = ("key", "name", "source")

    def __init__(self, key, name, source):
        self.key = key
        self.name = name
        self.source = source

    @property
    def is_path(self):
        return isinstance(self.source, tuple)

    def __repr__(self):
        return f"Column({self.key!r}, {self.name!r}, {self.source!r})"


class _Compare:
    __slots__ = ("op", "source", "text", "value")

    def __init__(self, source, op, value, text):
        self.source, self.op, self.value, self.text = source, op, value, text


class _Logic:
    __slots__ = ("args", "op")

    def __init__(self, op, args):
        self.op, self.args = op, args


class Event:
    """What a rule sees of one message; JSON decoded lazily, once.

    ``lookup`` (optional) returns ``(password, peerhost)`` of the publisher,
    asked only when a rule needs either.
    """

    __slots__ = (
        "_extra",
        "_json",
        "_lookup",
        "clientid",
        "packet_id",
        "payload",
        "qos",
        "timestamp",
        "topic",
        "username",
    )

    def __init__(self, topic, payload, qos=0, packet_id=0, clientid=None,
                 username=None, timestamp=0, lookup=None):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.packet_id = packet_id or 0
        self.clientid = clientid
        self.username = username
        self.timestamp = int(timestamp)
        self._lookup = lookup
        self._json = _MISSING
        self._extra = None

    @property
    def json(self):
        """The payload as JSON, or _MISSING when it is not JSON."""
        value = self._json
        if value is _MISSING:
            try:
                value = json.loads(self.payload)
            except (ValueError, UnicodeDecodeError):
                value = _MISSING
            self._json = value
        return value

    def _connection_facts(self):
        if self._extra is None:
            self._extra = (self._lookup() if self._lookup else None) or (None, None)
        return self._extra

    def field(self, name):
        if name == "qos":
            return self.qos
        if name == "id":
            return self.packet_id
        if name == "topic":
            return self.topic
        if name == "clientid":
            return self.clientid
        if name == "username":
            return self.username
        if name == "timestamp":
            return self.timestamp
        if name == "payload":
            return self.payload
        if name == "password":
            return self._connection_facts()[0]
        return self._connection_facts()[1]  # peerhost

    def path(self, path):
        """The JSON value at ``path`` below the payload, or _MISSING."""
        node = self.json
        for key in path:
            if not isinstance(node, dict):
                return _MISSING
            node = node.get(key, _MISSING)
            if node is _MISSING:
                return _MISSING
        return node

    def resolve(self, source):
        if isinstance(source, tuple):
            return self.path(source)
        return self.field(source)


def payload_text(payload):
    """A payload as text (invalid UTF-8 replaced)."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload).decode("utf-8", "replace")
    return payload


class Query:
    """A parsed rule: ``topic`` (filter), ``columns``, ``where`` tree."""

    def __init__(self, sql, topic, columns, where):
        self.sql = sql
        self.topic = topic
        self.columns = columns
        self.where = where

    def matches(self, event):
        return self.where is None or _truth(self.where, event) is True

    def evaluate(self, event):
        """The selected row as ``{key: value}``, or None if WHERE fails.

        Values: plain fields as-is (payload as text), payload paths as their
        JSON value, None when missing.
        """
        if self.where is not None and _truth(self.where, event) is not True:
            return None
        row = {}
        for column in self.columns:
            value = event.resolve(column.source)
            if value is _MISSING:
                value = None
            elif column.source == "payload":
                value = payload_text(value)
            row[column.key] = value
        return row


# -- evaluation ----------------------------------------------------------------

def _truth(node, event):
    """True, False or None (unknown), Kleene logic."""
    if isinstance(node, _Compare):
        return _compare(node, event)
    if node.op == "not":
        value = _truth(node.args[0], event)
        return None if value is None else not value
    unknown = False
    stop = node.op == "or"  # the value that decides the result early
    for arg in node.args:
        value = _truth(arg, event)
        if value is stop:
            return stop
        if value is None:
            unknown = True
    return None if unknown else not stop


def _order(op, left, right):
    if op == "=":
        return left == right
    if op in ("!=", "<>"):
        return left != right
    if op == ">":
        return left > right
    if op == "<":
        return left < right
    if op == ">=":
        return left >= right
    return left <= right


def _as_number(value, text):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return None


def _compare(node, event):
    source, op, literal, text = node.source, node.op, node.value, node.text
    actual = event.resolve(source)
    if actual is _MISSING or actual is None:
        return None
    if isinstance(source, str):
        if source in _INT_FIELDS:
            wanted = _as_number(literal, text)
            return None if wanted is None else _order(op, actual, wanted)
        if source == "payload":
            if not actual:
                return None
            return _order(op, bytes(actual), text.encode("utf-8"))
        return _order(op, actual, text)
    # A payload path: compare by the JSON value's type.
    if isinstance(actual, bool):
        return _order(op, "true" if actual else "false", text.lower())
    if isinstance(actual, (int, float)):
        wanted = _as_number(literal, text)
        return None if wanted is None else _order(op, actual, wanted)
    if isinstance(actual, str):
        return _order(op, actual, text)
    try:
        wanted = json.loads(text)
    except ValueError:
        return None
    if op == "=":
        return actual == wanted
    if op in ("!=", "<>"):
        return actual != wanted
    return None


# -- parser ----------------------------------------------------------------------

class _Parser:
    def __init__(self, sql):
        self.sql = sql
        self.lex = _Lexer(sql)
        self.plain = {}  # plain field -> Column
        self.paths = []  # payload-path Columns in SELECT order
        self.aliases = {}  # alias -> source

    def error(self, message, pos):
        raise RuleSyntaxError(message, self.sql, pos)

    def expect_keyword(self, word):
        token = self.lex.next()
        if not token.keyword(word):
            self.error(f"expected {word.upper()}, found {_describe(token)}", token.pos)
        return token

    def parse(self):
        self.expect_keyword("select")
        self.items()
        self.expect_keyword("from")
        topic = self.topic()
        where = None
        token = self.lex.peek()
        if token.keyword("where"):
            self.lex.next()
            where = self.condition()
        token = self.lex.next()
        if token.kind == "PUNCT" and token.text == ";":
            token = self.lex.next()
        if token.kind != "END":
            self.error(f"unexpected {_describe(token)}", token.pos)
        columns = [self.plain[name] for name in PLAIN_FIELDS if name in self.plain]
        return Query(self.sql, topic, columns + self.paths, where)

    def items(self):
        while True:
            token = self.lex.peek()
            if token.kind == "PUNCT" and token.text == "*":
                self.lex.next()
                for name in _STAR_FIELDS:
                    if name not in self.plain:
                        self.plain[name] = Column(name, name.capitalize(), name)
            else:
                self.item()
            token = self.lex.peek()
            if not (token.kind == "PUNCT" and token.text == ","):
                return
            self.lex.next()

    def field(self):
        """NAME ("." NAME)* -> (source, text, pos)."""
        token = self.lex.next()
        if token.kind != "NAME" or token.text.lower() in _KEYWORDS:
            self.error(f"expected a field name, found {_describe(token)}", token.pos)
        parts = [token.text]
        while True:
            dot = self.lex.peek()
            if not (dot.kind == "PUNCT" and dot.text == "." and dot.pos == self.lex.pos - 1
                    and dot.pos == token.pos + len(token.text)):
                break
            self.lex.next()
            token = self.lex.next()
            if token.kind not in ("NAME", "NUMBER") or token.pos != dot.pos + 1:
                self.error("expected a JSON key after '.'", token.pos)
            parts.append(token.text)
        return parts, token

    def item(self):
        start = self.lex.peek().pos
        parts, _last = self.field()
        text = ".".join(parts)
        alias = None
        token = self.lex.peek()
        if token.keyword("as"):
            self.lex.next()
            token = self.lex.next()
            if token.kind != "NAME" or token.text.lower() in _KEYWORDS:
                self.error(f"expected an alias after AS, found {_describe(token)}",
                           token.pos)
            alias = token.text
        if len(parts) == 1 and parts[0] in PLAIN_FIELDS:
            name = parts[0]
            source = name
            self.plain[name] = Column(alias or name, alias or name.capitalize(), name)
        elif len(parts) > 1 and parts[0] == "payload":
            source = tuple(parts[1:])
            self.paths.append(Column(alias or text, alias or text, source))
        else:
            known = ", ".join(PLAIN_FIELDS)
            self.error(f"unknown field {text!r} (expected one of {known} or payload.<key>)",
                       start)
        if alias is not None:
            self.aliases[alias] = source

    def topic(self):
        token = self.lex.peek()
        if token.kind in ("DQ", "SQ"):
            self.lex.next()
            text, pos = token.value.strip(), token.pos + 1
        elif token.kind == "END":
            self.error("expected a topic filter after FROM", token.pos)
        else:
            self.lex._peeked = None
            self.lex.pos = token.pos
            text, pos = self.lex.raw_topic()
        _check_filter(self, text, pos)
        return text

    def condition(self):
        args = [self.conjunct()]
        while self.lex.peek().keyword("or"):
            self.lex.next()
            args.append(self.conjunct())
        return args[0] if len(args) == 1 else _Logic("or", args)

    def conjunct(self):
        args = [self.negation()]
        while self.lex.peek().keyword("and"):
            self.lex.next()
            args.append(self.negation())
        return args[0] if len(args) == 1 else _Logic("and", args)

    def negation(self):
        if self.lex.peek().keyword("not"):
            self.lex.next()
            return _Logic("not", [self.negation()])
        token = self.lex.peek()
        if token.kind == "PUNCT" and token.text == "(":
            self.lex.next()
            node = self.condition()
            close = self.lex.next()
            if not (close.kind == "PUNCT" and close.text == ")"):
                self.error(f"expected ')', found {_describe(close)}", close.pos)
            return node
        return self.comparison()

    def comparison(self):
        start = self.lex.peek().pos
        parts, _last = self.field()
        source = self.operand(parts, start)
        op = self.lex.next()
        if op.kind != "OP":
            self.error(f"expected a comparison operator, found {_describe(op)}", op.pos)
        value = self.lex.next()
        if value.kind in ("SQ", "DQ"):
            literal, text = value.value, value.value
        elif value.kind == "NUMBER":
            literal, text = value.value, value.text
        elif value.kind == "NAME" and value.text.lower() not in _KEYWORDS:
            literal, text = value.text, value.text
        else:
            self.error(f"expected a value, found {_describe(value)}", value.pos)
        return _Compare(source, op.value, literal, text)

    def operand(self, parts, pos):
        text = ".".join(parts)
        if len(parts) == 1 and parts[0] in PLAIN_FIELDS:
            return parts[0]
        if text in self.aliases:
            return self.aliases[text]
        if len(parts) > 1 and parts[0] == "payload":
            return tuple(parts[1:])
        self.error(f"unknown field {text!r} in WHERE "
                   "(not a field, an alias or payload.<key>)", pos)


def _describe(token):
    return "end of statement" if token.kind == "END" else repr(token.text)


def _check_filter(parser, text, pos):
    if not text:
        parser.error("empty topic filter", pos)
    levels = text.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            parser.error("'#' must be a whole last level of the topic filter", pos)
        if "+" in level and level != "+":
            parser.error("'+' must be a whole level of the topic filter", pos)


def parse(sql):
    """Parse one rule statement into a `Query`; raises `RuleSyntaxError`."""
    if not isinstance(sql, str):
        raise RuleSyntaxError("rule SQL must be a string", "", 0)
    return _Parser(sql).parse()
