"""
Every declared interface against its implementations, with
``zope.interface.verify``: the class must say ``@implementer``, and an
object built the way the application builds it must have every method
(with a compatible signature) and attribute the interface names.

The objects come from a real ``BrokerApp`` on a ``MemoryReactorClock``
(nothing is started), so what is checked is what the core is handed.
"""

import os

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyClass, verifyObject

from nanomq_twisted.app import BrokerApp
from nanomq_twisted.auth.http import HttpAcl, HttpAuthenticator
from nanomq_twisted.bridge.bridge import Bridge
from nanomq_twisted.config import loads
from nanomq_twisted.core.acl import Acl
from nanomq_twisted.core.auth import AllowAll, AuthChain, PasswordAuthenticator
from nanomq_twisted.core.interfaces import (
    IAcl,
    IAuthenticator,
    IConnectionSink,
    IMessageConsumer,
    IStore,
)
from nanomq_twisted.core.store import NullStore, StoreOps
from nanomq_twisted.http.control import IControl
from nanomq_twisted.persistence.sqlite_store import SqliteStore
from nanomq_twisted.rules.actions import IRuleAction, NullAction, RepubAction, TableAction
from nanomq_twisted.rules.service import RulesService
from nanomq_twisted.transport.interfaces import IReleasable
from nanomq_twisted.transport.protocol import MQTTServerProtocol
from nanomq_twisted.transport.quic.stream import QuicStreamTransport
from nanomq_twisted.webhook import WebhookService

from ..sinks import FakeSink


def full_app(testcase):
    """A ``BrokerApp`` with every extension configured."""
    directory = os.path.abspath(testcase.mktemp())
    os.makedirs(directory)
    config = loads(
        'listeners.tcp { bind = "127.0.0.1:0" }\n'
        f'sqlite {{ mounted_file_path = "{directory}" }}\n'
        'webhook { url = "http://127.0.0.1:1/hook"\n'
        '  events = [ { event = "on_message_publish", topic = "a/#" } ] }\n'
        'auth { allow_anonymous = true\n'
        '  acl = { rules = [ { permit = allow } ] }\n'
        '  http_auth {\n'
        '    auth_req { url = "http://127.0.0.1:1/auth", method = post,'
        ' params = { clientid = "%c" } }\n'
        '    acl_req { url = "http://127.0.0.1:1/acl", method = post,'
        ' params = { topic = "%t" } }\n'
        '  } }\n'
        'bridges.mqtt.up { server = "mqtt-tcp://127.0.0.1:1", clientid = "edge",'
        ' forwards = [ { local_topic = "a/#", remote_topic = "" } ] }\n'
        f'rules.sqlite {{ path = "{os.path.join(directory, "rules.db")}"\n'
        '  rules = [ { table = t, sql = "SELECT * FROM \\"s/#\\"" } ] }\n'
        'rules.repub { rules = [ { server = "mqtt-tcp://127.0.0.1:1", topic = "out",'
        ' sql = "SELECT * FROM \\"r/#\\"" } ] }\n'
        'rules.postgresql.pg { conn { host = "localhost", username = u,'
        ' password = p, database = d }\n'
        '  rules = [ { table = t, sql = "SELECT * FROM \\"p/#\\"" } ] }\n',
        path="<test>",
    )
    return BrokerApp(config, MemoryReactorClock())


class DeclaredInterfaceTests(SynchronousTestCase):
    def setUp(self):
        self.app = full_app(self)

    def test_control(self):
        self.assertTrue(verifyObject(IControl, self.app))

    def test_store(self):
        store = self.app.broker.store
        self.assertIsInstance(store, SqliteStore)
        self.assertTrue(verifyObject(IStore, store))
        self.assertTrue(verifyObject(IStore, NullStore()))
        self.assertTrue(verifyClass(IStore, StoreOps))

    def test_authenticators(self):
        authenticator = self.app.broker.authenticator
        self.assertIsInstance(authenticator, AuthChain)
        self.assertTrue(verifyObject(IAuthenticator, authenticator))
        parts = (self.app.auth.passwords, PasswordAuthenticator())
        for part in parts:
            self.assertTrue(verifyObject(IAuthenticator, part))
        self.assertTrue(verifyClass(IAuthenticator, HttpAuthenticator))

    def test_acls(self):
        acl = self.app.broker.acl
        self.assertIsInstance(acl, HttpAcl)
        self.assertTrue(verifyObject(IAcl, acl))
        self.assertTrue(verifyObject(IAcl, AllowAll()))
        self.assertTrue(verifyObject(IAcl, Acl()))

    def test_message_consumers(self):
        """Bridges, the rule engine and the webhook sit in the routing trie
        as `IMessageConsumer`s (core/extensions.py)."""
        bridge = self.app.bridges.get("up").bridge
        consumers = [bridge, self.app.rules, self.app.webhook]
        self.assertEqual([type(c) for c in consumers], [Bridge, RulesService, WebhookService])
        for consumer in consumers:
            self.assertTrue(verifyObject(IMessageConsumer, consumer))

    def test_rule_actions(self):
        actions = sorted(self.app.rules.actions.values(), key=lambda a: type(a).__name__)
        self.assertEqual([type(a) for a in actions], [NullAction, RepubAction, TableAction])
        for action in actions:
            self.assertTrue(verifyObject(IRuleAction, action))

    def test_connection_sinks(self):
        protocol = MQTTServerProtocol(self.app.broker, MemoryReactorClock())
        self.assertTrue(verifyObject(IConnectionSink, protocol))
        self.assertTrue(verifyObject(IConnectionSink, FakeSink()))

    def test_releasable(self):
        self.assertTrue(verifyClass(IReleasable, QuicStreamTransport))
