"""Tests for nanomq_twisted.config: NanoMQ-compatible HOCON loading."""

import glob
import os

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.config import (
    BrokerConfig,
    ConfigError,
    MqttConfig,
    load,
    loads,
    parse_duration,
    parse_duration_ms,
    parse_size,
    to_json_dict,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "config")
ETC = os.path.join(ROOT, "etc")
# Bodies meant to be included, not loaded on their own.
INCLUDE_BODIES = ("nanomq_pwd.conf", "nanomq_acl.conf")


def fixture(name):
    return os.path.join(FIXTURES, name)


class ShippedFilesTests(SynchronousTestCase):
    def test_default_conf_values(self):
        cfg = load(os.path.join(ETC, "nanomq.conf"), env={})
        self.assertEqual(cfg.mqtt.max_packet_size, 256 * 1024 * 1024)
        self.assertEqual(cfg.mqtt.client_max_packet_size, 256 * 1024 * 1024)
        self.assertEqual(cfg.mqtt.max_mqueue_len, 2048)
        self.assertEqual(cfg.mqtt.max_topic_alias, 1024)
        self.assertEqual(cfg.mqtt.keepalive_multiplier, 1.25)
        self.assertEqual(cfg.mqtt.retry_interval, 10.0)
        self.assertEqual([(t.host, t.port) for t in cfg.listeners.tcp], [("0.0.0.0", 1883)])
        self.assertEqual((cfg.listeners.ws.port, cfg.listeners.ws.path), (8083, "/mqtt"))
        self.assertIsNone(cfg.listeners.wss)
        self.assertEqual(cfg.http_server.port, 8081)
        self.assertEqual(cfg.http_server.limit_conn, 2)
        self.assertEqual(cfg.http_server.auth_type, "basic")
        self.assertEqual(cfg.log.rotation_size, 10 * 1024 * 1024)
        self.assertEqual(cfg.log.file, "nanomq.log")
        self.assertTrue(cfg.auth.allow_anonymous)
        self.assertIsNone(cfg.auth.password)
        self.assertTrue(cfg.source_path.endswith("nanomq.conf"))

    def test_every_example_loads(self):
        files = [f for f in sorted(glob.glob(os.path.join(ETC, "examples", "*.conf")))
                 if os.path.basename(f) not in INCLUDE_BODIES]
        self.assertGreaterEqual(len(files), 7)
        for path in files:
            cfg = load(path, env={})
            self.assertIsInstance(cfg, BrokerConfig, path)

    def test_example_contents(self):
        ex = os.path.join(ETC, "examples")
        auth = load(os.path.join(ex, "auth.conf"), env={}).auth
        self.assertEqual(auth.password["device-7"], "s3cret")
        self.assertEqual(auth.acl[-1].and_[1].ipaddr, "127.0.0.1")
        bridge = load(os.path.join(ex, "bridge.conf"), env={}).bridges[0]
        self.assertEqual((bridge.host, bridge.port, bridge.scheme), ("127.0.0.1", 1885, "mqtt-tcp"))
        quic = load(os.path.join(ex, "bridge_quic.conf"), env={}).bridges[0]
        self.assertEqual((quic.scheme, quic.quic_initial_rtt_ms), ("mqtt-quic", 800))
        rules = load(os.path.join(ex, "rules.conf"), env={}).rules
        self.assertEqual(len(rules.sqlite.rules), 2)
        self.assertEqual(rules.repub[0].keepalive, 60.0)
        self.assertEqual(rules.mysql[0].rules[0].table, "broker")
        http = load(os.path.join(ex, "http_jwt.conf"), env={}).http_server
        self.assertEqual(http.jwt_public_keyfile, "etc/certs/jwt/jwtRS256.key.pub")
        self.assertEqual(http.max_body, 1048576)
        tls = load(os.path.join(ex, "tls.conf"), env={}).listeners
        self.assertEqual(tls.wss.certfile, "etc/certs/cert.pem")

    def test_json_view(self):
        cfg = load(fixture("full.conf"), env={})
        data = to_json_dict(cfg)
        import json
        json.dumps(data)
        self.assertEqual(data["mqtt"]["retry_interval"], 0.5)
        self.assertIn("or", data["auth"]["acl"][1])


class DefaultsTests(SynchronousTestCase):
    def test_empty_file(self):
        cfg = loads("", env={})
        self.assertEqual(cfg.mqtt, MqttConfig())
        self.assertEqual(cfg.mqtt.max_packet_size, 10485760)
        self.assertEqual(cfg.mqtt.keepalive_multiplier, 1.5)
        self.assertEqual(cfg.mqtt.max_mqueue_len, 1024)
        self.assertEqual(cfg.mqtt.max_topic_alias, 0)
        self.assertIsNone(cfg.http_server)
        self.assertEqual(cfg.log.to, ("console",))
        self.assertEqual(cfg.log.rotation_size, 10240)
        self.assertEqual(cfg.auth.no_match, "allow")
        self.assertIsNone(cfg.source_path)
        self.assertEqual(cfg.bridges, ())

    def test_no_listeners_section_gives_default_tcp(self):
        tcp = loads("mqtt.max_mqueue_len = 5", env={}).listeners.tcp
        self.assertEqual([(t.name, t.host, t.port, t.enable) for t in tcp],
                         [("default", "0.0.0.0", 1883, True)])

    def test_listeners_without_tcp_gives_none(self):
        cfg = loads('listeners.ws { bind = "0.0.0.0:8083/mqtt" }', env={})
        self.assertEqual(cfg.listeners.tcp, ())
        self.assertEqual(cfg.listeners.ws.port, 8083)

    def test_http_server_defaults(self):
        http = loads("http_server {}", env={}).http_server
        self.assertEqual((http.port, http.ip_addr, http.limit_conn, http.max_body),
                         (8081, "0.0.0.0", 32, 1048576))
        self.assertEqual((http.username, http.password, http.auth_type), ("admin", "public", "basic"))

    def test_durable_acks_are_the_default(self):
        # Issue 18: acknowledged means durable, in the shipped file and
        # when the key is left out (our key; NanoMQ has no such switch).
        self.assertTrue(loads("sqlite {}", env={}).sqlite.sync_ack)
        self.assertFalse(loads("sqlite { sync_ack = false }", env={}).sqlite.sync_ack)
        self.assertTrue(load(os.path.join(ETC, "nanomq.conf"), env={}).sqlite.sync_ack)

    def test_gc_threshold(self):
        # Ours (docs/configuration.md, system): 0 (Python's own) unless
        # set; a negative count is an error naming the key.
        self.assertEqual(loads("", env={}).system.gc_threshold, 0)
        self.assertEqual(loads("system { gc_threshold = 20000 }", env={}).system.gc_threshold,
                         20000)
        err = self.assertRaises(ConfigError, loads, "system {\n  gc_threshold = -1\n}",
                                env={})
        self.assertEqual(err.key, "system.gc_threshold")

    def test_client_max_packet_size_follows_max(self):
        mqtt = loads("mqtt.max_packet_size = 2KB", env={}).mqtt
        self.assertEqual(mqtt.client_max_packet_size, 2048)


class ConverterTests(SynchronousTestCase):
    def test_sizes(self):
        table = [
            (2048, 2048), ("2048", 2048), ("10B", 10), ("1K", 1024), ("1kb", 1024),
            ("10MB", 10 * 1024 ** 2), ("10m", 10 * 1024 ** 2), ("1G", 1024 ** 3),
            ("1gb", 1024 ** 3), ("256MB", 256 * 1024 ** 2),
        ]
        for given, expected in table:
            self.assertEqual(parse_size(given), expected, given)
        for bad in ("-1MB", "10XB", "MB", True, -5, "ten"):
            self.assertRaises(ValueError, parse_size, bad)

    def test_durations(self):
        table = [
            ("10s", 10.0), ("2m", 120.0), ("1h", 3600.0), ("1d", 86400.0),
            ("500ms", 0.5), (5, 5.0), ("7", 7.0), (1.5, 1.5),
        ]
        for given, expected in table:
            self.assertEqual(parse_duration(given), expected, given)
        for bad in ("ten", "-1s", "10w", True, -1):
            self.assertRaises(ValueError, parse_duration, bad)

    def test_durations_ms(self):
        table = [("800ms", 800), (800, 800), ("800", 800), ("2s", 2000), ("1m", 60000)]
        for given, expected in table:
            self.assertEqual(parse_duration_ms(given), expected, given)
        self.assertRaises(ValueError, parse_duration_ms, "fast")

    def test_file_values_are_converted(self):
        mqtt = loads("mqtt { retry_interval = 500ms\n max_awaiting_rel = 2m\n"
                     " await_rel_timeout = 3\n max_packet_size = 10m }", env={}).mqtt
        self.assertEqual(mqtt.retry_interval, 0.5)
        self.assertEqual(mqtt.max_awaiting_rel, 120.0)
        self.assertEqual(mqtt.await_rel_timeout, 3.0)
        self.assertEqual(mqtt.max_packet_size, 10 * 1024 ** 2)


class IncludeTests(SynchronousTestCase):
    def test_relative_and_nested_includes(self):
        auth = load(fixture("includes.conf"), env={}).auth
        self.assertEqual(auth.password, {"alice": "pw1", "bob": "pw2"})
        self.assertEqual(auth.acl[0].clientid, "evil")
        self.assertEqual(auth.acl[0].permit, "deny")

    def test_includes_do_not_depend_on_cwd(self):
        old = os.getcwd()
        os.chdir("/")
        self.addCleanup(os.chdir, old)
        self.assertEqual(load(fixture("includes.conf"), env={}).auth.password["bob"], "pw2")

    def test_missing_required_include(self):
        err = self.assertRaises(ConfigError, load, fixture("missing_include.conf"), env={})
        self.assertIn("does_not_exist.conf", str(err))
        self.assertIn("missing_include.conf", str(err))

    def test_missing_optional_include_is_skipped(self):
        auth = load(fixture("optional_include.conf"), env={}).auth
        self.assertEqual(auth.password, {})

    def test_syntax_error_in_included_file_names_it(self):
        err = self.assertRaises(ConfigError, load, fixture("include_syntax_error.conf"), env={})
        self.assertIn("broken_acl.conf", err.path)
        self.assertEqual(err.line, 4)


class ErrorTests(SynchronousTestCase):
    def check(self, name, key, *expected):
        err = self.assertRaises(ConfigError, load, fixture(name), env={})
        text = str(err)
        self.assertIn(name, text)
        self.assertEqual(err.key, key)
        self.assertIn(key, text)
        for piece in expected:
            self.assertIn(piece, text)
        return err

    def test_unknown_key_suggests(self):
        err = self.check("unknown_key.conf", "mqtt.retry_intervl", "unknown key",
                         'did you mean "retry_interval"')
        self.assertEqual(err.line, 3)

    def test_wrong_type(self):
        err = self.check("wrong_type.conf", "mqtt.batch_resend", "expected true or false", '"yes"')
        self.assertEqual(err.line, 2)

    def test_bad_size(self):
        err = self.check("bad_size.conf", "mqtt.max_packet_size", "expected a size", "10XB")
        self.assertEqual(err.line, 3)

    def test_bad_duration(self):
        err = self.check("bad_duration.conf", "mqtt.retry_interval",
                         'expected a duration like "10s", got "ten"')
        self.assertEqual(str(err).split(": ", 1)[1],
                         'mqtt.retry_interval: expected a duration like "10s", got "ten"'
                         ' (units: ms, s, m, h, d)')

    def test_bad_port(self):
        self.check("bad_port.conf", "listeners.tcp.bind", "0..65535")

    def test_bad_enum(self):
        self.check("bad_enum.conf", "log.level", "expected one of", "warn", '"loud"')

    def test_bad_qos(self):
        self.check("bad_qos.conf", "bridges.mqtt.b1.forwards[0].qos", "0..2")

    def test_bad_proto_ver(self):
        self.check("bad_proto_ver.conf", "bridges.mqtt.b1.proto_ver", "3, 4, 5")

    def test_bad_scheme(self):
        self.check("bad_scheme.conf", "bridges.mqtt.b1.server", "mqtt-tcp://", "tls+mqtt-tcp://",
                   "mqtt-quic://")

    def test_missing_topic_in_subscription(self):
        self.check("missing_local_topic.conf", "bridges.mqtt.b1.subscription[0].local_topic", "required")

    def test_jwt_needs_keyfile(self):
        self.check("jwt_no_keyfile.conf", "http_server.jwt.public.keyfile", "auth_type = jwt")

    def test_syntax_error_has_line(self):
        err = self.assertRaises(ConfigError, load, fixture("syntax_error.conf"), env={})
        self.assertEqual(err.line, 8)
        self.assertIn("syntax_error.conf:8:", str(err))
        self.assertIn("syntax error", str(err))

    def test_missing_file(self):
        err = self.assertRaises(ConfigError, load, fixture("nope.conf"), env={})
        self.assertIn("nope.conf", str(err))
        self.assertIn("not found", str(err))

    def test_substitution_rejected(self):
        self.check("substitution.conf", "auth.acl.rules[0].topics[0]", "substitutions")

    def test_accept_and_ignore_sections(self):
        cfg = load(fixture("full.conf"), env={})
        self.assertEqual(sorted(cfg.unsupported), ["bridges.aws", "exchange_client", "parquet"])

    def test_port_zero_allowed(self):
        cfg = loads('listeners.tcp { bind = "127.0.0.1:0" }\nhttp_server.port = 0', env={})
        self.assertEqual(cfg.listeners.tcp[0].port, 0)
        self.assertEqual(cfg.http_server.port, 0)

    def test_string_source_is_named(self):
        err = self.assertRaises(ConfigError, loads, "mqtt.nope = 1", env={})
        self.assertEqual(str(err), "<string>:1: mqtt.nope: unknown key")


class ListenerTests(SynchronousTestCase):
    def test_named_listeners(self):
        lsn = load(fixture("full.conf"), env={}).listeners
        self.assertEqual([(t.name, t.port, t.enable) for t in lsn.tcp],
                         [("default", 0, True), ("lan2", 1884, True), ("off", 1885, False)])
        self.assertEqual(lsn.tcp[0].backlog, 50)
        self.assertEqual([(s.name, s.host, s.port) for s in lsn.ssl],
                         [("default", "0.0.0.0", 8883), ("second", "::1", 8884)])
        self.assertEqual((lsn.quic.port, lsn.quic.idle_timeout), (14567, 30.0))

    def test_ssl_implies_wss_on_8086(self):
        lsn = loads('listeners.ssl { keyfile = "k.pem", certfile = "c.pem" }', env={}).listeners
        self.assertEqual((lsn.wss.host, lsn.wss.port, lsn.wss.path), ("0.0.0.0", 8086, "/mqtt"))
        self.assertEqual((lsn.wss.keyfile, lsn.wss.certfile), ("k.pem", "c.pem"))
        self.assertEqual(lsn.ssl[0].port, 8883)
        self.assertEqual(lsn.tcp, ())

    def test_wss_without_ssl_is_off(self):
        lsn = loads('listeners.wss { bind = "0.0.0.0:9000/mqtt" }', env={}).listeners
        self.assertIsNone(lsn.wss)

    def test_wss_bind_used_with_ssl(self):
        lsn = loads('listeners.ssl { keyfile = "k", certfile = "c" }\n'
                    'listeners.wss { bind = "127.0.0.1:9443/ws" }', env={}).listeners
        self.assertEqual((lsn.wss.host, lsn.wss.port, lsn.wss.path), ("127.0.0.1", 9443, "/ws"))

    def test_ssl_requires_certs(self):
        err = self.assertRaises(ConfigError, loads, 'listeners.ssl { bind = "0.0.0.0:8883" }', env={})
        self.assertIn("listeners.ssl.", err.key)


class BridgeTests(SynchronousTestCase):
    def test_full_bridge(self):
        cfg = load(fixture("full.conf"), env={})
        (bridge,) = cfg.bridges
        self.assertEqual(bridge.name, "cloud")
        self.assertEqual((bridge.scheme, bridge.host, bridge.port), ("tls+mqtt-tcp", "broker.example.com", 8883))
        self.assertEqual((bridge.proto_ver, bridge.keepalive, bridge.backoff_max), (5, 30.0, 60.0))
        self.assertFalse(bridge.clean_start)
        self.assertEqual(bridge.ssl.cacertfile, "/etc/certs/cacert.pem")
        self.assertEqual((bridge.tcp.keepidle, bridge.tcp.keepintvl, bridge.tcp.keepcnt), (60.0, 10.0, 3))
        props = bridge.conn_properties
        self.assertEqual(props.request_problem_information, 0)
        self.assertEqual(props.request_response_information, 1)
        self.assertEqual(props.user_property, (("site", "plant-7"),))
        self.assertEqual(bridge.will.properties.will_delay_interval, 5)
        self.assertEqual(bridge.forwards[0].prefix, "plant7/")
        self.assertIsNone(bridge.forwards[0].qos)
        self.assertEqual((bridge.forwards[1].qos, bridge.forwards[1].retain), (1, 0))
        self.assertEqual(bridge.subscription[1].retain_handling, 1)
        self.assertFalse(bridge.subscription[1].nolocal)
        self.assertEqual(bridge.sub_properties.identifier, 1)
        self.assertEqual(bridge.resend_interval, 360000)  # > 600000 clamps, as NanoMQ
        self.assertEqual(bridge.cancel_timeout, 8000)
        self.assertEqual(cfg.bridge_cache.disk_cache_size, 500)

    def test_both_spellings_of_information(self):
        base = ('bridges.mqtt.b { server = "mqtt-tcp://h:1883"\n conn_properties { %s } }')
        for key in ("request_problem_infomation", "request_problem_information"):
            cfg = loads(base % (key + " = 0"), env={})
            self.assertEqual(cfg.bridges[0].conn_properties.request_problem_information, 0)
        err = self.assertRaises(ConfigError, loads, base % (
            "request_problem_infomation = 0\n request_problem_information = 1"), env={})
        self.assertIn("twice", str(err))

    def test_bridge_defaults_and_vin(self):
        cfg = loads('bridges.mqtt.b { server = "mqtt-tcp://h", clientid = "c" }', env={"NANOMQ_VIN": "-V1"})
        b = cfg.bridges[0]
        self.assertEqual((b.port, b.proto_ver, b.keepalive, b.backoff_max, b.clean_start),
                         (1883, 4, 60.0, 5.0, True))
        self.assertEqual((b.max_send_queue_len, b.cancel_timeout, b.quic_handshake_timeout), (0, 10000, 20.0))
        self.assertEqual(b.clientid, "c-V1")

    def test_ssl_invalid_for_quic(self):
        err = self.assertRaises(ConfigError, loads,
                                'bridges.mqtt.q { server = "mqtt-quic://h:1", ssl { certfile = "c" } }',
                                env={})
        self.assertEqual(err.key, "bridges.mqtt.q.ssl")


class EnvTests(SynchronousTestCase):
    def test_env_overrides_defaults(self):
        env = {
            "NANOMQ_BROKER_URL": "nmq-tcp://127.0.0.1:1999",
            "NANOMQ_PROPERTY_SIZE": "64",
            "NANOMQ_MAX_PACKET_SIZE": "2MB",
            "NANOMQ_CLIENT_MAX_PACKET_SIZE": "1KB",
            "NANOMQ_MSQ_LEN": "77",
            "NANOMQ_QOS_DURATION": "3",
            "NANOMQ_ALLOW_ANONYMOUS": "false",
            "NANOMQ_WEBSOCKET_ENABLE": "true",
            "NANOMQ_WEBSOCKET_URL": "nmq-ws://0.0.0.0:8093/mqtt",
            "NANOMQ_HTTP_SERVER_ENABLE": "true",
            "NANOMQ_HTTP_SERVER_PORT": "18081",
            "NANOMQ_HTTP_SERVER_PARALLEL": "8",
            "NANOMQ_HTTP_SERVER_USERNAME": "u",
            "NANOMQ_HTTP_SERVER_PASSWORD": "p",
            "NANOMQ_LOG_LEVEL": "debug",
            "NANOMQ_LOG_TO": "file,console",
            "NANOMQ_LOG_ROTATION_SIZE": "1MB",
            "NANOMQ_LOG_ROTATION_COUNT": "2",
        }
        cfg = loads("", env=env)
        self.assertEqual([(t.host, t.port) for t in cfg.listeners.tcp], [("127.0.0.1", 1999)])
        self.assertEqual(cfg.mqtt.property_size, 64)
        self.assertEqual((cfg.mqtt.max_packet_size, cfg.mqtt.client_max_packet_size), (2 * 1024 ** 2, 1024))
        self.assertEqual((cfg.mqtt.max_mqueue_len, cfg.mqtt.retry_interval), (77, 3.0))
        self.assertFalse(cfg.auth.allow_anonymous)
        self.assertEqual(cfg.listeners.ws.port, 8093)
        self.assertEqual((cfg.http_server.port, cfg.http_server.limit_conn), (18081, 8))
        self.assertEqual((cfg.http_server.username, cfg.http_server.password), ("u", "p"))
        self.assertEqual((cfg.log.level, cfg.log.to), ("debug", ("file", "console")))
        self.assertEqual((cfg.log.rotation_size, cfg.log.rotation_count), (1024 ** 2, 2))

    def test_file_wins_over_env(self):
        cfg = loads("mqtt.max_mqueue_len = 5\nlog.level = error", env={
            "NANOMQ_MSQ_LEN": "77", "NANOMQ_LOG_LEVEL": "debug", "NANOMQ_PROPERTY_SIZE": "9"})
        self.assertEqual(cfg.mqtt.max_mqueue_len, 5)
        self.assertEqual(cfg.log.level, "error")
        self.assertEqual(cfg.mqtt.property_size, 9)

    def test_env_tcp_dropped_when_file_has_listeners_without_tcp(self):
        cfg = loads('listeners.ws { bind = "0.0.0.0:8083/mqtt" }',
                    env={"NANOMQ_BROKER_URL": "nmq-tcp://0.0.0.0:1999"})
        self.assertEqual(cfg.listeners.tcp, ())

    def test_tcp_enable_false(self):
        cfg = loads("", env={"NANOMQ_TCP_ENABLE": "false"})
        self.assertFalse(cfg.listeners.tcp[0].enable)

    def test_section_variables_do_not_enable_by_themselves(self):
        self.assertIsNone(loads("", env={"NANOMQ_HTTP_SERVER_PORT": "9"}).http_server)
        self.assertEqual(loads("http_server {}", env={"NANOMQ_HTTP_SERVER_PORT": "9"}).http_server.port, 9)

    def test_tls_env(self):
        env = {"NANOMQ_TLS_ENABLE": "true", "NANOMQ_TLS_URL": "tls+nmq-tcp://0.0.0.0:8884",
               "NANOMQ_TLS_CERT_PATH": "c.pem", "NANOMQ_TLS_KEY_PATH": "k.pem",
               "NANOMQ_TLS_CA_CERT_PATH": "ca.pem", "NANOMQ_TLS_VERIFY_PEER": "true",
               "NANOMQ_TLS_FAIL_IF_NO_PEER_CERT": "true", "NANOMQ_TLS_KEY_PASSWORD": "pw"}
        lsn = loads("", env=env).listeners
        self.assertEqual(len(lsn.tcp), 1)
        ssl = lsn.ssl[0]
        self.assertEqual((ssl.port, ssl.certfile, ssl.keyfile, ssl.cacertfile, ssl.key_password),
                         (8884, "c.pem", "k.pem", "ca.pem", "pw"))
        self.assertTrue(ssl.verify_peer and ssl.fail_if_no_peer_cert)
        self.assertEqual(lsn.wss.port, 8086)

    def test_bad_env_value_names_variable(self):
        err = self.assertRaises(ConfigError, loads, "", env={"NANOMQ_QOS_DURATION": "soon"})
        self.assertIn("NANOMQ_QOS_DURATION", str(err))
        self.assertIn("mqtt.retry_interval", str(err))

    def test_os_environ_is_default(self):
        os.environ["NANOMQ_MSQ_LEN"] = "33"
        self.addCleanup(os.environ.pop, "NANOMQ_MSQ_LEN")
        self.assertEqual(loads("").mqtt.max_mqueue_len, 33)


class DashboardConfigTests(SynchronousTestCase):
    """``http_server.dashboard`` (ours): off unless the block is there."""

    def test_off_without_the_block(self):
        http = loads("http_server { port = 8081 }", path="<t>").http_server
        self.assertEqual((http.dashboard.enable, http.dashboard.session_ttl), (False, 1800.0))

    def test_block_turns_it_on(self):
        http = loads("http_server { dashboard { session_ttl = 2m } }", path="<t>").http_server
        self.assertEqual((http.dashboard.enable, http.dashboard.session_ttl), (True, 120.0))

    def test_shipped_file_has_it_on(self):
        http = load(os.path.join(ETC, "nanomq.conf"), env={}).http_server
        self.assertEqual((http.dashboard.enable, http.dashboard.session_ttl), (True, 1800.0))

    def test_bad_values_name_the_key(self):
        for text, key in (("session_ttl = 0s", "session_ttl"), ("enable = maybe", "enable"),
                          ("sesion_ttl = 1m", "sesion_ttl")):
            err = self.assertRaises(ConfigError, loads,
                                    "http_server {\n  dashboard {\n    " + text + "\n  }\n}\n",
                                    path="<t>")
            self.assertEqual((err.key, err.line), ("http_server.dashboard." + key, 3))
