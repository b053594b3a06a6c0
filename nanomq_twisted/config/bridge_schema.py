"""Frozen dataclasses for ``bridges.mqtt.*`` and ``rules.*``.

Defaults are NanoMQ's code defaults (spec/config.md §11, §13); where the
code zero-fills something nonsensical (repub rules' ``proto_ver = 0``) we
use the documented default instead and say so in docs/configuration.md.
Integer-millisecond keys keep NanoMQ's unit and carry ``ms`` semantics.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BridgeCacheConfig",
    "BridgeConfig",
    "BridgeForward",
    "BridgeSsl",
    "BridgeSubscription",
    "BridgeTcp",
    "BridgeWill",
    "ConnProperties",
    "DbRule",
    "DbRuleGroup",
    "RepubRule",
    "RulesConfig",
    "SqliteRule",
    "SqliteRules",
    "SubProperties",
    "WillProperties",
]


@dataclass(frozen=True)
class BridgeSsl:
    keyfile: str | None = None
    certfile: str | None = None
    cacertfile: str | None = None
    key_password: str | None = None
    verify_peer: bool = False


@dataclass(frozen=True)
class BridgeTcp:
    """Socket tuning; None means "leave the OS default"."""

    nodelay: bool | None = None
    keepalive: bool | None = None
    quickack: bool | None = None
    keepidle: float | None = None
    keepintvl: float | None = None
    keepcnt: int | None = None
    sendtimeo: float | None = None
    recvtimeo: float | None = None
    bind_interface: str | None = None


@dataclass(frozen=True)
class ConnProperties:
    maximum_packet_size: int = 0
    receive_maximum: int = 65535
    topic_alias_maximum: int = 0
    request_problem_information: int = 1
    request_response_information: int = 0
    session_expiry_interval: int = 0
    user_property: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class WillProperties:
    payload_format_indicator: int = 0
    message_expiry_interval: int = 0
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: str | None = None
    will_delay_interval: int = 0
    user_property: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BridgeWill:
    topic: str
    payload: str
    qos: int = 0
    retain: bool = False
    properties: WillProperties | None = None


@dataclass(frozen=True)
class BridgeForward:
    local_topic: str
    remote_topic: str
    qos: int | None = None
    retain: int | None = None
    prefix: str | None = None
    suffix: str | None = None


@dataclass(frozen=True)
class BridgeSubscription:
    remote_topic: str
    local_topic: str
    qos: int = 0
    retain: int | None = None
    retain_as_published: int = 0
    retain_handling: int = 0
    nolocal: bool = True
    prefix: str | None = None
    suffix: str | None = None
    stream_id: int = 0


@dataclass(frozen=True)
class SubProperties:
    identifier: int | None = None
    user_property: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BridgeConfig:
    """One ``bridges.mqtt.<name>`` block.

    ``server`` is kept verbatim; ``scheme`` (``mqtt-tcp``, ``tls+mqtt-tcp``
    or ``mqtt-quic``), ``host`` and ``port`` are parsed from it.
    """

    name: str
    server: str
    scheme: str
    host: str
    port: int
    enable: bool = True
    proto_ver: int = 4
    clientid: str | None = None
    keepalive: float = 60.0
    backoff_max: float = 5.0
    clean_start: bool = True
    username: str | None = None
    password: str | None = None
    transparent: bool = False
    no_local_v4: bool = True
    retry_qos_0: bool = False
    ssl: BridgeSsl | None = None
    tcp: BridgeTcp | None = None
    conn_properties: ConnProperties | None = None
    will: BridgeWill | None = None
    forwards: tuple[BridgeForward, ...] = ()
    subscription: tuple[BridgeSubscription, ...] = ()
    sub_properties: SubProperties | None = None
    max_parallel_processes: int = 2
    #: Our key: client connections to the remote (forwards sharded by topic).
    parallel_connections: int = 1
    max_send_queue_len: int = 0
    max_recv_queue_len: int = 0
    resend_interval: int = 5000
    resend_wait: int = 3000
    cancel_timeout: int = 10000
    hybrid_bridging: bool = False
    hybrid_servers: tuple[str, ...] = ()
    quic_keepalive: float = 120.0
    quic_idle_timeout: float = 120.0
    quic_discon_timeout: float = 20.0
    quic_handshake_timeout: float = 20.0
    quic_send_idle_timeout: float = 2.0
    quic_initial_rtt_ms: int = 800
    quic_max_ack_delay_ms: int = 100
    quic_0rtt: bool = True
    quic_multi_stream: bool = False
    quic_qos_priority: bool = False


@dataclass(frozen=True)
class BridgeCacheConfig:
    disk_cache_size: int = 102400
    mounted_file_path: str = "./"
    flush_mem_threshold: int = 100
    resend_interval: int = 5000


@dataclass(frozen=True)
class SqliteRule:
    sql: str
    table: str


@dataclass(frozen=True)
class SqliteRules:
    path: str = "/tmp/rule_engine.db"
    rules: tuple[SqliteRule, ...] = ()


@dataclass(frozen=True)
class RepubRule:
    server: str
    topic: str
    sql: str
    proto_ver: int = 4
    clientid: str | None = None
    keepalive: float = 60.0
    clean_start: bool = True
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class DbRule:
    table: str
    sql: str


@dataclass(frozen=True)
class DbRuleGroup:
    """One ``rules.mysql.<name>`` (or postgresql/timescaledb) block."""

    name: str
    host: str = "localhost"
    username: str | None = None
    password: str | None = None
    database: str = "mysql_rule_db"
    rules: tuple[DbRule, ...] = ()


@dataclass(frozen=True)
class RulesConfig:
    sqlite: SqliteRules | None = None
    repub: tuple[RepubRule, ...] = ()
    mysql: tuple[DbRuleGroup, ...] = ()
    postgresql: tuple[DbRuleGroup, ...] = ()
    timescaledb: tuple[DbRuleGroup, ...] = ()
