"""
``GET/POST /reload``, ``GET/POST /configuration[/{section}]`` and
``POST /config_update``.

Hot settings (``/reload``, ``/configuration`` ``basic``) change the running
broker at once: the configuration is frozen, so a new one is made with
``dataclasses.replace`` and handed to ``IControl.set_config``, which gives
the broker its ``mqtt`` section; the core reads it for every new connection
(``client_max_packet_size``), packet (``max_packet_size``) and timer
(``qos_duration``, ``keepalive_backoff``).  ``msq_len`` also applies to the
queues of existing sessions.  Nothing is written to the file.

``/config_update`` takes the whole new ``nanomq.conf`` as raw HOCON: it is
validated with the same loader as start-up before anything is written
(400/117 otherwise, the file untouched), then replaces the file atomically
(temporary file + ``os.replace``), keeping the previous one as
``<file>.bak``.  The running broker is not changed (``/ctrl/restart``).
"""

import dataclasses
import os
import shutil
import tempfile

from ..config import ConfigError, HttpAuthConfig, loads
from .common import (
    NOT_HOCON,
    PARAM_ERROR,
    RPC_ERROR,
    WRITE_FAILED,
    ApiError,
    dumps,
    is_int,
    is_number,
    json_body,
    ok,
    read_body,
)
from .config_text import error_fields

KIB = 1024


def set_password_table(passwords, allow_anonymous=None, table=None, keep_table=True):
    """Change ``allow_anonymous`` and/or the table of ``passwords`` (the
    ``PasswordAuthenticator``, ``IControl.passwords``); ``replace``
    recompiles hashed entries and raises ``ValueError`` for a bad one."""
    anonymous = passwords.allow_anonymous if allow_anonymous is None else allow_anonymous
    passwords.replace(anonymous, passwords.passwords if keep_table else table)


def _number(value):
    """Seconds as NanoMQ shows them: integers without a ``.0``."""
    return int(value) if float(value).is_integer() else value


# -- /reload ------------------------------------------------------------------


def hot_settings(api):
    mqtt = api.broker.config
    return {
        "property_size": mqtt.property_size,
        "max_packet_size": mqtt.max_packet_size // KIB,
        "client_max_packet_size": mqtt.client_max_packet_size // KIB,
        "msq_len": mqtt.max_mqueue_len,
        "qos_duration": _number(mqtt.retry_interval),
        "keepalive_backoff": mqtt.keepalive_multiplier,
        "allow_anonymous": _allow_anonymous(api),
        "enable_mqtt_stream": False,
        "bridge_mode": bool(api.config.bridges),
    }


def _allow_anonymous(api):
    return bool(api.control.passwords.allow_anonymous)


# JSON key -> (MqttConfig field, validator, converter)
_HOT = {
    "property_size": ("property_size", lambda v: is_int(v) and v > 0, int),
    "max_packet_size": ("max_packet_size", lambda v: is_int(v) and v > 0, lambda v: v * KIB),
    "client_max_packet_size": (
        "client_max_packet_size",
        lambda v: is_int(v) and v > 0,
        lambda v: v * KIB,
    ),
    "msq_len": ("max_mqueue_len", lambda v: is_int(v) and v > 0, int),
    "qos_duration": ("retry_interval", lambda v: is_number(v) and v > 0, float),
    "keepalive_backoff": ("keepalive_multiplier", lambda v: is_number(v) and v > 0, float),
}


def apply_hot(api, data):
    """Apply the recognised, well-typed keys of ``data``; others are
    ignored (as NanoMQ does).  The new ``mqtt`` section is made the one in
    force through the control (``IControl.set_config``)."""
    if not isinstance(data, dict):
        return
    changes = {}
    for key, (field, valid, convert) in _HOT.items():
        if key in data and valid(data[key]):
            changes[field] = convert(data[key])
    config = api.config
    mqtt = dataclasses.replace(config.mqtt, **changes) if changes else config.mqtt
    auth = config.auth
    anonymous = data.get("allow_anonymous")
    if isinstance(anonymous, bool):
        set_password_table(api.control.passwords, allow_anonymous=anonymous)
        auth = dataclasses.replace(auth, allow_anonymous=anonymous)
    if changes or auth is not config.auth:
        api.control.set_config(dataclasses.replace(config, mqtt=mqtt, auth=auth))


def get_reload(api, request):
    return ok(data=hot_settings(api))


def set_reload(api, request):
    """Re-read the password and ACL files as ``nanomq reload`` and SIGHUP do,
    then apply the JSON hot settings (NanoMQ).  A file that no longer loads
    keeps the old rules and answers 400/117 with the reason."""
    body = json_body(request, dict)
    if api.config.source_path:
        result = api.control.reload_auth()
        if not result:
            raise ApiError(400, NOT_HOCON, message=str(result.error))
    # After the files, so an explicit ``allow_anonymous`` in the body wins.
    apply_hot(api, body.get("data"))
    return ok()


# -- GET /configuration ---------------------------------------------------------


def _pem(path):
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _tls_object(url=None, source=None):
    """NanoMQ's TLS object for an ``SslListener``/``WsListener`` ``source``
    (None: TLS off)."""
    if source is None:
        return {
            "enable": False, "url": url, "key_password": None, "key": None, "cert": None,
            "cacert": None, "verify_peer": False, "fail_if_no_peer_cert": False,
        }
    return {
        "enable": True,
        "url": url,
        "key_password": source.key_password,
        "key": _pem(source.keyfile),
        "cert": _pem(source.certfile),
        "cacert": _pem(source.cacertfile),
        "verify_peer": bool(source.verify_peer),
        "fail_if_no_peer_cert": bool(source.fail_if_no_peer_cert),
    }


def _basic(api):
    config = api.config
    tcp = [listener for listener in config.listeners.tcp if listener.enable]
    url = f"nmq-tcp://{tcp[0].host}:{tcp[0].port}" if tcp else None
    system = config.system
    hot = hot_settings(api)
    out = {
        "url": url,
        "num_taskq_thread": system.num_taskq_thread,
        "max_taskq_thread": system.max_taskq_thread,
        "parallel": system.parallel,
        "property_size": hot["property_size"],
        "daemon": system.daemon,
    }
    for key in (
        "max_packet_size",
        "client_max_packet_size",
        "msq_len",
        "qos_duration",
        "keepalive_backoff",
        "allow_anonymous",
    ):
        out[key] = hot[key]
    out["ipc_internal"] = system.enable_ipc_internal
    return out


def _tls(api):
    ssl = [listener for listener in api.config.listeners.ssl if listener.enable]
    if not ssl:
        return _tls_object()
    first = ssl[0]
    return _tls_object(f"tls+nmq-tcp://{first.host}:{first.port}", first)


def _auth(api):
    passwords = api.control.passwords.passwords
    if passwords is None:
        passwords = api.config.auth.password or {}
    return [{"login": user, "password": password} for user, password in passwords.items()]


def _request_object(req):
    if req is None:
        return {"url": None, "method": None, "headers": {}, "params": [], "tls": _tls_object()}
    return {
        "url": req.url,
        "method": req.method,
        "headers": dict(req.headers),
        "params": list(req.params),
        "tls": _tls_object(),
    }


def _auth_http(api):
    http = api.config.auth.http_auth
    # Absent: NanoMQ shows the defaults, which are HttpAuthConfig's.
    base = http if http is not None else HttpAuthConfig()
    return {
        "enable": http is not None,
        "timeout": _number(base.timeout),
        "connect_timeout": _number(base.connect_timeout),
        "pool_size": base.pool_size,
        "cache_ttl": _number(base.cache_ttl),
        "auth_req": _request_object(base.auth_req),
        "acl_req": _request_object(base.acl_req),
        "super_req": _request_object(base.super_req),
    }


def _websocket(api):
    listeners = api.config.listeners
    ws, wss = listeners.ws, listeners.wss
    return {
        "enable": ws is not None,
        "tls_enable": wss is not None,
        "url": f"nmq-ws://{ws.host}:{ws.port}{ws.path}" if ws else None,
        "tls_url": f"nmq-wss://{wss.host}:{wss.port}{wss.path}" if wss else None,
    }


def _http_server(api):
    http = api.http
    return {
        "enable": True,
        "port": http.port,
        "addr": http.ip_addr,
        "username": http.username,
        "password": http.password,
        "auth_type": "jwt" if http.auth_type == "jwt" else "basic",
    }


def _sqlite_object(sqlite):
    """A ``SqliteConfig``/``BridgeCacheConfig`` as NanoMQ shows it (its
    values when the section is absent, golden transcript)."""
    if sqlite is None:
        return {"enable": False, "disk_cache_size": 102400, "flush_mem_threshold": 100,
                "resend_interval": 0, "mounted_file_path": None}
    return {
        "enable": True,
        "disk_cache_size": sqlite.disk_cache_size,
        "flush_mem_threshold": sqlite.flush_mem_threshold,
        "resend_interval": sqlite.resend_interval,
        "mounted_file_path": sqlite.mounted_file_path,
    }


def _sqlite(api):
    return _sqlite_object(api.config.sqlite)


def _bridge(api):
    view = api.bridge_view()
    if view is not None:
        return view
    nodes = []
    for bridge in api.config.bridges:
        nodes.append(
            {
                "name": bridge.name,
                "enable": bridge.enable,
                "parallel": bridge.max_parallel_processes,
                "connector": {
                    "server": bridge.server,
                    "proto_ver": bridge.proto_ver,
                    "clientid": bridge.clientid,
                    "clean_start": bridge.clean_start,
                    "username": bridge.username,
                    "password": bridge.password,
                    "keepalive": _number(bridge.keepalive),
                },
                "forwards": [
                    {"remote_topic": f.remote_topic, "local_topic": f.local_topic}
                    for f in bridge.forwards
                ],
                "subscription": [
                    {"remote_topic": s.remote_topic, "local_topic": s.local_topic, "qos": s.qos}
                    for s in bridge.subscription
                ],
            }
        )
    return {"nodes": nodes, "sqlite": _sqlite_object(api.config.bridge_cache)}


SECTIONS = {
    "basic": _basic,
    "tls": _tls,
    "auth": _auth,
    "auth_http": _auth_http,
    "websocket": _websocket,
    "http_server": _http_server,
    "sqlite": _sqlite,
    "bridge": _bridge,
}


def get_configuration(api, request, section=None):
    if section is None:
        return ok(data={name: build(api) for name, build in SECTIONS.items()})
    build = SECTIONS.get(section)
    if build is None:
        raise ApiError(404, RPC_ERROR, data={})
    return ok(data={section: build(api)})


# -- POST /configuration ----------------------------------------------------------


def _set_basic(api, part, data):
    if isinstance(part, dict):
        apply_hot(api, part)


def _set_http_server(api, part, data):
    if not isinstance(part, dict):
        return
    changes = {}
    for key in ("username", "password"):
        if isinstance(part.get(key), str):
            changes[key] = part[key]
    kind = part.get("auth_type")
    if kind == "basic" or (kind == "jwt" and api.http.jwt_public_keyfile):
        changes["auth_type"] = kind
    if changes:
        api.http = dataclasses.replace(api.http, **changes)


def _set_auth(api, part, data):
    if isinstance(part, list):
        table = {}
        for entry in part:
            if (
                isinstance(entry, dict)
                and isinstance(entry.get("username"), str)
                and isinstance(entry.get("password"), str)
            ):
                table[entry["username"]] = entry["password"]
        try:
            set_password_table(api.control.passwords, table=table, keep_table=False)
        except ValueError:
            raise ApiError(400, PARAM_ERROR) from None
    if data.get("enable") is False:
        set_password_table(api.control.passwords, table=None, keep_table=False)


_SETTERS = {"basic": _set_basic, "http_server": _set_http_server, "auth": _set_auth}


def set_configuration(api, request, section=None):
    """In memory only; unknown sections and fields are accepted and
    ignored, as NanoMQ does (200 ``{"code":0}``)."""
    body = json_body(request, dict)
    data = body.get("data")
    if not isinstance(data, dict):
        return ok()
    for name, part in data.items():
        if section is not None and name != section:
            continue
        setter = _SETTERS.get(name)
        if setter is not None:
            setter(api, part, data)
    return ok()


# -- POST /config_update ------------------------------------------------------------


def replace_file(path, text):
    """Write ``text`` over ``path`` atomically, keeping ``path.bak``."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if os.path.exists(path):
            shutil.copy2(path, path + ".bak")
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def config_update(api, request):
    raw = read_body(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, NOT_HOCON) from None
    if not text.strip():
        raise ApiError(400, NOT_HOCON)
    path = api.config_path
    try:
        loads(text, path=path if path and os.path.isfile(path) else "<string>")
    except ConfigError as error:
        raise ApiError(400, NOT_HOCON, message=str(error), error=error_fields(error)) from None
    except Exception:  # noqa: BLE001 -- any parser failure means "not HOCON"
        raise ApiError(400, NOT_HOCON) from None
    if not path or not os.path.isfile(path):
        return dumps({"code": WRITE_FAILED})
    try:
        replace_file(path, text)
    except OSError:
        return dumps({"code": WRITE_FAILED})
    return ok()
