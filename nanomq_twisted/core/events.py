# -*- test-case-name: tests.unit.test_isolation -*-
"""
Broker events and their observers, registered per event name.

Webhooks, the REST API's client records and metrics want to hear about
connects, subscriptions, deliveries and acknowledgements; the hot path
must not pay for listeners that are not there.  `EventBus` keeps one tuple
of observers per event as a plain attribute: the core tests
``if bus.message_delivered:`` (one attribute read of an empty tuple) and
only then builds the fields and calls `emit`.  Observers are called
through the broker's `Guard`: one that raises is counted and logged and
the others still run.

An observer is ``fn(event, **fields)``; the fields of each event:

``client_connect``       conn, now                   (CONNECT received)
``client_connack``       conn, code, now             (accepted or refused)
``client_disconnected``  conn, reason, now
``client_subscribe``     conn, packet, now           (SUBSCRIBE received)
``client_unsubscribe``   conn, packet, now
``session_subscribed``   session, subscription, now
``session_unsubscribed`` session, topic_filter
``session_terminated``   session, now
``message_delivered``    session, message
``message_acked``        session, message
"""

EVENTS = (
    "client_connect",
    "client_connack",
    "client_disconnected",
    "client_subscribe",
    "client_unsubscribe",
    "session_subscribed",
    "session_unsubscribed",
    "session_terminated",
    "message_delivered",
    "message_acked",
)


class EventBus:
    """``bus.<event>`` is the tuple of that event's observers."""

    __slots__ = (*EVENTS, "_guard")

    def __init__(self, guard):
        self._guard = guard
        for event in EVENTS:
            setattr(self, event, ())

    def listen(self, event, observer):
        """Call ``observer(event, **fields)`` on every ``event``."""
        if event not in EVENTS:
            raise ValueError(f"unknown broker event {event!r}")
        setattr(self, event, (*getattr(self, event), observer))

    def unlisten(self, event, observer):
        """Stop calling ``observer`` for ``event`` (no error if it was not)."""
        setattr(self, event, tuple(o for o in getattr(self, event) if o is not observer))

    def listen_all(self, observer, events=EVENTS):
        for event in events:
            self.listen(event, observer)

    def unlisten_all(self, observer):
        for event in EVENTS:
            self.unlisten(event, observer)

    def emit(self, event, **fields):
        """Call every observer of ``event``, each isolated."""
        guard = self._guard
        for observer in getattr(self, event):
            guard.call("observer of " + event, observer, event, **fields)
