"""
The OpenAPI description of our additions to NanoMQ's API (overview.py,
inspection.py, config_text.py, login.py, and the bridge create and delete
of bridges.py), merged into the document by openapi.py (operations on a
path NanoMQ also has join its entry).  ``tests/e2e/test_openapi_fuzz.py``
holds every answer to it.
"""

from .openapi_parts import data, json_content, op, path_param, query, ref, result

_INT = {"type": "integer"}
_STR = {"type": "string"}
_NULL_STR = {"type": "string", "nullable": True}
_NULL_INT = {"type": "integer", "nullable": True}
_RATE = {"type": "number", "description": "per second since the previous sample"}


def _object(properties, required=None):
    schema = {"type": "object", "properties": properties}
    schema["required"] = list(properties) if required is None else required
    return schema


_SCHEMAS = {
    "Stats": _object({
        "node": _STR, "version": _STR, "uptime": {"type": "integer", "description": "seconds"},
        "connections": _INT, "sessions": _INT, "subscriptions": _INT, "topics": _INT,
        "retained": _INT, "shared_groups": _INT,
    }),
    "Listener": _object({
        "name": _STR,
        "type": {"type": "string", "enum": ["tcp", "tls", "ws", "wss", "quic"]},
        "host": _STR, "port": _INT,
        "path": {"type": "string", "nullable": True, "description": "WebSocket path"},
        "running": {"type": "boolean"}, "connections": _INT,
    }),
    "Sample": _object({
        "time": {"type": "number"}, "connections": _INT, "sessions": _INT,
        "received": _INT, "sent": _INT, "dropped": _INT,
        "bytes_received": _INT, "bytes_sent": _INT,
        "received_rate": _RATE, "sent_rate": _RATE, "dropped_rate": _RATE,
        "bytes_received_rate": _RATE, "bytes_sent_rate": _RATE,
    }),
    "BridgeStatus": _object({
        "name": _STR, "server": _STR, "enabled": {"type": "boolean"},
        "connected": {"type": "integer", "description": "connections up"},
        "connections": _INT, "sent": _INT, "received": _INT, "dropped": _INT,
        "reconnects": _INT,
    }),
    "SessionDetail": {
        "allOf": [ref("Client"), _object({
            "session_expiry_interval": _INT,
            "listener": _NULL_STR,
            "peer": _NULL_STR,
            "connected_for": {"type": "integer", "nullable": True,
                              "description": "seconds; null when offline"},
            "subscriptions": {"type": "array", "items": _object({
                "topic": _STR, "qos": _INT, "no_local": {"type": "boolean"},
                "retain_as_published": {"type": "boolean"}, "retain_handling": _INT,
                "share_group": _NULL_STR, "identifier": _NULL_INT,
            })},
            "mqueue_len": _INT, "mqueue_max": _INT, "inflight": _INT,
            "inflight_max": _NULL_INT, "awaiting_rel": _INT,
        })],
    },
    "SharedGroup": _object({
        "group": _STR, "topic": _STR,
        "members": {"type": "array", "items": _object({"clientid": _STR, "qos": _INT})},
    }),
    "Retained": _object({
        "topic": _STR, "qos": _INT, "payload": _STR,
        "encoding": {"type": "string", "enum": ["plain", "base64"]},
        "size": _INT, "age": {"type": "integer", "description": "seconds since stored"},
        "expiry_interval": _NULL_INT, "from": _NULL_STR,
    }),
    "BridgeRefused": _object({
        "code": {"type": "integer", "enum": [108, 109],
                 "description": "108 with a message (and key); 109 (not JSON) bare"},
        "message": _STR,
        "key": {"type": "string", "description": "the refused setting, e.g. server or "
                                                 "forwards[0].remote_topic"},
    }, required=["code"]),
    "ConfigError": _object({
        "code": {"type": "integer", "enum": [117]},
        "message": _STR,
        "error": _object({"file": _NULL_STR, "line": _NULL_INT, "key": _NULL_STR,
                          "reason": _STR}),
    }, required=["code"]),
}


def addition_schemas():
    return _SCHEMAS


def _list(name):
    return data({"type": "array", "items": ref(name)})


def _bridge_operations():
    name = path_param("name", "Bridge name (bridges.mqtt.<name>)")
    refused = {"description": "108: bad name, name taken or bad settings (with the key); "
                              "109: not a JSON object",
               "content": json_content(ref("BridgeRefused"))}
    node = {"type": "object", "description": "bridges.mqtt.<name> keys (server, proto_ver, "
            "clientid, keepalive, forwards, subscription, ...) plus enable and parallel"}
    return {
        "/bridges": {"post": op(
            "Create a bridge and start it (ours)",
            {"200": data(_object({"bridge": {"type": "object"}})), "400": refused},
            body={"type": "object", "description": "{<name>: {bridge settings}}",
                  "additionalProperties": node, "minProperties": 1, "maxProperties": 1})},
        "/bridges/{name}": {"delete": op(
            "Stop a bridge and delete it (ours)",
            {"200": result(), "404": result("115: no such bridge")}, parameters=[name])},
    }


def merge_paths(*groups):
    """Path items of several groups; operations on one path are joined."""
    paths = {}
    for group in groups:
        for path, item in group.items():
            paths.setdefault(path, {}).update(item)
    return paths


def addition_paths():
    cid = path_param("clientid", "Client id")
    topic_name = query("topic", _STR, "Topic name")
    login_body = {"type": "object", "properties": {
        "username": _STR, "password": _STR,
        "token": {"type": "string", "description": "a JWT, with auth_type = jwt"}}}
    login_ok = data(_object({"username": _STR, "session_ttl": {"type": "number"}}),
                    "Logged in; the session cookie is set")
    return merge_paths(_bridge_operations(), {
        "/stats": {"get": op("Node, version, uptime and counts", {"200": data(ref("Stats"))})},
        "/listeners": {"get": op("MQTT listeners with their connection counts",
                                 {"200": _list("Listener")})},
        "/metrics/history": {"get": op("Counters of the last 15 minutes, every 5 s", {
            "200": data(_object({"interval": {"type": "number"}, "span": {"type": "number"},
                                 "samples": {"type": "array", "items": ref("Sample")}})),
            "400": result("108: since is not a number")},
            parameters=[query("since", {"type": "number"}, "Only samples after this time")])},
        "/bridge-status": {"get": op("Bridges: on, connected, counters",
                                     {"200": _list("BridgeStatus")})},
        "/sessions/{clientid}": {"get": op(
            "A client's session in detail (404/108 if none)",
            {"200": data(ref("SessionDetail")), "404": result("108")}, parameters=[cid])},
        "/shared": {"get": op("Shared subscription groups", {"200": _list("SharedGroup")})},
        "/retained": {
            "get": op("Retained messages, sorted by topic", {
                "200": {"description": "Success", "content": json_content(_object({
                    "code": {"type": "integer", "enum": [0]},
                    "data": {"type": "array", "items": ref("Retained")},
                    "total": {"type": "integer", "description": "all matches"}}))},
                "400": result("108: bad filter or limit")},
                parameters=[query("topic", _STR, "Topic filter (default #)"),
                            query("limit", {"type": "integer", "minimum": 1},
                                  "At most this many (default 1000)")]),
            "delete": op("Clear the retained message of a topic", {
                "200": result(), "400": result("107: no topic; 108: not a topic name"),
                "404": result("108: nothing retained there")}, parameters=[topic_name]),
        },
        "/config_file": {"get": op("The configuration file as text (nulls without one)", {
            "200": data(_object({"path": _NULL_STR, "text": _NULL_STR}))})},
        "/dashboard/login": {"post": op(
            "Check credentials and open a dashboard session (404 if the dashboard is off)",
            {"200": login_ok, "400": result("109: not a JSON object of strings"),
             "401": result("103 wrong credentials, 116 expired token"),
             "429": result("103: too many failed logins from this address (Retry-After; "
                           "with message and retry_after)")},
            body=login_body)},
        "/dashboard/logout": {"post": op("End the session of the cookie",
                                         {"200": result()})},
        "/dashboard/whoami": {"get": op("Whether, and as whom, the caller is logged in", {
            "200": data(_object({
                "logged_in": {"type": "boolean"}, "username": _NULL_STR,
                "auth_type": {"type": "string", "enum": ["basic", "jwt", "no_auth"]},
                "session_ttl": {"type": "number"}}))})},
    })
