# -*- test-case-name: tests.e2e.test_http_auth -*-
"""
``auth.http_auth`` against a real local HTTP service started by each test:
allow, deny, failing (500), slow (no answer within ``timeout``) and down
(closed port), for CONNECT (``auth_req``) and PUBLISH/SUBSCRIBE
(``super_req``/``acl_req``); other clients keep being served meanwhile.
``%C``/``%d`` from a TLS/WSS client certificate.
"""

import json
import threading
from urllib.parse import parse_qs

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from ..certs import make_certs
from .support import TIMEOUT, Clients, in_thread, start_broker
from .transport_support import ssl_block, start_with

BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87

CONF = """
auth {
    allow_anonymous = true
    http_auth {
        timeout = 1s
        connect_timeout = 1s
        auth_req {
            url = "http://127.0.0.1:%(port)d/auth"
            method = post
            headers.content-type = "application/x-www-form-urlencoded"
            params = { clientid = "%%c", username = "%%u", password = "%%P",
                       ipaddr = "%%a", proto = "%%r", port = "%%p" }
        }
        super_req {
            url = "http://127.0.0.1:%(port)d/super"
            method = get
            params = { username = "%%u", access = "%%A" }
        }
        acl_req {
            url = "http://127.0.0.1:%(port)d/acl"
            method = post
            headers.content-type = "application/json"
            params = { clientid = "%%c", username = "%%u", access = "%%A", topic = "%%t" }
        }
    }
}
"""


class AuthService(Resource):
    """Decides by username (CONNECT) or topic (ACL); ``slow`` never answers."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.seen = []
        self.slow_arrived = threading.Event()
        self.held = []

    def render(self, request):
        path = request.path.decode()
        if request.method == b"GET":
            args = {k.decode(): v[0].decode() for k, v in request.args.items()}
        elif request.getHeader("content-type") == "application/json":
            args = json.loads(request.content.read())
        else:
            args = {k: v[0] for k, v in parse_qs(request.content.read().decode()).items()}
        self.seen.append((path, args))
        user = args.get("username")
        topic = args.get("topic", "")
        if path == "/auth":
            decision = {"allow": 200, "root": 200, "slow": None, "error": 500}.get(user, 403)
        elif path == "/super":
            decision = 200 if user == "root" else 403
        else:
            if topic.startswith("slow/"):
                decision = None
            else:
                decision = 200 if all(t.startswith("ok/") for t in topic.split(",")) else 403
        if decision is None:
            self.held.append(request)
            request.notifyFinish().addErrback(lambda failure: None)
            self.slow_arrived.set()
            return NOT_DONE_YET
        request.setResponseCode(decision)
        return b"ok" if decision == 200 else b"no"


@defer.inlineCallbacks
def start_service(testcase):
    service = AuthService()
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(service))
    testcase.addCleanup(port.stopListening)
    return service, port.getHost().port


@defer.inlineCallbacks
def closed_port():
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(Resource()))
    number = port.getHost().port
    yield port.stopListening()
    return number


class HttpAuthTests(unittest.TestCase):
    @defer.inlineCallbacks
    def run_with_service(self, scenario):
        service, port = yield start_service(self)
        running = yield start_broker(self, CONF % {"port": port})
        clients = Clients(self, running.port)
        yield in_thread(scenario, clients, service, running)

    def connect_as(self, clients, username, protocol=5, client_id=None):
        client = clients(client_id or "id-" + username, protocol)
        client.paho.username_pw_set(username, "pw-" + username)
        return client, client.connect(expect_success=False)[1].value

    def test_allow_sends_placeholders(self):
        def scenario(clients, service, running):
            _, code = self.connect_as(clients, "allow")
            self.assertEqual(code, 0)
            path, args = service.seen[0]
            self.assertEqual(path, "/auth")
            self.assertEqual(args, {
                "clientid": "id-allow", "username": "allow", "password": "pw-allow",
                "ipaddr": "127.0.0.1", "proto": "MQTT", "port": str(running.port),
            })

        return self.run_with_service(scenario)

    def test_placeholder_values_cannot_inject_parameters(self):
        """``%c``/``%u`` holding ``&``, ``=``, ``+``, ``#``, ``/`` reach the
        service as one value each (the form encoding of auth-acl.md 4.2,
        shared by bodies and query strings): nobody becomes "allow" by
        naming themselves ``mallory&username=allow``."""
        def scenario(clients, service, running):
            username = "mallory&username=allow"
            client = clients("a+/#&clientid=root", 5)
            client.paho.username_pw_set(username, "pw")
            self.assertEqual(client.connect(expect_success=False)[1].value,
                             BAD_USER_NAME_OR_PASSWORD)
            _path, args = service.seen[-1]
            self.assertEqual((args["username"], args["clientid"]),
                             (username, "a+/#&clientid=root"))

        return self.run_with_service(scenario)

    def test_deny(self):
        def scenario(clients, service, running):
            self.assertEqual(self.connect_as(clients, "mallory")[1], BAD_USER_NAME_OR_PASSWORD)
            # 3.1.1 return code 4 (paho reports it as 0x86).
            self.assertEqual(self.connect_as(clients, "mallory", 4, "v3")[1],
                             BAD_USER_NAME_OR_PASSWORD)

        return self.run_with_service(scenario)

    def test_service_error_denies(self):
        def scenario(clients, service, running):
            self.assertEqual(self.connect_as(clients, "error")[1], BAD_USER_NAME_OR_PASSWORD)

        return self.run_with_service(scenario)

    def test_slow_service_times_out_others_served(self):
        def scenario(clients, service, running):
            slow = clients("id-slow", 5)
            slow.paho.username_pw_set("slow", "pw")
            slow.paho.connect("127.0.0.1", running.port)
            slow.paho.loop_start()
            self.assertTrue(service.slow_arrived.wait(TIMEOUT))
            # While the request hangs, another client connects and is served.
            other, code = self.connect_as(clients, "allow")
            self.assertEqual(code, 0)
            other.subscribe("t", 1)
            other.publish("ok/x", b"1", 1)
            self.assertTrue(slow.connacks.empty())
            _, code, _ = slow.connacks.get(timeout=TIMEOUT)
            self.assertEqual(code.value, BAD_USER_NAME_OR_PASSWORD)

        return self.run_with_service(scenario)

    def test_acl_publish_and_subscribe(self):
        def scenario(clients, service, running):
            client, code = self.connect_as(clients, "allow")
            self.assertEqual(code, 0)
            codes = client.subscribe([("ok/#", 1)])
            self.assertEqual([c.value for c in codes], [1])
            codes = client.subscribe([("ok/a", 1), ("no/b", 1)])
            # One request for the packet (%t = "ok/a,no/b"): both denied.
            self.assertEqual([c.value for c in codes], [NOT_AUTHORIZED, NOT_AUTHORIZED])
            acks = []
            client.paho.on_publish = lambda c, u, mid, rc, p: acks.append(rc.value)
            client.publish("no/x", b"denied", 1)
            client.publish("ok/x", b"allowed", 1)
            self.assertEqual(acks, [NOT_AUTHORIZED, 0])
            self.assertEqual(client.expect_sentinel("ok/x").payload, b"allowed")
            acl = [args for path, args in service.seen if path == "/acl"]
            self.assertIn({"clientid": "id-allow", "username": "allow", "access": "2",
                           "topic": "no/x"}, acl)
            self.assertIn({"clientid": "id-allow", "username": "allow", "access": "1",
                           "topic": "ok/a,no/b"}, acl)
            # A superuser skips acl_req.
            root, code = self.connect_as(clients, "root")
            root.subscribe("no/#", 1)
            root.publish("no/root", b"super", 1)
            self.assertEqual(root.expect().payload, b"super")

        return self.run_with_service(scenario)

    def test_acl_slow_holds_only_that_connection_in_order(self):
        def scenario(clients, service, running):
            watcher, _ = self.connect_as(clients, "root", client_id="watcher")
            watcher.subscribe("#", 1)
            client, _ = self.connect_as(clients, "allow")
            acks = []
            client.paho.on_publish = lambda c, u, mid, rc, p: acks.append((mid, rc.value))
            first = client.paho.publish("slow/x", b"held", 1)
            second = client.paho.publish("ok/after", b"after", 1)
            self.assertTrue(service.slow_arrived.wait(TIMEOUT))
            # Others are served while that connection waits.
            other, _ = self.connect_as(clients, "allow", client_id="other")
            other.publish("ok/other", b"other", 1)
            self.assertEqual(watcher.expect().topic, "ok/other")
            self.assertEqual(acks, [])
            second.wait_for_publish(TIMEOUT)
            # Timed out -> denied; the next packet followed, in order.
            self.assertEqual(acks, [(first.mid, NOT_AUTHORIZED), (second.mid, 0)])
            self.assertEqual(watcher.expect_sentinel("ok/after").payload, b"after")

        return self.run_with_service(scenario)

    @defer.inlineCallbacks
    def test_service_down(self):
        port = yield closed_port()
        running = yield start_broker(self, CONF % {"port": port})
        clients = Clients(self, running.port)

        def scenario():
            self.assertEqual(self.connect_as(clients, "allow")[1], BAD_USER_NAME_OR_PASSWORD)

        yield in_thread(scenario)


TLS_CONF = """
listeners.wss { bind = "127.0.0.1:0/mqtt" }
auth {
    allow_anonymous = true
    http_auth {
        timeout = 1s
        connect_timeout = 1s
        auth_req {
            url = "http://127.0.0.1:%(port)d/auth"
            method = post
            headers.content-type = "application/x-www-form-urlencoded"
            params = { username = "%%u", cn = "%%C", subject = "%%d" }
        }
        acl_req {
            url = "http://127.0.0.1:%(port)d/acl"
            method = post
            headers.content-type = "application/json"
            params = { username = "%%u", topic = "%%t", cn = "%%C", subject = "%%d" }
        }
    }
}
"""


class TlsCertificatePlaceholderTests(unittest.TestCase):
    """``%C``/``%d``: the verified client certificate's common name and
    subject (OpenSSL one-line form) over TLS and WSS, with or without
    ``use_identity_as_username``; omitted without a certificate."""

    timeout = 60

    @defer.inlineCallbacks
    def test_certificate_common_name_and_subject(self):
        certs = make_certs(self.mktemp(), client_cn="alice")
        service, port = yield start_service(self)
        conf = ssl_block(certs, verify_peer=True) + TLS_CONF % {"port": port}
        _, ports = yield start_with(self, conf, ("tcp", "ssl", "wss"))
        subject = "/O=nanomq-twisted tests/CN=alice"

        def client(clients, client_id, with_cert=True, websocket=False):
            kwargs = {"transport": "websockets"} if websocket else {}
            made = clients(client_id, 5, **kwargs)
            if websocket:
                made.paho.ws_set_options(path="/mqtt")
            tls = {"ca_certs": certs.ca}
            if with_cert:
                tls.update(certfile=certs.client_cert, keyfile=certs.client_key)
            made.paho.tls_set(**tls)
            made.paho.username_pw_set("allow", "pw")
            return made

        def scenario():
            tls = client(Clients(self, ports["ssl"]), "tls")
            tls.connect()
            tls.publish("ok/tls", b"1", 1)
            client(Clients(self, ports["wss"]), "wss", websocket=True).connect()
            client(Clients(self, ports["ssl"]), "no-cert", with_cert=False).connect()
            plain = Clients(self, ports["tcp"])("tcp", 5)
            plain.paho.username_pw_set("allow", "pw")
            plain.connect()

        yield in_thread(scenario)
        with_cert = {"username": "allow", "cn": "alice", "subject": subject}
        self.assertEqual(
            [args for path, args in service.seen if path == "/auth"],
            [with_cert, with_cert, {"username": "allow"}, {"username": "allow"}],
        )
        self.assertIn(("/acl", dict(with_cert, topic="ok/tls")), service.seen)
