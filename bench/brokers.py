"""Start, watch and stop the two brokers under test.

Both run as subprocesses on free loopback ports with equivalent settings
(queue 100,000, no inflight cap that the other lacks, TCP_NODELAY, no
persistence), and the file-descriptor limit raised to the hard limit so the
idle-connection scenario is limited by the broker, not by ``ulimit -n``.
``BrokerSet`` is a context manager so both processes are stopped on normal
exit, on exceptions and on Ctrl-C.
"""

import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))

NANOMQ_CONF = """\
mqtt {{ max_packet_size = 10MB, max_mqueue_len = 100000, retry_interval = 10s, keepalive_multiplier = 1.5 }}
listeners.tcp {{ bind = "127.0.0.1:{port}", backlog = 4096 }}
log {{ to = [console], level = warn }}
"""

MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
max_queued_messages 100000
max_inflight_messages 0
persistence false
max_connections -1
log_dest stderr
log_type error
log_type warning
"""


def raise_nofile():
    """Raise RLIMIT_NOFILE soft limit to the hard limit (also preexec_fn)."""
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


def mosquitto_binary():
    for path in ("/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if path and os.path.exists(path):
            return path
    raise RuntimeError("mosquitto not found")


def mosquitto_version():
    out = subprocess.run([mosquitto_binary(), "-h"], capture_output=True, text=True)
    return (out.stdout + out.stderr).splitlines()[0].strip()


class Broker:
    """One broker subprocess; ``pid`` is the process whose RSS we read."""

    def __init__(self, name, argv, port, workdir, env=None):
        self.name = name
        self.argv = argv
        self.port = port
        self.log = os.path.join(workdir, name + ".log")
        self.env = env
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=20.0):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, cwd=REPO, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=raise_nofile, env=self.env)
        logf.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("{} exited with {}; log {}:\n{}".format(self.name, self.proc.returncode, self.log, self.tail()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("%s did not listen on %d; log:\n%s" % (self.name, self.port, self.tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n=40):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def wait_idle(self, max_wait=20.0):
        """Wait until the broker burns < 5% CPU, so a scenario does not
        inherit the previous one's backlog."""
        deadline = time.time() + max_wait
        while time.time() < deadline:
            c0 = self.cpu_seconds()
            time.sleep(0.25)
            if self.cpu_seconds() - c0 < 0.0125:
                return True
        return False


def nanomq_broker(workdir, port, python=sys.executable, extra_argv=()):
    """The real entry point; falls back to ``run_broker.py`` only if the
    config package cannot start it."""
    conf = os.path.join(workdir, "nanomq.conf")
    with open(conf, "w") as f:
        f.write(NANOMQ_CONF.format(port=port))
    argv = [python, *extra_argv, "-m", "nanomq_twisted", "-c", conf]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    b = Broker("nanomq-twisted", argv, port, workdir, env)
    try:
        return b.start()
    except RuntimeError as exc:
        sys.stderr.write("entry point failed ({}); using bench/run_broker.py\n".format(str(exc)[:300]))
        b.argv = [python, *extra_argv, os.path.join(HERE, "run_broker.py"), str(port)]
        b.name = "nanomq-twisted-fallback"
        return b.start()


def mosquitto_broker(workdir, port):
    conf = os.path.join(workdir, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write(MOSQUITTO_CONF.format(port=port))
    return Broker("mosquitto", [mosquitto_binary(), "-c", conf], port, workdir).start()


class BrokerSet:
    """Both brokers, started together, always stopped together."""

    def __init__(self, names=("nanomq-twisted", "mosquitto")):
        self.names = names
        self.workdir = tempfile.mkdtemp(prefix="nanomq-bench-")
        self.brokers = {}

    def __enter__(self):
        try:
            if "nanomq-twisted" in self.names:
                self.brokers["nanomq-twisted"] = nanomq_broker(self.workdir, free_port())
            if "mosquitto" in self.names:
                self.brokers["mosquitto"] = mosquitto_broker(self.workdir, free_port())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for b in self.brokers.values():
            try:
                b.stop()
            except Exception:
                pass
        return False
