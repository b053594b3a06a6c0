"""Start, watch and stop the brokers under test (one fresh process per run).

nanomq-twisted runs from the real entry point ``python -m nanomq_twisted -c
<copy>`` where ``<copy>`` is the repository's shipped ``etc/nanomq.conf``
with only its listen addresses/ports and its two file locations rewritten
(``shipped_config``); every rewrite must match exactly once, so a change of
the shipped file fails loudly instead of silently benchmarking something
else.  ``--bare`` uses ``BARE_CONF`` (TCP listener only) for comparison.

mosquitto gets ``MOSQUITTO_CONF``: a loopback listener, anonymous access
(2.0 refuses it by default once a listener is configured), no persistence,
errors/warnings to stderr, everything else at its defaults.

Every broker process started here is registered in ``_LIVE`` and stopped by
``stop_all`` (called from ``run.py``'s ``finally`` and an ``atexit`` hook),
so no broker outlives the benchmark, also on Ctrl-C or an exception.
"""

import atexit
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from loadgen import proc_cpu

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SHIPPED = os.path.join(REPO, "etc", "nanomq.conf")

BARE_CONF = """\
listeners.tcp {{ bind = "127.0.0.1:{tcp}" }}
log {{ to = [console], level = warn }}
"""

MOSQUITTO_CONF = """\
listener {tcp} 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages {inflight}
max_queued_messages {queue}
log_dest stderr
log_type error
log_type warning
"""

_LIVE = []


def raise_nofile():
    """Raise RLIMIT_NOFILE soft limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _sub_once(text, pattern, repl, what):
    new, n = re.subn(pattern, repl, text, flags=re.MULTILINE)
    if n != 1:
        raise RuntimeError(f"shipped etc/nanomq.conf changed: rewrite of {what} matched {n} times "
                           f"(pattern {pattern!r}); update bench/brokers.py:shipped_config")
    return new


def set_sync_ack(text, value):
    """``text`` (a shipped config copy) with ``sqlite.sync_ack`` set to
    ``value`` (True/False); the key must appear exactly once."""
    word = "true" if value else "false"
    return _sub_once(text, r'^(\s*sync_ack\s*=\s*)(true|false)\b', rf'\g<1>{word}', "sqlite.sync_ack")


def shipped_config(workdir, tcp, ws, http):
    """The shipped config with ports/addresses and file locations moved.

    Rewrites (each must match exactly once):
      listeners.tcp  bind "0.0.0.0:1883"       -> "127.0.0.1:<tcp>"
      listeners.ws   bind "0.0.0.0:8083/mqtt"  -> "127.0.0.1:<ws>/mqtt"
      http_server    port = 8081               -> port = <http>, ip_addr = "127.0.0.1"
      log.dir        "/tmp"                    -> "<workdir>"
      sqlite.mounted_file_path "data"          -> "<workdir>/data"
    Everything else (queue lengths, inflight window, WebSocket listener,
    HTTP API, SQLite persistence, log level...) stays as shipped.
    """
    with open(SHIPPED) as f:
        text = f.read()
    text = _sub_once(text, r'^(\s*bind\s*=\s*)"0\.0\.0\.0:1883"', rf'\g<1>"127.0.0.1:{tcp}"', "listeners.tcp.bind")
    text = _sub_once(text, r'^(\s*bind\s*=\s*)"0\.0\.0\.0:8083/mqtt"', rf'\g<1>"127.0.0.1:{ws}/mqtt"',
                     "listeners.ws.bind")
    text = _sub_once(text, r'^(\s*)port\s*=\s*8081\s*$', rf'\g<1>port = {http}\n\g<1>ip_addr = "127.0.0.1"',
                     "http_server.port")
    text = _sub_once(text, r'^(\s*dir\s*=\s*)"/tmp"', rf'\g<1>"{workdir}"', "log.dir")
    text = _sub_once(text, r'^(\s*mounted_file_path\s*=\s*)"data"', rf'\g<1>"{workdir}/data"',
                     "sqlite.mounted_file_path")
    return text


def shipped_limits():
    """(max_inflight_window, max_mqueue_len) of the shipped config, which
    mosquitto gets as max_inflight_messages / max_queued_messages so both
    brokers have the same per-client in-flight and queue limits."""
    with open(SHIPPED) as f:
        text = f.read()
    out = []
    for key in ("max_inflight_window", "max_mqueue_len"):
        found = re.findall(rf"^\s*{key}\s*=\s*(\d+)", text, flags=re.MULTILINE)
        if len(found) != 1:
            raise RuntimeError(f"shipped etc/nanomq.conf: {key} found {len(found)} times")
        out.append(int(found[0]))
    return tuple(out)


def mosquitto_binary():
    for path in ("/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if path and os.path.exists(path):
            return path
    raise RuntimeError("mosquitto not found")


def mosquitto_version():
    out = subprocess.run([mosquitto_binary(), "-h"], capture_output=True, text=True, timeout=10, check=False)
    return (out.stdout + out.stderr).splitlines()[0].strip()


class Broker:
    """One broker subprocess; ``pid`` is the process whose CPU/RSS we read."""

    def __init__(self, name, argv, port, workdir, env=None, extra_ports=()):
        self.name = name
        self.argv = argv
        self.port = port
        self.extra_ports = extra_ports
        self.workdir = workdir
        self.log = os.path.join(workdir, name + ".log")
        self.env = env
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=30.0):
        raise_nofile()  # inherited by the child: 10k idle connections need the fds
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env)
        _LIVE.append(self)
        deadline = time.monotonic() + timeout
        waiting = [self.port, *self.extra_ports]
        while waiting:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; log {self.log}:\n{self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not listen on {waiting} in {timeout}s; log:\n{self.tail()}")
            try:
                socket.create_connection(("127.0.0.1", waiting[0]), timeout=0.5).close()
                waiting.pop(0)
            except OSError:
                time.sleep(0.05)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n=40):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        """SIGTERM, 10 s, then SIGKILL.  Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self in _LIVE:
            _LIVE.remove(self)
        return self.proc.returncode

    def rss_kib(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        return proc_cpu(self.pid)

    def wait_idle(self, max_wait=10.0):
        """Wait until the broker burns < 5% CPU over 0.2 s (startup done)."""
        deadline = time.monotonic() + max_wait
        while time.monotonic() < deadline:
            c0 = self.cpu_seconds()
            time.sleep(0.2)
            if self.cpu_seconds() - c0 < 0.01 + 1e-9:
                return True
        return False


def start_nanomq(bare=False, python=sys.executable, extra_argv=(), sync_ack=None):
    """``sync_ack``: None = as shipped, else ``sqlite.sync_ack`` rewritten
    to it in the copy (``set_sync_ack``)."""
    workdir = tempfile.mkdtemp(prefix="nanomq-bench-")
    tcp = free_port()
    conf = os.path.join(workdir, "nanomq.conf")
    extra = ()
    if bare:
        text = BARE_CONF.format(tcp=tcp)
    else:
        ws, http = free_port(), free_port()
        text = shipped_config(workdir, tcp, ws, http)
        if sync_ack is not None:
            text = set_sync_ack(text, sync_ack)
        extra = (ws, http)
    with open(conf, "w") as f:
        f.write(text)
    argv = [python, *extra_argv, "-m", "nanomq_twisted", "-c", conf]
    # the checkout this bench/ belongs to, not whatever is pip-installed
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    b = Broker("nanomq-twisted", argv, tcp, workdir, env, extra)
    b.start()
    b.wait_idle()
    return b


def start_mosquitto(nodelay=False):
    workdir = tempfile.mkdtemp(prefix="mosq-bench-")
    tcp = free_port()
    conf = os.path.join(workdir, "mosquitto.conf")
    with open(conf, "w") as f:
        inflight, queue = shipped_limits()
        f.write(MOSQUITTO_CONF.format(tcp=tcp, inflight=inflight, queue=queue))
        if nodelay:
            f.write("set_tcp_nodelay true\n")
    b = Broker("mosquitto", [mosquitto_binary(), "-c", conf], tcp, workdir)
    b.start()
    b.wait_idle()
    return b


def start(name, bare=False, mosquitto_nodelay=False):
    if name == "mosquitto":
        return start_mosquitto(mosquitto_nodelay)
    return start_nanomq(bare=bare)


def cleanup(broker):
    """Stop a broker and remove its temp dir."""
    code = broker.stop()
    shutil.rmtree(broker.workdir, ignore_errors=True)
    return code


def stop_all():
    for b in _LIVE:
        try:
            b.stop()
        except (OSError, subprocess.SubprocessError) as exc:
            sys.stderr.write(f"could not stop {b.name} (pid {b.pid}): {exc}\n")


atexit.register(stop_all)
