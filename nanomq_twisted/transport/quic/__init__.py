# -*- test-case-name: tests.protocol.test_quic_driver,tests.e2e.test_quic,tests.e2e.test_bridge_mosquitto -*-
"""
MQTT over QUIC on aioquic, for the listener and the bridge's dialler.

One concern per module, importing downward only:

``driver.py``
    ``QuicDriver``: the one loop around aioquic's sans-I/O
    ``QuicConnection`` (receive → drain events → transmit → re-arm one
    timer) on an injected clock.  Imports neither of the others.
``stream.py``
    ``StreamSession`` and ``QuicStreamTransport``: one bidirectional
    stream as the ``ITransport`` of an unchanged stream protocol; ALPN
    ``mqtt``.  Imports no other module of the package.
``server.py``
    the listener: ``QuicServerEndpoint`` and the connection-ID
    demultiplexer.  Imports ``driver`` and ``stream``.
``client.py``
    the dialler: ``connect_quic``, one UDP port per attempt.  Imports
    ``driver`` and ``stream``.

``server`` and ``client`` never import each other.  This ``__init__``
imports nothing, so aioquic is loaded only when a QUIC listener or bridge
is configured: importers name the module they need
(``transport/build.py`` imports ``server`` lazily, ``bridge/endpoints.py``
imports ``client`` lazily).
"""
