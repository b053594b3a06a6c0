"""``NANOMQ_*`` environment variables (spec/config.md §15).

NanoMQ reads the environment *before* the file, so a key written in the file
wins over the variable.  We turn the variables into a tree shaped like the
file (``NANOMQ_MSQ_LEN`` -> ``mqtt.max_mqueue_len``) and let the loader merge
the file over it; the normal typed readers then validate both, and errors in
values that came from a variable name the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import ConfigError

__all__ = ["EnvOverrides", "env_overrides", "find_config_path", "merge"]

# variable -> (dotted key, URL scheme to strip or None)
_SIMPLE = {
    "NANOMQ_BROKER_URL": ("listeners.tcp.bind", "nmq-tcp"),
    "NANOMQ_TCP_ENABLE": ("listeners.tcp.enable", None),
    "NANOMQ_DAEMON": ("system.daemon", None),
    "NANOMQ_PARALLEL": ("system.parallel", None),
    "NANOMQ_PID_FILE": ("system.pid_file", None),
    "NANOMQ_PROPERTY_SIZE": ("mqtt.property_size", None),
    "NANOMQ_MAX_PACKET_SIZE": ("mqtt.max_packet_size", None),
    "NANOMQ_CLIENT_MAX_PACKET_SIZE": ("mqtt.client_max_packet_size", None),
    "NANOMQ_MSQ_LEN": ("mqtt.max_mqueue_len", None),
    "NANOMQ_QOS_DURATION": ("mqtt.retry_interval", None),
    "NANOMQ_ALLOW_ANONYMOUS": ("auth.allow_anonymous", None),
    "NANOMQ_WEBSOCKET_ENABLE": ("listeners.ws.enable", None),
    "NANOMQ_WEBSOCKET_URL": ("listeners.ws.bind", "nmq-ws"),
    "NANOMQ_WEBSOCKET_TLS_ENABLE": ("listeners.wss.enable", None),
    "NANOMQ_WEBSOCKET_TLS_URL": ("listeners.wss.bind", "nmq-wss"),
    "NANOMQ_HTTP_SERVER_ENABLE": ("http_server.enable", None),
    "NANOMQ_HTTP_SERVER_PORT": ("http_server.port", None),
    "NANOMQ_HTTP_SERVER_PARALLEL": ("http_server.limit_conn", None),
    "NANOMQ_HTTP_SERVER_USERNAME": ("http_server.username", None),
    "NANOMQ_HTTP_SERVER_PASSWORD": ("http_server.password", None),
    "NANOMQ_HTTP_SERVER_AUTH_TYPE": ("http_server.auth_type", None),
    "NANOMQ_HTTP_SERVER_JWT_PUBLIC_KEYFILE": ("http_server.jwt.public.keyfile", None),
    "NANOMQ_TLS_ENABLE": ("listeners.ssl.enable", None),
    "NANOMQ_TLS_URL": ("listeners.ssl.bind", "tls+nmq-tcp"),
    "NANOMQ_TLS_CA_CERT_PATH": ("listeners.ssl.cacertfile", None),
    "NANOMQ_TLS_CERT_PATH": ("listeners.ssl.certfile", None),
    "NANOMQ_TLS_KEY_PATH": ("listeners.ssl.keyfile", None),
    "NANOMQ_TLS_KEY_PASSWORD": ("listeners.ssl.key_password", None),
    "NANOMQ_TLS_VERIFY_PEER": ("listeners.ssl.verify_peer", None),
    "NANOMQ_TLS_FAIL_IF_NO_PEER_CERT": ("listeners.ssl.fail_if_no_peer_cert", None),
    "NANOMQ_LOG_LEVEL": ("log.level", None),
    "NANOMQ_LOG_DIR": ("log.dir", None),
    "NANOMQ_LOG_FILE": ("log.file", None),
    "NANOMQ_LOG_ROTATION_SIZE": ("log.rotation.size", None),
    "NANOMQ_LOG_ROTATION_COUNT": ("log.rotation.count", None),
    "NANOMQ_LOG_UDS_ADDR": ("log.uds_addr", None),
}

# Sections whose mere presence enables a feature.  A variable such as
# NANOMQ_HTTP_SERVER_PORT must not switch the REST API on by itself, so
# unless the matching *_ENABLE variable or the file says so, the section
# created from the environment is marked disabled.
_SWITCHED = {
    "http_server": "NANOMQ_HTTP_SERVER_ENABLE",
    "listeners.ssl": "NANOMQ_TLS_ENABLE",
    "listeners.ws": "NANOMQ_WEBSOCKET_ENABLE",
    "listeners.wss": "NANOMQ_WEBSOCKET_TLS_ENABLE",
}


class EnvOverrides:
    """Result of reading the environment.

    :ivar tree: nested dict in file key space.
    :ivar origins: dotted key -> variable name, for error messages.
    :ivar switched_off: sections that exist only because of variables and
        must stay disabled unless the file writes them.
    :ivar vin: value of NANOMQ_VIN (appended to bridge client ids) or None.
    """

    def __init__(self) -> None:
        self.tree: dict = {}
        self.origins: dict = {}
        self.switched_off: list[str] = []
        self.vin: str | None = None

    def set(self, key: str, value, var: str) -> None:
        node = self.tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        self.origins[key] = var


def _strip_scheme(value: str, scheme: str, var: str) -> str:
    prefix = scheme + "://"
    if value.startswith(prefix):
        return value[len(prefix):]
    if "://" in value:
        raise ConfigError(f'expected a URL like "{prefix}0.0.0.0:1883", got "{value}"',
                          path="environment " + var)
    return value


def env_overrides(env: Mapping[str, str]) -> EnvOverrides:
    out = EnvOverrides()
    for var, (key, scheme) in _SIMPLE.items():
        value = env.get(var)
        if value is None or value == "":
            continue
        if scheme:
            value = _strip_scheme(value.strip(), scheme, var)
        out.set(key, value, var)
    threads = env.get("NANOMQ_MAX_TASKQ_THREAD")
    if threads:  # NanoMQ uses it for both thread counts
        out.set("system.max_taskq_thread", threads, "NANOMQ_MAX_TASKQ_THREAD")
        out.set("system.num_taskq_thread", threads, "NANOMQ_MAX_TASKQ_THREAD")
    sinks = env.get("NANOMQ_LOG_TO")
    if sinks:
        items = [s.strip() for s in sinks.replace("|", ",").split(",") if s.strip()]
        out.set("log.to", items, "NANOMQ_LOG_TO")
    url = env.get("NANOMQ_HTTP_SERVER_URL")
    if url:
        # Either a bare address or http://host[:port].
        rest = url.split("://", 1)[-1].rstrip("/")
        host, _, port = rest.rpartition(":") if rest.count(":") == 1 else (rest, "", "")
        out.set("http_server.ip_addr", host, "NANOMQ_HTTP_SERVER_URL")
        if port:
            out.set("http_server.port", port, "NANOMQ_HTTP_SERVER_URL")
    out.vin = env.get("NANOMQ_VIN") or None
    for section, switch in _SWITCHED.items():
        if switch not in env and _get(out.tree, section) is not None:
            out.switched_off.append(section)
    return out


def _get(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def merge(base: dict, over: dict) -> dict:
    """Deep-merge ``over`` onto a copy of ``base``; ``over`` wins."""
    result = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def find_config_path(cli_path: str | None = None,
                     env: Mapping[str, str] | None = None) -> str | None:
    """Pick the file to load as NanoMQ does: ``--conf``, then
    ``NANOMQ_CONF_PATH``, then ``./nanomq.conf``, then ``/etc/nanomq.conf``;
    None means "start with built-in defaults"."""
    env = os.environ if env is None else env
    if cli_path:
        return cli_path
    if env.get("NANOMQ_CONF_PATH"):
        return env["NANOMQ_CONF_PATH"]
    for candidate in ("nanomq.conf", "/etc/nanomq.conf"):
        if os.path.exists(candidate):
            return candidate
    return None
