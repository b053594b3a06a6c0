# -*- test-case-name: tests.e2e.test_bridge_mosquitto,tests.protocol.test_bridge_client -*-
"""
What a bridge dials: the client endpoint for its ``server`` URL (TCP,
TLS with the ``ssl`` block, or ``mqtt-quic``) and, with
``hybrid_bridging``, the rotation over ``[server] + hybrid_servers``.

Kept apart from `bridge.py` and `service.py` because it is the only part
that knows about transports and certificates; ``BridgeService`` takes an
``endpoint_factory`` (``client_endpoint`` by default) so tests can swap it.
"""

from dataclasses import replace

from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

from ..config.bridges import split_server
from .bridge import Bridge


def tls_options(config):
    """Client TLS options from the bridge's ``ssl`` block.

    With ``cacertfile`` the remote's chain and host name are verified
    against that CA; with ``verify_peer = true`` and no CA file, against
    the platform's trust store.  With neither there is nothing to verify
    against and the remote is not verified (a warning is logged), which is
    what NanoMQ does.  ``certfile``/``keyfile`` (``key_password``) give a
    client certificate."""
    from OpenSSL import crypto
    from twisted.internet.ssl import (
        Certificate,
        CertificateOptions,
        KeyPair,
        PrivateCertificate,
        optionsForClientTLS,
    )

    ssl = config.ssl
    trust = None
    client = None
    if ssl is not None and ssl.cacertfile:
        with open(ssl.cacertfile, "rb") as f:
            trust = Certificate.loadPEM(f.read())
    if ssl is not None and ssl.certfile and ssl.keyfile:
        with open(ssl.certfile, "rb") as f:
            cert = Certificate.loadPEM(f.read())
        with open(ssl.keyfile, "rb") as f:
            key_data = f.read()
        if ssl.key_password:
            pkey = crypto.load_privatekey(
                crypto.FILETYPE_PEM, key_data, ssl.key_password.encode("utf-8")
            )
        else:
            pkey = crypto.load_privatekey(crypto.FILETYPE_PEM, key_data)
        client = PrivateCertificate.fromCertificateAndKeyPair(cert, KeyPair(pkey))
    if trust is None and not (ssl is not None and ssl.verify_peer):
        Bridge._log.warn(
            "Bridge {name}: no ssl.cacertfile and verify_peer = false; the "
            "certificate of {server} is not verified",
            name=config.name,
            server=config.server,
        )
        if client is None:
            return CertificateOptions(verify=False)
        return CertificateOptions(
            privateKey=client.privateKey.original,
            certificate=client.original,
            verify=False,
        )
    return optionsForClientTLS(config.host, trustRoot=trust, clientCertificate=client)


class QuicEndpoint:
    """A client "endpoint" for ``mqtt-quic://`` over the shared aioquic
    driver, dialled by `transport/quic/client.py`: a fresh UDP port and
    QUIC connection per attempt, so ``ClientService`` reconnects exactly as
    for TCP.

    ``quic_idle_timeout`` becomes aioquic's ``idle_timeout`` and
    ``quic_initial_rtt_ms`` its ``initial_rtt``; NanoMQ's QUIC bridge does
    not verify the server (``ssl`` is invalid for QUIC), nor do we.  The
    other ``quic_*`` keys have no aioquic equivalent and are accepted and
    ignored (docs/compatibility.md)."""

    def __init__(self, reactor, config):
        from ..transport.quic.client import client_configuration

        self.reactor = reactor
        self.config = config
        idle = config.quic_idle_timeout or 24 * 3600.0
        # The quic_* keys aioquic has an equivalent for; NanoMQ's congestion
        # control is fixed to CUBIC, which aioquic also implements.
        self.configuration = client_configuration(
            server_name=config.host,
            verify=False,
            idle_timeout=idle,
            initial_rtt=config.quic_initial_rtt_ms / 1000.0,
            congestion_control_algorithm="cubic",
        )

    def connect(self, factory):
        from ..transport.quic.client import connect_quic

        attempt = connect_quic(
            self.reactor, self.config.host, self.config.port, self.configuration, factory
        )
        # aioquic would wait for its idle timeout; NanoMQ gives the
        # handshake quic_handshake_timeout (cancelling releases the port).
        return attempt.addTimeout(max(self.config.quic_handshake_timeout, 0.1), self.reactor)


def client_endpoint(reactor, config):
    """The client endpoint for the bridge's ``server`` URL."""
    if config.scheme == "mqtt-quic":
        return QuicEndpoint(reactor, config)
    endpoint = HostnameEndpoint(reactor, config.host, config.port, timeout=10)
    if config.scheme == "tls+mqtt-tcp":
        return wrapClientTLS(tls_options(config), endpoint)
    return endpoint


def server_configs(config):
    """The configurations a bridge dials in turn: its own, then (with
    ``hybrid_bridging``) one per ``hybrid_servers`` URL, each differing
    only in ``server``/``scheme``/``host``/``port``."""
    configs = [config]
    if config.hybrid_bridging:
        for url in config.hybrid_servers:
            parts = split_server(url)
            if parts is None:  # validated at load time; be safe with REST PUT
                continue
            scheme, host, port = parts
            configs.append(replace(config, server=url, scheme=scheme, host=host, port=port))
    return configs


class HybridEndpoint:
    """NanoMQ's ``hybrid_bridging``: every connection attempt -- the first,
    each one after a failed attempt and each one after a lost connection
    -- goes to the next address of ``[server] + hybrid_servers``,
    round-robin.  So a QUIC server that does not answer is followed by the
    TCP fallback, and QUIC is tried again when the rotation comes back to
    it (after the fallback connection is lost, or fails)."""

    def __init__(self, reactor, bridge, configs, endpoint_factory):
        self.bridge = bridge
        self.targets = [(config, endpoint_factory(reactor, config)) for config in configs]
        self.index = 0

    def connect(self, factory):
        config, endpoint = self.targets[self.index % len(self.targets)]
        self.index += 1
        self.bridge.dialing(config)
        return endpoint.connect(factory)
