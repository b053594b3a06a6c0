"""Twisted adapters that carry MQTT: protocol, listeners, timers."""
