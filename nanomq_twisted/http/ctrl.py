"""
``POST /ctrl/{action}``: ``stop`` or ``restart`` (case-insensitive).

Both answer ``{"code":0}`` first and act once the response is written.

- ``stop`` calls ``api.stop`` (the reactor's ``stop``: ``twistd`` then stops
  the service tree cleanly, closing listeners and connections).
- ``restart`` re-reads the configuration file the broker started with and
  swaps the ``listeners`` (MQTT listeners and this HTTP server), ``bridges``
  and ``rules`` services of the tree for new ones built from it
  in-process (``root.build_listeners``/``build_bridges``/``build_rules``,
  the builders of ``tap.make_service``), keeping the ``Broker`` object:
  sessions, subscriptions, queued and retained messages survive, and the
  hot settings of the file (``mqtt``, ``auth.allow_anonymous``,
  ``auth.password``) are applied.  Rules created over REST and bridge
  changes made over REST are replaced by the file's, as after a process
  restart.  A file that does not load is refused up front with 400/117
  and nothing changes.

Any other action is 404 ``{"code":101}``, as NanoMQ.
"""

import os

from twisted.internet import defer
from twisted.logger import Logger

from ..config import ConfigError, load
from .common import NOT_HOCON, RPC_ERROR, ApiError, ok
from .configuration import set_password_table

_log = Logger()


def control(api, request, action):
    action = action.lower()
    if action == "stop":
        request.notifyFinish().addBoth(lambda _: api.reactor.callLater(0, api.stop))
        return ok()
    if action == "restart":
        config = api.config
        path = api.config_path
        if path and os.path.isfile(path):
            try:
                config = load(path)
            except ConfigError as error:
                raise ApiError(400, NOT_HOCON, message=str(error)) from None
        done = api.restarted = defer.Deferred()

        def later(_):
            api.reactor.callLater(0, _run_restart, api, config, done)

        request.notifyFinish().addBoth(later)
        return ok()
    raise ApiError(404, RPC_ERROR)


def _run_restart(api, config, done):
    """Run ``restart`` and fire ``done`` (``api.restarted``) with its result."""
    d = restart(api, config)
    d.addErrback(lambda f: _log.failure("restart failed", f))
    d.chainDeferred(done)


def _apply_config(broker, config):
    broker.config = config.mqtt
    set_password_table(
        broker, config.auth.allow_anonymous, config.auth.password, keep_passwords=False
    )


def _build(root, name, config):
    """A new ``name`` service from ``config``, or None without a builder."""
    builder = getattr(root, "build_" + name, None)
    return None if builder is None else builder(config)


@defer.inlineCallbacks
def restart(api, config):
    """Swap the root service's ``listeners``, ``bridges`` and ``rules`` for
    ones built from ``config``."""
    root = api.root_service
    if root is None:
        _log.warn("restart requested but the API has no service tree")
        return
    # Build before stopping anything: construction does no I/O, and a
    # failure here leaves the running tree as it was.
    bridges = _build(root, "bridges", config)
    rules = _build(root, "rules", config)
    for name, new in (("listeners", True), ("bridges", bridges), ("rules", rules)):
        if new is None:
            continue
        try:
            old = root.getServiceNamed(name)
        except KeyError:
            continue
        yield defer.maybeDeferred(old.disownServiceParent)
    _apply_config(api.broker, config)
    root.config = config
    if bridges is not None:
        root.bridges = bridges
    if rules is not None:
        root.rules = rules
    # Built after ``root.bridges`` is replaced: the new API mounts it.
    listeners = root.build_listeners(config)
    for service in listeners:
        new_api = getattr(service, "api", None)
        if new_api is None:
            continue
        for name, resource in api.mounts.items():
            new_api.mounts.setdefault(name, resource)
        if bridges is None:
            new_api.bridge_stats = api.bridge_stats
            new_api.bridge_view = api.bridge_view
        if rules is not None:
            from .rules import RulesAPI

            new_api.mount("rules", RulesAPI(rules).app.resource())
        new_api.stop = api.stop
    listeners.setServiceParent(root)
    for service in (bridges, rules):
        if service is not None:
            service.setServiceParent(root)
    _log.info("listeners, bridges and rules restarted from {path}",
              path=config.source_path)
