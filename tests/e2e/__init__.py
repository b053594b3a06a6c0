"""End-to-end tests: the real service tree on loopback sockets, driven by
real third-party clients (paho-mqtt, mosquitto_pub/sub)."""
