"""Plain-JSON view of a :class:`~.schema.BrokerConfig`.

The REST ``/configuration`` endpoint (and debugging) needs dicts, lists and
scalars only; dataclass field names are used as keys, tuples become lists.
``AclRule.and_``/``or_`` are written as ``and``/``or`` like the file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["to_json_dict"]


def to_json_dict(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        result = {}
        for f in dataclasses.fields(value):
            name = f.name[:-1] if f.name in ("and_", "or_") else f.name
            result[name] = to_json_dict(getattr(value, f.name))
        return result
    if isinstance(value, dict):
        return {str(k): to_json_dict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_dict(v) for v in value]
    return value
