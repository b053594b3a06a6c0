# -*- test-case-name: tests.protocol.test_http_api -*-
"""
NanoMQ's HTTP REST API V4 on Klein: the router, the gate and the one
error handler.

``RootAPI(control, reactor)`` holds the state; ``RootAPI.app`` is the
Klein application (a class attribute, bound per instance by Klein).
``api.app.resource()`` is the site root: the `Gate` (gate.py) in front of
Klein's resource, which normalises the path, authenticates, bounds
methods, body sizes and concurrency *before* routing, and hands ``/`` and
``/dashboard/`` to the web dashboard (http/dashboard) when it is on.

Handlers live in one module per path group and are plain functions
``fn(api, request, **path_args) -> bytes``; they raise ``ApiError`` for
errors, which ``errors`` below -- the only error handler -- turns into
``{"code": N}``.  Every response is ``application/json`` (``/prometheus``
is ``text/plain; version=0.0.4``).

Bridges and rules are separate packages: their Klein applications are made
from the control's current services (``RootAPI.mounts``) and reached
through the ``branch=True`` routes ``/api/v4/bridges`` and ``/api/v4/rules``.
"""

import time

from klein import Klein
from klein.resource import KleinResource
from twisted.internet import defer
from twisted.logger import Logger
from werkzeug.exceptions import NotFound

from ..config import HttpServerConfig
from . import (
    brokers,
    clients,
    config_text,
    configuration,
    ctrl,
    inspection,
    login,
    metrics,
    mqtt_ops,
    openapi,
    overview,
    subscriptions,
    topic_tree,
)
from .auth import Authenticator
from .common import dumps, error_response
from .dashboard import DashboardFiles
from .gate import Gate

_log = Logger()


class _GatedKlein(Klein):
    """A Klein app whose resource is wrapped in the gate of its instance.

    Paths are matched as given: werkzeug would otherwise redirect ``//`` to
    ``/`` (NanoMQ answers 404).
    """

    def __init__(self):
        super().__init__()
        self._url_map.merge_slashes = False

    def resource(self):
        inner = KleinResource(self)
        if self._instance is None:
            return inner
        return Gate(self._instance, inner)


class RootAPI:
    """State of the REST API and its Klein routes.

    ``control`` (an `IControl`, http/control.py) is the running broker as
    the API may see and change it; the bridges and rules sub-applications
    are built from its current services, so ``/ctrl/restart`` needs no
    hand-over."""

    app = _GatedKlein()

    def __init__(self, control, reactor=None):
        if reactor is None:
            from twisted.internet import reactor
        self.control = control
        self.reactor = reactor
        config = control.config
        self.http = config.http_server or HttpServerConfig()
        self.config_path = config.source_path
        self.authenticator = Authenticator(self)
        self.limiter = defer.DeferredSemaphore(max(1, self.http.limit_conn))
        self.started = reactor.seconds()
        self.started_wall = time.time()
        #: The Deferred of the last `/ctrl/restart` (see `ctrl.py`).
        self.restarted = None
        #: The dashboard's open sessions (the application's, login.py).
        self.logins = control.logins
        self.prometheus = metrics.PrometheusExporter(self)
        self.dashboard = DashboardFiles()
        self._subapps = {}

    @property
    def broker(self):
        return self.control.broker

    @property
    def config(self):
        return self.control.config

    def stop(self):
        self.control.stop()

    # -- the bridges and rules sub-applications ----------------------------

    def _subapp(self, name, service, make):
        """The sub-application for ``service``, made once per service."""
        cached = self._subapps.get(name)
        if cached is None or cached[0] is not service:
            cached = self._subapps[name] = (service, make(service))
        return cached[1]

    def bridges_api(self):
        """The ``BridgesAPI`` of the current bridges service, or None."""
        bridges = self.control.bridges
        if bridges is None:
            return None
        from .bridges import BridgesAPI

        return self._subapp("bridges", bridges, lambda s: BridgesAPI(self, s))

    def rules_api(self):
        rules = self.control.rules
        if rules is None:
            return None
        from .rules import RulesAPI

        return self._subapp("rules", rules, RulesAPI)

    @property
    def mounts(self):
        """``{name: Klein application}`` served below ``/api/v4/<name>``."""
        found = {}
        for name, subapp in (("bridges", self.bridges_api()), ("rules", self.rules_api())):
            if subapp is not None:
                found[name] = subapp
        return found

    def bridge_stats(self):
        """``/metrics``' per-bridge statistics."""
        bridges = self.control.bridges
        return bridges.metrics() if bridges is not None else []

    def bridge_view(self):
        """The ``bridge`` part of ``/configuration``, or None."""
        subapp = self.bridges_api()
        return subapp.view() if subapp is not None else None

    # -- the one error handler -----------------------------------------

    @app.handle_errors(Exception)
    def errors(self, request, failure):
        # Unknown path, or a known path with another of GET/POST/PUT/DELETE:
        # 404 in NanoMQ too; other methods never get this far (the gate).
        return error_response(request, failure, _log)

    # -- discovery, broker, node --------------------------------------------

    @app.route("/api/v4", methods=["GET"])
    def endpoints(self, request):
        return brokers.endpoint_list(self, request)

    @app.route("/api/v4/openapi.json", methods=["GET"])
    def openapi_document(self, request):
        return dumps(openapi.document())

    @app.route("/api/v4/brokers", methods=["GET"])
    def brokers(self, request):
        return brokers.list_brokers(self, request)

    @app.route("/api/v4/nodes", methods=["GET"])
    def nodes(self, request):
        return brokers.list_nodes(self, request)

    @app.route("/api/v4/metrics", methods=["GET"])
    def metrics(self, request):
        return metrics.metrics(self, request)

    @app.route("/api/v4/prometheus", methods=["GET"])
    def prometheus(self, request):
        return metrics.prometheus(self, request)

    # -- clients, subscriptions, topic tree ----------------------------------

    @app.route("/api/v4/clients", methods=["GET"])
    def clients(self, request):
        return clients.list_clients(self, request)

    @app.route("/api/v4/clients/<clientid>", methods=["GET"])
    def client(self, request, clientid):
        return clients.list_clients(self, request, client_id=clientid)

    @app.route("/api/v4/clients/<clientid>", methods=["DELETE"])
    def kick(self, request, clientid):
        return clients.kick(self, request, clientid)

    @app.route("/api/v4/clients/username/<username>", methods=["GET"])
    def client_by_username(self, request, username):
        return clients.list_clients(self, request, username=username)

    @app.route("/api/v4/subscriptions", methods=["GET"])
    def subscriptions(self, request):
        return subscriptions.list_subscriptions(self, request)

    @app.route("/api/v4/subscriptions/<clientid>", methods=["GET"])
    def client_subscriptions(self, request, clientid):
        return subscriptions.list_subscriptions(self, request, clientid)

    @app.route("/api/v4/topic-tree", methods=["GET"])
    def topic_tree(self, request):
        return topic_tree.topic_tree(self, request)

    # -- our additions: overview and inspection (overview.py, inspection.py) --

    @app.route("/api/v4/stats", methods=["GET"])
    def stats(self, request):
        return overview.stats(self, request)

    @app.route("/api/v4/listeners", methods=["GET"])
    def listeners(self, request):
        return overview.listeners(self, request)

    @app.route("/api/v4/metrics/history", methods=["GET"])
    def metrics_history(self, request):
        return overview.history(self, request)

    @app.route("/api/v4/bridge-status", methods=["GET"])
    def bridge_status(self, request):
        return overview.bridge_status(self, request)

    @app.route("/api/v4/sessions/<clientid>", methods=["GET"])
    def session_detail(self, request, clientid):
        return inspection.session_detail(self, request, clientid)

    @app.route("/api/v4/shared", methods=["GET"])
    def shared(self, request):
        return inspection.shared(self, request)

    @app.route("/api/v4/retained", methods=["GET"])
    def retained(self, request):
        return inspection.retained(self, request)

    @app.route("/api/v4/retained", methods=["DELETE"])
    def delete_retained(self, request):
        return inspection.delete_retained(self, request)

    @app.route("/api/v4/config_file", methods=["GET"])
    def config_file(self, request):
        return config_text.config_file(self, request)

    # -- the dashboard's login (login.py) ----------------------------------------

    def _dashboard_on(self):
        if not self.http.dashboard.enable:
            raise NotFound()

    @app.route("/api/v4/dashboard/login", methods=["POST"])
    def dashboard_login(self, request):
        self._dashboard_on()
        return login.login(self, request)

    @app.route("/api/v4/dashboard/logout", methods=["POST"])
    def dashboard_logout(self, request):
        self._dashboard_on()
        return login.logout(self, request)

    @app.route("/api/v4/dashboard/whoami", methods=["GET"])
    def dashboard_whoami(self, request):
        self._dashboard_on()
        return login.whoami(self, request)

    # -- MQTT operations ----------------------------------------------------

    @app.route("/api/v4/mqtt/publish", methods=["POST"])
    def publish(self, request):
        return mqtt_ops.publish(self, request)

    @app.route("/api/v4/mqtt/publish_batch", methods=["POST"])
    def publish_batch(self, request):
        return mqtt_ops.publish_batch(self, request)

    @app.route("/api/v4/mqtt/subscribe", methods=["POST"])
    def subscribe(self, request):
        return mqtt_ops.subscribe(self, request)

    @app.route("/api/v4/mqtt/subscribe_batch", methods=["POST"])
    def subscribe_batch(self, request):
        return mqtt_ops.subscribe_batch(self, request)

    @app.route("/api/v4/mqtt/unsubscribe", methods=["POST"])
    def unsubscribe(self, request):
        return mqtt_ops.unsubscribe(self, request)

    @app.route("/api/v4/mqtt/unsubscribe_batch", methods=["POST"])
    def unsubscribe_batch(self, request):
        return mqtt_ops.unsubscribe_batch(self, request)

    # -- configuration and control ---------------------------------------------

    @app.route("/api/v4/reload", methods=["GET"])
    def get_reload(self, request):
        return configuration.get_reload(self, request)

    @app.route("/api/v4/reload", methods=["POST"])
    def set_reload(self, request):
        return configuration.set_reload(self, request)

    @app.route("/api/v4/configuration", methods=["GET"])
    def get_configuration(self, request):
        return configuration.get_configuration(self, request)

    @app.route("/api/v4/configuration/<section>", methods=["GET"])
    def get_configuration_section(self, request, section):
        return configuration.get_configuration(self, request, section)

    @app.route("/api/v4/configuration", methods=["POST"])
    def set_configuration(self, request):
        return configuration.set_configuration(self, request)

    @app.route("/api/v4/configuration/<section>", methods=["POST"])
    def set_configuration_section(self, request, section):
        return configuration.set_configuration(self, request, section)

    @app.route("/api/v4/config_update", methods=["POST"])
    def config_update(self, request):
        return configuration.config_update(self, request)

    @app.route("/api/v4/ctrl/<action>", methods=["POST"])
    def control(self, request, action):
        return ctrl.control(self, request, action)

    # -- mount points for other packages ----------------------------------------

    @app.route("/api/v4/bridges/", branch=True)
    def bridges(self, request):
        return self._mounted("bridges")

    @app.route("/api/v4/rules/", branch=True)
    def rules(self, request):
        return self._mounted("rules")

    def _mounted(self, name):
        subapp = self.mounts.get(name)
        if subapp is None:
            raise NotFound()
        return subapp.app.resource()
