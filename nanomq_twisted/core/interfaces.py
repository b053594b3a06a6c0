# -*- test-case-name: tests.unit.test_interfaces -*-
"""
The declared extension points of the core, as ``zope.interface``
interfaces (the way Twisted declares its own).

The core calls out through exactly these; adapters implement them and say
so with ``@implementer``, and ``tests.unit.test_interfaces`` checks every
implementation with ``verifyObject``.  Nothing in the core probes an
object for optional methods: what an implementation offers is what its
interface says.

- `IConnectionSink`: the network end of one client connection.
- `IStore`: where durable state is reported (core/store.py describes the
  protocol of calls; `StoreOps` is the do-nothing implementation).
- `IAuthenticator` and `IAcl`: who may connect, publish and subscribe.
- `IMessageConsumer`: an extension (bridge, rule engine, webhook, cluster
  link) that receives the messages matching its filters from the routing
  trie (core/extensions.py).

Event observers are plain callables ``fn(event, **fields)`` registered
per event name on the broker's `EventBus` (core/events.py).
"""

from zope.interface import Attribute, Interface


class IConnectionSink(Interface):
    """The adapter side of one client connection: it moves bytes and says
    when the network pushes back; every decision stays in the core."""

    def send(chunks):
        """Write ``chunks`` (a list of ``bytes``) to the network, in order.

        Called by ``Broker.flush`` with the connection's whole outbox, at
        most once per turn of the adapter's event loop."""

    def close():
        """Close the network connection.  The adapter reports the end
        later with ``ClientConnection.connection_lost``."""

    def timed_out(what):
        """The client did not send ``what`` (``"CONNECT"``) in time: say so
        in the log (the core has no logger) and close."""

    def pause_input():
        """Stop reading from the client (its rate limit is spent,
        core/admission.py); output goes on."""

    def resume_input():
        """Read from the client again."""


class IStore(Interface):
    """The persistence the core reports to (core/store.py, ``StoreOps``)."""

    enabled = Attribute("True when state is really kept (sessions become durable)")
    sync_ack = Attribute("hold PUBACK/PUBREC until the publish's changes committed")
    changes = Attribute("counter of accepted message writes")
    max_rows = Attribute("most owed messages kept (0 = no limit)")
    rows = Attribute("owed messages kept now")
    health = Attribute('"off", "ok", or why writes fail: "disk_full", "read_only", "failed"')
    failures = Attribute("failed write attempts since start-up")

    def session_saved(session, disconnected_at):
        """A durable session's settings changed."""

    def session_deleted(client_id):
        """A durable session ended."""

    def subscription_added(client_id, subscription):
        """A durable session subscribed (or replaced a subscription)."""

    def subscription_removed(client_id, topic_filter):
        """A durable session unsubscribed."""

    def message_queued(client_id, seq, message, qos, retain, sub_ids):
        """A QoS 1/2 message entered a durable session."""

    def message_sent(client_id, seq, packet_id):
        """It took a packet identifier."""

    def message_released(client_id, seq):
        """Its PUBREC arrived (QoS 2)."""

    def message_acked(client_id, seq):
        """The session is done with it."""

    def rel_awaited(client_id, packet_id, received_at):
        """An inbound QoS 2 message was PUBREC'd."""

    def rel_done(client_id, packet_id):
        """Its PUBREL arrived."""

    def rule_saved(rule):
        """A rule (``Rule.to_dict()``) was made or changed over REST."""

    def rule_deleted(rule_id):
        """A rule was deleted over REST."""

    def saved_rules():
        """``{rule id: dict or None}`` as persisted."""

    def bridge_saved(name, body):
        """A bridge was changed over REST."""

    def saved_bridges():
        """``{bridge name: body}`` as persisted."""

    def bridge_message_queued(name, topic, payload, qos, retain, properties, key):
        """A QoS 1/2 message entered a bridge's session; its number."""

    def bridge_message_done(name, seq):
        """A bridge is done with a message."""

    def saved_bridge_messages(name):
        """What a bridge still owes, oldest first."""

    def retained_set(topic, message, now, expiry_interval):
        """A retained message was stored."""

    def retained_deleted(topic):
        """A retained message was cleared."""

    def after_commit(callback):
        """Call ``callback()`` once everything reported so far is on disk."""


class IAuthenticator(Interface):
    """Decides whether a CONNECT is admitted."""

    def authenticate(info, done):
        """A reason code for the client described by ``info`` (core/info.py
        ``ConnectInfo``), or ``PENDING`` and later ``done(reason_code)``."""


class IAcl(Interface):
    """Decides whether a client may publish to or subscribe to a topic.

    A *synchronous* ACL (``asynchronous`` false) answers ``check`` from its
    own state.  An asynchronous one (HTTP ``acl_req``) needs to fetch its
    answers first: the connection calls ``prepare`` before handling a
    PUBLISH or SUBSCRIBE and, when it returns False, holds that packet and
    the ones after it until ``done`` is called.
    """

    asynchronous = Attribute("True when prepare() must be asked first")

    def check(client, action, topic):
        """True if ``client`` (a ``ClientConnection`` or a will's stand-in)
        may ``action`` ("publish"/"subscribe") ``topic``."""

    def prepare(client, action, topics, done):
        """True when ``check`` can answer for ``topics`` now; otherwise
        False, and ``done()`` is called once it can."""


class IMessageConsumer(Interface):
    """An extension subscribed to topic filters in the routing trie.

    ``deliver`` sees each routed message matching at least one of the
    consumer's filters once, before the message's subscribers; it must not
    block, and whatever it raises is counted and logged by the broker, never
    seen by the publisher or the other subscribers.
    """

    consumer_name = Attribute("a short label for logs and counters, e.g. 'bridge up'")

    def deliver(message, now):
        """Take ``message`` (core/message.py ``Message``)."""
