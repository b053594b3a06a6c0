# -*- test-case-name: tests.protocol.test_client,tests.unit.test_client_session -*-
"""
What the parts of the broker's MQTT client say to each other.

Three roles, as in Twisted's AMP (``IBoxSender``/``IBoxReceiver``):

- `IClientSession` -- the sans-I/O state of the client towards one
  server (client/session.py), driven by the protocol with packets and
  ``now``; it answers with bytes to send and deadlines.
- `IClientConnection` -- one live connection (client/protocol.py), what
  an owner may ask of it: publish, (un)subscribe, close.
- `IClientOwner` -- whoever uses the client (a bridge link, a republish
  rule's client): the protocol tells it what happened.

An owner never sees packets it did not ask for and never writes bytes;
the session never sees a transport or a clock.
"""

from zope.interface import Attribute, Interface


class IOutboundMessage(Interface):
    """What the client needs of a message to send it (and to send it
    again after a reconnect): ``client.session.OutboundMessage`` and the
    bridge's ``Outgoing``."""

    topic = Attribute("topic name (str)")
    payload = Attribute("payload (bytes)")
    qos = Attribute("0, 1 or 2")
    retain = Attribute("RETAIN flag")
    properties = Attribute("MQTT 5 PUBLISH properties (dict) or None")


class IClientOwner(Interface):
    """The user of a client connection; each call names the connection
    (an `IClientConnection`) so a late event of an old one can be told
    apart from the current one."""

    client_label = Attribute("who speaks, for logs ('Bridge up', 'repub mqtt-tcp://...')")
    server = Attribute("the server being dialled, for logs (a URL)")

    def connected(client, connack, unsent):
        """The server accepted CONNECT.  ``unsent`` are the QoS 1/2
        messages of the previous connection the server did not keep a
        session for (in send order): they are the owner's again, to send
        as new messages or to drop."""

    def message(client, topic, publish):
        """An application message from the server, once per message
        (QoS 2 duplicates are already suppressed; ``topic`` is resolved
        from its topic alias)."""

    def delivered(client, message):
        """The QoS 1/2 flow of ``message`` ended: acknowledged, or refused
        with a reason code of 0x80 or more."""

    def gave_up(client, message):
        """``message`` waited longer than ``ClientOptions.give_up_after``
        for its acknowledgement and was forgotten."""

    def writable(client):
        """The connection may take more messages: its window or its
        transport buffer has room again, or a retry tick passed."""

    def disconnected(client, reason, was_connected):
        """The connection ended (``reason`` is the ``Failure`` Twisted
        gave); ``was_connected`` is False when CONNACK never came."""


class IClientConnection(Interface):
    """One connection to a server, as its owner sees it."""

    client_id = Attribute("the client id in use (the assigned one in 5.0), or None")
    level = Attribute("protocol level: 3, 4 or 5")
    v5 = Attribute("level == 5")
    connected = Attribute("True between an accepting CONNACK and the end")

    def writable():
        """True when a message may be sent now (connected, not closing,
        the transport not pushing back)."""

    def has_room():
        """True when another QoS 1/2 message fits the send window."""

    def publish(message, now=None):
        """Send an `IOutboundMessage` now (``now``: the caller's clock
        reading, to save reading it again); False when it cannot be
        (larger than the server's Maximum Packet Size, or no packet id)."""

    def subscribe(subscriptions, properties=None):
        """SUBSCRIBE ``SubscriptionOptions``; returns the packet id."""

    def unsubscribe(topic_filters, properties=None):
        """UNSUBSCRIBE; returns the packet id."""

    def pending_requests():
        """Packet id -> topic filters of the SUBSCRIBE/UNSUBSCRIBE packets
        not acknowledged yet."""

    def disconnect():
        """Send DISCONNECT (when connected) and close."""

    def abort():
        """Close at once, sending nothing."""


class IClientSession(Interface):
    """The sans-I/O client (client/session.py).  Every method that
    produces bytes leaves them for ``data_to_send``; errors are raised as
    ``MqttError`` (the server broke the protocol) or ``ClientClosing``
    (refused, timed out, disconnected by the server)."""

    options = Attribute("the ClientOptions the next CONNECT is built from")
    stats = Attribute("counters: sent, received, sent_bytes, received_bytes, inflight")
    connected = Attribute("True after an accepting CONNACK on this connection")

    def connection_made(now):
        """A new connection: reset its state, queue CONNECT; returns it."""

    def connection_lost():
        """The connection ended; returns whether it was connected."""

    def has_room():
        """True when another QoS 1/2 message fits the send window (ours,
        or the server's Receive Maximum if smaller)."""

    def receive_connack(connack, now):
        """CONNACK: the messages the server kept no session for (a list,
        see ``IClientOwner.connected``); in-flight ones it kept are resent."""

    def receive_publish(publish):
        """PUBLISH (acknowledged here): its topic, or None for a QoS 2
        duplicate the owner already had."""

    def receive_ack(ack, now):
        """PUBACK, PUBREC or PUBCOMP: the message whose flow ended, or None."""

    def receive_pubrel(pubrel):
        """PUBREL: answer PUBCOMP, forget the inbound QoS 2 id."""

    def receive_suback(ack):
        """SUBACK or UNSUBACK: the topic filters the server refused."""

    def receive_pingresp(pingresp):
        """PINGRESP: the server is alive."""

    def receive_disconnect(disconnect):
        """DISCONNECT from the server: raises ``ServerDisconnected``."""

    def publish(message, now):
        """Queue a PUBLISH of ``message`` (QoS 1/2 start a flow)."""

    def subscribe(subscriptions, properties=None):
        """Queue SUBSCRIBE; returns its packet id."""

    def unsubscribe(topic_filters, properties=None):
        """Queue UNSUBSCRIBE; returns its packet id."""

    def disconnect(reason_code=0):
        """Queue DISCONNECT."""

    def data_to_send():
        """The bytes queued since the last call, in order (a list)."""

    def next_deadline():
        """The earliest time ``handle_timer`` has work, or None."""

    def handle_timer(now):
        """Do what is due at ``now``; returns the messages given up."""
