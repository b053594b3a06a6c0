# -*- test-case-name: tests.unit.test_broker -*-
"""
What is known about a client connection, frozen: where it came from
(`TransportInfo`, given by the adapter when the connection opens) and what
its CONNECT said (`ConnectInfo`, made by the core when it arrives).

Everything that needs to describe a client -- authenticators, the ACL's
placeholders, ``$SYS`` notices, the rule engine's ``peerhost`` and
``password`` fields, HTTP auth templates, REST views -- reads these two
records.  Nothing reads the raw CONNECT packet after the connection has
handled it, and nothing hangs TLS details on the adapter for the core to
find.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TransportInfo:
    """The network side of a connection.

    ``peer`` is ``(host, port)`` (or None when the transport has none);
    ``listener`` the listener's name (``tcp``, ``ssl``, ``ws``, ``wss``,
    ``quic``, ``tcp.<name>``, ...).  Over TLS with a verified client
    certificate, ``tls_common_name`` and ``tls_subject`` (OpenSSL's
    one-line form) describe it; ``tls_identity`` is the common name when
    the listener has ``use_identity_as_username``, else None.
    """

    peer: tuple | None = None
    listener: str = "default"
    tls_common_name: str = ""
    tls_subject: str = ""
    tls_identity: str | None = None
    #: The port of ours the client connected to (HTTP auth's ``%p``).
    local_port: int | None = None


NO_TRANSPORT = TransportInfo()


@dataclass(frozen=True, slots=True)
class ConnectInfo:
    """A client's CONNECT as the broker accepted it.

    ``username`` is the one in force (a certificate's identity replaces the
    CONNECT's); ``keepalive`` the effective one (Server Keep Alive may
    lower it); ``assigned`` is true when the broker chose the client id.
    A session keeps the last one (``Session.info``): what the REST API
    reports about an offline client comes from it.
    """

    client_id: str
    username: str | None
    password: bytes | None
    protocol_level: int
    protocol_name: str
    clean_start: bool
    keepalive: int
    properties: dict
    transport: TransportInfo = NO_TRANSPORT
    assigned: bool = False
    #: The CONNECT's will (``mqtt.packets.Will``), or None.
    will: object = None

    @property
    def peer(self):
        return self.transport.peer

    @property
    def listener(self):
        return self.transport.listener
