# -*- test-case-name: tests.unit.test_store_faults -*-
"""
What a failed SQLite write means: the disk is full, the file system is
read-only, or something else went wrong.

The broker reports the state of its store as one word (``/api/v4/brokers``
``"persistence"``, the ``nanomq_persistence_healthy`` gauge, the log), so
an operator knows at once whether to free space or look at the mount.
SQLite alone does not always say which: a full disk is usually
``SQLITE_FULL`` ("database or disk is full"), a database opened read-only
is ``SQLITE_READONLY`` ("attempt to write a readonly database"), but a
file system that turned read-only (or filled up) under an open database
surfaces as ``SQLITE_IOERR_*`` ("disk I/O error"; measured on Linux 6.18:
ext4 with ``errors=remount-ro`` after an error gives
``SQLITE_IOERR_WRITE``).  For those, ``classify`` asks the file system
itself: ``probe`` writes one byte to a scratch file beside the database,
and its errno (``ENOSPC``, ``EROFS``...) names the fault.

Runs in the store's worker thread (``probe`` does I/O), once per failed
batch -- which the retry back-off (batching.py) keeps rare.
"""

import errno
import os

__all__ = ["DISK_FULL", "FAILED", "OK", "READ_ONLY", "StoreOpenError", "WriteFault",
           "classify", "probe"]

OK = "ok"
DISK_FULL = "disk_full"
READ_ONLY = "read_only"
FAILED = "failed"

#: SQLite's own texts for SQLITE_FULL and SQLITE_READONLY (sqlite3_errstr;
#: the ``sqlite3`` module raises them as ``OperationalError``).
_MESSAGES = (
    ("database or disk is full", DISK_FULL),
    ("attempt to write a readonly database", READ_ONLY),
)

_ERRNOS = {
    errno.ENOSPC: DISK_FULL,
    errno.EDQUOT: DISK_FULL,
    errno.EROFS: READ_ONLY,
    errno.EACCES: READ_ONLY,
    errno.EPERM: READ_ONLY,
}

PROBE_NAME = ".nano_qos_db.probe"


class WriteFault(Exception):
    """A batch could not be committed; ``state`` is one of the words
    above, ``reason`` the error as SQLite (or the OS) put it."""

    def __init__(self, state, reason):
        super().__init__(state, reason)
        self.state = state
        self.reason = reason

    def __str__(self):
        return f"{self.state}: {self.reason}"


class StoreOpenError(Exception):
    """The database file cannot be opened or created at start-up."""

    def __init__(self, path, state, reason):
        super().__init__(path, state, reason)
        self.path = path
        self.state = state
        self.reason = reason

    def __str__(self):
        return (
            f"cannot open the SQLite database {self.path} ({self.state}: {self.reason}); "
            "fix sqlite.mounted_file_path or its file system, or set "
            "sqlite.enable = false to run without persistence"
        )


def probe(directory):
    """Write and remove one byte in ``directory``; the errno that stopped
    it, or 0 when the file system takes writes."""
    path = os.path.join(directory, PROBE_NAME)
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"\0")
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as error:
        _remove(path)
        return error.errno or errno.EIO
    _remove(path)
    return 0


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def classify(error, directory, probe=probe):
    """The state word for ``error``, raised writing a database that lives
    in ``directory``."""
    text = str(error)
    for message, state in _MESSAGES:
        if text.startswith(message):
            return state
    if isinstance(error, OSError) and error.errno in _ERRNOS:
        return _ERRNOS[error.errno]
    return _ERRNOS.get(probe(directory), FAILED)
