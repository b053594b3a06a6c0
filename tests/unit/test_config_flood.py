# -*- test-case-name: tests.unit.test_config_flood -*-
"""
Our keys against floods and slow peers (config/flood.py): ``rate_limit``,
``listeners.connect_timeout`` / ``handshake_timeout`` /
``max_connections_per_address`` and ``http_server.request_timeout`` --
their defaults, both EMQX rate spellings, and errors naming the key.
"""

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.config import ConfigError, loads

TCP = 'listeners.tcp { bind = "127.0.0.1:0" }\n'


class DefaultsTests(SynchronousTestCase):
    def test_off_or_bounded_by_default(self):
        cfg = loads(TCP + "http_server { port = 0 }\n", path="<test>")
        self.assertIsNone(cfg.rate_limit.conn_messages_in)
        self.assertIsNone(cfg.rate_limit.conn_bytes_in)
        self.assertEqual(cfg.listeners.max_connections_per_address, 0)
        self.assertEqual(cfg.listeners.connect_timeout, 10.0)
        self.assertEqual(cfg.listeners.handshake_timeout, 10.0)
        self.assertEqual(cfg.http_server.request_timeout, 15.0)

    def test_no_listeners_section(self):
        cfg = loads("", path="<test>")
        self.assertEqual(cfg.listeners.connect_timeout, 10.0)


class RateTests(SynchronousTestCase):
    def rates(self, text):
        return loads(TCP + "rate_limit {" + text + "}\n", path="<test>").rate_limit

    def test_emqx4_form(self):
        rates = self.rates('conn_messages_in = "100,10s"\nconn_bytes_in = "100KB,10s"')
        self.assertEqual(rates.conn_messages_in, (100.0, 10.0))
        self.assertEqual(rates.conn_bytes_in, (102400.0, 10.0))

    def test_emqx5_form(self):
        rates = self.rates('conn_messages_in = "1000/s"\nconn_bytes_in = "1MB/10s"')
        self.assertEqual(rates.conn_messages_in, (1000.0, 1.0))
        self.assertEqual(rates.conn_bytes_in, (1048576.0, 10.0))

    def test_off(self):
        rates = self.rates('conn_messages_in = "infinity"\nconn_bytes_in = 0')
        self.assertIsNone(rates.conn_messages_in)
        self.assertIsNone(rates.conn_bytes_in)

    def test_errors_name_the_key(self):
        for text in ('conn_messages_in = "100"', 'conn_messages_in = "many,10s"',
                     'conn_bytes_in = "1MB,0s"', "conn_bytes_in = true",
                     'conn_message_in = "1,1s"'):
            with self.assertRaises(ConfigError) as caught:
                self.rates(text)
            self.assertIn("rate_limit.conn_", str(caught.exception), text)


class ListenerKeysTests(SynchronousTestCase):
    def test_read(self):
        cfg = loads(TCP + "listeners { connect_timeout = 500ms, handshake_timeout = 2s,"
                    " max_connections_per_address = 50 }\n", path="<test>")
        listeners = cfg.listeners
        self.assertEqual((listeners.connect_timeout, listeners.handshake_timeout,
                          listeners.max_connections_per_address), (0.5, 2.0, 50))
        self.assertEqual(len(listeners.tcp), 1)  # the merged block keeps its listener

    def test_zero_timeouts_are_refused(self):
        for key in ("connect_timeout", "handshake_timeout"):
            with self.assertRaises(ConfigError) as caught:
                loads(TCP + f"listeners.{key} = 0\n", path="<test>")
            self.assertIn(f"listeners.{key}", str(caught.exception))
        with self.assertRaises(ConfigError) as caught:
            loads(TCP + "http_server { request_timeout = 0s }\n", path="<test>")
        self.assertIn("http_server.request_timeout", str(caught.exception))

    def test_request_timeout(self):
        cfg = loads(TCP + "http_server { request_timeout = 3s }\n", path="<test>")
        self.assertEqual(cfg.http_server.request_timeout, 3.0)
