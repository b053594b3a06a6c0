# -*- test-case-name: tests.protocol.test_http_inspection -*-
"""
The configuration file as text (``GET /api/v4/config_file``, ours) and
where a refused one is wrong (the ``error`` object of a 400/117 answer).

``POST /config_update`` (configuration.py) already takes a whole file and
refuses one that does not load; an editor also needs the text it starts
from, and a place to put the cursor: `error_fields` turns the loader's
``ConfigError`` into ``{"file", "line", "key", "reason"}`` next to the
``message`` line NanoMQ users already read.
"""

from .common import ok


def error_fields(error):
    """The ``error`` object of a refused configuration (a ``ConfigError``)."""
    return {"file": error.path, "line": error.line, "key": error.key,
            "reason": error.message}


def config_file(api, request):
    """``data: {"path", "text"}`` of the file the broker was started with;
    both None when it runs without one, ``text`` None when the file cannot
    be read (an editor then starts empty and the save says why)."""
    path = api.config_path
    text = None
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError):
            text = None
    return ok(data={"path": path or None, "text": text})
