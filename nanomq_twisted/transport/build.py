# -*- test-case-name: tests.e2e.test_websocket,tests.e2e.test_tls,tests.e2e.test_quic -*-
"""
Every MQTT listener of a configuration, built in one place:
``build_listeners(config, broker, reactor)`` returns them by name, in the
order they start (TCP, TLS, WebSocket, secure WebSocket, QUIC).  The HTTP
API's listener is the REST layer's (http/service.py); app.py puts both in
its ``listeners`` service.

Every listener carries the same ``MQTTServerProtocol``; only the wrapping
differs:

========  =========================================================
``tcp``   TCP → MQTT (``tcp.<name>`` for named blocks)
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


def tcp_listener_name(listener):
    return "tcp" if listener.name == "default" else "tcp." + listener.name


def build_listeners(config, broker, reactor):
    """``{name: ListenerService}`` for every enabled MQTT listener of
    ``config.listeners``, all sharing ``broker``.

    ``listeners.connect_timeout`` bounds every listener's wait for CONNECT,
    ``listeners.handshake_timeout`` its TLS handshake, WebSocket upgrade and
    QUIC stream opening: a peer that sends nothing, or one byte at a time,
    is closed after at most their sum (docs/reliability.md)."""
    listeners = config.listeners
    connect_timeout = listeners.connect_timeout
    handshake_timeout = listeners.handshake_timeout
    stats = broker.stats

    def mqtt_factory(name, max_connections=0):
        return MQTTServerFactory(broker, reactor, name, max_connections, connect_timeout)

    built = {}
    for listener in listeners.tcp:
        if not listener.enable:
            continue
        name = tcp_listener_name(listener)
        factory = mqtt_factory(name, listener.max_connections)
        endpoint = tcp_endpoint(reactor, listener.host, listener.port, listener.backlog)
        built[name] = ListenerService(name, endpoint, factory, "(MQTT over TCP)")

    for listener in listeners.ssl:
        if not listener.enable:
            continue
        name = ssl_listener_name(listener)
        endpoint = TLSServerEndpoint(
            reactor, listener, listener.host, listener.port, listener.backlog, name,
            handshake_timeout, stats,
        )
        factory = mqtt_factory(name, listener.max_connections)
        built[name] = ListenerService(name, endpoint, factory, "(MQTT over TLS)")

    ws = listeners.ws
    if ws is not None:
        factory = WebSocketFactory(mqtt_factory("ws"), ws.path, reactor, handshake_timeout, stats)
        endpoint = tcp_endpoint(reactor, ws.host, ws.port)
        built["ws"] = ListenerService(
            "ws", endpoint, factory, f"(MQTT over WebSocket, path {ws.path})"
        )

    wss = listeners.wss
    if wss is not None:
        factory = WebSocketFactory(mqtt_factory("wss"), wss.path, reactor, handshake_timeout,
                                   stats)
        endpoint = TLSServerEndpoint(reactor, wss, wss.host, wss.port, name="wss",
                                     handshake_timeout=handshake_timeout, stats=stats)
        built["wss"] = ListenerService(
            "wss", endpoint, factory, f"(MQTT over secure WebSocket, path {wss.path})"
        )

    quic = listeners.quic
    if quic is not None:
        # aioquic is imported only when QUIC is configured.
        from .quic.server import QuicServerEndpoint

        endpoint = QuicServerEndpoint(reactor, quic, stream_timeout=handshake_timeout,
                                      stats=stats)
        factory = mqtt_factory("quic")
        built["quic"] = ListenerService(
            "quic", endpoint, factory, "(MQTT over QUIC, ALPN mqtt)"
        )
    return built
