"""
The SQLite database on a real small file system that fills up or turns
read-only, under the shipped configuration (``sqlite { enable = true,
sync_ack = true }``) and real paho clients (docs/durability.md, "Disk
faults"; figures in docs/reliability.md).

The data folder of a ``shipped_copy`` is a tmpfs mounted by the test (root
only: skipped with the reason otherwise).  A persistent subscriber is
offline, so every QoS 1 message a paho publisher sends is queued on disk
for it.  Then a filler file takes every free byte while the publisher goes
on; the broker must keep serving, say ``disk_full`` once in the log, in
``/api/v4/brokers`` and in ``nanomq_persistence_healthy``, and acknowledge
nothing it cannot commit.  The filler is deleted: the broker must commit
the backlog and release the held PUBACKs.  Then ``mount -o remount,ro``
is tried (Linux refuses it while the broker holds the database open for
writing -- recorded, not assumed).  Finally the broker restarts and the
subscriber must receive every message that was ever acknowledged.

``EmergencyReadOnlyTests`` makes the file system read-only the way the
kernel does under a running process: ext4 with ``errors=remount-ro`` on a
loop device, after an error (``/sys/fs/ext4/<dev>/trigger_fs_error``).

Waiting: events the broker logs (the fault, the recovery) fire Deferreds;
paho's own acknowledgements are awaited with ``wait_for_publish``; only
"N failed attempts so far" is a polled condition (``until``), with a
timeout, never a fixed sleep.
"""

import errno
import json
import os
import subprocess
import threading

import treq
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import defer, reactor, task
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import HTTPConnectionPool

from nanomq_twisted.config import load
from nanomq_twisted.persistence.faults import StoreOpenError
from nanomq_twisted.tap import make_app

from ..e2e.support import Client, in_thread
from .support import ADMIN, shipped_copy

WAIT = 60.0
TOPIC = "df/t"
PAYLOAD = b"x" * 2048
#: Messages acknowledged before the disk fills, and the most sent while
#: it is full.
HEALTHY = 200
DURING = 600
AFTER = 300


def _run(*argv):
    """Run a system tool; a tool this machine lacks (no ``mkfs.ext4`` in a
    slim image) comes back as a failed run, which the callers skip on."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        return subprocess.CompletedProcess(argv, 127, "", str(error))


def mount_tmpfs(testcase, directory, size):
    """Mount a tmpfs of ``size`` on ``directory``, unmounted in cleanup."""
    if os.geteuid() != 0:
        raise SkipTest("mounting a tmpfs needs root (the test makes a real small file system)")
    done = _run("mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", directory)
    if done.returncode:
        raise SkipTest(f"mount -t tmpfs not permitted here: {done.stderr.strip()}")
    testcase.addCleanup(unmount, directory)


def unmount(directory):
    if _run("umount", directory).returncode:
        _run("umount", "-l", directory)


def fill(directory):
    """Write a filler file until the file system is full; its path."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                break
    # The last bytes (a partial chunk) too.
    with open(path, "ab", buffering=0) as f:
        while True:
            try:
                f.write(b"\0" * 512)
            except OSError:
                break
    return path


class LogWatch:
    """Collects the store's fault and recovery log events; ``next(word)``
    fires on the next one whose format contains ``word``."""

    def __init__(self, testcase):
        self.events = []
        self._waiting = []
        globalLogPublisher.addObserver(self)
        testcase.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event):
        text = event.get("log_format") or ""
        if "SQLite database" not in text:
            return
        # Observers may be called from any thread; hand over to the reactor.
        reactor.callFromThread(self._seen, event)

    def _seen(self, event):
        self.events.append(event)
        for word, d in list(self._waiting):
            if word in event["log_format"]:
                self._waiting.remove((word, d))
                d.callback(event)

    def count(self, word):
        return sum(1 for e in self.events if word in e["log_format"])

    def next(self, word):
        d = defer.Deferred()
        self._waiting.append((word, d))
        return d.addTimeout(WAIT, reactor)


@defer.inlineCallbacks
def until(condition, timeout=WAIT, step=0.05):
    """Wait for ``condition()`` (a counter reaching a value), checking
    once per ``step``; fails after ``timeout``."""
    waited = 0.0
    while not condition():
        if waited >= timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        yield task.deferLater(reactor, step, lambda: None)
        waited += step


class Publisher:
    """A paho 3.1.1 publisher that records which messages were
    acknowledged (PUBACK, via ``on_publish``)."""

    def __init__(self, port):
        self.client = Client(port, "df-pub")
        self.infos = {}  # mid -> (payload, MQTTMessageInfo)
        self.acked = set()  # payloads
        #: mids whose PUBACK came before ``publish`` recorded them
        self._early = set()
        self._lock = threading.Lock()
        self.client.paho.on_publish = self._published

    def _published(self, client, userdata, mid, reason_code, properties):
        with self._lock:
            entry = self.infos.get(mid)
            if entry is not None:
                self.acked.add(entry[0])
            else:
                self._early.add(mid)

    def publish(self, name):
        payload = name.encode() + b":" + PAYLOAD
        # Not under our lock: paho calls ``on_publish`` holding its own
        # message lock, and ``publish`` takes that one -- holding ours
        # across it deadlocked (this thread waiting for paho's lock, paho's
        # network thread for ours).  A PUBACK that beats the bookkeeping
        # waits in ``_early``.
        info = self.client.paho.publish(TOPIC, payload, 1)
        with self._lock:
            self.infos[info.mid] = (payload, info)
            if info.mid in self._early:
                self._early.discard(info.mid)
                self.acked.add(payload)
        return info

    def acked_count(self):
        with self._lock:
            return len(self.acked)

    def wait_all(self):
        for _payload, info in list(self.infos.values()):
            info.wait_for_publish(WAIT)
        return self.acked_count()


class DiskFaultCase(TestCase):
    timeout = 300

    def setUp(self):
        self.workdir = os.path.abspath(self.mktemp())
        os.makedirs(self.workdir)
        self.conf = shipped_copy(self.workdir)
        self.data = os.path.join(self.workdir, "data")
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.clients = []
        self.apps = []
        self.addCleanup(self._stop_clients)
        self.figures = {}

    def _stop_clients(self):
        def stop():
            for client in self.clients:
                client.paho.disconnect()
                client.paho.loop_stop()

        return in_thread(stop)

    @defer.inlineCallbacks
    def start(self):
        """Start the shipped configuration in this process; returns the
        app and its ``{listener: port}``."""
        app = make_app(load(self.conf), reactor)
        app.service.startService()
        self.apps.append(app)
        self.addCleanup(lambda: app.service.running and app.service.stopService())
        ports = {}
        for name in ("tcp", "http"):
            ports[name] = yield app.port(name)
        return app, ports

    def client(self, port, client_id, clean=True):
        client = Client(port, client_id, clean=clean)
        self.clients.append(client)
        return client

    @defer.inlineCallbacks
    def rest(self, port, path):
        url = f"http://127.0.0.1:{port}/api/v4{path}"
        response = yield treq.get(url, auth=ADMIN, pool=self.pool)
        content = yield response.content()
        self.assertEqual(response.code, 200, content)
        return content

    @defer.inlineCallbacks
    def reported(self, port):
        """``(brokers "persistence", healthy gauge, failures counter)``."""
        brokers = yield self.rest(port, "/brokers")
        state = json.loads(brokers)["data"][0]["persistence"]
        text = yield self.rest(port, "/prometheus")
        families = {f.name: f.samples[0].value
                    for f in text_string_to_metric_families(text.decode())}
        # prometheus_client's parser strips a counter's "_total" only.
        failures = families.get("nanomq_persistence_write_failures")
        return state, families["nanomq_persistence_healthy"], failures

    @defer.inlineCallbacks
    def still_serving(self, port, name):
        """A new clean client can connect, subscribe and get a QoS 1
        message acknowledged and delivered (no durable state involved)."""
        probe = self.client(port, f"df-probe-{name}")

        def scenario():
            probe.connect()
            probe.subscribe(f"live/{name}", 1)
            probe.publish(f"live/{name}", b"alive", 1)
            return probe.expect().payload

        payload = yield in_thread(scenario)
        self.assertEqual(payload, b"alive")

    @defer.inlineCallbacks
    def receive_all(self, port, expected):
        """Connect the persistent subscriber and read until every payload
        of ``expected`` has arrived; returns ``(received set, count)``."""
        sub = self.client(port, "df-sub", clean=False)

        def scenario():
            flags, _code, _props = sub.connect()
            seen, count = set(), 0
            while not expected <= seen:
                message = sub.expect(timeout=WAIT)
                seen.add(message.payload)
                count += 1
            return flags.session_present, seen, count

        present, seen, count = yield in_thread(scenario)
        self.assertTrue(present)
        return seen, count

    @defer.inlineCallbacks
    def persistent_subscriber(self, port):
        sub = self.client(port, "df-sub", clean=False)

        def scenario():
            sub.connect()
            sub.subscribe(TOPIC, 1)
            sub.disconnect()

        yield in_thread(scenario)


class FullDiskTests(DiskFaultCase):
    @defer.inlineCallbacks
    def test_full_then_space_returns_then_restart_loses_nothing_acknowledged(self):
        mount_tmpfs(self, self.data, "16m")
        watch = LogWatch(self)
        app, ports = yield self.start()
        store = app.persistence.store
        yield self.persistent_subscriber(ports["tcp"])
        pub = Publisher(ports["tcp"])
        self.clients.append(pub.client)
        yield in_thread(pub.client.connect)

        def healthy():
            for i in range(HEALTHY):
                pub.publish(f"h{i}")
            return pub.wait_all()

        self.assertEqual((yield in_thread(healthy)), HEALTHY)
        state = yield self.reported(ports["http"])
        self.assertEqual(state, ("ok", 1, 0))

        # The disk fills; the publisher goes on until the broker says so.
        filler = yield in_thread(fill, self.data)
        faulted = watch.next("cannot be written")
        stop = threading.Event()

        def seen(event):
            stop.set()
            return event

        faulted.addCallback(seen)

        def while_full():
            sent = 0
            while sent < DURING and not stop.is_set():
                pub.publish(f"f{sent}")
                sent += 1
                if sent % 20 == 0:
                    # paho's window is 20: let acks drain before going on.
                    list(pub.infos.values())[-20][1].wait_for_publish(0.5)
            # And AFTER more once the fault is known: paho queues them
            # behind its window of 20 held ones.
            for i in range(AFTER):
                pub.publish(f"a{i}")
            return sent

        sent = yield in_thread(while_full)
        event = yield faulted
        self.assertEqual(event["state"], "disk_full")
        yield until(lambda: store.failures >= 3)
        acked_in_fault = pub.acked_count()
        state = yield self.reported(ports["http"])
        self.assertEqual(state[:2], ("disk_full", 0))
        self.assertGreaterEqual(state[2], 3)
        yield self.still_serving(ports["tcp"], "full")
        # Another failed retry later: nothing more was acknowledged, and
        # the log still holds the one fault line.
        failures = store.failures
        yield until(lambda: store.failures > failures)
        self.assertEqual(pub.acked_count(), acked_in_fault)
        self.assertEqual(watch.count("cannot be written"), 1)
        held = len(pub.infos) - acked_in_fault
        self.assertGreater(held, 0)

        # Space returns: the backlog commits, every held ack is released.
        recovered = watch.next("is written again")
        os.unlink(filler)
        yield recovered
        total = yield in_thread(pub.wait_all)
        self.assertEqual(total, len(pub.infos))
        state = yield self.reported(ports["http"])
        self.assertEqual(state[:2], ("ok", 1))
        self.assertEqual(watch.count("cannot be written"), 1)

        # Read-only: Linux refuses to remount a file system read-only
        # while a process has a file open on it for writing.
        remount = _run("mount", "-o", "remount,ro", self.data)
        if remount.returncode == 0:
            _run("mount", "-o", "remount,rw", self.data)
            self.fail("remount,ro succeeded under an open database: extend this test")
        self.assertIn("busy", remount.stderr)
        state = yield self.reported(ports["http"])
        self.assertEqual(state[:2], ("ok", 1))

        # Restart: every acknowledged message reaches the subscriber.
        acked = set(pub.acked)
        yield in_thread(pub.client.disconnect)
        yield app.service.stopService()
        _app2, ports2 = yield self.start()
        seen, count = yield self.receive_all(ports2["tcp"], acked)
        self.assertEqual(acked - seen, set())
        self.figures.update(
            healthy=HEALTHY, sent_while_full=sent, acked_before_fault_seen=acked_in_fault - HEALTHY,
            published_after_fault=AFTER, held=held, failures=store.failures, acked=len(acked), delivered=count,
            lost=len(acked - seen), remount_ro=remount.stderr.strip().splitlines()[0],
        )
        print("disk-full figures:", self.figures)


class StartupTests(DiskFaultCase):
    def test_read_only_data_folder_stops_the_start_naming_the_path(self):
        mount_tmpfs(self, self.data, "1m")
        self.assertEqual(_run("mount", "-o", "remount,ro", self.data).returncode, 0)
        app = make_app(load(self.conf), reactor)
        with self.assertRaises(StoreOpenError) as caught:
            app.service.startService()
        self.addCleanup(lambda: app.service.running and app.service.stopService())
        path = os.path.join(self.data, "nano_qos_db.db")
        self.assertIn(path, str(caught.exception))
        self.assertEqual(caught.exception.state, "read_only")
        # Nothing was left listening.
        self.assertEqual([s.port for s in app.listeners.values() if s.port is not None], [])


def mount_ext4(testcase, directory, size_mb=32):
    """An ext4 image with ``errors=remount-ro`` loop-mounted on
    ``directory``; returns its loop device name (``loop0``)."""
    if os.geteuid() != 0:
        raise SkipTest("loop-mounting ext4 needs root")
    image = directory.rstrip("/") + ".img"
    with open(image, "wb") as f:
        f.truncate(size_mb * 1024 * 1024)
    made = _run("mkfs.ext4", "-q", "-F", image)
    if made.returncode:
        raise SkipTest(f"mkfs.ext4 unavailable: {made.stderr.strip()}")
    done = _run("mount", "-o", "loop,errors=remount-ro", image, directory)
    if done.returncode:
        raise SkipTest(f"loop mount not permitted here: {done.stderr.strip()}")
    testcase.addCleanup(unmount, directory)
    source = _run("findmnt", "-n", "-o", "SOURCE", directory).stdout.strip()
    return image, os.path.basename(source)


class EmergencyReadOnlyTests(DiskFaultCase):
    @defer.inlineCallbacks
    def test_ext4_turned_read_only_under_the_broker(self):
        image, device = mount_ext4(self, self.data)
        trigger = f"/sys/fs/ext4/{device}/trigger_fs_error"
        if not os.path.exists(trigger):
            raise SkipTest(f"{trigger} missing: cannot make ext4 fail on purpose")
        watch = LogWatch(self)
        app, ports = yield self.start()
        store = app.persistence.store
        yield self.persistent_subscriber(ports["tcp"])
        pub = Publisher(ports["tcp"])
        self.clients.append(pub.client)
        yield in_thread(pub.client.connect)

        def healthy():
            for i in range(HEALTHY):
                pub.publish(f"h{i}")
            return pub.wait_all()

        self.assertEqual((yield in_thread(healthy)), HEALTHY)
        faulted = watch.next("cannot be written")
        with open(trigger, "w") as f:
            f.write("nanomq-twisted disk fault test\n")
        for i in range(AFTER):
            pub.publish(f"r{i}")
        event = yield faulted
        # SQLite says "disk I/O error"; the probe's EROFS names it.
        self.assertEqual(event["state"], "read_only")
        self.assertIn("disk I/O error", event["reason"])
        yield until(lambda: store.failures >= 3)
        state = yield self.reported(ports["http"])
        self.assertEqual(state[:2], ("read_only", 0))
        yield self.still_serving(ports["tcp"], "ro")
        acked_in_fault = pub.acked_count()
        failures = store.failures
        yield until(lambda: store.failures > failures)
        self.assertEqual(pub.acked_count(), acked_in_fault)
        self.assertEqual(watch.count("cannot be written"), 1)
        # ext4 refuses remount,rw after an emergency read-only remount
        # (measured: "bad option"); the way back is a restart with the
        # file system repaired.  The shutdown gives up on the backlog.
        back = _run("mount", "-o", "remount,rw", self.data)
        self.assertNotEqual(back.returncode, 0)
        acked = set(pub.acked)
        yield in_thread(pub.client.disconnect)
        yield app.service.stopService()
        self.assertEqual(watch.count("at shutdown"), 1)
        self.assertEqual(_run("umount", self.data).returncode, 0)
        fsck = _run("e2fsck", "-f", "-y", image)
        self.assertIn(fsck.returncode, (0, 1), fsck.stdout + fsck.stderr)
        self.assertEqual(_run("mount", "-o", "loop", image, self.data).returncode, 0)
        _app2, ports2 = yield self.start()
        seen, count = yield self.receive_all(ports2["tcp"], acked)
        self.assertEqual(acked - seen, set())
        self.figures.update(
            healthy=HEALTHY, published_after_error=AFTER,
            acked_after_error=acked_in_fault - HEALTHY, failures=failures,
            acked=len(acked), delivered=count, lost=len(acked - seen),
        )
        print("emergency-ro figures:", self.figures)
