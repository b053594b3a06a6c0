"""
Tests for L{nanomq_twisted.core.acl}: NanoMQ's ACL rule semantics
(auth-acl.md section 3), table driven, and the decision cache.
"""

import os

from twisted.trial.unittest import SynchronousTestCase

from nanomq_twisted.config import AclRule, loads
from nanomq_twisted.core.acl import Acl
from nanomq_twisted.mqtt.topics import match_levels, strip_shared

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "etc", "examples")


class FakeClient:
    def __init__(self, client_id="c1", username=None, host="10.0.0.5"):
        self.client_id = client_id
        self.username = username
        self.peer = None if host is None else (host, 50000)


def rules_from(text):
    """Parse ACL rules exactly as a configuration file would."""
    return loads("auth { acl { rules = [\n" + text + "\n] } }", env={}).auth.acl


def acl_from(text, no_match="allow", **kwargs):
    return Acl(rules_from(text), no_match, **kwargs)


ALICE = FakeClient("dev1", "alice", "10.0.0.5")
BOB = FakeClient("dev2", "bob", "192.168.1.9")
ANON = FakeClient("anon", None, "127.0.0.1")
NO_PEER = FakeClient("np", "carol", None)
MAPPED = FakeClient("m", "dave", "::ffff:10.1.2.3")

# (rules, no_match, client, action, topic, expected)
TABLE = [
    # -- permit and no_match
    ('{permit = allow}', "deny", ALICE, "publish", "a", True),
    ('{permit = deny}', "allow", ALICE, "publish", "a", False),
    ('', "allow", ALICE, "publish", "a", True),
    ('', "deny", ALICE, "subscribe", "a", False),
    # -- action
    ('{permit = deny, action = publish}', "allow", ALICE, "publish", "a", False),
    ('{permit = deny, action = publish}', "allow", ALICE, "subscribe", "a", True),
    ('{permit = deny, action = subscribe}', "allow", ALICE, "subscribe", "a", False),
    ('{permit = deny, action = subscribe}', "allow", ALICE, "publish", "a", True),
    ('{permit = deny, action = pubsub}', "allow", ALICE, "publish", "a", False),
    ('{permit = deny, action = pubsub}', "allow", ALICE, "subscribe", "a", False),
    # -- first match wins
    ('{permit = allow, topics = ["a"]}\n{permit = deny}', "allow", ALICE, "publish", "a", True),
    ('{permit = deny}\n{permit = allow, topics = ["a"]}', "allow", ALICE, "publish", "a", False),
    ('{permit = allow, topics = ["b"]}\n{permit = deny}', "allow", ALICE, "publish", "a", False),
    # -- username / clientid
    ('{permit = allow, username = alice}', "deny", ALICE, "publish", "a", True),
    ('{permit = allow, username = alice}', "deny", BOB, "publish", "a", False),
    ('{permit = allow, username = "#"}', "deny", ANON, "publish", "a", True),
    ('{permit = allow, username = alice}', "deny", ANON, "publish", "a", False),
    ('{permit = allow, clientid = dev2}', "deny", BOB, "publish", "a", True),
    ('{permit = allow, clientid = dev2}', "deny", ALICE, "publish", "a", False),
    ('{permit = allow, clientid = "#"}', "deny", ALICE, "publish", "a", True),
    # Only the highest-priority selector counts: username beats clientid.
    ('{permit = allow, username = alice, clientid = nope}', "deny", ALICE, "publish", "a", True),
    ('{permit = allow, ipaddr = "10.0.0.5", username = bob}', "deny", ALICE, "publish", "a", True),
    # -- ipaddr, CIDR, ipaddrs
    ('{permit = allow, ipaddr = "10.0.0.5"}', "deny", ALICE, "publish", "a", True),
    ('{permit = allow, ipaddr = "10.0.0.6"}', "deny", ALICE, "publish", "a", False),
    ('{permit = allow, ipaddr = "#"}', "deny", BOB, "publish", "a", True),
    ('{permit = allow, ipaddr = "10.0.0.0/8"}', "deny", ALICE, "publish", "a", True),
    ('{permit = allow, ipaddr = "10.0.0.0/8"}', "deny", BOB, "publish", "a", False),
    ('{permit = allow, ipaddr = "192.168.0.0/16"}', "deny", BOB, "publish", "a", True),
    ('{permit = allow, ipaddr = "10.0.0.0/8"}', "deny", NO_PEER, "publish", "a", False),
    ('{permit = allow, ipaddr = "10.1.2.3"}', "deny", MAPPED, "publish", "a", True),
    ('{permit = allow, ipaddr = "10.0.0.0/8"}', "deny", MAPPED, "publish", "a", True),
    ('{permit = allow, ipaddr = "not-a-net/99"}', "deny", ALICE, "publish", "a", False),
    ('{permit = allow, ipaddrs = ["1.2.3.4", "10.0.0.5"]}', "deny", ALICE, "publish", "a", True),
    ('{permit = allow, ipaddrs = ["1.2.3.4", "192.168.0.0/16"]}', "deny", ALICE, "publish", "a",
     False),
    ('{permit = allow, ipaddrs = ["1.2.3.4", "192.168.0.0/16"]}', "deny", BOB, "publish", "a",
     True),
    # -- and / or
    ('{permit = allow, and = [{username = alice}, {ipaddr = "10.0.0.5"}]}', "deny", ALICE,
     "publish", "a", True),
    ('{permit = allow, and = [{username = alice}, {ipaddr = "10.0.0.6"}]}', "deny", ALICE,
     "publish", "a", False),
    ('{permit = allow, and = [{username = alice}, {clientid = dev1}]}', "deny", ALICE,
     "publish", "a", True),
    ('{permit = allow, and = []}', "deny", BOB, "publish", "a", True),
    ('{permit = allow, or = [{username = alice}, {clientid = dev2}]}', "deny", BOB,
     "publish", "a", True),
    ('{permit = allow, or = [{username = alice}, {clientid = dev2}]}', "deny", ANON,
     "publish", "a", False),
    ('{permit = allow, or = []}', "deny", ALICE, "publish", "a", False),
    ('{permit = allow, or = [{ipaddr = "10.0.0.0/24"}]}', "deny", ALICE, "publish", "a", True),
    # -- topics: wildcards against a published topic
    ('{permit = allow, topics = ["s/+/t"]}', "deny", ALICE, "publish", "s/x/t", True),
    ('{permit = allow, topics = ["s/+/t"]}', "deny", ALICE, "publish", "s/x/y/t", False),
    ('{permit = allow, topics = ["s/#"]}', "deny", ALICE, "publish", "s", True),
    ('{permit = allow, topics = ["s/#"]}', "deny", ALICE, "publish", "s/a/b", True),
    ('{permit = allow, topics = ["s/#"]}', "deny", ALICE, "publish", "sx", False),
    ('{permit = allow, topics = ["#"]}', "deny", ALICE, "publish", "$SYS/x", True),
    ('{permit = allow, topics = ["+/x"]}', "deny", ALICE, "publish", "$SYS/x", True),
    ('{permit = allow, topics = ["x", "y"]}', "deny", ALICE, "publish", "y", True),
    # -- topics: filter against filter for SUBSCRIBE (NanoMQ's string match)
    ('{permit = allow, topics = ["a/+"]}', "deny", ALICE, "subscribe", "a/+", True),
    ('{permit = allow, topics = ["a/+"]}', "deny", ALICE, "subscribe", "a/#", True),
    ('{permit = allow, topics = ["a/b"]}', "deny", ALICE, "subscribe", "a/+", False),
    ('{permit = allow, topics = ["a/#"]}', "deny", ALICE, "subscribe", "a/#", True),
    ('{permit = deny, topics = ["$SYS/#"]}', "allow", ALICE, "subscribe", "$SYS/brokers", False),
    # -- @ literal topics
    ('{permit = deny, topics = ["@#"]}', "allow", ALICE, "subscribe", "#", False),
    ('{permit = deny, topics = ["@#"]}', "allow", ALICE, "subscribe", "a/b", True),
    ('{permit = allow, topics = ["@a/+"]}', "deny", ALICE, "subscribe", "a/+", True),
    ('{permit = allow, topics = ["@a/+"]}', "deny", ALICE, "subscribe", "a/b", False),
    ('{permit = allow, topics = ["@a/+"]}', "deny", ALICE, "publish", "a/x", False),
    # -- placeholders
    ('{permit = allow, topics = ["dev/${clientid}/#"]}', "deny", ALICE, "publish", "dev/dev1/t",
     True),
    ('{permit = allow, topics = ["dev/${clientid}/#"]}', "deny", ALICE, "publish", "dev/dev2/t",
     False),
    ('{permit = allow, topics = ["u/${username}"]}', "deny", BOB, "subscribe", "u/bob", True),
    ('{permit = allow, topics = ["u/${username}"]}', "deny", BOB, "subscribe", "u/alice", False),
    # No username: the placeholder stays literal.
    ('{permit = allow, topics = ["u/${username}"]}', "deny", ANON, "publish", "u/${username}",
     True),
    ('{permit = allow, topics = ["@${clientid}/${username}"]}', "deny", ALICE, "subscribe",
     "dev1/alice", True),
    ('{permit = allow, topics = ["@${clientid}/+"]}', "deny", ALICE, "subscribe", "dev1/+",
     True),
    # A wildcard or separator in the inserted value denies outright, even
    # when no_match (or a later rule) would allow.
    ('{permit = allow, topics = ["dev/${clientid}"]}', "allow", FakeClient("#", "x"), "publish",
     "dev/#", False),
    ('{permit = allow, topics = ["dev/${username}/t"]}', "allow", FakeClient("c", "a/b"),
     "publish", "dev/a/b/t", False),
    ('{permit = deny, topics = ["dev/${username}"]}\n{permit = allow}', "allow",
     FakeClient("c", "+"), "publish", "zzz", False),
    # A rule whose who does not match never evaluates its placeholders.
    ('{permit = allow, username = bob, topics = ["${username}"]}', "allow",
     FakeClient("c", "+"), "publish", "zzz", True),
    # -- shared subscriptions are judged on the real filter
    ('{permit = deny, topics = ["secret/#"]}', "allow", ALICE, "subscribe",
     "$share/g/secret/x", False),
    ('{permit = deny, topics = ["secret/#"]}', "allow", ALICE, "subscribe", "$queue/secret/x",
     False),
    ('{permit = deny, topics = ["secret/#"]}', "allow", ALICE, "subscribe", "$share/g/open",
     True),
]


class AclTableTests(SynchronousTestCase):
    def test_table(self):
        failures = []
        for rules, no_match, client, action, topic, expected in TABLE:
            acl = acl_from(rules, no_match)
            got = acl.check(client, action, topic)
            if got != expected:
                failures.append((rules, no_match, client.client_id, action, topic, expected))
        self.assertEqual(failures, [])

    def test_example_file(self):
        """The rules of etc/examples/nanomq_acl.conf, as documented there."""
        with open(os.path.join(EXAMPLES, "nanomq_acl.conf")) as handle:
            text = handle.read()
        rules = loads("auth { no_match = deny, acl {\n" + text + "\n} }", env={}).auth
        acl = Acl(rules.acl, rules.no_match)
        dashboard = FakeClient("dash", "dashboard", "10.9.9.9")
        admin = FakeClient("adm", "admin", "127.0.0.1")
        remote_admin = FakeClient("adm", "admin", "10.9.9.9")
        device = FakeClient("d7", "device-7", "10.9.9.9")
        self.assertTrue(acl.check(dashboard, "subscribe", "$SYS/brokers/client_status"))
        self.assertFalse(acl.check(device, "subscribe", "$SYS/#"))
        self.assertFalse(acl.check(admin, "subscribe", "#"))
        self.assertTrue(acl.check(device, "publish", "dev/d7/temp"))
        self.assertTrue(acl.check(device, "subscribe", "dev/d7/#"))
        self.assertFalse(acl.check(device, "publish", "dev/d8/temp"))
        self.assertTrue(acl.check(admin, "publish", "any/topic"))
        self.assertTrue(acl.check(admin, "subscribe", "any/+"))
        self.assertFalse(acl.check(remote_admin, "publish", "any/topic"))

    def test_dataclass_rules(self):
        """Rules may be built in code too (no ``topics`` = any topic)."""
        acl = Acl((AclRule("deny", "publish", None, username="x"),), "allow")
        self.assertFalse(acl.check(FakeClient("c", "x"), "publish", "t"))
        self.assertTrue(acl.check(FakeClient("c", "y"), "publish", "t"))

    def test_from_config(self):
        self.assertIsNone(Acl.from_config(loads("auth { no_match = deny }", env={}).auth))
        acl = Acl.from_config(loads("auth { no_match = deny, acl { rules = [] } }",
                                    env={}).auth)
        self.assertFalse(acl.check(ALICE, "publish", "t"))
        disabled = loads("auth { acl { enable = false, rules = [{permit = deny}] } }", env={})
        self.assertIsNone(Acl.from_config(disabled.auth))

    def test_helpers(self):
        self.assertTrue(match_levels(["a", "+"], ["a", "#"]))
        self.assertFalse(match_levels(["a", "+"], ["a"]))
        self.assertTrue(match_levels(["#"], [""]))
        self.assertEqual(strip_shared("$share/g/a/b"), "a/b")
        self.assertEqual(strip_shared("$queue/a"), "a")
        self.assertEqual(strip_shared("$share/g"), "$share/g")
        self.assertEqual(strip_shared("a/b"), "a/b")


class CountingAcl(Acl):
    evaluations = 0

    def evaluate(self, client, action, topic):
        self.evaluations += 1
        return super().evaluate(client, action, topic)


class AclCacheTests(SynchronousTestCase):
    def make(self, **kwargs):
        return CountingAcl(rules_from('{permit = deny, topics = ["d"]}'), "allow", **kwargs)

    def test_hit_until_ttl(self):
        acl = self.make(cache_max_size=4, cache_ttl=10.0)
        client = FakeClient()
        self.assertFalse(acl.check(client, "publish", "d", now=100.0))
        self.assertFalse(acl.check(client, "publish", "d", now=109.9))
        self.assertEqual(acl.evaluations, 1)
        self.assertFalse(acl.check(client, "publish", "d", now=110.0))
        self.assertEqual(acl.evaluations, 2)
        # Publish and subscribe are cached apart.
        self.assertFalse(acl.check(client, "subscribe", "d", now=110.0))
        self.assertEqual(acl.evaluations, 3)

    def test_per_client(self):
        acl = self.make(cache_max_size=4, cache_ttl=10.0)
        acl.check(FakeClient("a"), "publish", "t", now=0.0)
        acl.check(FakeClient("b"), "publish", "t", now=0.0)
        self.assertEqual(acl.evaluations, 2)

    def test_lru_bound(self):
        acl = self.make(cache_max_size=2, cache_ttl=10.0)
        client = FakeClient()
        for topic in ("t1", "t2", "t1", "t3"):  # t2 is the least recently used
            acl.check(client, "publish", topic, now=1.0)
        self.assertEqual(acl.evaluations, 3)
        acl.check(client, "publish", "t1", now=2.0)
        self.assertEqual(acl.evaluations, 3)
        acl.check(client, "publish", "t2", now=2.0)
        self.assertEqual(acl.evaluations, 4)

    def test_clock(self):
        times = [0.0]
        acl = self.make(cache_max_size=4, cache_ttl=5.0, clock=lambda: times[0])
        client = FakeClient()
        acl.check(client, "publish", "t")
        times[0] = 4.0
        acl.check(client, "publish", "t")
        self.assertEqual(acl.evaluations, 1)
        times[0] = 5.5
        acl.check(client, "publish", "t")
        self.assertEqual(acl.evaluations, 2)

    def test_disabled(self):
        for kwargs in ({"cache_ttl": 0.0}, {"cache_max_size": 0}, {}):
            acl = self.make(**kwargs)
            client = FakeClient()
            now = 1.0 if kwargs else None  # no clock and no now: no cache
            acl.check(client, "publish", "t", now=now)
            acl.check(client, "publish", "t", now=now)
            self.assertEqual(acl.evaluations, 2, kwargs)

    def test_forgets_closed_clients(self):
        acl = self.make(cache_max_size=4, cache_ttl=10.0)
        client = FakeClient()
        acl.check(client, "publish", "t", now=0.0)
        self.assertEqual(len(acl._cache), 1)
        del client
        self.assertEqual(len(acl._cache), 0)
