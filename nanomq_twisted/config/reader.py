"""Typed, strict access to one object of the parsed configuration tree.

Each section builder wraps its dict in a :class:`Node`, pulls keys with typed
getters and finally calls :meth:`Node.finish`, which rejects every key that
nobody asked for (with a "did you mean" hint).  That is how we catch the
typos NanoMQ silently ignores, without a separate schema to keep in sync.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .units import parse_duration, parse_duration_ms, parse_size

__all__ = ["MISSING", "Context", "Node"]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@dataclass
class Context:
    """Where values come from, for error messages.

    ``env_keys`` maps dotted keys that were set by an environment variable
    (and not overridden by the file) to the variable's name.
    """

    path: str
    text: str = ""
    env_keys: dict = field(default_factory=dict)

    def error(self, key: str, message: str) -> ConfigError:
        for env_key, var in self.env_keys.items():
            if key == env_key or key.startswith(env_key + "."):
                return ConfigError(message, path="environment " + var, key=key)
        return ConfigError(message, path=self.path, key=key, line=self.line_of(key))

    def line_of(self, key: str) -> int | None:
        """Best-effort line of ``key`` in the main file (None if unsure).

        pyhocon keeps no positions, so we look for the key's components in
        order: each one must appear as a key (``name =``, ``name {``,
        ``name.``) at or after the line where the previous one was found.
        """
        if not self.text or not key:
            return None
        lines = self.text.splitlines()
        start = 0
        parts = [p for p in re.split(r"\.|\[\d+\]", key) if p]
        found = None
        for part in parts:
            pattern = re.compile(rf'(^|[\s{{,."])"?{re.escape(part)}"?\s*([=:{{.]|$)')
            for number in range(start, len(lines)):
                code = lines[number].split("#", 1)[0]
                if pattern.search(code):
                    found = number
                    start = number
                    break
            else:
                return found + 1 if found is not None else None
        return found + 1 if found is not None else None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return repr(value)


class Node:
    """One HOCON object, its dotted key and the set of keys consumed so far."""

    def __init__(self, data: Any, key: str, ctx: Context) -> None:
        if not isinstance(data, dict):
            raise ctx.error(key, f"expected an object {{ ... }}, got {_describe(data)}")
        self.data = data
        self.key = key
        self.ctx = ctx
        self.used: set[str] = set()

    # -- plumbing ---------------------------------------------------------
    def sub(self, name: str) -> str:
        return name if not self.key else self.key + "." + name

    def error(self, name: str, message: str) -> ConfigError:
        return self.ctx.error(self.sub(name), message)

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = MISSING) -> Any:
        self.used.add(name)
        value = self.data.get(name, MISSING)
        return default if value is MISSING or value is None else value

    def names(self) -> list[str]:
        return list(self.data)

    def finish(self, also: Iterable[str] = ()) -> None:
        """Reject keys nobody consumed; ``also`` lists extra accepted keys."""
        accepted = self.used | set(also)
        for name in self.data:
            if name not in accepted:
                guess = difflib.get_close_matches(name, sorted(accepted), n=1)
                hint = f' (did you mean "{guess[0]}"?)' if guess else ""
                raise self.error(name, f"unknown key{hint}")

    # -- typed getters ----------------------------------------------------
    def child(self, name: str) -> Node | None:
        value = self.raw(name, None)
        return None if value is None else Node(value, self.sub(name), self.ctx)

    def string(self, name: str, default: Any = None) -> Any:
        value = self.raw(name)
        if value is MISSING:
            return default
        if isinstance(value, (bool, dict, list)):
            raise self.error(name, f"expected a string, got {_describe(value)}")
        if isinstance(value, float) and value == int(value):
            value = int(value)
        return str(value)

    def boolean(self, name: str, default: Any = False) -> Any:
        value = self.raw(name)
        if value is MISSING:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self.error(name, f"expected true or false, got {_describe(value)}")

    def integer(self, name: str, default: Any = 0, minimum: int | None = 0,
                maximum: int | None = None, zero_is_default: bool = False) -> Any:
        value = self.raw(name)
        if value is MISSING:
            return default
        number = _to_int(value)
        if number is None:
            raise self.error(name, f"expected an integer, got {_describe(value)}")
        if zero_is_default and number == 0:
            return default
        self._check_range(name, number, minimum, maximum)
        return number

    def number(self, name: str, default: float, minimum: float | None = None,
               exclusive_minimum: bool = False) -> float:
        value = self.raw(name)
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.error(name, f"expected a number, got {_describe(value)}")
        try:
            number = float(value)
        except ValueError:
            raise self.error(name, f"expected a number, got {_describe(value)}") from None
        if minimum is not None and (number < minimum or (exclusive_minimum and number == minimum)):
            relation = ">" if exclusive_minimum else ">="
            raise self.error(name, f"expected a number {relation} {minimum}, got {_describe(value)}")
        return number

    def size(self, name: str, default: Any, minimum: int = 0,
             zero_is_default: bool = False) -> Any:
        return self._convert(name, default, parse_size, minimum, zero_is_default)

    def duration(self, name: str, default: Any) -> Any:
        return self._convert(name, default, parse_duration, 0, False)

    def duration_ms(self, name: str, default: Any, maximum: int | None = None) -> Any:
        value = self._convert(name, default, parse_duration_ms, 0, False)
        if maximum is not None and value is not None:
            self._check_range(name, value, 0, maximum)
        return value

    def enum(self, name: str, choices: Iterable[str], default: Any) -> Any:
        value = self.raw(name)
        if value is MISSING:
            return default
        choices = tuple(choices)
        if isinstance(value, str) and value.lower() in choices:
            return value.lower()
        raise self.error(name, "expected one of {}, got {}".format(", ".join(choices), _describe(value)))

    def int_choice(self, name: str, choices: Iterable[int], default: Any) -> Any:
        value = self.raw(name)
        if value is MISSING:
            return default
        choices = tuple(choices)
        number = _to_int(value)
        if number not in choices:
            raise self.error(name, "expected one of {}, got {}".format(
                ", ".join(str(c) for c in choices), _describe(value)))
        return number

    def string_list(self, name: str, default: Any = ()) -> Any:
        value = self.raw(name)
        if value is MISSING:
            return default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(
                isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise self.error(name, f"expected a list of strings, got {_describe(value)}")
        return tuple(str(v) for v in value)

    def object_list(self, name: str) -> list[Node]:
        value = self.raw(name)
        if value is MISSING:
            return []
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            raise self.error(name, f"expected a list of objects, got {_describe(value)}")
        return [Node(item, f"{self.sub(name)}[{i}]", self.ctx) for i, item in enumerate(value)]

    def string_map(self, name: str) -> dict:
        """An object of string values (headers, user properties, params)."""
        node = self.child(name)
        if node is None:
            return {}
        return node.flat_strings()

    def flat_strings(self, prefix: str = "") -> dict:
        """All members as strings; nested objects become dotted names.

        ``headers.content-type = x`` is parsed by HOCON as a nested object,
        but the user meant one header called ``content-type``; flattening
        with dots would be wrong for that case, so only the leaf name of a
        nested object is joined with ``.`` when the nesting is real.
        """
        result = {}
        for member, value in self.data.items():
            self.used.add(member)
            full = prefix + member
            if isinstance(value, dict):
                result.update(Node(value, self.sub(member), self.ctx).flat_strings(full + "."))
            elif isinstance(value, (list, bool)) or value is None:
                raise self.error(member, f"expected a string, got {_describe(value)}")
            else:
                if isinstance(value, float) and value == int(value):
                    value = int(value)
                result[full] = str(value)
        return result

    def _convert(self, name, default, converter, minimum, zero_is_default):
        value = self.raw(name)
        if value is MISSING:
            return default
        try:
            converted = converter(value)
        except ValueError as exc:
            raise self.error(name, str(exc)) from None
        if zero_is_default and converted == 0:
            return default
        self._check_range(name, converted, minimum, None)
        return converted

    def _check_range(self, name, number, minimum, maximum):
        if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
            if maximum is None:
                expect = f">= {minimum}"
            elif minimum is None:
                expect = f"<= {maximum}"
            else:
                expect = f"in {minimum}..{maximum}"
            raise self.error(name, f"expected a value {expect}, got {number}")


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == int(value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None
