"""HOCON text -> plain Python trees, with NanoMQ's dialect quirks handled.

pyhocon does the parsing; this module adapts it:

* ``10s``/``500ms``/``10m`` stay *strings*.  pyhocon would turn them into
  ``timedelta``/``relativedelta`` (and ``10m`` into minutes even for a size
  key, where NanoMQ means MiB), so while we parse we swap its period grammar
  for one that never matches.  Parsing is serialised with a lock because
  pyhocon already mutates pyparsing globals while it runs.
* includes are resolved relative to the *including* file, a missing
  ``include required(...)`` is reported by name, and a syntax error inside an
  included file is reported against that file with its line number.
* quoted keys lose their quotes (``"admin": "public"``), ``${...}``
  substitutions are rejected (NanoMQ does not support them either), and the
  result is made of ``dict``/``list``/scalars only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyhocon import ConfigFactory, ConfigTree
from pyhocon import config_parser as _cp
from pyhocon.config_tree import ConfigValues, NoneValue
from pyparsing import NoMatch, ParseBaseException

from .errors import ConfigError
from .units import period_text

__all__ = ["parse_text"]

_LOCK = threading.Lock()


@contextmanager
def _nanomq_dialect(errors: dict, included: list | None = None) -> Iterator[None]:
    """Temporarily adjust pyhocon for NanoMQ files (see module docstring).

    ``errors`` receives the file name of the innermost file that failed so
    the caller can attribute a syntax error or a missing include correctly.
    ``included``, when given, receives the absolute path of every file an
    ``include`` asked for (also a missing optional one).
    """
    original_period = getattr(_cp, "get_period_expr", None)
    original_parse_file = ConfigFactory.__dict__.get("parse_file")

    def parse_file(cls, filename, *args, **kwargs):
        if included is not None:
            included.append(os.path.abspath(filename))
        try:
            return original_parse_file.__func__(cls, filename, *args, **kwargs)
        except ParseBaseException:
            errors.setdefault("file", filename)
            raise
        except OSError:
            errors.setdefault("missing", filename)
            raise

    with _LOCK:
        if original_period is not None:
            _cp.get_period_expr = NoMatch
        if original_parse_file is not None:
            ConfigFactory.parse_file = classmethod(parse_file)
        try:
            yield
        finally:
            if original_period is not None:
                _cp.get_period_expr = original_period
            if original_parse_file is not None:
                ConfigFactory.parse_file = original_parse_file


def parse_text(text: str, path: str, basedir: str, included: list | None = None) -> dict:
    """Parse HOCON ``text`` (from ``path``) into nested plain dicts.

    ``included`` (optional list) receives the absolute paths of the files
    the text includes, directly or not.
    """
    errors: dict = {}
    try:
        with _nanomq_dialect(errors, included):
            tree = ConfigFactory.parse_string(text, basedir=basedir, resolve=False)
    except ParseBaseException as exc:
        where = errors.get("file", path)
        raise ConfigError(
            f"HOCON syntax error: {exc.msg} (line {exc.lineno}, column {exc.col})",
            path=_display(where), line=exc.lineno,
        ) from None
    except OSError as exc:
        missing = errors.get("missing") or getattr(exc, "filename", None) or str(exc)
        raise ConfigError(
            f"required include {_display(missing)} not found", path=path,
        ) from None
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyhocon raises assorted ConfigException types
        raise ConfigError(f"cannot parse HOCON: {exc}", path=path) from None
    if not isinstance(tree, ConfigTree):
        raise ConfigError("the top level must be an object, not a list", path=path)
    return _plain(tree, "", path)


def _display(filename: str) -> str:
    """Show paths relative to the working directory when that is shorter."""
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return rel if len(rel) < len(filename) else filename


def _unquote(key: str) -> str:
    if len(key) >= 2 and key[0] == key[-1] == '"':
        return key[1:-1]
    return key


def _plain(value: Any, key: str, path: str) -> Any:
    """Recursively convert pyhocon values to dict/list/str/int/float/bool/None."""
    if isinstance(value, ConfigTree):
        result = {}
        for name, item in value.items():
            name = _unquote(name)
            result[name] = _plain(item, _join(key, name), path)
        return result
    if isinstance(value, list):
        return [_plain(item, f"{key}[{i}]", path) for i, item in enumerate(value)]
    if isinstance(value, ConfigValues):
        raise ConfigError(
            'substitutions like ${...} are not supported; put the value in quotes'
            ' (e.g. "dev/${clientid}/#")',
            path=path, key=key,
        )
    if value is None or isinstance(value, NoneValue) or value is NoneValue:
        return None
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value)
    text = period_text(value)
    if text is not None:
        return text
    return value


def _join(prefix: str, name: str) -> str:
    return name if not prefix else prefix + "." + name
