"""
The OpenAPI 3 description of the REST API, served at
``GET /api/v4/openapi.json``.  A static document built from small helpers;
``tests/protocol/test_http_endpoints.py`` checks that every endpoint of
``GET /api/v4`` is described.
"""

import copy

from .openapi_additions import addition_paths, addition_schemas, merge_paths
from .openapi_parts import data as _data
from .openapi_parts import json_content as _json
from .openapi_parts import op as _op
from .openapi_parts import path_param as _path_param
from .openapi_parts import query as _query
from .openapi_parts import ref as _ref
from .openapi_parts import result as _result

_BAD_JSON = {"400": {"description": "Body is not JSON of the right type (109)",
                     "content": _json(_ref("Result"))}}

_SUB_REQUEST = {
    "type": "object",
    "required": ["clientid"],
    "properties": {
        "clientid": {"type": "string"},
        "topic": {"type": "string"},
        "topics": {"type": "string", "description": "Comma-separated topic filters"},
        "qos": {"type": "integer", "minimum": 0, "maximum": 2},
    },
}

_BATCH_RESULT = {
    "description": "Per-item results",
    "content": _json({
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": {
                "type": "object",
                "properties": {"clientid": {"type": "string", "nullable": True},
                               "topic": {"type": "string", "nullable": True},
                               "code": {"type": "integer"}},
            }},
            "code": {"type": "integer"},
        },
    }),
}

_SCHEMAS = {
    "Result": {
        "type": "object",
        "required": ["code"],
        "properties": {
            "code": {"type": "integer", "description": "NanoMQ result code (0 = success)"},
            "message": {"type": "string"},
        },
    },
    "Client": {
        "type": "object",
        "required": ["client_id", "username", "keepalive", "conn_state", "clean_start",
                     "proto_name", "proto_ver"],
        "properties": {
            "client_id": {"type": "string"},
            "username": {"type": "string"},
            "keepalive": {"type": "integer"},
            "conn_state": {"type": "string", "enum": ["connected", "disconnected"]},
            "clean_start": {"type": "boolean"},
            "proto_name": {"type": "string"},
            "proto_ver": {"type": "integer", "enum": [3, 4, 5]},
            "will_topic": {"type": "string"},
            "will_msg": {"type": "string"},
        },
    },
    "Subscription": {
        "type": "object",
        "properties": {"clientid": {"type": "string"}, "topic": {"type": "string"},
                       "qos": {"type": "integer"}},
    },
    "Publish": {
        "type": "object",
        "required": ["payload"],
        "properties": {
            "topic": {"type": "string"},
            "topics": {"type": "string", "description": "Comma-separated topic names"},
            "payload": {"type": "string"},
            "clientid": {"type": "string", "default": "NanoMQ-HTTP-Client"},
            "qos": {"type": "integer", "minimum": 0, "maximum": 2, "default": 0},
            "retain": {"type": "boolean", "default": False},
            "encoding": {"type": "string", "enum": ["plain", "base64"]},
            "decoding": {"type": "string", "enum": ["plain", "base64"]},
            "properties": {
                "type": "object",
                "properties": {
                    "payload_format_indicator": {"type": "integer", "enum": [0, 1]},
                    "message_expiry_interval": {"type": "integer", "minimum": 0},
                    "response_topic": {"type": "string"},
                    "correlation_data": {"type": "string"},
                    "subscription_identifier": {"type": "integer", "minimum": 1},
                    "content_type": {"type": "string"},
                    "user_properties": {"type": "object", "additionalProperties": {
                        "oneOf": [{"type": "string"}, {"type": "number"},
                                  {"type": "boolean"}]}},
                },
            },
        },
    },
    "Hot": {
        "type": "object",
        "properties": {
            "property_size": {"type": "integer"},
            "max_packet_size": {"type": "integer", "description": "KiB"},
            "client_max_packet_size": {"type": "integer", "description": "KiB"},
            "msq_len": {"type": "integer"},
            "qos_duration": {"type": "number", "description": "seconds"},
            "keepalive_backoff": {"type": "number"},
            "allow_anonymous": {"type": "boolean"},
            "enable_mqtt_stream": {"type": "boolean"},
            "bridge_mode": {"type": "boolean"},
        },
    },
}

_CLIENT_FILTERS = [
    _query("clientid", {"type": "string"}, "Client id (also client_id)"),
    _query("username", {"type": "string"}, "User name"),
    _query("conn_state", {"type": "string", "enum": ["connected", "disconnected"]}, "State"),
    _query("clean_start", {"type": "boolean"}, "Clean start flag"),
    _query("proto_name", {"type": "string"}, "MQTT or MQIsdp"),
    _query("proto_ver", {"type": "integer", "enum": [3, 4, 5]}, "Protocol level"),
]

_SUB_FILTERS = [
    _query("clientid", {"type": "string"}, "Client id"),
    _query("topic", {"type": "string"}, "Topic filter, exactly"),
    _query("qos", {"type": "integer", "enum": [0, 1, 2]}, "QoS"),
    _query("share", {"type": "string"}, "Share group"),
]

_CLIENTS = _data({"type": "array", "items": _ref("Client")})
_SUBS = _data({"type": "array", "items": _ref("Subscription")})
_OBJECT = {"type": "object"}
_SECTION = {"type": "object", "properties": {"data": _OBJECT}}


def _paths():
    cid = _path_param("clientid", "Client id")
    return {
        "/": {"get": _op("List the endpoints", {"200": _data({"type": "array"})})},
        "/openapi.json": {"get": _op("This document", {"200": {"description": "OpenAPI 3"}})},
        "/brokers": {"get": _op("Broker information", {"200": _data({"type": "array"})})},
        "/nodes": {"get": _op("Node information", {"200": _data({"type": "array"})})},
        "/metrics": {"get": _op("Statistics (no code key)", {"200": {
            "description": "Statistics", "content": _json({
                "type": "object",
                "properties": {"metrics": {"type": "array"}, "cpuinfo": {"type": "string"},
                               "memory": {"type": "string"},
                               "connections": {"type": "integer"}}})}})},
        "/prometheus": {"get": _op("Prometheus text format 0.0.4", {"200": {
            "description": "Metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}})},
        "/clients": {"get": _op("List clients", {"200": _CLIENTS, "400": _result("108")},
                                parameters=_CLIENT_FILTERS)},
        "/clients/{clientid}": {
            "get": _op("Look a client up", {"200": _CLIENTS}, parameters=[cid]),
            "delete": _op("Kick a client (404/112 if not online)", {"200": _result()},
                          parameters=[cid]),
        },
        "/clients/username/{username}": {"get": _op(
            "Clients of a user name", {"200": _CLIENTS},
            parameters=[_path_param("username", "User name")])},
        "/subscriptions": {"get": _op("List subscriptions", {"200": _SUBS, "400": _result()},
                                      parameters=_SUB_FILTERS)},
        "/subscriptions/{clientid}": {"get": _op("Subscriptions of a client", {"200": _SUBS},
                                                 parameters=[cid])},
        "/topic-tree": {"get": _op("Subscription trie, breadth first", {"200": _data(
            {"type": "array", "items": {"type": "array"}})})},
        "/mqtt/publish": {"post": _op("Publish (result in code, HTTP 200)",
                                      dict(_BAD_JSON, **{"200": _result()}),
                                      body=_ref("Publish"))},
        "/mqtt/publish_batch": {"post": _op(
            "Publish several messages", dict(_BAD_JSON, **{"200": _BATCH_RESULT}),
            body={"type": "array", "items": _ref("Publish")})},
        "/mqtt/subscribe": {"post": _op("Subscribe an existing session (112 if none)",
                                        dict(_BAD_JSON, **{"200": _result()}),
                                        body=_SUB_REQUEST)},
        "/mqtt/unsubscribe": {"post": _op("Unsubscribe an existing session",
                                          dict(_BAD_JSON, **{"200": _result()}),
                                          body=_SUB_REQUEST)},
        "/mqtt/subscribe_batch": {"post": _op(
            "Subscribe in batch", dict(_BAD_JSON, **{"200": _BATCH_RESULT}),
            body={"type": "array", "items": _SUB_REQUEST})},
        "/mqtt/unsubscribe_batch": {"post": _op(
            "Unsubscribe in batch", dict(_BAD_JSON, **{"200": _BATCH_RESULT}),
            body={"type": "array", "items": _SUB_REQUEST})},
        "/reload": {
            "get": _op("Hot-reloadable settings", {"200": _data(_ref("Hot"))}),
            "post": _op("Change hot settings (in memory)", dict(_BAD_JSON, **{"200": _result()}),
                        body={"type": "object", "properties": {"data": _ref("Hot")}}),
        },
        "/configuration": {
            "get": _op("The whole configuration", {"200": _data(_OBJECT)}),
            "post": _op("Change configuration in memory", dict(_BAD_JSON, **{"200": _result()}),
                        body=_SECTION),
        },
        "/configuration/{section}": {
            "get": _op("One configuration section (404/101 if unknown)",
                       {"200": _data(_OBJECT), "404": _result("101")},
                       parameters=[_path_param("section", "basic, tls, auth, ...")]),
            "post": _op("Change one section in memory", dict(_BAD_JSON, **{"200": _result()}),
                        body=_SECTION,
                        parameters=[_path_param("section", "basic, http_server, auth, ...")]),
        },
        "/config_update": {"post": _op(
            "Replace the configuration file (validated; previous kept as .bak)",
            {"200": _result("0, or 118 if it cannot be written"),
             "400": {"description": "117: not a valid configuration (where: error)",
                     "content": _json(_ref("ConfigError"))}},
            body={"type": "string"}, body_type="text/plain")},
        "/ctrl/{action}": {"post": _op(
            "Stop or restart after the response", {"200": _result(), "400": _result("117")},
            parameters=[{"name": "action", "in": "path", "required": True,
                         "schema": {"type": "string", "enum": ["stop", "restart"]}}])},
    }


_RULE = {
    "type": "object",
    "required": ["rawsql", "id", "enabled"],
    "properties": {
        "name": {"type": "string", "description": "Action kind (list and show only)"},
        "rawsql": {"type": "string"},
        "id": {"type": "integer"},
        "enabled": {"type": "boolean"},
    },
}

_RULE_ACTION = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string",
                 "enum": ["repub", "sqlite", "mysql", "postgresql", "timescaledb"]},
        "params": {"type": "object", "description": (
            "repub: topic, address, proto_ver, keepalive, clientid, username, password, "
            "clean_start; sqlite: table; mysql/postgresql/timescaledb: table, host, "
            "username, password, database, port")},
    },
}

_RULE_BODY = {
    "type": "object",
    "properties": {
        "rawsql": {"type": "string", "description": "SELECT ... FROM \"<topic filter>\" ..."},
        "actions": {"type": "array", "items": _RULE_ACTION},
        "description": {"type": "string"},
        "enabled": {"type": "boolean", "description": "PUT only"},
    },
}

_RULE_CREATED = {
    "description": "The rule (without name) and an empty actions list",
    "content": _json({
        "type": "object",
        "required": ["code"],
        "properties": {"code": {"type": "integer", "enum": [0]},
                       "data": {"type": "object"},
                       "actions": {"type": "array"}},
    }),
}

_RULE_ID = {"name": "ruleid", "in": "path", "required": True,
            "description": "rule:<n>; anything else is an id that never exists",
            "schema": {"type": "string"}, "example": "rule:1"}

_BRIDGE_VIEW = _data({
    "type": "object",
    "required": ["bridge"],
    "properties": {"bridge": {
        "type": "object",
        "required": ["nodes", "sqlite"],
        "properties": {"nodes": {"type": "array", "items": {"type": "object"}},
                       "sqlite": {"type": "object"}},
    }},
})

_BRIDGE_NAME = _path_param("name", "Bridge name (bridges.mqtt.<name>)")

_BRIDGE_TOPIC = {
    "type": "object",
    "required": ["remote_topic", "local_topic"],
    "properties": {
        "remote_topic": {"type": "string"}, "local_topic": {"type": "string"},
        "qos": {"type": "integer", "minimum": 0, "maximum": 2},
        "retain_as_published": {"type": "integer", "enum": [0, 1]},
        "retain_handling": {"type": "integer", "minimum": 0, "maximum": 2},
        "nolocal": {"type": "boolean"},
        "prefix": {"type": "string"}, "suffix": {"type": "string"},
    },
}

_USER_PROPERTIES = {"type": "array", "items": {
    "type": "object", "required": ["key", "value"],
    "properties": {"key": {"type": "string"}, "value": {"type": "string"}}}}

_BRIDGE_SUB = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {
        "type": "object",
        "required": ["subscription"],
        "properties": {
            "subscription": {"type": "array", "items": _BRIDGE_TOPIC},
            "sub_properties": {"type": "object", "properties": {
                "identifier": {"type": "integer", "minimum": 1, "maximum": 268435455},
                "user_properties": _USER_PROPERTIES}},
        },
    }},
}

_BRIDGE_UNSUB = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {
        "type": "object",
        "required": ["unsubscription"],
        "properties": {
            "unsubscription": {"type": "array", "items": {
                "type": "object", "required": ["topic"],
                "properties": {"topic": {"type": "string"}}}},
            "unsub_properties": {"type": "object", "properties": {
                "user_properties": _USER_PROPERTIES}},
        },
    }},
}

_BRIDGE_SWITCH = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "object", "required": ["bridge_switch"],
                            "properties": {"bridge_switch": {"type": "boolean"}}}},
}


def _mounted_paths():
    """``/rules`` and ``/bridges`` (served when those packages are mounted)."""
    bad_rule = {"400": dict(_result(
        "107 unknown id or missing rawsql, 108 bad parameters or SQL, 109 not a JSON "
        "object, 111 unsupported action"), headers={
            "X-NanoMQ-Error-Param": {"description": "the parameter refused (ours)",
                                     "schema": {"type": "string"}},
            "X-NanoMQ-Error-Message": {"description": "why, one ASCII line (ours)",
                                       "schema": {"type": "string"}}})}
    bad_bridge = {"400": _result("108 bad parameters, 109 not JSON of the right shape")}
    name = [_BRIDGE_NAME]
    sub_unsub = {
        "200": _result(), "404": _result("108: no such bridge (unsub: or disabled)"),
        **bad_bridge,
    }
    return {
        "/rules": {
            "get": _op("List rules", {"200": _data({"type": "array", "items": _RULE})}),
            "post": _op("Create a rule per action (no actions: the last rule)",
                        dict(bad_rule, **{"200": _RULE_CREATED}), body=_RULE_BODY),
        },
        "/rules/{ruleid}": {
            "get": _op("Show a rule", dict(bad_rule, **{"200": _data(_RULE)}),
                       parameters=[_RULE_ID]),
            "put": _op("Update a rule (rawsql, enabled, actions)",
                       dict(bad_rule, **{"200": _RULE_CREATED}), body=_RULE_BODY,
                       parameters=[_RULE_ID]),
            "delete": _op("Delete a rule", dict(bad_rule, **{"200": _result()}),
                          parameters=[_RULE_ID]),
        },
        "/bridges": {"get": _op("Every bridge and the bridge cache", {"200": _BRIDGE_VIEW})},
        "/bridges/{name}": {
            "get": _op("One bridge (empty nodes if unknown)", {"200": _BRIDGE_VIEW},
                       parameters=name),
            "put": _op(
                "Replace a bridge's configuration and reconnect",
                dict(bad_bridge, **{"200": _result(),
                                    "403": _result("108: reconnect set-up failed"),
                                    "404": _result("115: no such bridge")}),
                body={"type": "object", "description": "{<name>: {connector fields}}",
                      "additionalProperties": {"type": "object"}},
                parameters=name),
        },
        "/bridges/switch/{name}": {"post": _op(
            "Turn a bridge on or off",
            dict(bad_bridge, **{"200": _result(),
                                "204": {"description": "No such bridge (NanoMQ's 204)"}}),
            body=_BRIDGE_SWITCH, parameters=name)},
        "/bridges/sub/{name}": {
            method: _op("Add subscriptions to a bridge", sub_unsub, body=_BRIDGE_SUB,
                        parameters=name)
            for method in ("post", "put")
        },
        "/bridges/unsub/{name}": {
            method: _op("Remove subscriptions from a bridge", sub_unsub,
                        body=_BRIDGE_UNSUB, parameters=name)
            for method in ("post", "put")
        },
    }


_DOCUMENT = {
    "openapi": "3.0.3",
    "info": {
        "title": "nanomq-twisted HTTP REST API V4",
        "version": "4",
        "description": "NanoMQ-compatible REST API; see docs/rest-api.md.",
    },
    "servers": [{"url": "/api/v4"}],
    "security": [{"basic": []}, {"jwt": []}],
    "components": {
        "securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"},
            "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        },
        "schemas": dict(_SCHEMAS, **addition_schemas()),
    },
    "paths": merge_paths(_paths(), _mounted_paths(), addition_paths()),
}


def document():
    """A fresh copy of the document (callers may not mutate the original)."""
    return copy.deepcopy(_DOCUMENT)
