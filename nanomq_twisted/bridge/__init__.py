"""MQTT bridges: outgoing client connections from this broker to remote
brokers (spec/bridges.md), over the broker's one MQTT client (client/).
``topics`` and ``session`` are pure; the rest is Twisted."""
