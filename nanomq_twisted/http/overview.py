# -*- test-case-name: tests.protocol.test_http_overview,tests.e2e.test_rest_dashboard -*-
"""
Our additions for an overview of the broker (the dashboard's first page;
NanoMQ has none of these):

- ``GET /api/v4/stats``: node, version, uptime and the counts of
  connections, sessions, subscriptions, topics, retained messages and
  shared groups;
- ``GET /api/v4/listeners``: every MQTT listener with its kind (``tcp``,
  ``tls``, ``ws``, ``wss``, ``quic``), address, bound port, WebSocket path
  and how many clients are connected through it;
- ``GET /api/v4/metrics/history`` (``?since=<time>``): the last 15
  minutes of counters (history.py);
- ``GET /api/v4/bridge-status``: whether each bridge is on and connected,
  with its counters.

All read the core's public state (``Broker.connections``, ``sessions``,
``subscriptions``, ``retained``; a connection's ``listener``) and the
control's listener services; nothing here changes anything.
"""

import socket
from collections import Counter

from .. import __version__
from ..transport.build import ssl_listener_name, tcp_listener_name
from .common import PARAM_ERROR, ApiError, ok, query_pairs

#: Listener name prefix -> the kind the API reports.
_KINDS = {"tcp": "tcp", "ssl": "tls", "ws": "ws", "wss": "wss", "quic": "quic"}


def shared_groups(broker):
    """``{(group, filter): [(client id, Subscription), ...]}`` of every
    shared subscription, from the sessions' subscriptions."""
    groups = {}
    for client_id, session in broker.sessions.items():
        for sub in session.subscriptions.values():
            if sub.share_group is not None:
                groups.setdefault((sub.share_group, sub.real_filter), []).append(
                    (client_id, sub))
    return groups


def stats(api, request):
    broker = api.broker
    subscriptions = sum(len(s.subscriptions) for s in broker.sessions.values())
    return ok(data={
        "node": socket.gethostname(),
        "version": __version__,
        "uptime": int(api.reactor.seconds() - api.started),
        "connections": len(broker.connections),
        "sessions": len(broker.sessions),
        "subscriptions": subscriptions,
        "topics": broker.subscriptions.filter_count,
        "retained": len(broker.retained),
        "shared_groups": len(shared_groups(broker)),
    })


def _configured(config):
    """``{listener name: its configuration}`` of the enabled listeners."""
    listeners = config.listeners
    found = {}
    for listener in listeners.tcp:
        if listener.enable:
            found[tcp_listener_name(listener)] = listener
    for listener in listeners.ssl:
        if listener.enable:
            found[ssl_listener_name(listener)] = listener
    for name, listener in (("ws", listeners.ws), ("wss", listeners.wss),
                           ("quic", listeners.quic)):
        if listener is not None:
            found[name] = listener
    return found


def listeners(api, request):
    counts = Counter(conn.listener for conn in api.broker.connections.values())
    configured = _configured(api.config)
    data = []
    for name, service in api.control.listeners.items():
        listener = configured.get(name)
        if listener is None:
            continue  # the HTTP API's own
        port = service.port.getHost().port if service.port is not None else listener.port
        data.append({
            "name": name,
            "type": _KINDS[name.partition(".")[0]],
            "host": listener.host,
            "port": port,
            "path": listener.path if name in ("ws", "wss") else None,
            "running": service.port is not None,
            "connections": counts.get(name, 0),
        })
    return ok(data=data)


def history(api, request):
    """``?since=<time>``: only the samples after it (a page that polls
    fetches what is new, not the whole quarter hour); 400/108 if it is not
    a number."""
    since = None
    for key, value in query_pairs(request):
        if key == "since":
            try:
                since = float(value)
            except ValueError:
                raise ApiError(400, PARAM_ERROR) from None
    return ok(data=api.control.history.view(since))


def bridge_status(api, request):
    bridges = api.control.bridges
    data = []
    for service in (bridges.all() if bridges is not None else []):
        bridge = service.bridge
        totals = bridge.totals()
        data.append({
            "name": service.name,
            "server": bridge.config.server,
            "enabled": bool(service.enabled),
            "connected": sum(1 for link in bridge.links if link.stats.connected),
            "connections": len(bridge.links),
            "sent": totals.sent,
            "received": totals.received,
            "dropped": totals.dropped,
            "reconnects": totals.connects,
        })
    return ok(data=data)
