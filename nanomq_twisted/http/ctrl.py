"""
``POST /ctrl/{action}``: ``stop`` or ``restart`` (case-insensitive).

Both answer ``{"code":0}`` first and act once the response is written.

- ``stop`` calls ``api.stop`` (the reactor's ``stop``: ``twistd`` then stops
  the service tree cleanly, closing listeners and connections).
- ``restart`` re-reads the configuration file the broker started with and
  asks the control (the application object, app.py) to rebuild the
  listeners (MQTT listeners and this HTTP server), bridges and rules from
  it in-process, keeping the ``Broker`` object: sessions, subscriptions,
  queued and retained messages survive, and the hot settings of the file
  (``mqtt``, ``auth.allow_anonymous``, ``auth.password``) are applied.  Rules created over REST and bridge
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
    """Run the control's ``restart`` and fire ``done`` (``api.restarted``)."""
    d = defer.maybeDeferred(api.control.restart, config)
    d.addErrback(lambda f: _log.failure("restart failed", f))
    d.chainDeferred(done)
