# -*- test-case-name: tests.unit.test_codec -*-
"""
The one exception type of the wire layer.

Like h11's ``ProtocolError.error_status_hint``, an ``MqttError`` carries the
answer the peer should get: an MQTT 5 reason code.  The transport owns the
single mapping from that code to what goes on the wire (DISCONNECT for 5.0,
a CONNACK return code during CONNECT, a plain close for 3.1.1).
"""


class MqttError(Exception):
    """The peer broke the protocol (or a limit); ``reason_code`` says how.

    0x81 malformed packet, 0x82 protocol error, 0x84 unsupported protocol
    version, 0x95 packet too large, 0x94 topic alias invalid, ...
    """

    def __init__(self, reason_code, message=""):
        message = message or f"MQTT error 0x{reason_code:02x}"
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


class MalformedPacket(MqttError):
    """0x81: the bytes cannot be parsed as the packet they claim to be."""

    def __init__(self, message=""):
        super().__init__(0x81, message or "malformed packet")


class ProtocolError(MqttError):
    """0x82: parseable, but forbidden by the specification."""

    def __init__(self, message=""):
        super().__init__(0x82, message or "protocol error")


class PacketTooLarge(MqttError):
    """0x95: the remaining length exceeds the maximum packet size."""

    def __init__(self, message=""):
        super().__init__(0x95, message or "packet too large")


class UnsupportedProtocolVersion(MqttError):
    """0x84: CONNECT names a protocol name/level this broker does not speak.

    The 3.1.1 answer is CONNACK return code 1 [MQTT-3.1.2-2].
    """

    def __init__(self, message=""):
        super().__init__(0x84, message or "unsupported protocol version")


class TopicNameInvalid(MqttError):
    """0x90: a PUBLISH or will topic name with wildcards [MQTT-3.3.2-2]."""

    def __init__(self, message=""):
        super().__init__(0x90, message or "topic name invalid")
