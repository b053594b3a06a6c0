# -*- test-case-name: tests.unit.test_bridge_saved -*-
"""
Bridge settings as JSON, for the store (``bridge_saved``/``saved_bridges``).

A bridge changed over REST (PUT, switch, live sub/unsub) is saved as the
whole effective ``BridgeConfig`` -- ``dataclasses.asdict`` -- plus whether
it is switched on.  ``config_from_dict`` rebuilds the frozen dataclasses;
keys a later version no longer knows are ignored and missing ones take
their defaults, so an old row survives a schema change.

Two more kinds of row come from our own REST additions: a bridge created
with ``POST /api/v4/bridges`` is saved with ``"created": true`` (started at
the next start even though the configuration file has no such block), and
one removed with ``DELETE /api/v4/bridges/<name>`` leaves a tombstone,
``{"version", "deleted": true}``, so the file's block of that name is not
started again.  The store keeps one row per name, so the latest change wins.
"""

from dataclasses import asdict, fields

from ..config.bridge_schema import (
    BridgeConfig,
    BridgeForward,
    BridgeSsl,
    BridgeSubscription,
    BridgeTcp,
    BridgeWill,
    ConnProperties,
    SubProperties,
    WillProperties,
)

__all__ = [
    "VERSION", "body_from_service", "config_from_dict", "config_to_dict", "deleted_body",
    "is_created", "is_deleted",
]

#: Format of the saved body (``{"version", "enable", "config"}``).
VERSION = 1


def _pairs(value):
    return tuple((str(k), str(v)) for k, v in value)


def _make(cls):
    return lambda value: _build(cls, value)


def _many(cls):
    return lambda value: tuple(_build(cls, item) for item in value)


#: How a field's JSON value becomes its dataclass value, by field name
#: (the names are unique across the bridge schema).
_CONVERT = {
    "ssl": _make(BridgeSsl),
    "tcp": _make(BridgeTcp),
    "conn_properties": _make(ConnProperties),
    "will": _make(BridgeWill),
    "properties": _make(WillProperties),
    "sub_properties": _make(SubProperties),
    "forwards": _many(BridgeForward),
    "subscription": _many(BridgeSubscription),
    "user_property": _pairs,
    "hybrid_servers": tuple,
}


def _build(cls, data):
    known = {f.name for f in fields(cls)}
    kwargs = {}
    for key, value in data.items():
        if key not in known:
            continue
        convert = _CONVERT.get(key)
        kwargs[key] = value if value is None or convert is None else convert(value)
    return cls(**kwargs)


def config_to_dict(config):
    """``config`` (a ``BridgeConfig``) as JSON-ready dicts and lists."""
    return asdict(config)


def config_from_dict(data):
    """The ``BridgeConfig`` ``config_to_dict`` was given."""
    return _build(BridgeConfig, data)


def body_from_service(config, enabled, created=False):
    """What the store keeps for one bridge (``created``: made over REST,
    not in the configuration file)."""
    body = {"version": VERSION, "enable": bool(enabled), "config": config_to_dict(config)}
    if created:
        body["created"] = True
    return body


def deleted_body():
    """The tombstone of a bridge deleted over REST."""
    return {"version": VERSION, "deleted": True}


def is_deleted(body):
    return bool(body.get("deleted"))


def is_created(body):
    return bool(body.get("created")) and not is_deleted(body)
