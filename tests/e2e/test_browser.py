"""
A real browser over ``listeners.ws``: headless Chromium (Debian's
``chromium``) loads ``tests/e2e/browser/page.html``, which uses MQTT.js's
browser bundle (npm ``mqtt`` from ``tests/e2e/browser/package-lock.json``, installed
by ``npm ci`` in ``.ci/run`` into ``tests/e2e/browser/node_modules``) to talk to the broker over
``ws://127.0.0.1:<port>/mqtt``.

The page and the bundle are served by the test itself (a ``twisted.web``
site on 127.0.0.1:0).  The page writes its outcome into
``<pre id="result">`` exactly once and reports it to ``/report``; until then
the site holds ``/hold``, which the page loads in an iframe, so the page's
load event -- and with it Chromium's ``--dump-dom`` -- comes only after the
outcome is in the DOM (``--virtual-time-budget`` does not wait for a
WebSocket).  The test reads the dumped DOM and checks it against the
report.  Chromium runs in a
session of its own so its whole process tree is killed if it outlives
its deadline or the test.
"""

import os
import shutil
import signal
import tempfile
from urllib.parse import urlencode

from twisted.internet import defer, error, protocol, reactor
from twisted.protocols.policies import WrappingFactory
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site
from twisted.web.static import File

from ..shipped.support import start_shipped
from .support import Clients, in_thread

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = os.path.join(HERE, "browser", "page.html")
BUNDLE = os.path.join(HERE, "browser", "node_modules", "mqtt", "dist", "mqtt.min.js")

#: Seconds Chromium may run before it is killed.
CHROMIUM_DEADLINE = 60

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
)


def find_chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class _Collect(protocol.ProcessProtocol):
    """Keeps stdout and stderr; ``ended`` fires with (stdout, stderr, reason)."""

    def __init__(self):
        self.out = []
        self.err = []
        self.ended = defer.Deferred()
        self.running = True

    def outReceived(self, data):
        self.out.append(data)

    def errReceived(self, data):
        self.err.append(data)

    def processEnded(self, reason):
        self.running = False
        self.ended.callback((b"".join(self.out), b"".join(self.err), reason))


class _TrackingFactory(WrappingFactory):
    """A site wrapper that can drop every open connection and say when the
    last one is gone, so no socket outlives the test."""

    def __init__(self, wrapped):
        super().__init__(wrapped)
        self._idle = []

    def unregisterProtocol(self, p):
        super().unregisterProtocol(p)
        if not self.protocols:
            waiters, self._idle = self._idle, []
            for waiter in waiters:
                waiter.callback(None)

    def close_all(self):
        if not self.protocols:
            return defer.succeed(None)
        waiter = defer.Deferred()
        self._idle.append(waiter)
        for p in list(self.protocols):
            p.transport.abortConnection()
        return waiter


class _Gate:
    """``/hold?run=R`` stays open until ``/report?run=R&result=...``."""

    def __init__(self):
        self.held = {}
        self.reports = {}

    def report(self, run):
        """Fires with what run ``run`` reported."""
        return self.reports.setdefault(run, defer.Deferred())

    def resources(self):
        gate = self

        class Hold(Resource):
            isLeaf = True

            def render_GET(self, request):
                run = request.args.get(b"run", [b""])[0].decode()
                held = gate.held.setdefault(run, [])
                held.append(request)
                request.notifyFinish().addBoth(lambda _: held.remove(request))
                return NOT_DONE_YET

        class Report(Resource):
            isLeaf = True

            def render_GET(self, request):
                run = request.args.get(b"run", [b""])[0].decode()
                result = request.args.get(b"result", [b""])[0].decode()
                for held in list(gate.held.get(run, ())):
                    held.write(b"released")
                    held.finish()
                reported = gate.report(run)
                if not reported.called:
                    reported.callback(result)
                request.setHeader(b"content-type", b"text/plain")
                return b"ok"

        return Hold(), Report()


class BrowserTests(TestCase):
    timeout = 120

    def setUp(self):
        self.chromium = find_chromium()
        if self.chromium is None:
            raise SkipTest("no chromium on PATH (Debian: apt-get install chromium)")
        if not os.path.exists(BUNDLE):
            raise SkipTest(
                f"MQTT.js bundle missing ({BUNDLE}); "
                "npm ci --prefix tests/e2e/browser"
            )

    @defer.inlineCallbacks
    def start(self):
        """The broker -- the shipped ``etc/nanomq.conf`` on free ports, so
        MQTT.js meets what users run -- and the page's web server."""
        self.running = yield start_shipped(self)
        self.ports = self.running.ports
        root = Resource()
        root.putChild(b"page.html", File(PAGE, defaultType="text/html"))
        root.putChild(b"mqtt.min.js", File(BUNDLE, defaultType="text/javascript"))
        self.gate = _Gate()
        hold, report = self.gate.resources()
        root.putChild(b"hold", hold)
        root.putChild(b"report", report)
        site = _TrackingFactory(Site(root))
        web = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(site.close_all)
        self.addCleanup(web.stopListening)
        self.web_port = web.getHost().port

    def gone(self, client_id):
        """Fires when the broker has processed ``client_id``'s close: the
        browser's socket is gone before the test ends."""
        waiter = defer.Deferred()

        def observer(event, conn=None, **_):
            if event == "client_disconnected" and conn.client_id == client_id:
                self.running.broker.events.unlisten("client_disconnected", observer)
                waiter.callback(None)

        self.running.broker.events.listen("client_disconnected", observer)
        return waiter

    @defer.inlineCallbacks
    def browse(self, **query):
        """Run Chromium on the page with ``query``; fires with the text of
        ``#result`` in the dumped DOM, once checked against the report."""
        run = "-".join(f"{k}{v}" for k, v in sorted(query.items()))
        query.update(port=self.ports["ws"], run=run)
        reported = self.gate.report(run)
        dom = yield self._dump_dom(query)
        self.assertTrue(reported.called, "the page never reported its outcome")
        self.assertEqual(dom, (yield reported))
        return dom

    def _dump_dom(self, query):
        url = f"http://127.0.0.1:{self.web_port}/page.html?{urlencode(query)}"
        profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self.addCleanup(shutil.rmtree, profile, True)
        args = [
            self.chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--dump-dom",
            url,
        ]
        # A session of its own (setsid execs in place: the pid stays ours)
        # so that killing the group takes Chromium's helpers with it.
        setsid = shutil.which("setsid")
        if setsid:
            args.insert(0, setsid)
        env = dict(os.environ, HOME=profile)
        collector = _Collect()
        process = reactor.spawnProcess(collector, args[0], args, env=env)
        pid = process.pid

        def kill():
            if collector.running:
                try:
                    if setsid:
                        os.killpg(pid, signal.SIGKILL)
                    else:
                        process.signalProcess("KILL")
                except (ProcessLookupError, error.ProcessExitedAlready):
                    pass

        deadline = reactor.callLater(CHROMIUM_DEADLINE, kill)

        @defer.inlineCallbacks
        def cleanup():
            if deadline.active():
                deadline.cancel()
            kill()
            yield collector.ended

        self.addCleanup(cleanup)

        def ended(result):
            if deadline.active():
                deadline.cancel()
            out, err, _reason = result
            # The helpers share the session: make sure none is left.
            if setsid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            text = out.decode("utf-8", "replace")
            start = text.find('<pre id="result">')
            end = text.find("</pre>", start)
            if start < 0 or end < 0:
                stderr = err.decode("utf-8", "replace")[-2000:]
                self.fail(
                    f"no #result in Chromium's output\nstdout: {text[-2000:]}\n"
                    f"stderr (tail): {stderr}"
                )
            return text[start + len('<pre id="result">'):end]

        return collector.ended.addCallback(ended)

    @defer.inlineCallbacks
    def test_mqttjs_echo_v311_and_v5(self):
        """MQTT.js connects over ws, subscribes, publishes QoS 1 and gets its
        own message back, as MQTT 3.1.1 and as MQTT 5."""
        yield self.start()
        for version in (4, 5):
            gone = self.gone(f"browser-echo-{version}")
            result = yield self.browse(v=version, mode="echo")
            self.assertEqual(result, f"ok:v{version}:1:hello")
            yield gone

    @defer.inlineCallbacks
    def test_tcp_publisher_to_browser_v5(self):
        """Cross-transport: a paho client on TCP publishes to the topic the
        browser (MQTT 5 over ws) subscribed to, once the browser says it is
        ready."""
        yield self.start()
        tcp_clients = Clients(self, self.ports["tcp"])
        tcp = tcp_clients("tcp-publisher", 5)

        def subscribe():
            tcp.connect()
            tcp.subscribe("cross/ready", 1)

        yield in_thread(subscribe)
        gone = self.gone("browser-cross-5")
        page = self.browse(v=5, mode="cross")

        def answer():
            ready = tcp.expect(timeout=CHROMIUM_DEADLINE)
            self.assertEqual((ready.topic, ready.payload), ("cross/ready", b"ready"))
            tcp.publish("cross/to-browser", b"from-tcp", 1)

        yield in_thread(answer)
        result = yield page
        self.assertEqual(result, "ok:v5:1:from-tcp")
        yield gone

