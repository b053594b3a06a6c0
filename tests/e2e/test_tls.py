"""
MQTT over TLS (``listeners.ssl``) with paho-mqtt and raw ``ssl`` sockets,
against certificates generated for each test.
"""

import dataclasses
import os
import socket
import ssl

from twisted.internet import defer, reactor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from nanomq_twisted.config import load, loads
from nanomq_twisted.tap import make_app
from nanomq_twisted.transport.tls import TLSConfigError, certificate_options

from ..certs import KEY_PASSWORD, make_certs
from .support import BASE_CONF, TIMEOUT, Clients, in_thread
from .transport_support import (
    CONNACK_OK,
    mqtt_connect,
    new_certs,
    read_until_closed,
    ssl_block,
    start_with,
    tls_socket,
)

NO_WSS = "listeners.wss { enable = false }\n"


def tls_client(clients, certs, client_id, protocol, with_cert=False, ca=None):
    client = clients(client_id, protocol)
    kwargs = {"ca_certs": ca or certs.ca}
    if with_cert:
        kwargs.update(certfile=certs.client_cert, keyfile=certs.client_key)
    client.paho.tls_set(**kwargs)
    return client


def roundtrip(subscriber, publisher, topic):
    """``subscriber`` gets what ``publisher`` sends at QoS 0, 1 and 2."""
    subscriber.subscribe(topic, 2)
    for qos in (0, 1, 2):
        payload = (f"qos{qos}").encode()
        publisher.publish(topic, payload, qos)
        message = subscriber.expect()
        assert (message.topic, message.payload, message.qos) == (topic, payload, qos), message


class TLSListenerTests(TestCase):
    timeout = 60

    def setUp(self):
        self.certs = new_certs(self)

    @defer.inlineCallbacks
    def start(self, **options):
        conf = ssl_block(self.certs, **options) + NO_WSS
        self.running, ports = yield start_with(self, conf, ("tcp", "ssl"))
        self.tcp_clients = Clients(self, ports["tcp"])
        self.tls_clients = Clients(self, ports["ssl"])
        return ports

    @defer.inlineCallbacks
    def test_server_auth_v311_and_v5(self):
        """Plain server authentication; pub/sub over TLS for 3.1.1 and 5,
        and across TCP <-> TLS."""
        yield self.start()

        def scenario():
            for protocol in (4, 5):
                sub = tls_client(self.tls_clients, self.certs, f"tls-sub-{protocol}", protocol)
                pub = tls_client(self.tls_clients, self.certs, f"tls-pub-{protocol}", protocol)
                sub.connect()
                pub.connect()
                roundtrip(sub, pub, f"tls/{protocol}")
                tcp = self.tcp_clients(f"tcp-{protocol}", protocol)
                tcp.connect()
                roundtrip(sub, tcp, f"cross/tcp-to-tls/{protocol}")
                roundtrip(tcp, sub, f"cross/tls-to-tcp/{protocol}")

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_client_certificate_verified(self):
        """verify_peer + fail_if_no_peer_cert: a client certificate signed by
        the CA is accepted."""
        yield self.start(verify_peer=True, fail_if_no_peer_cert=True)

        def scenario():
            for protocol in (4, 5):
                client = tls_client(
                    self.tls_clients, self.certs, f"cert-{protocol}", protocol, with_cert=True
                )
                client.connect()
                roundtrip(client, client, f"cert/{protocol}")

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_encrypted_key(self):
        """key_password decrypts an encrypted keyfile."""
        yield self.start(keyfile=self.certs.server_key_encrypted, key_password=KEY_PASSWORD)

        def scenario():
            client = tls_client(self.tls_clients, self.certs, "enc", 4)
            client.connect()

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_wrong_ca_fails_cleanly(self):
        """A client trusting another CA fails the handshake; the broker keeps
        serving."""
        ports = yield self.start()

        def scenario():
            with self.assertRaises(ssl.SSLCertVerificationError):
                tls_socket(ports["ssl"], self.certs.other_ca)
            client = tls_client(self.tls_clients, self.certs, "after-wrong-ca", 5)
            client.connect()

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_no_client_cert_refused(self):
        """fail_if_no_peer_cert: without a client certificate no CONNACK
        ever comes back (TLS 1.3 reports it after the client's handshake)."""
        ports = yield self.start(verify_peer=True, fail_if_no_peer_cert=True)

        def scenario():
            try:
                sock = tls_socket(ports["ssl"], self.certs.ca)
            except (ssl.SSLError, ConnectionResetError):
                return
            try:
                try:
                    sock.sendall(mqtt_connect("no-cert"))
                except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
                    return
                self.assertEqual(read_until_closed(sock), b"")
            finally:
                sock.close()

        yield in_thread(scenario)

        def still_serving():
            sock = tls_socket(
                ports["ssl"], self.certs.ca, self.certs.client_cert, self.certs.client_key
            )
            try:
                sock.sendall(mqtt_connect("with-cert"))
                return sock.recv(4)
            finally:
                sock.close()

        self.assertEqual((yield in_thread(still_serving)), CONNACK_OK)

    @defer.inlineCallbacks
    def test_optional_client_cert(self):
        """verify_peer without fail_if_no_peer_cert: a client may send no
        certificate."""
        ports = yield self.start(verify_peer=True)

        def scenario():
            sock = tls_socket(ports["ssl"], self.certs.ca)
            try:
                sock.sendall(mqtt_connect("optional"))
                self.assertEqual(sock.recv(4), CONNACK_OK)
            finally:
                sock.close()

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_garbage_before_handshake(self):
        """Bytes that are not a ClientHello: closed, logged once with the peer
        address, and the broker keeps serving."""
        ports = yield self.start()
        events = []

        def observer(event):
            if "TLS handshake" in event.get("log_format", ""):
                events.append(event)

        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

        def garbage():
            sock = socket.create_connection(("127.0.0.1", ports["ssl"]), timeout=TIMEOUT)
            try:
                local_port = sock.getsockname()[1]
                sock.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00" * 50)
                read_until_closed(sock)
                return local_port
            finally:
                sock.close()

        local_port = yield in_thread(garbage)
        self.assertEqual([(e["host"], e["port"]) for e in events], [("127.0.0.1", local_port)])
        # Never reached the core: not one byte was given to an MQTT protocol.
        self.assertEqual(self.running.broker.stats.bytes_received, 0)
        self.assertEqual(self.running.broker.connections, {})

        def scenario():
            client = tls_client(self.tls_clients, self.certs, "after-garbage", 4)
            client.connect()

        yield in_thread(scenario)

    @defer.inlineCallbacks
    def test_named_listeners(self):
        """listeners.ssl.<name> starts ``ssl.<name>`` next to the main one."""
        conf = (
            ssl_block(self.certs) + ssl_block(self.certs, name="second") + NO_WSS
        )
        _running, ports = yield start_with(self, conf, ("tcp", "ssl", "ssl.second"))
        clients = Clients(self, ports["ssl.second"])

        def scenario():
            client = tls_client(clients, self.certs, "second", 4)
            client.connect()

        yield in_thread(scenario)

    def test_bad_key_password_fails_start(self):
        """A wrong key_password stops the listener from starting, loudly."""
        conf = BASE_CONF + ssl_block(
            self.certs, keyfile=self.certs.server_key_encrypted, key_password="wrong"
        ) + NO_WSS
        service = make_app(loads(conf, path="<test>"), reactor).service
        self.assertRaises(TLSConfigError, service.startService)
        self.assertEqual(len(self.flushLoggedErrors(TLSConfigError)), 1)
        return service.stopService()



class ShippedExampleTests(TestCase):
    """etc/examples/tls.conf points at certificates that exist and load."""

    def test_example_tls_conf(self):
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        config = load(os.path.join(root, "etc", "examples", "tls.conf"))
        for listener in (config.listeners.ssl[0], config.listeners.wss):
            absolute = {
                key: os.path.join(root, getattr(listener, key))
                for key in ("keyfile", "certfile", "cacertfile")
            }
            certificate_options(dataclasses.replace(listener, verify_peer=True, **absolute))


IDENTITY_AUTH = """
auth {
    allow_anonymous = false
    password = { "alice": "pw" }
}
"""


class IdentityAsUsernameTests(TestCase):
    """``use_identity_as_username``: the verified client certificate's CN
    (alice) is the user name, whatever CONNECT says (bob); authentication
    runs on it.  The password table knows only alice, so a CONNECT as bob
    is admitted only through the certificate."""

    timeout = 60

    def setUp(self):
        self.certs = make_certs(self.mktemp(), client_cn="alice")

    @defer.inlineCallbacks
    def start(self, identity):
        conf = ssl_block(
            self.certs, verify_peer=True, use_identity_as_username=identity
        ) + 'listeners.wss { bind = "127.0.0.1:0/mqtt" }\n' + IDENTITY_AUTH
        running, ports = yield start_with(self, conf, ("tcp", "ssl", "wss"))
        self.connacks = {}

        def observer(event, conn=None, code=None, **_):
            if event == "client_connack":
                self.connacks[conn.client_id] = (conn.username, code)

        running.broker.events.listen("client_connack", observer)
        self.addCleanup(running.broker.events.unlisten, "client_connack", observer)
        return ports

    def client(self, clients, client_id, protocol, with_cert=True, websocket=False):
        kwargs = {"transport": "websockets"} if websocket else {}
        client = clients(client_id, protocol, **kwargs)
        if websocket:
            client.paho.ws_set_options(path="/mqtt")
        tls = {"ca_certs": self.certs.ca}
        if with_cert:
            tls.update(certfile=self.certs.client_cert, keyfile=self.certs.client_key)
        client.paho.tls_set(**tls)
        client.paho.username_pw_set("bob", "pw")
        return client

    @defer.inlineCallbacks
    def test_certificate_cn_is_the_username(self):
        ports = yield self.start(identity=True)
        tls_clients = Clients(self, ports["ssl"])
        wss_clients = Clients(self, ports["wss"])
        tcp_clients = Clients(self, ports["tcp"])

        def scenario():
            for protocol in (4, 5):
                self.client(tls_clients, f"id-tls-{protocol}", protocol).connect()
                client = self.client(wss_clients, f"id-wss-{protocol}", protocol, websocket=True)
                client.connect()
                roundtrip(client, client, f"identity/{protocol}")
            # Without a certificate (verify_peer alone makes it optional)
            # CONNECT's bob stands, and the table refuses him; so does TCP.
            _, code, _ = self.client(tls_clients, "no-cert", 5, with_cert=False).connect(
                expect_success=False
            )
            self.assertEqual(code, 0x86)
            tcp = tcp_clients("tcp-bob", 5)
            tcp.paho.username_pw_set("bob", "pw")
            self.assertEqual(tcp.connect(expect_success=False)[1], 0x86)

        yield in_thread(scenario)
        self.assertEqual(
            self.connacks,
            {
                "id-tls-4": ("alice", 0), "id-tls-5": ("alice", 0),
                "id-wss-4": ("alice", 0), "id-wss-5": ("alice", 0),
                "no-cert": ("bob", 0x86), "tcp-bob": ("bob", 0x86),
            },
        )

    @defer.inlineCallbacks
    def test_off_by_default(self):
        """Without the option the certificate does not name the user: bob
        stays bob and is refused."""
        ports = yield self.start(identity=False)
        tls_clients = Clients(self, ports["ssl"])

        def scenario():
            _, code, _ = self.client(tls_clients, "plain", 5).connect(expect_success=False)
            self.assertEqual(code, 0x86)

        yield in_thread(scenario)
        self.assertEqual(self.connacks, {"plain": ("bob", 0x86)})
