"""NanoMQ-compatible configuration: HOCON ``nanomq.conf`` -> frozen dataclasses.

Pure (stdlib + pyhocon): nothing here imports twisted, klein, aioquic or
wsproto, so the core and the tests can use it without a reactor.

    cfg = load("etc/nanomq.conf")          # env defaults to os.environ
    cfg.mqtt.retry_interval                # 10.0 (seconds, float)
    cfg.listeners.tcp[0].port              # 1883

Every problem is a :class:`ConfigError` naming file, key path and expectation.
See docs/configuration.md for every key and our differences from NanoMQ.
"""

from .bridge_schema import (
    BridgeCacheConfig,
    BridgeConfig,
    BridgeForward,
    BridgeSsl,
    BridgeSubscription,
    BridgeTcp,
    BridgeWill,
    ConnProperties,
    DbRule,
    DbRuleGroup,
    RepubRule,
    RulesConfig,
    SqliteRule,
    SqliteRules,
    SubProperties,
    WillProperties,
)
from .env import find_config_path
from .errors import ConfigError
from .jsonify import to_json_dict
from .loader import load, loads
from .schema import (
    AclRule,
    AclWho,
    AuthConfig,
    BrokerConfig,
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
from .units import parse_duration, parse_duration_ms, parse_size

__all__ = [
    "AclRule",
    "AclWho",
    "AuthConfig",
    "BridgeCacheConfig",
    "BridgeConfig",
    "BridgeForward",
    "BridgeSsl",
    "BridgeSubscription",
    "BridgeTcp",
    "BridgeWill",
    "BrokerConfig",
    "ConfigError",
    "ConnProperties",
    "DashboardConfig",
    "DbRule",
    "DbRuleGroup",
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
    "RepubRule",
    "RulesConfig",
    "SqliteConfig",
    "SqliteRule",
    "SqliteRules",
    "SslListener",
    "SubProperties",
    "SystemConfig",
    "TcpListener",
    "WebhookConfig",
    "WebhookEvent",
    "WillProperties",
    "WsListener",
    "find_config_path",
    "load",
    "loads",
    "parse_duration",
    "parse_duration_ms",
    "parse_size",
    "to_json_dict",
]
