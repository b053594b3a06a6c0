"""
The MQTT wire layer of nanomq-twisted: a sans-I/O codec for MQTT 3.1,
3.1.1 and 5.0.  Nothing in this package does I/O or imports Twisted, so the
protocol rules can be tested byte for byte without a reactor.
"""

from nanomq_twisted.mqtt.codec import Decoder, encode, encode_publish
from nanomq_twisted.mqtt.errors import MqttError

__all__ = ["Decoder", "MqttError", "encode", "encode_publish"]
