"""
``GET /metrics`` (NanoMQ's JSON) and ``GET /prometheus``.

``/prometheus`` is a ``prometheus_client`` custom collector over the
core's counters, in its own ``CollectorRegistry`` (never the global one:
several brokers may run in one process, e.g. in tests).  It is rendered by
``render_text`` rather than ``generate_latest`` because the latter renames
every counter to ``<name>_total``; NanoMQ's scrape jobs and dashboards use
the names below exactly (``nanomq_messages_received``, ...).  The output is
the Prometheus text format 0.0.4, in NanoMQ's order (``# TYPE`` before
``# HELP``).  ``*_max`` values are running maxima updated at each scrape,
as NanoMQ does.  Ours follow NanoMQ's: ``nanomq_http_default_credentials``
is 1 while the REST API takes the shipped ``admin``/``public`` from beyond
loopback (http/auth.py); ``nanomq_dashboard_login_failures`` and
``nanomq_dashboard_login_refused`` count dashboard logins refused for wrong
credentials and those answered 429 for too many failures from their
address (http/login_limit.py); ``nanomq_persistence_healthy`` is 0
while the SQLite store cannot commit (disk full, read-only, I/O error;
``/api/v4/brokers`` names which) and 1 otherwise, also without
persistence; ``nanomq_persistence_write_failures`` counts the failed
commit attempts; after them come ours for the state quotas
(core/quotas.py): retained count and bytes, what the quotas refused, and
the queue and slow-consumer drops; then our counters of floods and slow
peers (core/admission.py, docs/reliability.md).  Counters keep NanoMQ's naming (no
``_total``).
"""

import psutil
from prometheus_client.core import CollectorRegistry, Metric

from .auth import default_credentials_exposed
from .common import dumps

CONTENT_TYPE = b"text/plain; version=0.0.4"

# (name, type, HELP text)
METRICS = (
    ("nanomq_connections_count", "gauge", "Number of connected clients"),
    ("nanomq_connections_max", "gauge", "Highest number of connected clients seen"),
    ("nanomq_sessions_count", "gauge", "Number of sessions, offline persistent ones included"),
    ("nanomq_sessions_max", "gauge", "Highest number of sessions seen"),
    ("nanomq_topics_count", "gauge", "Number of topic filters with at least one subscriber"),
    ("nanomq_topics_max", "gauge", "Highest number of subscribed topic filters seen"),
    ("nanomq_subscribers_count", "gauge", "Number of clients holding a subscription"),
    ("nanomq_subscribers_max", "gauge", "Highest number of subscribing clients seen"),
    ("nanomq_messages_received", "counter", "Messages received for routing"),
    ("nanomq_messages_sent", "counter", "Messages sent to subscribers"),
    ("nanomq_messages_dropped", "counter", "Messages dropped"),
    ("nanomq_memory_usage", "gauge", "Resident memory of the broker (b)"),
    ("nanomq_memory_usage_max", "gauge", "Highest resident memory seen (b)"),
    ("nanomq_cpu_usage", "gauge", "CPU usage of the broker process (%)"),
    ("nanomq_cpu_usage_max", "gauge", "Highest CPU usage seen (%)"),
    ("nanomq_http_default_credentials", "gauge",
     "1 while the REST API accepts the default admin/public beyond loopback"),
    ("nanomq_dashboard_login_failures", "counter",
     "Dashboard logins refused for wrong credentials"),
    ("nanomq_dashboard_login_refused", "counter",
     "Dashboard logins refused (429) after too many failures from their address"),
    ("nanomq_persistence_healthy", "gauge",
     "0 while the SQLite store cannot commit (disk full, read-only, I/O error)"),
    ("nanomq_persistence_write_failures", "counter",
     "Failed SQLite commit attempts since start-up"),
    # Ours: the state quotas (core/quotas.py) and the drops they cause.
    ("nanomq_retained_count", "gauge", "Retained messages kept"),
    ("nanomq_retained_bytes", "gauge", "Bytes (topic + payload) of the retained messages"),
    ("nanomq_retained_refused", "counter",
     "Retained messages refused: max_retained_messages or max_retained_bytes reached"),
    ("nanomq_subscriptions_refused", "counter",
     "Subscriptions refused: max_subscriptions reached"),
    ("nanomq_topics_refused", "counter",
     "Topic names and filters refused: over max_topic_length or max_topic_levels"),
    ("nanomq_messages_dropped_queue_full", "counter",
     "Messages dropped: the session queue held max_mqueue_len"),
    ("nanomq_messages_dropped_queue_bytes", "counter",
     "Messages dropped: the session queue held max_mqueue_bytes"),
    ("nanomq_messages_dropped_slow_consumer", "counter",
     "QoS 0 messages dropped: the client did not read (outbox over its limit)"),
    ("nanomq_connections_rate_limited", "counter",
     "Times a connection's reading was paused by rate_limit"),
    ("nanomq_connections_refused_per_address", "counter",
     "Connections refused over listeners.max_connections_per_address"),
    ("nanomq_connect_timeouts", "counter",
     "Connections closed for no complete CONNECT within listeners.connect_timeout"),
    ("nanomq_handshake_timeouts", "counter",
     "TLS, WebSocket and QUIC handshakes not done within listeners.handshake_timeout"),
    ("nanomq_http_request_timeouts", "counter",
     "HTTP requests not received within http_server.request_timeout"),
)

_PERCENT = ("nanomq_cpu_usage", "nanomq_cpu_usage_max")


class ProcessSampler:
    """CPU % since the previous sample and resident memory, via psutil."""

    def __init__(self):
        self.process = psutil.Process()
        self.process.cpu_percent(None)

    def cpu(self):
        return self.process.cpu_percent(None)

    def memory(self):
        return self.process.memory_info().rss


def dropped_total(stats):
    """Every message dropped, whatever the reason (NanoMQ's one counter)."""
    return (stats.dropped + stats.dropped_no_subscriber + stats.dropped_oversize
            + stats.dropped_expired)


def broker_gauges(broker):
    stats = broker.stats
    subscribers = sum(1 for s in broker.sessions.values() if s.subscriptions)
    store = broker.store
    return {
        "nanomq_persistence_healthy": 1 if store.health in ("ok", "off") else 0,
        "nanomq_persistence_write_failures": store.failures,
        "nanomq_connections_count": len(broker.connections),
        "nanomq_sessions_count": len(broker.sessions),
        "nanomq_topics_count": broker.subscriptions.filter_count,
        "nanomq_subscribers_count": subscribers,
        "nanomq_messages_received": stats.received,
        "nanomq_messages_sent": stats.sent,
        "nanomq_messages_dropped": dropped_total(stats),
        "nanomq_retained_count": len(broker.retained),
        "nanomq_retained_bytes": broker.retained.bytes,
        "nanomq_retained_refused": stats.refused_retained,
        "nanomq_subscriptions_refused": stats.refused_subscriptions,
        "nanomq_topics_refused": stats.refused_topics,
        "nanomq_messages_dropped_queue_full": stats.dropped_queue_full,
        "nanomq_messages_dropped_queue_bytes": stats.dropped_queue_bytes,
        "nanomq_messages_dropped_slow_consumer": stats.dropped_slow_consumer,
        "nanomq_connections_rate_limited": stats.rate_limited,
        "nanomq_connections_refused_per_address": stats.refused_per_address,
        "nanomq_connect_timeouts": stats.connect_timeouts,
        "nanomq_handshake_timeouts": stats.handshake_timeouts,
        "nanomq_http_request_timeouts": stats.http_request_timeouts,
    }


class NanoMQCollector:
    """The prometheus_client collector of one broker."""

    def __init__(self, broker, sampler, exposed=lambda: False, limiter=None):
        self.broker = broker
        self.sampler = sampler
        #: ``exposed()``: are the default REST credentials open beyond loopback?
        self.exposed = exposed
        #: The dashboard's ``LoginLimiter`` (its counters), or None.
        self.limiter = limiter
        self.maxima = {}

    def _max(self, name, value):
        best = max(self.maxima.get(name, value), value)
        self.maxima[name] = best
        return best

    def collect(self):
        values = broker_gauges(self.broker)
        values["nanomq_memory_usage"] = self.sampler.memory()
        values["nanomq_cpu_usage"] = round(self.sampler.cpu(), 2)
        for base in ("connections", "sessions", "topics", "subscribers"):
            values[f"nanomq_{base}_max"] = self._max(base, values[f"nanomq_{base}_count"])
        values["nanomq_memory_usage_max"] = self._max("memory", values["nanomq_memory_usage"])
        values["nanomq_cpu_usage_max"] = self._max("cpu", values["nanomq_cpu_usage"])
        values["nanomq_http_default_credentials"] = 1 if self.exposed() else 0
        limiter = self.limiter
        values["nanomq_dashboard_login_failures"] = limiter.failures if limiter else 0
        values["nanomq_dashboard_login_refused"] = limiter.refused if limiter else 0
        for name, kind, help_text in METRICS:
            metric = Metric(name, help_text, kind)
            metric.add_sample(name, {}, values[name])
            yield metric


def _value_text(name, value):
    if name in _PERCENT:
        return f"{value:.2f}"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def render_text(registry):
    """The text exposition format with sample names kept as given."""
    lines = []
    for metric in registry.collect():
        lines.append(f"# TYPE {metric.name} {metric.type}")
        lines.append(f"# HELP {metric.name} {metric.documentation}")
        for sample in metric.samples:
            lines.append(f"{sample.name} {_value_text(metric.name, sample.value)}")
    return ("\n".join(lines) + "\n").encode("utf-8")


class PrometheusExporter:
    def __init__(self, api):
        self.sampler = ProcessSampler()
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = NanoMQCollector(
            api.broker, self.sampler, lambda: default_credentials_exposed(api.http),
            api.logins.limiter)
        self.registry.register(self.collector)

    def scrape(self):
        return render_text(self.registry)


def metrics(api, request):
    """NanoMQ's ``/metrics``: no ``code`` key; ``memory`` is a string."""
    sampler = api.prometheus.sampler
    body = {
        "metrics": list(api.bridge_stats()),
        "cpuinfo": f"{sampler.cpu():.2f}%",
        "memory": str(sampler.memory()),
        "connections": len(api.broker.connections),
    }
    return dumps(body)


def prometheus(api, request):
    request.setHeader(b"content-type", CONTENT_TYPE)
    return api.prometheus.scrape()
