# -*- test-case-name: tests.protocol.test_http_api -*-
"""
NanoMQ's HTTP REST API V4 on Klein: the router, the gate and the one
error handler.

``RootAPI(broker, config, reactor)`` holds the state; ``RootAPI.app`` is
the Klein application (a class attribute, bound per instance by Klein).
``api.app.resource()`` is the site root: a ``_Gate`` in front of Klein's
resource that does, for every request and *before* routing (NanoMQ checks
credentials first, so an unknown path with bad credentials is a 401):

1. the method name is upper-cased (NanoMQ compares it case-insensitively)
   and one trailing ``/`` is dropped (``/brokers/`` is ``/brokers``)
   except below a mount point, whose application sees the path as sent
   (``/api/v4/rules`` reaches it as ``/``);
2. paths outside ``/api/v4`` get 404 ``{"code":102}``;
3. authentication (`auth.py`): 401 with 103/104/116;
4. methods other than GET/POST/PUT/DELETE: 405 ``{"code":102}``;
5. ``http_server.max_body``: a larger body is 400 ``{"code":108}``;
6. ``http_server.limit_conn``: at most that many requests are handled at
   once; the rest wait in a FIFO (a ``DeferredSemaphore``).  Every handler
   of this package is synchronous, so today the bound only matters for
   handlers mounted later that answer asynchronously (bridges).

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
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET
from werkzeug.exceptions import NotFound

from ..config import HttpServerConfig
from . import (
    brokers,
    clients,
    configuration,
    ctrl,
    metrics,
    mqtt_ops,
    openapi,
    subscriptions,
    topic_tree,
)
from .auth import Authenticator
from .common import PARAM_ERROR, UNKNOWN, dumps, error_response

JSON = b"application/json"
ROUTED_METHODS = (b"GET", b"POST", b"PUT", b"DELETE")

_log = Logger()


class _Gate(Resource):
    """Everything that happens before routing (see the module docstring)."""

    isLeaf = True

    def __init__(self, api, klein_resource):
        super().__init__()
        self.api = api
        self.klein = klein_resource

    def _refuse(self, request, status, code):
        request.setResponseCode(status)
        if request.method == b"HEAD":
            return b""
        return dumps({"code": code})

    def render(self, request):
        api = self.api
        request.method = request.method.upper()
        request.setHeader(b"content-type", JSON)
        path = request.postpath
        mounted = len(path) > 2 and path[2].decode("utf-8", "replace") in api.mounts
        if mounted and len(path) == 3:
            request.postpath = path = [*path, b""]
        elif len(path) > 2 and path[-1] == b"" and not mounted:
            request.postpath = path = path[:-1]
        if path[:2] != [b"api", b"v4"]:
            return self._refuse(request, 404, UNKNOWN)
        code = api.authenticator.check(request)
        if code is not None:
            return self._refuse(request, 401, code)
        if request.method not in ROUTED_METHODS:
            request.setHeader(b"allow", self._allowed(path, mounted))
            return self._refuse(request, 405, UNKNOWN)
        if _body_size(request) > api.http.max_body:
            return self._refuse(request, 400, PARAM_ERROR)
        finished = request.notifyFinish()
        api.limiter.acquire().addCallback(self._dispatch, request, finished)
        return NOT_DONE_YET

    def _allowed(self, path, mounted):
        """The ``Allow`` header of a 405 (RFC 9110 section 15.5.6): the
        methods routed for ``path``, or all four when it matches nothing."""
        segments = [seg.decode("utf-8", "replace") for seg in path]
        app = self.api.app
        if mounted:
            mount = self.api.mounts.get(segments[2])
            app = mount.app if mount is not None else None
            segments = segments[3:]
        path_info = "/" + "/".join(segments)
        methods = set()
        if app is not None:
            try:
                methods = set(app.url_map.bind("").allowed_methods(path_info))
            except Exception:  # noqa: BLE001 -- a best effort header
                methods = set()
        methods = [m for m in ROUTED_METHODS if m.decode() in methods] or ROUTED_METHODS
        return b", ".join(methods)

    def _dispatch(self, _, request, finished):
        finished.addBoth(self._release)
        self.klein.render(request)

    def _release(self, result):
        self.api.limiter.release()


def _body_size(request):
    length = request.getHeader(b"content-length")
    declared = 0
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            declared = 0
    content = request.content
    actual = 0
    if content is not None:
        position = content.tell()
        content.seek(0, 2)
        actual = content.tell()
        content.seek(position)
    return max(declared, actual)


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
        return _Gate(self._instance, inner)


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
        self.prometheus = metrics.PrometheusExporter(self)
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
