# -*- test-case-name: tests.unit.test_broker -*-
"""
Counters the core keeps for the REST API, Prometheus and ``$SYS``.

Plain integer attributes on one object: the hot path pays an attribute
increment, nothing more.  Gauges (connections, sessions, topics) are not
stored here; they are derived from the broker's registries when read, so
they can never drift from the truth.
"""


class Stats:
    """Monotonic counters since start (``*_max`` gauges are tracked by the
    readers that sample them).  ``refused_*`` count what the state quotas
    turned away (core/quotas.py): SUBSCRIBE filters over
    ``max_subscriptions``, retained messages the store had no room for,
    topic names and filters over ``max_topic_length``/``max_topic_levels``;
    ``dropped_queue_bytes`` the messages ``max_mqueue_bytes`` dropped."""

    __slots__ = (
        "auth_failures",
        "bytes_received",
        "bytes_sent",
        "connect_timeouts",
        "connects",
        "disconnects",
        "dropped",
        "dropped_disk_cache",
        "dropped_expired",
        "dropped_no_subscriber",
        "dropped_oversize",
        "dropped_queue_bytes",
        "dropped_queue_full",
        "dropped_slow_consumer",
        "extension_errors",
        "handshake_timeouts",
        "http_request_timeouts",
        "packets_received",
        "rate_limited",
        "received",
        "refused_per_address",
        "refused_retained",
        "refused_subscriptions",
        "refused_topics",
        "retained_received",
        "reused_packet_ids",
        "sent",
    )

    def __init__(self):
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}
