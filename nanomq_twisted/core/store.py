# -*- test-case-name: tests.unit.test_store_sqlite,tests.unit.test_store_limits,tests.unit.test_interfaces -*-
"""
The persistence interface the core talks to.

The core never does I/O.  It *reports* every change to the state that must
survive a restart -- persistent sessions, their subscriptions, the QoS 1/2
messages they are owed, retained messages -- to ``broker.store``, an object
with the methods of ``NullStore`` below.  The SQLite adapter
(`persistence/sqlite_store.py`) batches those reports and writes them off
the reactor thread; with no persistence configured ``NullStore`` answers
every call with nothing.

What is reported, and when:

- Only *durable* sessions are reported: those whose Session Expiry Interval
  is not 0 (v3.1.1 CleanSession=0, v5 with an expiry), and only while a real
  store is set (``Session.durable``).  A clean session costs nothing.
- A message owed to a durable session gets a per-session sequence number
  ``seq`` when it enters the session (queued or straight into flight).  The
  store hears ``message_queued`` once, then ``message_sent`` when it takes a
  packet id, ``message_released`` when its PUBREC arrives, and
  ``message_acked`` when the session is done with it (PUBACK, PUBCOMP, a
  failed PUBREC, expiry or an oversize drop).  A store may cancel a queued
  row against its ack within one batch: a fast online subscriber costs no
  write at all.
- QoS 0 is never reported (it is never owed).
- An inbound QoS 2 packet id a durable session has PUBREC'd is reported
  with ``rel_awaited`` and released with ``rel_done`` (PUBREL), so the
  exactly-once guarantee [MQTT-4.3.3] holds across a restart.
- Bridges: a bridge changed over REST is saved whole (``bridge_saved``),
  and every QoS 1/2 message that enters a bridge's session (offline queue
  or send window) is reported with ``bridge_message_queued`` (the store
  numbers it) and ``bridge_message_done`` once acknowledged, dropped or
  cancelled; ``BridgesService`` reads both back when it starts.
- ``max_rows`` (``sqlite.disk_cache_size``): when more messages than that
  are owed, the broker drops the oldest queued message of an offline
  durable session (``Broker.trim_store``).

``changes`` is a counter a store bumps on every message write it accepts;
the connection compares it around ``broker.publish`` to learn whether an
inbound QoS 1/2 publish produced durable state, and if the store wants
acknowledgements held until that state is on disk (``sync_ack``), passes the
PUBACK/PUBREC to ``after_commit``.
"""

from zope.interface import implementer

from .interfaces import IStore

__all__ = ["NullStore", "StoreOps"]


@implementer(IStore)
class StoreOps:
    """The calls the core makes; every method is a no-op here."""

    #: A real store sets this; the core then marks sessions durable.
    enabled = False
    #: Hold PUBACK/PUBREC of publishes that changed durable state until the
    #: batch holding that change has committed.
    sync_ack = False
    #: Bumped by the store for every durable message change it accepts.
    changes = 0
    #: ``sqlite.disk_cache_size``: most messages owed to durable sessions
    #: (queued or in flight) kept; 0 = no limit.  ``rows`` is how many are.
    max_rows = 0
    rows = 0
    #: Can the store write?  ``"off"`` (no persistence), ``"ok"``, or the
    #: fault of a store that cannot commit: ``"disk_full"``,
    #: ``"read_only"``, ``"failed"`` (persistence/faults.py).  Reported by
    #: ``/api/v4/brokers`` and ``/api/v4/prometheus``.
    health = "off"
    #: Failed write attempts since start-up.
    failures = 0

    # -- sessions --------------------------------------------------------

    def session_saved(self, session, disconnected_at):
        """``session`` is durable: (re)write its row.  ``disconnected_at``
        is the core time it went offline, or None while it is online."""

    def session_deleted(self, client_id):
        """Forget the session, its subscriptions and its messages."""

    def subscription_added(self, client_id, subscription):
        """Add or replace one ``Subscription`` of a durable session."""

    def subscription_removed(self, client_id, topic_filter):
        """Drop one subscription of a durable session."""

    # -- messages owed to durable sessions --------------------------------

    def message_queued(self, client_id, seq, message, qos, retain, sub_ids):
        """A QoS 1/2 message entered the session (queue or flight)."""

    def message_sent(self, client_id, seq, packet_id):
        """Message ``seq`` went out with ``packet_id`` (now in flight)."""

    def message_released(self, client_id, seq):
        """PUBREC received for ``seq``: only the PUBREL/PUBCOMP remains."""

    def message_acked(self, client_id, seq):
        """The session is done with ``seq``."""

    # -- inbound QoS 2 (received, PUBREC sent, PUBREL awaited) ------------

    def rel_awaited(self, client_id, packet_id, received_at):
        """A durable session PUBREC'd inbound QoS 2 ``packet_id``: a resent
        PUBLISH with that id must not be routed again [MQTT-4.3.3]."""

    def rel_done(self, client_id, packet_id):
        """PUBREL arrived for ``packet_id``: the id is free again."""

    # -- REST-made rules (rules/service.py) --------------------------------

    def rule_saved(self, rule):
        """``rule`` (``Rule.to_dict()``) was created or changed over REST."""

    def rule_deleted(self, rule_id):
        """Rule ``rule_id`` was deleted over REST."""

    def saved_rules(self):
        """``{rule id: Rule.to_dict() or None (deleted)}`` as persisted."""
        return {}

    # -- bridges (bridge/service.py) ----------------------------------------

    def bridge_saved(self, name, body):
        """Bridge ``name`` was changed over REST; ``body`` is
        ``bridge.saved.body_from_service(...)`` (JSON-ready)."""

    def saved_bridges(self):
        """``{bridge name: body}`` as persisted."""
        return {}

    def bridge_message_queued(self, name, topic, payload, qos, retain, properties, key):
        """A QoS 1/2 message entered bridge ``name``'s session (queue or
        flight); returns the sequence number the store gave it (None:
        not persisted)."""

    def bridge_message_done(self, name, seq):
        """Bridge ``name`` is done with message ``seq`` (acknowledged,
        dropped or cancelled)."""

    def saved_bridge_messages(self, name):
        """The messages bridge ``name`` still owes, oldest first, as
        ``(seq, topic, payload, qos, retain, properties, key)``."""
        return []

    # -- retained messages ------------------------------------------------

    def retained_set(self, topic, message, now, expiry_interval):
        """``message`` is now the retained message of ``topic``."""

    def retained_deleted(self, topic):
        """``topic`` has no retained message any more."""

    # -- synchronous acknowledgement ---------------------------------------

    def after_commit(self, callback):
        """Call ``callback()`` once everything accepted so far is durable.
        The null store has nothing pending: it calls at once."""
        callback()


class NullStore(StoreOps):
    """No persistence: the default ``broker.store``."""
