"""
``GET /clients`` (with NanoMQ's query filters), ``/clients/{clientid}``,
``/clients/username/{username}`` and ``DELETE /clients/{clientid}``.

A client is a session: online ones have a live ``ClientConnection``,
offline persistent ones only a ``Session``.  What NanoMQ reports about a
client (keepalive, protocol, clean start, will) comes from its last
CONNECT, which the session keeps (``Session.info``, a ``ConnectInfo``).
"""

from ..mqtt import reason_codes as rc
from .common import CLIENT_OFFLINE, PARAM_ERROR, ApiError, ok, query_pairs

_BOOLS = {"true": True, "false": False}
_STATES = ("connected", "disconnected")


def _text(value):
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def client_object(api, session):
    """NanoMQ's client record, keys in NanoMQ's order."""
    conn = session.conn
    info = session.info
    level = info.protocol_level if info is not None else 4
    out = {
        "client_id": session.client_id,
        "username": _text(session.username),
        "keepalive": info.keepalive if info is not None else 0,
        "conn_state": "connected" if conn is not None else "disconnected",
        "clean_start": info.clean_start if info is not None else False,
        "proto_name": "MQIsdp" if level == 3 else "MQTT",
        "proto_ver": level,
    }
    will = info.will if info is not None else None
    if will is not None:
        out["will_topic"] = will.topic
        out["will_msg"] = _text(will.payload)
    return out


def _filters(request):
    """The query filters as predicates on a client record; 400/108 for an
    unknown key or a bad value."""
    tests = []
    for key, value in query_pairs(request):
        if key in ("clientid", "client_id"):
            tests.append(("client_id", value))
        elif key == "username":
            tests.append(("username", value))
        elif key == "conn_state":
            if value.lower() not in _STATES:
                raise ApiError(400, PARAM_ERROR)
            tests.append(("conn_state", value.lower()))
        elif key == "clean_start":
            if value.lower() not in _BOOLS:
                raise ApiError(400, PARAM_ERROR)
            tests.append(("clean_start", _BOOLS[value.lower()]))
        elif key == "proto_name":
            tests.append(("proto_name", value))
        elif key == "proto_ver":
            if value not in ("3", "4", "5"):
                raise ApiError(400, PARAM_ERROR)
            tests.append(("proto_ver", int(value)))
        else:
            raise ApiError(400, PARAM_ERROR)
    return tests


def list_clients(api, request, client_id=None, username=None):
    tests = _filters(request)
    if client_id is not None:
        tests.append(("client_id", client_id))
    if username is not None:
        tests.append(("username", username))
    sessions = api.broker.sessions
    if client_id is not None:
        candidates = [sessions[client_id]] if client_id in sessions else []
    else:
        candidates = list(sessions.values())
    data = []
    for session in candidates:
        record = client_object(api, session)
        if all(record[key] == value for key, value in tests):
            data.append(record)
    return ok(data=data)


def kick(api, request, client_id):
    """Disconnect an online client (MQTT 5: DISCONNECT 0x98); its session
    stays as its expiry interval says.  404/112 when it is not online."""
    conn = api.broker.connections.get(client_id)
    if conn is None:
        raise ApiError(404, CLIENT_OFFLINE)
    conn.server_disconnect(
        rc.ADMINISTRATIVE_ACTION, api.broker.now(), "disconnected by the REST API"
    )
    return ok()
