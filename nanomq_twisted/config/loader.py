"""Glue: file text -> tree (``hocon``) -> env merge (``env``) -> dataclasses.

This is the only module that knows the top-level layout of ``nanomq.conf``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .bridges import build_bridges, build_rules
from .env import env_overrides, merge
from .errors import ConfigError
from .flood import build_rate_limit
from .hocon import parse_text
from .reader import Context, Node
from .schema import BrokerConfig
from .sections import (
    build_auth,
    build_http_server,
    build_listeners,
    build_log,
    build_mqtt,
    build_plugin,
    build_preset_sessions,
    build_sqlite,
    build_system,
    build_webhook,
)

__all__ = ["load", "loads"]

# Sections NanoMQ's open-source parser does not read; accepted, kept raw.
_IGNORED = ("exchange_client", "parquet")


def load(path: str, env: Mapping[str, str] | None = None) -> BrokerConfig:
    """Load and validate the HOCON file at ``path``.

    ``env`` defaults to ``os.environ``; pass ``{}`` to ignore NANOMQ_* vars.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ConfigError("configuration file not found", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file: {exc.strerror}", path=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc.reason}", path=path) from None
    return loads(text, path=path, env=env)


def loads(text: str, path: str = "<string>",
          env: Mapping[str, str] | None = None) -> BrokerConfig:
    """Parse ``text`` as if read from ``path`` (includes resolve next to it)."""
    env = os.environ if env is None else env
    # Pseudo-names such as "<string>" or "<test>" label text that has no file.
    is_file = not (path.startswith("<") and path.endswith(">"))
    basedir = os.path.dirname(os.path.abspath(path)) if is_file else os.getcwd()
    included: list = []
    file_tree = parse_text(text, path, basedir, included)
    # The files the configuration is made of (auth.reload_interval polls them).
    source_files = tuple(dict.fromkeys(([os.path.abspath(path)] if is_file else []) + included))

    overrides = env_overrides(env)
    tree = merge(overrides.tree, file_tree)
    origins = {k: v for k, v in overrides.origins.items() if not _present(file_tree, k)}
    for section in overrides.switched_off:
        if not _present(file_tree, section) and not _present(file_tree, section + ".enable"):
            _set(tree, section + ".enable", False)

    # NanoMQ's listener rule is about the *file*: no listeners section -> one
    # default TCP listener; listeners without tcp -> no TCP, even if a
    # NANOMQ_BROKER_URL variable is set.
    file_listeners = file_tree.get("listeners")
    tcp_from_file = True
    if "listeners" in tree:
        if file_listeners is None:
            tree["listeners"].setdefault("tcp", {})
        elif isinstance(file_listeners, dict) and "tcp" not in file_listeners:
            tcp_from_file = False

    ctx = Context(path=path, text=text, env_keys=origins)
    root = Node(tree, "", ctx)
    bridges, bridge_cache, unsupported = build_bridges(root.child("bridges"), overrides.vin)
    for name in _IGNORED:
        if root.has(name):
            unsupported[name] = root.raw(name)
    cfg = BrokerConfig(
        system=build_system(root.child("system")),
        mqtt=build_mqtt(root.child("mqtt")),
        listeners=build_listeners(root.child("listeners"), tcp_from_file),
        http_server=build_http_server(root.child("http_server")),
        log=build_log(root.child("log")),
        auth=build_auth(root.child("auth")),
        webhook=build_webhook(root.child("webhook")),
        sqlite=build_sqlite(root.child("sqlite")),
        preset_sessions=build_preset_sessions(root.child("preset")),
        bridges=bridges,
        bridge_cache=bridge_cache,
        rules=build_rules(root.child("rules")),
        rate_limit=build_rate_limit(root.child("rate_limit")),
        plugin=build_plugin(root.child("plugin")),
        unsupported=unsupported,
        source_path=path if is_file else None,
        source_files=source_files,
    )
    root.finish()
    return cfg


def _present(tree: dict, dotted: str) -> bool:
    node = tree
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _set(tree: dict, dotted: str, value) -> None:
    parts = dotted.split(".")
    for part in parts[:-1]:
        tree = tree.setdefault(part, {})
    tree[parts[-1]] = value
