"""
``GET /api/v4`` (the endpoint list), ``/brokers`` and ``/nodes``.

The endpoint list names only what this server answers: NanoMQ's entries
in NanoMQ's order and wording (including its "trun" typo), without the
ones it lists but does not serve, plus our additions after them; the
bridges and rules entries appear when those packages are mounted, the
dashboard's login entries when the dashboard is on.

``/brokers`` items carry NanoMQ's keys, in NanoMQ's order, and then ours:
``default_credentials`` is true while the REST API takes the shipped
``admin``/``public`` from beyond loopback (http/auth.py); ``persistence``
says whether the SQLite store can write: ``"off"`` (no ``sqlite {}``),
``"ok"``, or ``"disk_full"``/``"read_only"``/``"failed"`` while its
commits fail (docs/durability.md, "Disk faults").
"""

import time

from .. import __version__
from .auth import default_credentials_exposed
from .common import ok

# (path, name, method, descr, group); group None = always served.
_ENDPOINTS = (
    ("/brokers/", "list_brokers", "GET", "A list of brokers in the cluster", None),
    ("/nodes/", "list_nodes", "GET", "A list of nodes in the cluster", None),
    ("/clients/", "list_clients", "GET", "A list of clients on current node", None),
    ("/clients/:clientid", "lookup_client", "GET", "Lookup a client in the cluster", None),
    ("/clients/username/:username", "lookup_client_via_username", "GET",
     "Lookup a client via username in the cluster", None),
    ("/clients/:clientid", "kick_client", "DELETE", "Kick a client off the broker", None),
    ("/subscriptions/", "list_subscriptions", "GET", "A list of subscriptions in the cluster",
     None),
    ("/subscriptions/:clientid", "lookup_client_subscriptions", "GET",
     "A list of subscriptions of a client", None),
    ("/rules/", "list_rules", "GET", "Get rule list", "rules"),
    ("/rules/:ruleid", "get_rule_details", "GET", "Get the details of a rule", "rules"),
    ("/rules/", "create_rule", "POST", "Create a rule and return the rule ID", "rules"),
    ("/rules/:ruleid", "update_rule", "PUT", "Update the rule and return the rule ID", "rules"),
    ("/rules/:ruleid", "delete_rule", "DELETE", "Delete the rule", "rules"),
    ("/mqtt/subscribe", "mqtt_subscribe", "POST", "Subscribe a topic", None),
    ("/bridges/:bridge_name", "get_mqtt_bridges", "GET", "Get the details of bridge", "bridges"),
    ("/bridges/:bridge_name", "put_mqtt_bridge", "PUT", "Edit a bridge client", "bridges"),
    ("/bridges/switch/:bridge_name", "put_mqtt_bridge_switch", "POST",
     "trun on or off a bridge channel", "bridges"),
    ("/bridges/:bridge_name", "delete_mqtt_bridge", "DELETE", "DELETE a bridge client",
     "bridges"),
    ("/bridges/", "create_mqtt_bridge", "POST", "Create a bridge client", "bridges"),
    ("/mqtt/publish", "mqtt_publish", "POST", "Publish a MQTT message", None),
    ("/mqtt/unsubscribe", "mqtt_unsubscribe", "POST", "Unsubscribe a topic", None),
    ("/mqtt/subscribe_batch", "mqtt_subscribe_batch", "POST", "Batch subscribes topics", None),
    ("/mqtt/publish_batch", "mqtt_publish_batch", "POST", "Batch publish MQTT messages", None),
    ("/mqtt/unsubscribe_batch", "mqtt_unsubscribe_batch", "POST", "Batch unsubscribes topics",
     None),
    ("/topic-tree/", "list_topic-tree", "GET", "A list of topic-tree in the cluster", None),
    ("/reload/", "get_hot_updatable_configuration", "GET",
     "show the configuration that can be hot updated", None),
    ("/reload/", "set_hot_updatable_configuration", "POST",
     "set the configuration that can be hot updated", None),
    ("/configuration/", "get_broker_configuration", "GET", "show all configuration of broker",
     None),
    ("/configuration/basic", "get_basic_configuration", "GET",
     "set broker basic configuration", None),
    ("/configuration/tls", "get_tls_configuration", "GET", "show broker tls configuration",
     None),
    ("/configuration/http_server", "get_http_server_configuration", "GET",
     "show broker http_server configuration", None),
    ("/configuration/websocket", "get_websocket_configuration", "GET",
     "show broker websocket configuration", None),
    ("/configuration/auth", "get_auth_configuration", "GET",
     "show broker authorization configuration", None),
    ("/configuration/auth_http", "get_auth_http_configuration", "GET",
     "show broker authorization by http configuration", None),
    ("/configuration/sqlite", "get_sqlite_configuration", "GET",
     "show broker sqlite configuration", None),
    ("/configuration/bridge", "get_bridge_configuration", "GET",
     "show broker bridge configuration", None),
    ("/configuration/", "set_broker_configuration", "POST", "set broker configuration", None),
    ("/configuration/:section", "set_section_configuration", "POST",
     "set one section of the broker configuration", None),
    ("/config_update", "update_configuration_file", "POST", "update configuration file", None),
    ("/ctrl/:action", "ctrl_broker", "POST", "Control broker stop or restart", None),
    ("/metrics", "metrics", "GET", "Returns all statistical metrics", None),
    ("/prometheus", "prometheus", "GET", "Returns all prometheus data", None),
    ("/openapi.json", "openapi", "GET", "OpenAPI 3 description of this API", None),
    ("/stats", "stats", "GET", "Node, version, uptime and counts", None),
    ("/listeners", "list_listeners", "GET", "MQTT listeners and their connections", None),
    ("/metrics/history", "metrics_history", "GET", "Counters of the last 15 minutes", None),
    ("/bridge-status", "bridge_status", "GET", "Whether each bridge is connected", None),
    ("/sessions/:clientid", "session_detail", "GET", "A client's session in detail", None),
    ("/shared", "list_shared_groups", "GET", "Shared subscription groups", None),
    ("/retained", "list_retained", "GET", "Retained messages", None),
    ("/retained", "delete_retained", "DELETE", "Clear a retained message", None),
    ("/config_file", "get_config_file", "GET", "The configuration file as text", None),
    ("/dashboard/login", "dashboard_login", "POST", "Open a dashboard session", "dashboard"),
    ("/dashboard/logout", "dashboard_logout", "POST", "End a dashboard session", "dashboard"),
    ("/dashboard/whoami", "dashboard_whoami", "GET", "Who is logged in", "dashboard"),
)


def endpoint_list(api, request):
    data = [
        {"path": path, "name": name, "method": method, "descr": descr}
        for path, name, method, descr, group in _ENDPOINTS
        if group is None or group in api.mounts
        or (group == "dashboard" and api.http.dashboard.enable)
    ]
    return ok(data=data)


def uptime_text(seconds):
    """NanoMQ's ``"<h> Hours, <m> minutes, <s> seconds"``."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours} Hours, {minutes} minutes, {seconds} seconds"


def _uptime(api):
    return uptime_text(api.reactor.seconds() - api.started)


def list_brokers(api, request):
    item = {
        "datetime": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime()),
        "node_status": "Running",
        "sysdescr": "NanoMQ Broker",
        "uptime": _uptime(api),
        "version": __version__,
        "default_credentials": default_credentials_exposed(api.http),
        "persistence": api.broker.store.health,
    }
    return ok(data=[item])


def list_nodes(api, request):
    item = {
        "connections": len(api.broker.sessions),
        "node_status": "Running",
        "uptime": _uptime(api),
        "version": __version__,
    }
    return ok(data=[item])
