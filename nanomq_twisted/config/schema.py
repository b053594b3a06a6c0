"""Frozen dataclasses describing a loaded broker configuration.

Field names follow NanoMQ's keys where they exist so that the docs, the
REST ``/configuration`` output and the code read the same.  Defaults are
NanoMQ's *code* defaults for an absent key (spec/config.md), not the values
of the shipped ``nanomq.conf``; sizes are bytes, durations float seconds,
and ``*_ms``-style keys stay integer milliseconds as in NanoMQ.

Bridge and rule sections live in :mod:`.bridge_schema`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .bridge_schema import BridgeCacheConfig, BridgeConfig, RulesConfig

__all__ = [
    "AclRule",
    "AclWho",
    "AuthConfig",
    "BrokerConfig",
    "DashboardConfig",
    "HttpAuthConfig",
    "HttpAuthRequest",
    "HttpServerConfig",
    "ListenersConfig",
    "LogConfig",
    "MqttConfig",
    "PluginConfig",
    "PresetSession",
    "PresetTopic",
    "QuicListener",
    "RateLimitConfig",
    "SqliteConfig",
    "SslListener",
    "SystemConfig",
    "TcpListener",
    "WebhookConfig",
    "WebhookEvent",
    "WsListener",
]


@dataclass(frozen=True)
class SystemConfig:
    """Process knobs.  The threading ones are accepted but have no effect:
    Twisted runs one reactor thread."""

    daemon: bool = False
    num_taskq_thread: int = 0
    max_taskq_thread: int = 0
    parallel: int = 0
    enable_ipc_internal: bool = True
    hook_ipc_url: str = "ipc:///tmp/nanomq_hook.ipc"
    cmd_ipc_url: str = "ipc:///tmp/nanomq_cmd.ipc"
    pid_file: str = "/tmp/nanomq/nanomq.pid"
    #: Ours: the cyclic garbage collector's first threshold (tap.py); 0,
    #: the default, leaves Python's own (700, 10, 10).
    gc_threshold: int = 0


@dataclass(frozen=True)
class MqttConfig:
    property_size: int = 32
    max_packet_size: int = 10485760
    client_max_packet_size: int = 10485760
    max_mqueue_len: int = 1024
    max_topic_alias: int = 0
    retry_interval: float = 10.0
    keepalive_multiplier: float = 1.5
    max_inflight_window: int = 2048
    max_awaiting_rel: float = 10.0
    await_rel_timeout: float = 10.0
    batch_resend: bool = False
    #: Our key: the largest keepalive (s) a client may use; 0 = no limit.
    max_keepalive: int = 0
    # State quotas (our keys, EMQX's names where EMQX has one; see
    # docs/configuration.md "Quotas").  Each bounds memory a client can
    # make the broker hold; 0 = no limit where the docs allow it.
    #: Subscriptions one session may hold (EMQX ``mqtt.max_subscriptions``).
    max_subscriptions: int = 10000
    #: Levels of a topic name or filter (EMQX ``mqtt.max_topic_levels``).
    max_topic_levels: int = 128
    #: UTF-8 bytes of a topic name or filter (the protocol's 65535).
    max_topic_length: int = 65535
    #: Retained messages kept (EMQX ``retainer.max_retained_messages``).
    max_retained_messages: int = 1000000
    #: Bytes (topic + payload) of all retained messages together.
    max_retained_bytes: int = 256 * 1024 * 1024
    #: Bytes (topic + payload) queued for one session, beside the count
    #: limit ``max_mqueue_len``.
    max_mqueue_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True)
class TcpListener:
    name: str
    host: str
    port: int
    enable: bool = True
    backlog: int = 1024
    #: Our key (Mosquitto's): open connections allowed; 0 = unlimited.
    max_connections: int = 0


@dataclass(frozen=True)
class SslListener:
    name: str
    host: str
    port: int
    enable: bool = True
    keyfile: str | None = None
    certfile: str | None = None
    cacertfile: str | None = None
    key_password: str | None = None
    verify_peer: bool = False
    fail_if_no_peer_cert: bool = False
    backlog: int = 1024
    #: Our extension (Mosquitto's option): a verified client certificate's
    #: subject CN replaces the CONNECT user name.
    use_identity_as_username: bool = False
    #: Our key (Mosquitto's): open connections allowed; 0 = unlimited.
    max_connections: int = 0
    #: Our key: accept the published TEST certificates of etc/certs/
    #: (transport/published_keys.py); refused otherwise.
    allow_test_certificates: bool = False


@dataclass(frozen=True)
class WsListener:
    """A WebSocket listener.  For ``wss`` the TLS fields are copied from the
    main ``listeners.ssl`` block (NanoMQ shares them); for ``ws`` they are
    None/False."""

    host: str
    port: int
    path: str = "/mqtt"
    keyfile: str | None = None
    certfile: str | None = None
    cacertfile: str | None = None
    key_password: str | None = None
    verify_peer: bool = False
    fail_if_no_peer_cert: bool = False
    use_identity_as_username: bool = False
    allow_test_certificates: bool = False


@dataclass(frozen=True)
class QuicListener:
    """MQTT over QUIC listener (our extension; NanoMQ only dials QUIC)."""

    host: str
    port: int
    keyfile: str
    certfile: str
    cacertfile: str | None = None
    key_password: str | None = None
    idle_timeout: float = 120.0
    allow_test_certificates: bool = False


@dataclass(frozen=True)
class ListenersConfig:
    tcp: tuple[TcpListener, ...] = ()
    ssl: tuple[SslListener, ...] = ()
    ws: WsListener | None = None
    wss: WsListener | None = None
    quic: QuicListener | None = None
    #: Our keys, for every MQTT listener (docs/configuration.md): seconds
    #: from the accept (after the TLS/WebSocket handshake) to a complete
    #: CONNECT, however the bytes trickle in (EMQX's ``idle_timeout``).
    connect_timeout: float = 10.0
    #: Seconds to finish the TLS handshake, then the WebSocket upgrade,
    #: and for a QUIC connection to open its MQTT stream.
    handshake_timeout: float = 10.0
    #: MQTT connections open at once from one IP address, over all
    #: listeners; 0 = unlimited.
    max_connections_per_address: int = 0


@dataclass(frozen=True)
class RateLimitConfig:
    """``rate_limit`` (our section; EMQX 4's ``zone.<zone>.rate_limit``
    key names): what one connection may send, as ``(amount, seconds)``
    (``"100,10s"``), None = no limit.  Over it, the broker stops reading
    that connection until the budget is back (backpressure, no
    disconnect)."""

    #: PUBLISH packets.
    conn_messages_in: tuple[float, float] | None = None
    #: Bytes of MQTT (after TLS/WebSocket framing is removed).
    conn_bytes_in: tuple[float, float] | None = None


@dataclass(frozen=True)
class DashboardConfig:
    """``http_server.dashboard`` (ours, not NanoMQ's): the web dashboard
    served at ``/`` and ``/dashboard/`` by the HTTP server.

    ``session_ttl`` is how long a login lasts without a request (seconds);
    every authenticated request renews it.  ``login_attempts`` failed
    logins from one address within ``login_window`` seconds hold that
    address back (429) until the window closes; 0 attempts: no limit."""

    enable: bool = False
    session_ttl: float = 1800.0
    login_attempts: int = 5
    login_window: float = 300.0


@dataclass(frozen=True)
class HttpServerConfig:
    port: int = 8081
    ip_addr: str = "0.0.0.0"
    limit_conn: int = 32
    max_body: int = 1048576
    username: str = "admin"
    password: str = "public"
    auth_type: str = "basic"
    jwt_public_keyfile: str | None = None
    dashboard: DashboardConfig = DashboardConfig()
    #: Our key: seconds from a connection's open (or its previous
    #: response) to a complete request, headers and body; also the idle
    #: timeout of a kept-alive connection.
    request_timeout: float = 15.0


@dataclass(frozen=True)
class LogConfig:
    to: tuple[str, ...] = ("console",)
    level: str = "warn"
    dir: str = "./"
    file: str = "nanomq.log"
    rotation_size: int = 10240
    rotation_count: int = 5
    uds_addr: str | None = None


@dataclass(frozen=True)
class AclWho:
    """One element of an ACL rule's ``and``/``or`` list."""

    username: str | None = None
    clientid: str | None = None
    ipaddr: str | None = None
    ipaddrs: tuple[str, ...] | None = None


@dataclass(frozen=True)
class AclRule:
    """One ``auth.acl.rules`` entry; None means "selector not given"."""

    permit: str
    action: str = "pubsub"
    topics: tuple[str, ...] | None = None
    username: str | None = None
    clientid: str | None = None
    ipaddr: str | None = None
    ipaddrs: tuple[str, ...] | None = None
    and_: tuple[AclWho, ...] | None = None
    or_: tuple[AclWho, ...] | None = None


@dataclass(frozen=True)
class HttpAuthRequest:
    url: str
    method: str = "post"
    headers: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    ssl: dict | None = None


@dataclass(frozen=True)
class HttpAuthConfig:
    timeout: float = 5.0
    connect_timeout: float = 5.0
    pool_size: int = 32
    cache_ttl: float = 0.0
    auth_req: HttpAuthRequest | None = None
    super_req: HttpAuthRequest | None = None
    acl_req: HttpAuthRequest | None = None


@dataclass(frozen=True)
class AuthConfig:
    allow_anonymous: bool = True
    no_match: str = "allow"
    deny_action: str = "ignore"
    cache_max_size: int = 32
    cache_ttl: float = 60.0
    password: dict | None = None
    acl: tuple[AclRule, ...] | None = None
    http_auth: HttpAuthConfig | None = None
    #: Our key: seconds between checks of the configuration files for a
    #: change that triggers an auth reload; 0 = off.
    reload_interval: float = 0.0


@dataclass(frozen=True)
class WebhookEvent:
    event: str
    topic: str | None = None


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    headers: dict = field(default_factory=dict)
    body_encoding: str = "plain"
    pool_size: int = 32
    cancel_timeout: int = 5000
    events: tuple[WebhookEvent, ...] = ()
    ssl: dict | None = None


@dataclass(frozen=True)
class SqliteConfig:
    disk_cache_size: int = 102400
    mounted_file_path: str = "./"
    flush_mem_threshold: int = 100
    resend_interval: int = 5000
    #: Our key: hold PUBACK/PUBREC (and PUBREL) until what the publish
    #: stored is on disk.  On by default: acknowledged means durable
    #: (docs/compatibility.md).
    sync_ack: bool = True


@dataclass(frozen=True)
class PresetTopic:
    remote_topic: str
    qos: int = 0
    retain: int | None = None
    retain_as_published: int = 0
    retain_handling: int = 0
    stream_id: int = 0


@dataclass(frozen=True)
class PresetSession:
    name: str
    clientid: str
    topics: tuple[PresetTopic, ...] = ()


@dataclass(frozen=True)
class PluginConfig:
    libs: tuple[str, ...] = ()


@dataclass(frozen=True)
class BrokerConfig:
    """The whole configuration.  ``unsupported`` keeps the raw dicts of
    sections we accept but do not implement (``exchange_client``,
    ``parquet``, ``bridges.aws``, ``bridges.nng``), keyed by dotted name."""

    system: SystemConfig = field(default_factory=SystemConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    listeners: ListenersConfig = field(default_factory=ListenersConfig)
    http_server: HttpServerConfig | None = None
    log: LogConfig = field(default_factory=LogConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    webhook: WebhookConfig | None = None
    sqlite: SqliteConfig | None = None
    preset_sessions: tuple[PresetSession, ...] = ()
    bridges: tuple[BridgeConfig, ...] = ()
    bridge_cache: BridgeCacheConfig | None = None
    rules: RulesConfig = field(default_factory=RulesConfig)
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    plugin: PluginConfig = field(default_factory=PluginConfig)
    unsupported: dict[str, Any] = field(default_factory=dict)
    source_path: str | None = None
    #: Absolute paths of the file at ``source_path`` and of every file it
    #: includes (directly or not); empty for text that came from no file.
    source_files: tuple[str, ...] = ()
