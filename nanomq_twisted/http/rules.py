# -*- test-case-name: tests.protocol.test_http_rules -*-
"""
``/api/v4/rules``: list, show, create, update and delete rules.

``RulesAPI(rules_service).app`` is a Klein app whose routes are relative to
the mount point (``/`` and ``/<rule id>``); `api.py` serves it below
``/api/v4/rules``.  Rules are addressed as ``rule:<n>`` in paths and by
their number in bodies; anything else in a path is id 0, which never
exists (NanoMQ).  Codes: unknown id 400/107 (PUT: 108), body not a JSON
object 400/109, unsupported action 400/111, bad parameters or SQL 400/108.

A refusal about one field names it in the ``X-NanoMQ-Error-Param`` header
(an action parameter -- ``topic``, ``address``, ``table``, ... -- or
``rawsql``, ``name``, ``actions``, ``enabled``) and says why in
``X-NanoMQ-Error-Message``, so the dashboard can show it beside that
field.  The body stays NanoMQ's: its recorded answers to parameter errors
are exactly ``{"code":107}`` / ``{"code":108}`` (golden transcript #176,
#178, #187), so no key is added there; only a SQL error, which NanoMQ
never refuses, also carries ``message`` in the body.
"""

from klein import Klein
from twisted.logger import Logger

from ..rules.service import RuleRequestError
from ..rules.sql import RuleSyntaxError
from .common import (
    ERROR_MESSAGE_HEADER,
    ERROR_PARAM_HEADER,
    MISSING_PARAMS,
    PARAM_ERROR,
    PLUGIN_CLOSED,
    ApiError,
    dumps,
    error_response,
    json_body,
)

__all__ = ["RulesAPI", "rule_id_from_path"]

JSON = b"application/json"

_log = Logger()


def rule_id_from_path(text):
    """``rule:<n>`` -> n; anything else -> 0."""
    if text.startswith("rule:"):
        digits = text[5:]
        if digits.isdigit():
            return int(digits)
    return 0


def _refused(code, param, reason, **extra):
    """400 with NanoMQ's ``code``; the parameter and the reason in headers."""
    headers = {ERROR_PARAM_HEADER: param, ERROR_MESSAGE_HEADER: reason}
    return ApiError(400, code, headers=headers, **extra)


def _created(rule):
    return dumps({"data": rule.summary(with_name=False), "actions": [], "code": 0})


class RulesAPI:
    """REST handlers over a `RulesService`."""

    app = Klein()

    def __init__(self, service):
        self.service = service

    @app.handle_errors(Exception)
    def errors(self, request, failure):
        return error_response(request, failure, _log, "rules REST handler")

    def _json(self, request):
        request.setHeader(b"content-type", JSON)

    @app.route("/", methods=["GET"])
    def list_rules(self, request):
        self._json(request)
        data = [rule.summary() for rule in self.service.engine]
        return dumps({"data": data, "code": 0})

    @app.route("/<string:ident>", methods=["GET"])
    def show_rule(self, request, ident):
        self._json(request)
        rule = self.service.engine.get(rule_id_from_path(ident))
        if rule is None:
            raise ApiError(400, MISSING_PARAMS)
        return dumps({"data": rule.summary(), "code": 0})

    @app.route("/", methods=["POST"])
    def create_rule(self, request):
        self._json(request)
        body = json_body(request)
        actions = body.get("actions")
        if not actions:
            # NanoMQ answers with the last rule when no action is given.
            last = self.service.engine.last()
            return dumps({"data": last.summary(with_name=False) if last else {},
                          "actions": [], "code": 0})
        if not isinstance(actions, list):
            raise _refused(PARAM_ERROR, "actions", "actions must be a list")
        rawsql = body.get("rawsql")
        if not isinstance(rawsql, str):
            raise _refused(MISSING_PARAMS, "rawsql", "rawsql (the rule's SQL) is required")
        description = body.get("description")
        rule = None
        for action in actions:
            if not isinstance(action, dict) or not isinstance(action.get("name"), str):
                raise _refused(PARAM_ERROR, "name", "every action needs a name (repub, sqlite, ...)")
            rule = self._call(self.service.create, action["name"], rawsql,
                              action.get("params") or {},
                              description=description if isinstance(description, str)
                              else None)
        return _created(rule)

    @app.route("/<string:ident>", methods=["PUT"])
    def update_rule(self, request, ident):
        self._json(request)
        body = json_body(request)
        rule_id = rule_id_from_path(ident)
        if self.service.engine.get(rule_id) is None:
            raise ApiError(400, PARAM_ERROR)
        rawsql = body.get("rawsql")
        if rawsql is not None and not isinstance(rawsql, str):
            raise _refused(PARAM_ERROR, "rawsql", "rawsql must be a string")
        actions = body.get("actions")
        if actions is not None and not isinstance(actions, list):
            raise _refused(PARAM_ERROR, "actions", "actions must be a list")
        rule = self._call(self.service.update, rule_id, rawsql, body.get("enabled"), actions)
        return _created(rule)

    @app.route("/<string:ident>", methods=["DELETE"])
    def delete_rule(self, request, ident):
        self._json(request)
        rule_id = rule_id_from_path(ident)
        if self.service.engine.get(rule_id) is None:
            raise ApiError(400, MISSING_PARAMS)
        self.service.delete(rule_id)
        return dumps({"code": 0})

    @staticmethod
    def _call(fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuleSyntaxError as error:
            raise _refused(PARAM_ERROR, "rawsql", str(error), message=str(error)) from None
        except RuleRequestError as error:
            code = error.code if error.code in (
                MISSING_PARAMS, PARAM_ERROR, PLUGIN_CLOSED) else PARAM_ERROR
            if error.param is None:
                raise ApiError(400, code) from None
            raise _refused(code, error.param, str(error)) from None
