# -*- test-case-name: tests.shipped.test_soak -*-
"""
The broker under soak: ``twistd -n nanomq -c <shipped copy>`` as its own
process, watched through /proc and its log.

The copy is tests/shipped/support.py's ``shipped_copy`` (ports 0, data
and log folders in the run's temp dir); the ports the listeners really
bound are read from the log lines ``<name> listening on 127.0.0.1:<port>``
as tests/shipped/test_twistd.py does.  The log (twistd's stdout and
stderr) is scanned incrementally: lines at error or critical level,
tracebacks and "Unhandled" (Twisted's unhandled Deferred errors) count as
errors; warnings are counted and their distinct texts kept.
"""

import asyncio
import os
import re
import signal
import subprocess
import time

from loadgen import proc_cpu

from tests.e2e.test_twistd import _twistd_command
from tests.shipped.support import shipped_copy

LISTENING = re.compile(r"(tcp|ws|http) listening on 127\.0\.0\.1:(\d+)")
ERROR = re.compile(r"#(error|critical)\]|Traceback|Unhandled")
WARN = re.compile(r"#warn\]")
STAMP = re.compile(r"^\S+ ")


class BrokerProcess:
    def __init__(self, workdir, root):
        self.workdir = workdir
        self.root = root
        self.conf = shipped_copy(workdir)
        self.log_path = os.path.join(workdir, "broker.log")
        self.proc = None
        self.ports = {}
        self.fds_baseline = None
        self.rss_start = None
        self._offset = 0
        self._partial = b""
        #: twistd logged "Server Shut Down." (a clean stop).
        self.shut_down = False
        self.log = {"errors": 0, "tracebacks": 0, "warnings": 0, "lines": 0,
                    "error_lines": [], "warning_texts": {}}

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=60.0):
        env = dict(os.environ)
        env.pop("NANOMQ_CONF_PATH", None)
        env["PYTHONPATH"] = self.root + os.pathsep + env.get("PYTHONPATH", "")
        command = _twistd_command() + ["-n", "--pidfile=", "--logfile=-", "nanomq",
                                       "-c", self.conf]
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir, env=env)
        deadline = time.monotonic() + timeout
        while len(self.ports) < 3:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the broker did not start; see {self.log_path}")
            time.sleep(0.1)
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                self.ports = {n: int(p) for n, p in LISTENING.findall(f.read())}
        time.sleep(1.0)  # let start-up settle before the baseline
        self.fds_baseline = self.fds()
        self.rss_start = self.rss_kib()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu(self):
        return proc_cpu(self.pid)

    async def wait_fds(self, target, timeout):
        """Poll until the broker's descriptors are back at ``target`` (or
        ``timeout`` passes); returns the last count."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            count = self.fds()
            if count <= target or loop.time() > deadline:
                return count
            await asyncio.sleep(0.2)

    def scan_log(self):
        with open(self.log_path, "rb") as f:
            f.seek(self._offset)
            data = self._partial + f.read()
            self._offset = f.tell()
        lines = data.split(b"\n")
        self._partial = lines.pop()
        log = self.log
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            log["lines"] += 1
            if "Server Shut Down." in line:
                self.shut_down = True
            if ERROR.search(line):
                log["errors"] += 1
                if "Traceback" in line:
                    log["tracebacks"] += 1
                if len(log["error_lines"]) < 50:
                    log["error_lines"].append(line[:500])
            elif WARN.search(line):
                log["warnings"] += 1
                text = STAMP.sub("", line)[:300]
                if text in log["warning_texts"] or len(log["warning_texts"]) < 30:
                    log["warning_texts"][text] = log["warning_texts"].get(text, 0) + 1

    def stop(self):
        """SIGTERM, then SIGKILL after 30 s; the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

