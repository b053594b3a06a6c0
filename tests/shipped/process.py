# -*- test-case-name: tests.shipped.test_kill9 -*-
"""
The shipped configuration as a separate process on fixed free ports, for
the long runs in ``tools/`` (the fuzzer, the crash cycles): no reactor,
just ``subprocess``.  The suite's own tests start twistd through the
reactor instead (`test_twistd`) and learn the ports from its log.

`shipped_on_ports` writes the copy once; `spawn` starts a broker on it and
returns once its MQTT port accepts, so a restart on the same copy finds
the same ports and the same data folder.
"""

import os
import socket
import subprocess
import sys
import time

from ..e2e.support import free_port
from .support import ROOT, rewrite, shipped_copy

#: Seconds a broker may take to start listening.
START_TIMEOUT = 30.0


def shipped_on_ports(workdir, changes=(), extra=""):
    """Write ``workdir/nanomq.conf`` (`shipped_copy`) with fixed free
    ports, the ``(pattern, replacement)`` ``changes``, each of which must
    match once, and ``extra`` HOCON appended; returns ``(path, {"tcp",
    "ws", "http": port})``."""
    path = shipped_copy(workdir)
    ports = {"tcp": free_port(), "ws": free_port(), "http": free_port()}
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = rewrite(text, [
        (r'bind = "127\.0\.0\.1:0"', f'bind = "127.0.0.1:{ports["tcp"]}"'),
        (r'"127\.0\.0\.1:0/mqtt"', f'"127.0.0.1:{ports["ws"]}/mqtt"'),
        (r"\bport = 0\n", f"port = {ports['http']}\n"),
        *changes,
    ], path) + extra
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path, ports


def spawn(path, ports, log):
    """``python -m nanomq_twisted -c path``, its output appended to
    ``log``; returns the ``Popen`` once the MQTT port accepts."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("NANOMQ_CONF_PATH", None)
    with open(log, "ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "nanomq_twisted", "-c", path],
                                   stdout=out, stderr=subprocess.STDOUT,
                                   cwd=os.path.dirname(path), env=env)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", ports["tcp"]), timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise RuntimeError(f"the broker did not start; see {log}") from None
            time.sleep(0.05)
