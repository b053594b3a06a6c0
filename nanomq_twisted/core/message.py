# -*- test-case-name: tests.unit.test_message -*-
"""
An application message as it travels through the broker, and its wire forms.

A PUBLISH is parsed once into a ``Message``.  Subscribers differ only in a
few things -- protocol version, granted QoS, the RETAIN bit, subscription
identifiers, the remaining expiry, the packet id -- so the encoded bytes are
cached per *variant* on the message, and a fan-out to a thousand subscribers
encodes a handful of times, not a thousand.  The packet id is the only
per-subscriber field; it is patched into a cached template at a known
offset instead of re-encoding.

When the incoming packet is byte-for-byte what a subscriber should get (a
3.1.1 QoS 0 non-retained publish, say), the received bytes themselves are
the cached variant: nothing is encoded at all.
"""

import math

from ..mqtt.codec import encode_publish

#: Properties that describe the application message and travel with it to
#: subscribers [MQTT-3.3.2-15..20]; ``topic_alias`` and
#: ``subscription_identifier`` are per-connection and are not forwarded.
FORWARDED_PROPERTIES = (
    "payload_format_indicator",
    "message_expiry_interval",
    "content_type",
    "response_topic",
    "correlation_data",
    "user_property",
)


def forwarded_properties(properties):
    """The subset of an incoming PUBLISH's properties a subscriber sees."""
    if not properties:
        return None
    kept = {k: v for k, v in properties.items() if k in FORWARDED_PROPERTIES}
    return kept or None


class Message:
    """One application message.

    ``expiry_at`` is the absolute time (same clock as ``now``) after which the
    message must not be delivered [MQTT-3.3.2-5], or None.  ``sender`` is the
    client id of the publisher (for No Local) or None for broker-made
    messages.
    """

    __slots__ = (
        "_variants",
        "created",
        "expiry_at",
        "packet_id",
        "payload",
        "properties",
        "qos",
        "retain",
        "sender",
        "topic",
        "username",
    )

    def __init__(
        self,
        topic,
        payload,
        qos=0,
        retain=False,
        properties=None,
        now=0.0,
        sender=None,
        username=None,
        packet_id=None,
    ):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.sender = sender
        self.username = username
        #: The publisher's packet id (rule SQL's ``id``); None for QoS 0.
        self.packet_id = packet_id
        self.created = now
        expiry = properties.get("message_expiry_interval") if properties else None
        self.expiry_at = None if expiry is None else now + expiry
        self._variants = {}

    def expired(self, now):
        return self.expiry_at is not None and now >= self.expiry_at

    def seed_wire_form(self, v5, qos, retain, data):
        """Record ``data``, a received PUBLISH with no properties and no DUP
        bit, as the form for (v5, qos, retain) with no subscription
        identifiers: forwarded as is at QoS 0, or as the template whose
        packet id is patched per subscriber at QoS 1/2 (``with_packet_id``).
        """
        if not qos:
            self._variants[(v5, 0, retain, None, None)] = data
            return
        self._variants[(v5, qos, retain, None, None)] = (data, _packet_id_offset(data))

    def _properties_for(self, sub_ids, now):
        props = self.properties
        remaining = None
        if self.expiry_at is not None:
            remaining = max(0, math.ceil(self.expiry_at - now))
        if remaining is None and not sub_ids:
            return props, None
        out = dict(props) if props else {}
        if remaining is not None:
            # [MQTT-3.3.2-6]: forward the expiry minus the time spent here.
            out["message_expiry_interval"] = remaining
        if sub_ids:
            out["subscription_identifier"] = list(sub_ids)
        return out, remaining

    def wire_qos0(self, v5, retain, sub_ids, now):
        """The complete QoS 0 PUBLISH for one variant."""
        if not v5:
            sub_ids = None
        remaining = None
        if v5 and self.expiry_at is not None:
            remaining = max(0, math.ceil(self.expiry_at - now))
        key = (v5, 0, retain, sub_ids, remaining)
        data = self._variants.get(key)
        if data is None:
            props = None
            if v5:
                props, _ = self._properties_for(sub_ids, now)
            data = encode_publish(
                self.topic, self.payload, 0, retain, False, None, props, 5 if v5 else 4
            )
            self._variants[key] = data
        return data

    def wire_with_alias(self, topic, alias, qos, retain, sub_ids, packet_id, now):
        """A 5.0 PUBLISH carrying ``topic_alias`` (``topic`` is "" once the
        alias is established [MQTT-3.3.2-12]); per connection, so uncached."""
        props, _ = self._properties_for(sub_ids, now)
        props = dict(props) if props else {}
        props["topic_alias"] = alias
        return encode_publish(
            topic, self.payload, qos, retain, False, packet_id, props, 5
        )

    def wire_template(self, v5, qos, retain, sub_ids, now):
        """``(bytes, offset)`` of a QoS 1/2 PUBLISH whose packet id sits at
        ``bytes[offset:offset + 2]``; see ``with_packet_id``."""
        if not v5:
            sub_ids = None
        remaining = None
        if v5 and self.expiry_at is not None:
            remaining = max(0, math.ceil(self.expiry_at - now))
        key = (v5, qos, retain, sub_ids, remaining)
        entry = self._variants.get(key)
        if entry is None:
            props = None
            if v5:
                props, _ = self._properties_for(sub_ids, now)
            data = encode_publish(
                self.topic, self.payload, qos, retain, False, 1, props, 5 if v5 else 4
            )
            entry = (data, _packet_id_offset(data))
            self._variants[key] = entry
        return entry


def _packet_id_offset(data):
    """Where the packet id of the QoS 1/2 PUBLISH ``data`` sits: after the
    fixed header byte, the remaining-length varint and the length-prefixed
    topic [MQTT-3.3.2]."""
    pos = 1
    while data[pos] & 0x80:
        pos += 1
    return pos + 1 + 2 + (data[pos + 1] << 8 | data[pos + 2])


def with_packet_id(template, packet_id, dup=False):
    """Patch ``packet_id`` (and the DUP flag) into a ``wire_template``."""
    data, offset = template
    head = data[:offset]
    if dup:
        head = bytes((head[0] | 0x08,)) + head[1:]
    return b"".join((head, packet_id.to_bytes(2, "big"), data[offset + 2 :]))
