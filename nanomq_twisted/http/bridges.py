# -*- test-case-name: tests.protocol.test_http_bridges -*-
"""
``/api/v4/bridges``: inspect, reconfigure, switch and (un)subscribe MQTT
bridges at runtime (spec/rest-api.md §5.17, golden transcript §13).

``RootAPI`` serves ``BridgesAPI(api, bridges_service)`` below
``/api/v4/bridges``, so this Klein application sees ``/``, ``/<name>``,
``/switch/<name>``, ``/sub/<name>`` and ``/unsub/<name>``; the root API's
gate has already authenticated the request.  ``view`` is also the
``bridge`` part of ``/configuration``.

Our additions: ``POST /`` creates a bridge (body as PUT's,
``{"<name>": {...}}``) and ``DELETE /<name>`` (listed by NanoMQ, never
served there) deletes one; both go through the application object
(``IControl.add_bridge``/``remove_bridge``), which saves the change as PUT
does.  Their refusals carry a ``message`` and, for a bad setting, its
``key`` (relative to the bridge, e.g. ``forwards[0].remote_topic``), so
the dashboard can show the error beside the field; NanoMQ has no such
answers to stay byte-equal with.

Differences from NanoMQ (docs/compatibility.md): ``/sub`` and ``/unsub``
accept PUT as documented as well as POST as routed; a PUT body with an
unknown or mistyped key is refused (400, 108) instead of ignored.
"""

import os
import re
from dataclasses import replace

from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger

from ..config import BridgeSubscription, ConfigError, SubProperties
from ..config.bridges import build_bridge
from ..config.reader import Context, Node
from .common import (
    ILLEGAL_SUBJECT,
    NOT_JSON,
    PARAM_ERROR,
    ApiError,
    error_response,
    is_int,
    json_body,
    ok,
)

JSON = b"application/json"

_log = Logger()

#: A name a created bridge may have: one HOCON key (no dots or quotes),
#: usable unescaped in a path and a log line.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

#: Node members that are not ``bridges.mqtt.<name>`` keys: PUT ignores
#: them, POST reads ``enable`` and ``parallel`` itself.
_NODE_ONLY = ("name", "parallel", "enable")


def _refused(message, key=None):
    """400/108 with the reason (our endpoints only)."""
    extra = {"message": message}
    if key is not None:
        extra["key"] = key
    return ApiError(400, PARAM_ERROR, **extra)


def _relative_key(key, name):
    """``bridges.mqtt.<name>.forwards[0].qos`` -> ``forwards[0].qos``."""
    prefix = "bridges.mqtt." + name
    if key and key.startswith(prefix + "."):
        return key[len(prefix) + 1:]
    return None if key in (None, prefix) else key


def build_node(name, node, what):
    """The ``BridgeConfig`` of a REST body's bridge node (``what`` names
    the request in the error's path); ``ConfigError`` if it is not one."""
    node = {k: v for k, v in node.items() if k not in _NODE_ONLY}
    context = Context(path=what)
    return build_bridge(name, Node(node, "bridges.mqtt." + name, context),
                        os.environ.get("NANOMQ_VIN"))


def _number(value):
    return int(value) if float(value).is_integer() else value


def _read(path):
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def _user_properties(pairs):
    return [{"key": k, "value": v} for k, v in pairs]


def node_view(service):
    """One bridge as NanoMQ's REST shows it."""
    config = service.config
    connector = {
        "server": config.server,
        "proto_ver": config.proto_ver,
        "clientid": config.clientid,
        "clean_start": config.clean_start,
        "username": config.username,
        "password": config.password,
        "keepalive": _number(config.keepalive),
    }
    v5 = config.proto_ver == 5
    if v5 and config.conn_properties is not None:
        cp = config.conn_properties
        props = {
            "session_expiry_interval": cp.session_expiry_interval,
            "receive_maximum": cp.receive_maximum,
            "maximum_packet_size": cp.maximum_packet_size,
            "topic_alias_maximum": cp.topic_alias_maximum,
            "request_response_information": bool(cp.request_response_information),
            "request_problem_information": bool(cp.request_problem_information),
        }
        if cp.user_property:
            props["user_properties"] = _user_properties(cp.user_property)
        connector["conn_properties"] = props
    if v5 and config.will is not None and config.will.properties is not None:
        wp = config.will.properties
        props = {
            "payload_format_indicator": wp.payload_format_indicator,
            "message_expiry_interval": wp.message_expiry_interval,
        }
        if wp.content_type:
            props["content_type"] = wp.content_type
        props["will_delay_interval"] = wp.will_delay_interval
        if wp.response_topic:
            props["response_topic"] = wp.response_topic
        if wp.correlation_data:
            props["correlation_data"] = wp.correlation_data
        if wp.user_property:
            props["user_properties"] = _user_properties(wp.user_property)
        connector["will_properties"] = props
    node = {
        "name": config.name,
        "enable": service.enabled,
        "parallel": config.max_parallel_processes,
    }
    if config.parallel_connections > 1:
        # Our key (connections to the remote); absent at its default, 1.
        node["parallel_connections"] = config.parallel_connections
    node.update({
        "connector": connector,
        "forwards": [_topic_entry(f, f.qos) for f in config.forwards],
        "subscription": [_topic_entry(s, s.qos) for s in config.subscription],
    })
    if v5 and config.sub_properties is not None:
        sp = {"identifier": config.sub_properties.identifier}
        if config.sub_properties.user_property:
            sp["user_properties"] = _user_properties(config.sub_properties.user_property)
        node["sub_properties"] = sp
    ssl = config.ssl
    node["tls"] = {
        "enable": ssl is not None,
        "url": None,
        "key_password": ssl.key_password if ssl else None,
        "key": _read(ssl.keyfile) if ssl else None,
        "cert": _read(ssl.certfile) if ssl else None,
        "cacert": _read(ssl.cacertfile) if ssl else None,
        "verify_peer": bool(ssl.verify_peer) if ssl else False,
        "fail_if_no_peer_cert": False,
    }
    return node


def _topic_entry(entry, qos):
    out = {}
    if entry.prefix:
        out["prefix"] = entry.prefix
    if entry.suffix:
        out["suffix"] = entry.suffix
    out["remote_topic"] = entry.remote_topic
    out["local_topic"] = entry.local_topic
    if qos is not None:
        out["qos"] = qos
    return out


def _pairs(value):
    """User properties given as ``{"k": "v"}`` or ``[{"key", "value"}]``."""
    if isinstance(value, dict):
        return tuple((str(k), str(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(
            (str(item["key"]), str(item["value"]))
            for item in value
            if isinstance(item, dict) and "key" in item and "value" in item
        )
    return ()


def _data(request, member):
    body = json_body(request)
    data = body.get("data")
    if not isinstance(data, dict) or not isinstance(data.get(member), list):
        raise ApiError(400, NOT_JSON)
    return data


class BridgesAPI:
    """The Klein application below ``/api/v4/bridges``."""

    app = Klein()

    def __init__(self, api, bridges):
        self.api = api
        self.bridges = bridges

    def view(self, name=None):
        """``{"nodes": [...], "sqlite": {...}}`` (``data.bridge``)."""
        from .configuration import _sqlite_object

        services = self.bridges.all()
        if name is not None:
            services = [s for s in services if s.name == name]
        return {
            "nodes": [node_view(s) for s in services],
            "sqlite": _sqlite_object(self.bridges.cache),
        }

    def _service(self, name):
        service = self.bridges.get(name)
        if service is None:
            raise ApiError(404, PARAM_ERROR)
        return service

    @app.handle_errors(Exception)
    def errors(self, request, failure):
        return error_response(request, failure, _log, "bridges REST handler")

    def _json(self, request, body):
        request.setHeader(b"content-type", JSON)
        return body

    # -- GET -------------------------------------------------------------------

    @app.route("/", methods=["GET"])
    def list_bridges(self, request):
        return self._json(request, ok(data={"bridge": self.view()}))

    @app.route("/<name>", methods=["GET"], strict_slashes=False)
    def get_bridge(self, request, name):
        return self._json(request, ok(data={"bridge": self.view(name)}))

    # -- PUT /<name>: replace the configuration and reconnect -------------------

    @app.route("/<name>", methods=["PUT"], strict_slashes=False)
    @defer.inlineCallbacks
    def put_bridge(self, request, name):
        body = json_body(request)
        node = body.get(name)
        if not isinstance(node, dict):
            raise ApiError(400, PARAM_ERROR)
        service = self.bridges.get(name)
        if service is None:
            raise ApiError(404, ILLEGAL_SUBJECT)
        try:
            config = build_node(name, node, "PUT /api/v4/bridges/" + name)
        except ConfigError as error:
            _log.warn("PUT bridge {name} refused: {error}", name=name, error=str(error))
            raise ApiError(400, PARAM_ERROR) from None
        config = replace(
            config, enable=True, max_parallel_processes=service.config.max_parallel_processes
        )
        try:
            yield service.reconfigure(config)
        except Exception:  # noqa: BLE001 -- logged; answered 403/108
            _log.failure("Bridge {name}: reconnect setup failed", name=name)
            raise ApiError(403, PARAM_ERROR) from None
        return self._json(request, ok())

    # -- POST /, DELETE /<name>: ours ----------------------------------------------

    @app.route("/", methods=["POST"])
    def create_bridge(self, request):
        body = json_body(request)
        if len(body) != 1 or not isinstance(next(iter(body.values())), dict):
            raise _refused('expected {"<name>": {bridge settings}}')
        (name, node), = body.items()
        if not _NAME.match(name) or name == "cache":
            raise _refused("a bridge name is 1 to 64 letters, digits, '_' or '-' "
                           "(and not 'cache')", "name")
        if node.get("name", name) != name:
            raise _refused("name differs from the member's name", "name")
        enable = node.get("enable", True)
        if not isinstance(enable, bool):
            raise _refused("expected true or false", "enable")
        parallel = node.get("parallel")
        if parallel is not None and not (is_int(parallel) and parallel > 0):
            raise _refused("expected a number > 0", "parallel")
        if self.bridges.get(name) is not None:
            raise _refused(f"a bridge called {name!r} exists", "name")
        try:
            config = build_node(name, node, "POST /api/v4/bridges")
        except ConfigError as error:
            _log.warn("POST bridge {name} refused: {error}", name=name, error=str(error))
            raise _refused(error.message, _relative_key(error.key, name)) from None
        config = replace(config, enable=enable)
        if parallel is not None:
            config = replace(config, max_parallel_processes=parallel)
        self.api.control.add_bridge(config)
        return self._json(request, ok(data={"bridge": self.view(name)}))

    @app.route("/<name>", methods=["DELETE"], strict_slashes=False)
    @defer.inlineCallbacks
    def delete_bridge(self, request, name):
        if self.bridges.get(name) is None:
            raise ApiError(404, ILLEGAL_SUBJECT)
        yield self.api.control.remove_bridge(name)
        return self._json(request, ok())

    # -- POST /switch/<name> -----------------------------------------------------

    @app.route("/switch/<name>", methods=["POST"], strict_slashes=False)
    @defer.inlineCallbacks
    def switch(self, request, name):
        body = json_body(request)
        data = body.get("data")
        on = data.get("bridge_switch") if isinstance(data, dict) else None
        if not isinstance(on, bool):
            raise ApiError(400, PARAM_ERROR)
        service = self.bridges.get(name)
        if service is None:
            # NanoMQ answers 204 No Content (and still sends the body).
            raise ApiError(204, PARAM_ERROR)
        yield service.switch(on)
        return self._json(request, ok())

    # -- POST|PUT /sub/<name>, /unsub/<name> ---------------------------------------

    @app.route("/sub/<name>", methods=["POST", "PUT"], strict_slashes=False)
    def subscribe(self, request, name):
        data = _data(request, "subscription")
        service = self._service(name)
        entries = []
        for item in data["subscription"]:
            if not isinstance(item, dict):
                continue
            remote, local = item.get("remote_topic"), item.get("local_topic")
            if not isinstance(remote, str) or not isinstance(local, str) or not remote:
                continue
            qos = item.get("qos", 0)
            rap = item.get("retain_as_published", 0)
            handling = item.get("retain_handling", 0)
            entries.append(
                BridgeSubscription(
                    remote_topic=remote,
                    local_topic=local,
                    qos=qos if is_int(qos) and 0 <= qos <= 2 else 0,
                    retain_as_published=1 if rap in (1, True) else 0,
                    retain_handling=handling if is_int(handling) and 0 <= handling <= 2 else 0,
                    nolocal=bool(item.get("nolocal", True)),
                    prefix=item.get("prefix") if isinstance(item.get("prefix"), str) else None,
                    suffix=item.get("suffix") if isinstance(item.get("suffix"), str) else None,
                )
            )
        if not entries:
            raise ApiError(400, PARAM_ERROR)
        props = data.get("sub_properties")
        wire_props = {}
        if isinstance(props, dict):
            pairs = _pairs(props.get("user_properties"))
            if pairs:
                wire_props["user_property"] = list(pairs)
            identifier = props.get("identifier")
            if is_int(identifier):
                old = service.bridge.config.sub_properties or SubProperties()
                service.bridge.config = replace(
                    service.bridge.config,
                    sub_properties=replace(old, identifier=identifier),
                )
        service.add_subscriptions(entries, wire_props)
        return self._json(request, ok())

    @app.route("/unsub/<name>", methods=["POST", "PUT"], strict_slashes=False)
    def unsubscribe(self, request, name):
        data = _data(request, "unsubscription")
        service = self.bridges.get(name)
        if service is None or not service.enabled:
            raise ApiError(404, PARAM_ERROR)
        topics = [
            item["topic"]
            for item in data["unsubscription"]
            if isinstance(item, dict) and isinstance(item.get("topic"), str) and item["topic"]
        ]
        if not topics:
            raise ApiError(400, PARAM_ERROR)
        props = data.get("unsub_properties")
        wire_props = {}
        if isinstance(props, dict):
            pairs = _pairs(props.get("user_properties"))
            if pairs:
                wire_props["user_property"] = list(pairs)
        service.remove_subscriptions(topics, wire_props)
        return self._json(request, ok())
