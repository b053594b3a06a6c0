"""Builders for the broker's own sections: system, mqtt, listeners,
http_server, log, auth, webhook, sqlite, preset.session and plugin.

Each builder takes a :class:`~.reader.Node` (or None when the section is
absent), reads every key it understands and calls ``finish()`` so unknown
keys are reported.  NanoMQ's "presence = enabled" rule is applied here: an
absent section gives None (or the default), an ``enable = false`` inside a
section behaves like an absent section.
"""

from __future__ import annotations

import re

from .flood import listener_limits, positive_duration
from .reader import Node
from .schema import (
    AclRule,
    AclWho,
    AuthConfig,
    DashboardConfig,
    HttpAuthConfig,
    HttpAuthRequest,
    HttpServerConfig,
    ListenersConfig,
    LogConfig,
    MqttConfig,
    PluginConfig,
    PresetSession,
    PresetTopic,
    QuicListener,
    SqliteConfig,
    SslListener,
    SystemConfig,
    TcpListener,
    WebhookConfig,
    WebhookEvent,
    WsListener,
)

__all__ = [
    "build_auth",
    "build_http_server",
    "build_listeners",
    "build_log",
    "build_mqtt",
    "build_plugin",
    "build_preset_sessions",
    "build_sqlite",
    "build_system",
    "build_webhook",
    "parse_bind",
]

_BIND = re.compile(r"^(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^:/\[\]]*)):(?P<port>\d+)(?P<path>/.*)?$")


def parse_bind(node: Node, name: str, default: str, with_path: bool = False):
    """Read a ``host:port`` (or ``host:port/path``) bind string.

    Port 0 is allowed: tests bind an ephemeral port.
    """
    text = node.string(name, default)
    match = _BIND.match(text.strip())
    shape = '"host:port/path"' if with_path else '"host:port"'
    if not match or (match.group("path") and not with_path):
        raise node.error(name, f'expected {shape} like "{default}", got "{text}"')
    port = int(match.group("port"))
    if port > 65535:
        raise node.error(name, f"expected a port in 0..65535, got {port}")
    host = match.group("v6") if match.group("v6") is not None else match.group("host")
    host = host or "0.0.0.0"
    if with_path:
        return host, port, match.group("path") or "/mqtt"
    return host, port


# -- system / mqtt --------------------------------------------------------

def build_system(node: Node | None, pid_file: str | None = None) -> SystemConfig:
    base = SystemConfig()
    if pid_file:
        base = SystemConfig(pid_file=pid_file)
    if node is None:
        return base
    cfg = SystemConfig(
        daemon=node.boolean("daemon", base.daemon),
        num_taskq_thread=node.integer("num_taskq_thread", base.num_taskq_thread),
        max_taskq_thread=node.integer("max_taskq_thread", base.max_taskq_thread),
        parallel=node.integer("parallel", base.parallel),
        enable_ipc_internal=node.boolean("enable_ipc_internal", base.enable_ipc_internal),
        hook_ipc_url=node.string("hook_ipc_url", base.hook_ipc_url),
        cmd_ipc_url=node.string("cmd_ipc_url", base.cmd_ipc_url),
        pid_file=node.string("pid_file", base.pid_file),
        gc_threshold=node.integer("gc_threshold", base.gc_threshold, minimum=0),
    )
    node.finish()
    return cfg


def build_mqtt(node: Node | None) -> MqttConfig:
    d = MqttConfig()
    if node is None:
        return d
    max_packet = node.size("max_packet_size", d.max_packet_size, minimum=1, zero_is_default=True)
    cfg = MqttConfig(
        property_size=node.integer("property_size", d.property_size, minimum=1, zero_is_default=True),
        max_packet_size=max_packet,
        client_max_packet_size=node.size("client_max_packet_size", max_packet, minimum=1,
                                         zero_is_default=True),
        max_mqueue_len=node.integer("max_mqueue_len", d.max_mqueue_len, minimum=1, zero_is_default=True),
        max_topic_alias=node.integer("max_topic_alias", d.max_topic_alias, maximum=65535),
        retry_interval=node.duration("retry_interval", d.retry_interval),
        keepalive_multiplier=node.number("keepalive_multiplier", d.keepalive_multiplier,
                                         minimum=0, exclusive_minimum=True),
        max_inflight_window=node.integer("max_inflight_window", d.max_inflight_window),
        max_awaiting_rel=node.duration("max_awaiting_rel", d.max_awaiting_rel),
        await_rel_timeout=node.duration("await_rel_timeout", d.await_rel_timeout),
        batch_resend=node.boolean("batch_resend", d.batch_resend),
        max_keepalive=node.integer("max_keepalive", d.max_keepalive, maximum=65535),
        max_subscriptions=node.integer("max_subscriptions", d.max_subscriptions),
        max_topic_levels=node.integer("max_topic_levels", d.max_topic_levels,
                                      minimum=1, maximum=65535),
        max_topic_length=node.integer("max_topic_length", d.max_topic_length,
                                      minimum=1, maximum=65535),
        max_retained_messages=node.integer("max_retained_messages", d.max_retained_messages),
        max_retained_bytes=node.size("max_retained_bytes", d.max_retained_bytes),
        max_mqueue_bytes=node.size("max_mqueue_bytes", d.max_mqueue_bytes),
    )
    if cfg.retry_interval <= 0:
        raise node.error("retry_interval", f"expected a duration > 0, got {cfg.retry_interval}")
    node.finish()
    return cfg


# -- listeners -----------------------------------------------------------

_TCP_KEYS = ("bind", "enable", "backlog", "max_connections")
_SSL_KEYS = ("bind", "enable", "backlog", "max_connections", "keyfile", "certfile", "cacertfile",
             "key_password", "verify_peer", "fail_if_no_peer_cert",
             "use_identity_as_username", "allow_test_certificates")


def _named_children(node: Node, main_keys) -> list[str]:
    """Object members that are not main-block keys are named listeners."""
    return [n for n in node.names() if n not in main_keys and isinstance(node.data[n], dict)]


def _tcp(node: Node, name: str) -> TcpListener:
    host, port = parse_bind(node, "bind", "0.0.0.0:1883")
    return TcpListener(name=name, host=host, port=port,
                       enable=node.boolean("enable", True),
                       backlog=node.integer("backlog", 1024, minimum=1),
                       max_connections=node.integer("max_connections", 0, minimum=0))


def _ssl(node: Node, name: str) -> SslListener:
    host, port = parse_bind(node, "bind", "0.0.0.0:8883")
    lsn = SslListener(
        name=name, host=host, port=port,
        enable=node.boolean("enable", True),
        keyfile=node.string("keyfile"),
        certfile=node.string("certfile"),
        cacertfile=node.string("cacertfile"),
        key_password=node.string("key_password"),
        verify_peer=node.boolean("verify_peer", False),
        fail_if_no_peer_cert=node.boolean("fail_if_no_peer_cert", False),
        backlog=node.integer("backlog", 1024, minimum=1),
        use_identity_as_username=node.boolean("use_identity_as_username", False),
        max_connections=node.integer("max_connections", 0, minimum=0),
        allow_test_certificates=node.boolean("allow_test_certificates", False),
    )
    if lsn.enable:
        for key in ("certfile", "keyfile"):
            if getattr(lsn, key) is None:
                raise node.error(key, "required for an ssl listener (a PEM file path)")
    return lsn


def build_listeners(node: Node | None, tcp_from_file: bool = True) -> ListenersConfig:
    """Apply NanoMQ's listener rules (spec/config.md §4).

    No ``listeners`` section at all -> one TCP listener on 0.0.0.0:1883;
    ``listeners`` without ``tcp`` -> no plain TCP listener.  ``tcp_from_file``
    is False when the file has ``listeners`` but no ``tcp`` and the ``tcp``
    child only came from environment variables: the file wins, as in NanoMQ.
    """
    if node is None:
        return ListenersConfig(tcp=(TcpListener("default", "0.0.0.0", 1883),))
    tcp: list[TcpListener] = []
    tcp_node = node.child("tcp")
    if tcp_node is not None and tcp_from_file:
        tcp.append(_tcp(tcp_node, "default"))
        for child in _named_children(tcp_node, _TCP_KEYS):
            sub = tcp_node.child(child)
            if not sub.has("bind"):
                raise sub.error("bind", "required for a named tcp listener")
            tcp.append(_tcp(sub, child))
            sub.finish()
        tcp_node.finish()

    ssl: list[SslListener] = []
    main_ssl = None
    ssl_node = node.child("ssl")
    if ssl_node is not None:
        named = _named_children(ssl_node, _SSL_KEYS)
        if any(k in ssl_node.data for k in _SSL_KEYS) or not named:
            main_ssl = _ssl(ssl_node, "default")
            ssl.append(main_ssl)
        for child in named:
            sub = ssl_node.child(child)
            if not sub.has("bind"):
                raise sub.error("bind", "required for a named ssl listener")
            ssl.append(_ssl(sub, child))
            sub.finish()
        ssl_node.finish()

    ws = None
    ws_node = node.child("ws")
    if ws_node is not None:
        host, port, path = parse_bind(ws_node, "bind", "0.0.0.0:8083/mqtt", with_path=True)
        if ws_node.boolean("enable", True):
            ws = WsListener(host, port, path)
        ws_node.finish()

    # NanoMQ quirk kept on purpose: the main ssl block implies WSS, on
    # listeners.wss.bind or the default 0.0.0.0:8086/mqtt; wss without ssl
    # starts nothing.  WSS reuses the main ssl block's certificates.
    wss = None
    wss_node = node.child("wss")
    wss_bind = ("0.0.0.0", 8086, "/mqtt")
    wss_enabled = True
    if wss_node is not None:
        wss_bind = parse_bind(wss_node, "bind", "0.0.0.0:8086/mqtt", with_path=True)
        wss_enabled = wss_node.boolean("enable", True)
        wss_node.finish()
    if main_ssl is not None and main_ssl.enable and wss_enabled:
        wss = WsListener(
            *wss_bind, keyfile=main_ssl.keyfile, certfile=main_ssl.certfile,
            cacertfile=main_ssl.cacertfile, key_password=main_ssl.key_password,
            verify_peer=main_ssl.verify_peer, fail_if_no_peer_cert=main_ssl.fail_if_no_peer_cert,
            use_identity_as_username=main_ssl.use_identity_as_username,
            allow_test_certificates=main_ssl.allow_test_certificates,
        )

    quic = None
    quic_node = node.child("quic")
    if quic_node is not None:
        host, port = parse_bind(quic_node, "bind", "0.0.0.0:14567")
        enabled = quic_node.boolean("enable", True)
        keyfile = quic_node.string("keyfile")
        certfile = quic_node.string("certfile")
        for key, value in (("keyfile", keyfile), ("certfile", certfile)):
            if value is None and enabled:
                raise quic_node.error(key, "required for the quic listener (a PEM file path)")
        if enabled:
            quic = QuicListener(
                host=host, port=port, keyfile=keyfile, certfile=certfile,
                cacertfile=quic_node.string("cacertfile"),
                key_password=quic_node.string("key_password"),
                idle_timeout=quic_node.duration("idle_timeout", 120.0),
                allow_test_certificates=quic_node.boolean("allow_test_certificates", False),
            )
        else:
            quic_node.used.update(("cacertfile", "key_password", "idle_timeout",
                                   "allow_test_certificates"))
        quic_node.finish()
    limits = listener_limits(node)
    node.finish()
    return ListenersConfig(tcp=tuple(tcp), ssl=tuple(ssl), ws=ws, wss=wss, quic=quic, **limits)


# -- http_server / log ---------------------------------------------------

def build_http_server(node: Node | None) -> HttpServerConfig | None:
    if node is None:
        return None
    d = HttpServerConfig()
    enabled = node.boolean("enable", True)
    keyfile = None
    jwt = node.child("jwt")
    if jwt is not None:
        public = jwt.child("public")
        if public is not None:
            keyfile = public.string("keyfile")
            public.finish()
        jwt.finish()
    cfg = HttpServerConfig(
        port=node.integer("port", d.port, maximum=65535),
        ip_addr=node.string("ip_addr", d.ip_addr),
        limit_conn=node.integer("limit_conn", d.limit_conn, minimum=1, zero_is_default=True),
        max_body=node.size("max_body", d.max_body, minimum=1, zero_is_default=True),
        username=node.string("username", d.username),
        password=node.string("password", d.password),
        auth_type=node.enum("auth_type", ("basic", "jwt", "no_auth"), d.auth_type),
        jwt_public_keyfile=keyfile,
        dashboard=_dashboard(node.child("dashboard")),
        request_timeout=positive_duration(node, "request_timeout", d.request_timeout),
    )
    if cfg.auth_type == "jwt" and not keyfile:
        raise node.error("jwt.public.keyfile", 'required when auth_type = jwt (an RSA public key PEM path)')
    node.finish()
    return cfg if enabled else None


def _dashboard(node: Node | None) -> DashboardConfig:
    """``http_server.dashboard`` (our keys); absent: the dashboard is off."""
    d = DashboardConfig()
    if node is None:
        return d
    cfg = DashboardConfig(
        enable=node.boolean("enable", True),
        session_ttl=node.duration("session_ttl", d.session_ttl),
        login_attempts=node.integer("login_attempts", d.login_attempts, minimum=0),
        login_window=node.duration("login_window", d.login_window),
    )
    for key, value in (("session_ttl", cfg.session_ttl), ("login_window", cfg.login_window)):
        if value <= 0:
            raise node.error(key, f"expected a duration > 0, got {value}")
    node.finish()
    return cfg


_LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "fatal")
_LOG_SINKS = ("file", "console", "syslog", "uds")


def build_log(node: Node | None) -> LogConfig:
    d = LogConfig()
    if node is None:
        return d
    to = node.string_list("to", d.to)
    for sink in to:
        if sink.lower() not in _LOG_SINKS:
            raise node.error("to", "expected a list of {}, got \"{}\"".format(", ".join(_LOG_SINKS), sink))
    to = tuple(dict.fromkeys(s.lower() for s in to))
    size, count = d.rotation_size, d.rotation_count
    rotation = node.child("rotation")
    if rotation is not None:
        size = rotation.size("size", size, minimum=1, zero_is_default=True)
        count = rotation.integer("count", count, minimum=1, zero_is_default=True)
        rotation.finish()
    cfg = LogConfig(
        to=to,
        level=node.enum("level", _LOG_LEVELS, d.level),
        dir=node.string("dir", d.dir),
        file=node.string("file", d.file),
        rotation_size=size,
        rotation_count=count,
        uds_addr=node.string("uds_addr"),
    )
    if "uds" in cfg.to and not cfg.uds_addr:
        raise node.error("uds_addr", 'required when log.to contains "uds"')
    node.finish()
    return cfg


# -- auth ----------------------------------------------------------------

_PLACEHOLDERS = ("%u", "%c", "%a", "%r", "%P", "%p", "%C", "%d", "%A", "%t", "%m")


def _who(node: Node) -> dict:
    ipaddrs = node.string_list("ipaddrs", None)
    return {"username": node.string("username"), "clientid": node.string("clientid"),
                "ipaddr": node.string("ipaddr"), "ipaddrs": ipaddrs}


def _acl_rule(node: Node) -> AclRule:
    if not node.has("permit"):
        raise node.error("permit", "required (allow or deny)")
    combos = {}
    for combo in ("and", "or"):
        if node.has(combo):
            items = []
            for item in node.object_list(combo):
                items.append(AclWho(**_who(item)))
                item.finish()
            combos[combo + "_"] = tuple(items)
    rule = AclRule(
        permit=node.enum("permit", ("allow", "deny"), None),
        action=node.enum("action", ("publish", "subscribe", "pubsub"), "pubsub"),
        topics=node.string_list("topics", None),
        **_who(node), **combos,
    )
    node.finish()
    return rule


def _acl(node: Node | None):
    if node is None:
        return None
    enabled = node.boolean("enable", True)
    rules = []
    for rule in node.object_list("rules"):
        rules.append(_acl_rule(rule))
    node.finish()
    return tuple(rules) if enabled else None


def _password(node: Node | None):
    """Username -> password table.  ``enable`` is a switch, not a user."""
    if node is None:
        return None
    enabled = node.boolean("enable", True)
    table = {}
    for user, value in node.data.items():
        if user == "enable":
            continue
        node.used.add(user)
        if isinstance(value, (dict, list, bool)) or value is None:
            raise node.error(user, "expected a password string")
        table[user] = str(value)
    return table if enabled else None


def _http_request(node: Node | None) -> HttpAuthRequest | None:
    if node is None:
        return None
    url = node.string("url")
    if not url:
        raise node.error("url", "required (the HTTP endpoint to call)")
    params = node.string_map("params")
    for name, value in params.items():
        if value not in _PLACEHOLDERS:
            raise node.error("params." + name,
                             "expected one of {}, got \"{}\"".format(" ".join(_PLACEHOLDERS), value))
    ssl = node.raw("ssl", None)
    req = HttpAuthRequest(url=url, method=node.enum("method", ("post", "get"), "post"),
                          headers=node.string_map("headers"), params=params,
                          ssl=dict(ssl) if isinstance(ssl, dict) else None)
    node.finish()
    return req


def _http_auth(node: Node | None) -> HttpAuthConfig | None:
    if node is None:
        return None
    d = HttpAuthConfig()
    enabled = node.boolean("enable", True)
    cfg = HttpAuthConfig(
        timeout=node.duration("timeout", d.timeout),
        connect_timeout=node.duration("connect_timeout", d.connect_timeout),
        pool_size=node.integer("pool_size", d.pool_size, minimum=1, zero_is_default=True),
        cache_ttl=node.duration("cache_ttl", d.cache_ttl),
        auth_req=_http_request(node.child("auth_req")),
        super_req=_http_request(node.child("super_req")),
        acl_req=_http_request(node.child("acl_req")),
    )
    node.raw("ssl")
    node.finish()
    return cfg if enabled else None


def build_auth(node: Node | None) -> AuthConfig:
    d = AuthConfig()
    if node is None:
        return d
    cache_max, cache_ttl = d.cache_max_size, d.cache_ttl
    cache = node.child("cache")
    if cache is not None:
        cache_max = cache.integer("max_size", cache_max)
        cache_ttl = cache.duration("ttl", cache_ttl)
        cache.finish()
    cfg = AuthConfig(
        allow_anonymous=node.boolean("allow_anonymous", d.allow_anonymous),
        no_match=node.enum("no_match", ("allow", "deny"), d.no_match),
        deny_action=node.enum("deny_action", ("ignore", "disconnect"), d.deny_action),
        cache_max_size=cache_max,
        cache_ttl=cache_ttl,
        password=_password(node.child("password")),
        acl=_acl(node.child("acl")),
        http_auth=_http_auth(node.child("http_auth")),
        reload_interval=node.duration("reload_interval", d.reload_interval),
    )
    node.raw("enable")
    node.finish()
    return cfg


# -- webhook / sqlite / preset / plugin ----------------------------------

WEBHOOK_EVENTS = (
    "on_client_connect", "on_client_connack", "on_client_connected",
    "on_client_disconnected", "on_client_subscribe", "on_client_unsubscribe",
    "on_session_subscribed", "on_session_unsubscribed", "on_session_terminated",
    "on_message_publish", "on_message_delivered", "on_message_acked",
)


def build_webhook(node: Node | None) -> WebhookConfig | None:
    if node is None:
        return None
    enabled = node.boolean("enable", True)
    url = node.string("url")
    if not url and enabled:
        raise node.error("url", "required (where webhook events are POSTed)")
    events = []
    for item in node.object_list("events"):
        if not item.has("event"):
            raise item.error("event", "required (one of {})".format(", ".join(WEBHOOK_EVENTS)))
        events.append(WebhookEvent(event=item.enum("event", WEBHOOK_EVENTS, None),
                                   topic=item.string("topic")))
        item.finish()
    encoding = "plain"
    body = node.child("body")
    if body is not None:
        encoding = body.enum("encoding", ("plain", "base64", "base62"), encoding)
        body.finish()
    ssl = node.raw("ssl", None)
    cfg = WebhookConfig(
        url=url or "",
        headers=node.string_map("headers"),
        body_encoding=encoding,
        pool_size=node.integer("pool_size", 32, minimum=1, zero_is_default=True),
        cancel_timeout=node.duration_ms("cancel_timeout", 5000),
        events=tuple(events),
        ssl=dict(ssl) if isinstance(ssl, dict) else None,
    )
    node.finish()
    return cfg if enabled else None


def build_sqlite(node: Node | None) -> SqliteConfig | None:
    if node is None:
        return None
    d = SqliteConfig()
    enabled = node.boolean("enable", True)
    cfg = SqliteConfig(
        disk_cache_size=node.integer("disk_cache_size", d.disk_cache_size),
        mounted_file_path=node.string("mounted_file_path", d.mounted_file_path),
        flush_mem_threshold=node.integer("flush_mem_threshold", d.flush_mem_threshold,
                                         minimum=1, zero_is_default=True),
        resend_interval=node.duration_ms("resend_interval", d.resend_interval),
        sync_ack=node.boolean("sync_ack", d.sync_ack),
    )
    node.finish()
    return cfg if enabled else None


def build_preset_sessions(node: Node | None) -> tuple[PresetSession, ...]:
    if node is None:
        return ()
    session_node = node.child("session")
    node.finish()
    if session_node is None:
        return ()
    sessions = []
    for name in session_node.names():
        sub = session_node.child(name)
        clientid = sub.string("clientid")
        if not clientid:
            raise sub.error("clientid", "required (the client owning the preset session)")
        topics = []
        for item in sub.object_list("topic"):
            if not item.has("remote_topic"):
                raise item.error("remote_topic", "required (the topic filter to store)")
            topics.append(PresetTopic(
                remote_topic=item.string("remote_topic"),
                qos=item.integer("qos", 0, maximum=2),
                retain=item.integer("retain", None, maximum=1),
                retain_as_published=item.integer("retain_as_published", 0, maximum=1),
                retain_handling=item.integer("retain_handling", 0, maximum=2),
                stream_id=item.integer("stream_id", 0),
            ))
            item.finish()
        sessions.append(PresetSession(name=name, clientid=clientid, topics=tuple(topics)))
        sub.finish()
    session_node.finish()
    return tuple(sessions)


def build_plugin(node: Node | None) -> PluginConfig:
    if node is None:
        return PluginConfig()
    libs = []
    for item in node.object_list("libs"):
        path = item.string("path")
        if not path:
            raise item.error("path", "required (path of the plugin library)")
        libs.append(path)
        item.finish()
    node.finish()
    return PluginConfig(libs=tuple(libs))
