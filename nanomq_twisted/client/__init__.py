"""
The broker's own MQTT client: one protocol, spoken by bridges towards
their remote brokers and by rules that republish to another broker.

- `session.py` -- ``ClientSession``, the sans-I/O client side of MQTT
  3.1, 3.1.1 and 5.0 (CONNECT, keepalive deadlines, QoS 1/2 both ways
  through core/outbound.py, topic aliases, reason codes).
- `options.py` -- ``ClientOptions``, ``OutboundMessage``, ``ClientStats``:
  what an owner hands the session.
- `protocol.py` -- ``MQTTClientProtocol``, the Twisted adapter that moves
  bytes and time between a transport and a ``ClientSession``.
- `interfaces.py` -- what the three parts say to each other.

The package imports nothing here, so importing `session`, `options` or
`interfaces` never loads Twisted.
"""
