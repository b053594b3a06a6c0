# -*- test-case-name: tests.e2e.test_websocket,tests.e2e.test_tls,tests.e2e.test_quic -*-
"""
The TLS, WebSocket, secure WebSocket and QUIC listeners of the service
tree; ``tap.make_service`` calls ``add_secure_and_ws_listeners`` after
adding the plain TCP ones.

Every listener carries the same ``MQTTServerProtocol``; only the wrapping
differs:

========  =========================================================
``ssl``   TCP → TLS → handshake gate → MQTT (``ssl.<name>`` for named
          blocks)
``ws``    TCP → WebSocket → MQTT
``wss``   TCP → TLS → handshake gate → WebSocket → MQTT (certificates of
          the main ``listeners.ssl`` block, copied into the config)
``quic``  UDP → QUIC connection → first bidirectional stream → MQTT
========  =========================================================

Certificates are loaded when each listener starts, so a wrong path fails
that start loudly (``ListenerService``) rather than the config load.
"""

from .listeners import ListenerService, tcp_endpoint
from .protocol import MQTTServerFactory
from .tls import TLSServerEndpoint
from .websocket import WebSocketFactory


def ssl_listener_name(listener):
    return "ssl" if listener.name == "default" else "ssl." + listener.name


def add_secure_and_ws_listeners(parent, config, broker, reactor):
    """Add one ``ListenerService`` per enabled ssl/ws/wss/quic listener of
    ``config.listeners`` to the ``parent`` MultiService."""
    listeners = config.listeners
    for listener in listeners.ssl:
        if not listener.enable:
            continue
        name = ssl_listener_name(listener)
        endpoint = TLSServerEndpoint(
            reactor, listener, listener.host, listener.port, listener.backlog, name
        )
        factory = MQTTServerFactory(broker, reactor, name, listener.max_connections)
        ListenerService(name, endpoint, factory, "(MQTT over TLS)").setServiceParent(parent)

    ws = listeners.ws
    if ws is not None:
        factory = WebSocketFactory(MQTTServerFactory(broker, reactor, "ws"), ws.path, reactor)
        endpoint = tcp_endpoint(reactor, ws.host, ws.port)
        ListenerService(
            "ws", endpoint, factory, f"(MQTT over WebSocket, path {ws.path})"
        ).setServiceParent(parent)

    wss = listeners.wss
    if wss is not None:
        factory = WebSocketFactory(MQTTServerFactory(broker, reactor, "wss"), wss.path, reactor)
        endpoint = TLSServerEndpoint(reactor, wss, wss.host, wss.port, name="wss")
        ListenerService(
            "wss", endpoint, factory, f"(MQTT over secure WebSocket, path {wss.path})"
        ).setServiceParent(parent)

    quic = listeners.quic
    if quic is not None:
        # aioquic is the [quic] extra: imported only when configured.
        from .quic.server import QuicServerEndpoint

        endpoint = QuicServerEndpoint(reactor, quic)
        factory = MQTTServerFactory(broker, reactor, "quic")
        ListenerService("quic", endpoint, factory, "(MQTT over QUIC, ALPN mqtt)").setServiceParent(
            parent
        )
