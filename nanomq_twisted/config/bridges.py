"""Builders for ``bridges.mqtt.*`` and ``rules.*`` (spec/config.md §11, §13).

Cross-field checks live here because only here do we know the whole bridge:
the ``server`` scheme, required topic keys of forwards/subscription entries,
and that ``ssl`` is meaningless for QUIC.
"""

from __future__ import annotations

import re

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
from .reader import Node

__all__ = ["build_bridge", "build_bridge_cache", "build_bridges", "build_rules", "parse_server", "split_server"]

SCHEMES = {"mqtt-tcp": 1883, "tls+mqtt-tcp": 8883, "mqtt-quic": 14567}
_SERVER = re.compile(r"^(?P<scheme>[a-z+\-]+)://(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:/\[\]]+))(?::(?P<port>\d+))?/?$")


def split_server(text: str):
    """``mqtt-tcp://host:port`` as (scheme, host, port); None if it is not
    a bridge server URL (unknown scheme, bad port)."""
    match = _SERVER.match(text.strip())
    if not match or match.group("scheme") not in SCHEMES:
        return None
    scheme = match.group("scheme")
    port = int(match.group("port")) if match.group("port") else SCHEMES[scheme]
    if port > 65535:
        return None
    return scheme, match.group("v6") or match.group("host"), port


def parse_server(node: Node, name: str, text: str):
    """Split ``mqtt-tcp://host:port`` into (scheme, host, port)."""
    parts = split_server(text)
    if parts is None:
        raise node.error(name, 'expected a URL like "mqtt-tcp://host:1883" with a port in 0..65535 (schemes: {}), got "{}"'.format(", ".join(s + "://" for s in SCHEMES), text))
    return parts


def _user_property(node: Node) -> tuple:
    return tuple(node.string_map("user_property").items())


def _ssl(node: Node | None) -> BridgeSsl | None:
    if node is None:
        return None
    enabled = node.boolean("enable", True)
    ssl = BridgeSsl(keyfile=node.string("keyfile"), certfile=node.string("certfile"),
                    cacertfile=node.string("cacertfile"), key_password=node.string("key_password"),
                    verify_peer=node.boolean("verify_peer", False))
    node.finish()
    return ssl if enabled else None


def _tcp(node: Node | None) -> BridgeTcp | None:
    if node is None:
        return None
    tcp = BridgeTcp(
        nodelay=node.boolean("nodelay", None), keepalive=node.boolean("keepalive", None),
        quickack=node.boolean("quickack", None), keepidle=node.duration("keepidle", None),
        keepintvl=node.duration("keepintvl", None), keepcnt=node.integer("keepcnt", None),
        sendtimeo=node.duration("sendtimeo", None), recvtimeo=node.duration("recvtimeo", None),
        bind_interface=node.string("bind_interface"),
    )
    node.finish()
    return tcp


def _spelled(node: Node, correct: str, default: int) -> int:
    """NanoMQ reads ``request_*_infomation`` (sic); accept both spellings."""
    misspelled = correct.replace("information", "infomation")
    if node.has(misspelled) and node.has(correct):
        raise node.error(correct, f"given twice (also as {misspelled})")
    key = misspelled if node.has(misspelled) else correct
    node.used.update((correct, misspelled))
    return node.integer(key, default, maximum=1)


def _conn_properties(node: Node | None) -> ConnProperties | None:
    if node is None:
        return None
    d = ConnProperties()
    props = ConnProperties(
        maximum_packet_size=node.size("maximum_packet_size", d.maximum_packet_size),
        receive_maximum=node.integer("receive_maximum", d.receive_maximum, minimum=1, maximum=65535),
        topic_alias_maximum=node.integer("topic_alias_maximum", d.topic_alias_maximum, maximum=65535),
        request_problem_information=_spelled(node, "request_problem_information", 1),
        request_response_information=_spelled(node, "request_response_information", 0),
        session_expiry_interval=node.integer("session_expiry_interval", 0, maximum=0xFFFFFFFF),
        user_property=_user_property(node),
    )
    node.finish()
    return props


def _will(node: Node | None) -> BridgeWill | None:
    if node is None:
        return None
    props = None
    pnode = node.child("properties")
    if pnode is not None:
        props = WillProperties(
            payload_format_indicator=pnode.integer("payload_format_indicator", 0, maximum=1),
            message_expiry_interval=pnode.integer("message_expiry_interval", 0),
            content_type=pnode.string("content_type"),
            response_topic=pnode.string("response_topic"),
            correlation_data=pnode.string("correlation_data"),
            will_delay_interval=pnode.integer("will_delay_interval", 0),
            user_property=_user_property(pnode),
        )
        pnode.finish()
    topic, payload = node.string("topic"), node.string("payload")
    will = BridgeWill(topic=topic or "", payload=payload or "", qos=node.integer("qos", 0, maximum=2),
                      retain=node.boolean("retain", False), properties=props)
    node.finish()
    # NanoMQ sends a will only when both topic and payload are set.
    return will if topic is not None and payload is not None else None


def _required(node: Node, key: str, what: str) -> str:
    if not node.has(key) or node.data[key] is None:
        raise node.error(key, f"required in every {what} entry")
    return node.string(key)


def _forward(node: Node) -> BridgeForward:
    fwd = BridgeForward(
        local_topic=_required(node, "local_topic", "forwards"),
        remote_topic=_required(node, "remote_topic", "forwards"),
        qos=node.integer("qos", None, maximum=2),
        retain=node.integer("retain", None, maximum=1),
        prefix=node.string("prefix"), suffix=node.string("suffix"),
    )
    for key in ("prefix", "suffix"):
        value = getattr(fwd, key)
        if value and ("+" in value or "#" in value):
            raise node.error(key, f'expected a topic fragment without "+" or "#", got "{value}"')
    node.finish()
    return fwd


def _subscription(node: Node) -> BridgeSubscription:
    sub = BridgeSubscription(
        remote_topic=_required(node, "remote_topic", "subscription"),
        local_topic=_required(node, "local_topic", "subscription"),
        qos=node.integer("qos", 0, maximum=2),
        retain=node.integer("retain", None, maximum=1),
        retain_as_published=node.integer("retain_as_published", 0, maximum=1),
        retain_handling=node.integer("retain_handling", 0, maximum=2),
        nolocal=node.boolean("nolocal", True),
        prefix=node.string("prefix"), suffix=node.string("suffix"),
        stream_id=node.integer("stream_id", 0),
    )
    node.finish()
    return sub


def _sub_properties(node: Node | None) -> SubProperties | None:
    if node is None:
        return None
    ident = node.raw("identifier", None)
    identifier = None
    if ident is not None and not (isinstance(ident, str) and ident.lower() == "unset"):
        identifier = node.integer("identifier", None, minimum=1, maximum=268435455)
    props = SubProperties(identifier=identifier, user_property=_user_property(node))
    node.finish()
    return props


def _resend_interval(node: Node) -> int:
    # NanoMQ clamps values above 10 minutes to 6 minutes; so do we.
    value = node.duration_ms("resend_interval", 5000)
    return 360000 if value > 600000 else value


def build_bridge(name: str, node: Node, vin: str | None = None) -> BridgeConfig:
    server = node.string("server")
    if not server:
        raise node.error("server", 'required (e.g. "mqtt-tcp://host:1883")')
    scheme, host, port = parse_server(node, "server", server)
    hybrid = node.string_list("hybrid_servers", ())
    schemes = {scheme}
    for index, item in enumerate(hybrid):
        schemes.add(parse_server(node, f"hybrid_servers[{index}]", item)[0])
    clientid = node.string("clientid")
    if clientid and vin:
        clientid += vin  # NANOMQ_VIN is appended, as NanoMQ does
    ssl = _ssl(node.child("ssl"))
    if ssl is not None and scheme == "mqtt-quic" and not (
        node.boolean("hybrid_bridging", False) and "tls+mqtt-tcp" in schemes
    ):
        # With hybrid_bridging the block serves the tls+mqtt-tcp:// fallbacks.
        raise node.error("ssl", "not valid for an mqtt-quic:// server")
    bridge = BridgeConfig(
        name=name, server=server, scheme=scheme, host=host, port=port,
        enable=node.boolean("enable", True),
        proto_ver=node.int_choice("proto_ver", (3, 4, 5), 4),
        clientid=clientid,
        keepalive=node.duration("keepalive", 60.0),
        backoff_max=node.duration("backoff_max", 5.0),
        clean_start=node.boolean("clean_start", True),
        username=node.string("username"), password=node.string("password"),
        transparent=node.boolean("transparent", False),
        no_local_v4=node.boolean("no_local_v4", True),
        retry_qos_0=node.boolean("retry_qos_0", False),
        ssl=ssl, tcp=_tcp(node.child("tcp")),
        conn_properties=_conn_properties(node.child("conn_properties")),
        will=_will(node.child("will")),
        forwards=tuple(_forward(n) for n in node.object_list("forwards")),
        subscription=tuple(_subscription(n) for n in node.object_list("subscription")),
        sub_properties=_sub_properties(node.child("sub_properties")),
        max_parallel_processes=node.integer("max_parallel_processes", 2, minimum=1, zero_is_default=True),
        parallel_connections=node.integer("parallel_connections", 1, minimum=1, maximum=64),
        max_send_queue_len=node.integer("max_send_queue_len", 0),
        max_recv_queue_len=node.integer("max_recv_queue_len", 0),
        resend_interval=_resend_interval(node),
        resend_wait=node.duration_ms("resend_wait", 3000),
        cancel_timeout=node.duration_ms("cancel_timeout", 10000),
        hybrid_bridging=node.boolean("hybrid_bridging", False),
        hybrid_servers=hybrid,
        quic_keepalive=node.duration("quic_keepalive", 120.0),
        quic_idle_timeout=node.duration("quic_idle_timeout", 120.0),
        quic_discon_timeout=node.duration("quic_discon_timeout", 20.0),
        quic_handshake_timeout=node.duration("quic_handshake_timeout", 20.0),
        quic_send_idle_timeout=node.duration("quic_send_idle_timeout", 2.0),
        quic_initial_rtt_ms=node.duration_ms("quic_initial_rtt_ms", 800),
        quic_max_ack_delay_ms=node.duration_ms("quic_max_ack_delay_ms", 100, maximum=16000),
        quic_0rtt=node.boolean("quic_0rtt", True),
        quic_multi_stream=node.boolean("quic_multi_stream", False),
        quic_qos_priority=node.boolean("quic_qos_priority", False),
    )
    node.finish()
    return bridge


def build_bridge_cache(node: Node | None) -> BridgeCacheConfig | None:
    if node is None:
        return None
    d = BridgeCacheConfig()
    enabled = node.boolean("enable", True)
    cache = BridgeCacheConfig(
        disk_cache_size=node.integer("disk_cache_size", d.disk_cache_size),
        mounted_file_path=node.string("mounted_file_path", d.mounted_file_path),
        flush_mem_threshold=node.integer("flush_mem_threshold", d.flush_mem_threshold,
                                         minimum=1, zero_is_default=True),
        resend_interval=node.duration_ms("resend_interval", d.resend_interval),
    )
    node.finish()
    return cache if enabled else None


def build_bridges(node: Node | None, vin: str | None = None):
    """Return (bridges, cache, unsupported) for the ``bridges`` section.

    ``bridges.aws`` and ``bridges.nng`` are accepted and kept raw.
    """
    if node is None:
        return (), None, {}
    unsupported = {}
    for kind in ("aws", "nng"):
        if node.has(kind):
            unsupported["bridges." + kind] = node.raw(kind)
    bridges, cache = [], None
    mqtt = node.child("mqtt")
    if mqtt is not None:
        cache = build_bridge_cache(mqtt.child("cache"))
        for name in mqtt.names():
            if name == "cache":
                continue
            bridges.append(build_bridge(name, mqtt.child(name), vin))
        mqtt.finish()
    node.finish()
    return tuple(bridges), cache, unsupported


# -- rules ---------------------------------------------------------------

def _sql(node: Node) -> str:
    sql = node.string("sql")
    if not sql:
        raise node.error("sql", 'required (e.g. "SELECT * FROM \\"t/#\\"")')
    # Parse now, so bad rule SQL stops start-up with the key and position
    # instead of surfacing when the rule service starts.
    from ..rules.sql import RuleSyntaxError, parse

    try:
        parse(sql)
    except RuleSyntaxError as error:
        raise node.error("sql", f"invalid rule SQL at offset {error.offset}: {error}")
    return sql


def _db_groups(node: Node | None, default_db: str) -> tuple[DbRuleGroup, ...]:
    if node is None:
        return ()
    groups = []
    for name in node.names():
        group = node.child(name)
        conn = group.child("conn")
        host, user, password, database = "localhost", None, None, default_db
        if conn is not None:
            host = conn.string("host", host)
            user, password = conn.string("username"), conn.string("password")
            database = conn.string("database", database)
            conn.finish()
        rules = []
        for item in group.object_list("rules"):
            table = item.string("table")
            if not table:
                raise item.error("table", "required (target table name)")
            rules.append(DbRule(table=table, sql=_sql(item)))
            item.finish()
        groups.append(DbRuleGroup(name=name, host=host, username=user, password=password,
                                  database=database, rules=tuple(rules)))
        group.finish()
    node.finish()
    return tuple(groups)


def build_rules(node: Node | None) -> RulesConfig:
    if node is None:
        return RulesConfig()
    sqlite = None
    snode = node.child("sqlite")
    if snode is not None:
        rules = []
        for item in snode.object_list("rules"):
            table = item.string("table")
            if not table:
                raise item.error("table", "required (target table name)")
            rules.append(SqliteRule(sql=_sql(item), table=table))
            item.finish()
        sqlite = SqliteRules(path=snode.string("path", SqliteRules.path), rules=tuple(rules))
        snode.finish()
    repub = []
    rnode = node.child("repub")
    if rnode is not None:
        for item in rnode.object_list("rules"):
            server = item.string("server")
            if not server:
                raise item.error("server", 'required (e.g. "mqtt-tcp://127.0.0.1:1883")')
            parse_server(item, "server", server)
            topic = item.string("topic")
            if not topic:
                raise item.error("topic", "required (the topic to republish to)")
            repub.append(RepubRule(
                server=server, topic=topic, sql=_sql(item),
                proto_ver=item.int_choice("proto_ver", (3, 4, 5), 4),
                clientid=item.string("clientid"),
                keepalive=item.duration("keepalive", 60.0),
                clean_start=item.boolean("clean_start", True),
                username=item.string("username"), password=item.string("password"),
            ))
            item.finish()
        rnode.finish()
    cfg = RulesConfig(
        sqlite=sqlite, repub=tuple(repub),
        mysql=_db_groups(node.child("mysql"), "mysql_rule_db"),
        postgresql=_db_groups(node.child("postgresql"), "postgres"),
        timescaledb=_db_groups(node.child("timescaledb"), "postgres"),
    )
    node.finish()
    return cfg
