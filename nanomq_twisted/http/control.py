# -*- test-case-name: tests.protocol.test_http_api -*-
"""
What the REST API asks of the running broker, declared.

The API (api.py) is built with one object providing `IControl` -- the
application object of app.py in the product, the same object in tests --
and reaches everything through it: the core ``Broker``, the configuration
in force, the bridges and rules services, and the operations that change
the running broker (hot settings, auth reload, ``/ctrl/restart``).  It
never walks a service tree or looks anything up by name; what it may do is
what this interface says.
"""

from zope.interface import Attribute, Interface


class IControl(Interface):
    broker = Attribute("the core Broker")
    config = Attribute("the BrokerConfig in force (changes with set_config/restart)")
    bridges = Attribute("the BridgesService, or None without bridges")
    rules = Attribute("the RulesService")
    passwords = Attribute(
        "the PasswordAuthenticator: auth.allow_anonymous and the auth.password table")
    listeners = Attribute(
        "{name: ListenerService} of the running listeners (MQTT ones and the HTTP API's)")
    history = Attribute("the MetricsHistory of the broker's counters (history.py)")
    logins = Attribute("the LoginSessions of the dashboard (login.py); kept across restarts")

    def set_config(config):
        """Make ``config`` the configuration in force: its ``mqtt`` section
        is applied to the broker at once (hot settings of ``/reload`` and
        ``/configuration``); nothing is rebuilt."""

    def reload_auth():
        """Re-read the password and ACL files of the configuration file;
        a ``ReloadResult`` (``ok``, ``error``)."""

    def restart(config):
        """Rebuild listeners, bridges and rules from ``config`` in place,
        keeping the broker's sessions and messages; a Deferred."""

    def stop():
        """Stop the process (``/ctrl/stop``)."""

    def add_bridge(config):
        """Create and start a bridge from ``config`` (a ``BridgeConfig``),
        saved like a REST change (``POST /bridges``, ours); ``KeyError``
        if a bridge of that name exists."""

    def remove_bridge(name):
        """Stop bridge ``name``, drop what it owed and remember it is gone
        (``DELETE /bridges/{name}``, ours); a Deferred, failing with
        ``KeyError`` if there is no such bridge."""
