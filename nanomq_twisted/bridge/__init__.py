"""MQTT bridges: outgoing client connections from this broker to remote
brokers (spec/bridges.md).  ``topics`` is pure; the rest is Twisted."""
