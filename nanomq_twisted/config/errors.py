"""The single exception type of the configuration layer.

NanoMQ silently ignores typos and wrong types; we refuse to start instead, so
the error has to tell the operator exactly where to look: the file, the
dotted key path and what was expected.  ``tap.py`` turns it into a
``UsageError`` and the REST ``/configuration`` endpoint into a 400.
"""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """A configuration file (or environment variable) could not be used.

    :ivar path: file name (or ``environment NANOMQ_X``) the problem is in.
    :ivar key: dotted key path such as ``mqtt.retry_interval``, or None.
    :ivar line: 1-based line number when known, else None.
    :ivar message: the bare description without location.
    """

    def __init__(self, message: str, path: str | None = None,
                 key: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.key = key
        self.line = line
        super().__init__(message)

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        if self.key:
            where += self.key + ": "
        return where + self.message
