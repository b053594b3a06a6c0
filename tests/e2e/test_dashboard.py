"""
The web dashboard in a real browser: Debian's headless Chromium driven by
Selenium (dashboard_browser.py) against the shipped ``etc/nanomq.conf`` on
free ports (tests/shipped/support.py), with real paho-mqtt clients on the
other side.

Each test logs in through the login page, does what an operator would,
and checks the outcome where it really happens: a kicked paho client gets
its connection closed, a message published from the form reaches a paho
subscriber, a message from a paho publisher shows up in the live
subscription view (the dashboard's own MQTT-over-WebSocket client), a rule
created in the page republishes, a configuration refused by the server
points at its line and key and the file on disk is untouched.

Selenium blocks, so every browser scenario runs off the reactor thread
(``in_thread``) while the broker runs on it; waits are WebDriverWait
deadlines on DOM conditions.  With ``DASHBOARD_SCREENSHOTS=<dir>`` set,
`ScreenshotTests` also writes a PNG of every page there (docs/images/ is
made that way: ``DASHBOARD_SCREENSHOTS=docs/images python -m twisted.trial
tests.e2e.test_dashboard.ScreenshotTests``).
"""

import json
import os
import queue

from twisted.internet import defer
from twisted.trial.unittest import SkipTest, TestCase

from ..shipped.support import (
    PahoClients,
    ShippedBroker,
    rewrite,
    shipped_copy,
    start_config,
    start_shipped,
)
from .dashboard_browser import Browser, missing
from .mosquitto import MOSQUITTO, Mosquitto
from .support import TIMEOUT, Clients, in_thread

SCREENSHOTS = os.environ.get("DASHBOARD_SCREENSHOTS")


class DashboardCase(TestCase):
    """A shipped broker and a logged-out browser on its HTTP port."""

    timeout = 240

    @defer.inlineCallbacks
    def setUp(self):
        reason = missing()
        if reason is not None:
            raise SkipTest(f"dashboard browser tests need Chromium and Selenium: {reason}")
        self.shipped = yield self.start_broker()
        self.clients = PahoClients(self, self.shipped)
        base = f"http://127.0.0.1:{self.shipped.ports['http']}"
        self.browser = yield in_thread(self.make_browser, base)
        self.addCleanup(in_thread, self.browser.quit)

    def start_broker(self):
        return start_shipped(self)

    def make_browser(self, base):
        return Browser(base)

    def assertNoErrors(self, browser):
        self.assertEqual(browser.errors(), [])


class LoginTests(DashboardCase):
    @defer.inlineCallbacks
    def test_nothing_readable_before_login(self):
        def scenario(b):
            b.open("/dashboard/#/clients")
            b.wait_for("#login-form")
            self.assertIn("/dashboard/login.html", b.driver.current_url)
            b.type_into("#username", "admin")
            b.type_into("#password", "wrong")
            b.find("#login-button").click()
            b.wait_text("#login-error", "Wrong user name")
            b.type_into("#password", "public")
            b.find("#login-button").click()
            b.wait_for("main[data-page='overview'] h1")
            # Focus lands on the page's heading (keyboard users start there).
            self.assertEqual(b.driver.switch_to.active_element.tag_name, "h1")
            self.assertEqual(b.find("nav a[aria-current='page']").text, "Overview")

        yield in_thread(scenario, self.browser)

    @defer.inlineCallbacks
    def test_logout(self):
        def scenario(b):
            b.login()
            b.find("#logout").click()
            b.wait_for("#login-form")
            b.open("/dashboard/")
            b.wait_for("#login-form")
            self.assertIn("/dashboard/login.html", b.driver.current_url)

        yield in_thread(scenario, self.browser)
        self.assertEqual(len(self.shipped.app.logins), 0)


class ClientsTests(DashboardCase):
    @defer.inlineCallbacks
    def test_client_appears_and_is_kicked(self):
        paho = self.clients("paho-watched", 4)
        yield in_thread(paho.connect, keepalive=45)

        def scenario(b):
            b.login()
            b.show("clients")
            b.wait_for("tr[data-client-id='paho-watched'][data-state='connected']",
                       "the paho client never appeared in the list")
            b.find("button[aria-label='Details of paho-watched']").click()
            detail = b.wait_text("#client-detail", "Keepalive")
            self.assertIn("45 s", detail.text)
            b.find("button[aria-label='Kick paho-watched']").click()
            b.wait_text("#status", "Kicked paho-watched")
            # A clean 3.1.1 session ends with its connection.
            b.wait_gone("tr[data-client-id='paho-watched']")
            self.assertNoErrors(b)

        yield in_thread(scenario, self.browser)
        yield in_thread(paho.disconnects.get, True, TIMEOUT)
        self.assertNotIn("paho-watched", self.shipped.broker.connections)

    @defer.inlineCallbacks
    def test_filters(self):
        for client_id, protocol in (("filter-v5", 5), ("filter-v4", 4)):
            yield in_thread(self.clients(client_id, protocol).connect)

        def scenario(b):
            b.login()
            b.show("clients")
            b.wait_for("tr[data-client-id='filter-v4']")
            b.find("#filter-proto option[value='5']").click()
            b.find("form[role='search'] button").click()
            b.wait_gone("tr[data-client-id='filter-v4']")
            self.assertTrue(b.find_all("tr[data-client-id='filter-v5']"))

        yield in_thread(scenario, self.browser)


class PublishSubscribeTests(DashboardCase):
    @defer.inlineCallbacks
    def test_form_publishes_to_a_real_subscriber(self):
        sub = self.clients("form-sub", 5)

        def subscribe():
            sub.connect()
            sub.subscribe("dash/form/#", 1)

        yield in_thread(subscribe)

        def scenario(b):
            b.login()
            b.show("pubsub")
            b.type_into("#pub-topic", "dash/form/one")
            b.find("#pub-qos option[value='1']").click()
            b.type_into("#pub-payload", "from the form")
            b.find("#pub-add-prop").click()
            b.type_into(".prop-row .prop-key", "origin")
            b.type_into(".prop-row .prop-value", "dashboard")
            b.find("#pub-send").click()
            b.wait_text("#status", "Published to dash/form/one")

        yield in_thread(scenario, self.browser)
        message = yield in_thread(sub.expect)
        self.assertEqual((message.topic, message.payload, message.qos),
                         ("dash/form/one", b"from the form", 1))
        self.assertEqual(message.properties.UserProperty, [("origin", "dashboard")])

    @defer.inlineCallbacks
    def test_bad_topic_is_refused_in_place(self):
        def scenario(b):
            b.login()
            b.show("pubsub")
            b.type_into("#pub-topic", "dash/#")
            b.find("#pub-send").click()
            b.wait_text("#pub-error", "Not published")
            self.assertEqual(b.find("#pub-topic").get_attribute("aria-invalid"), "true")

        yield in_thread(scenario, self.browser)

    @defer.inlineCallbacks
    def test_live_view_over_websocket(self):
        def subscribe(b):
            b.login()
            b.show("pubsub")
            b.type_into("#sub-filter", "live/#")
            b.find("#sub-start").click()
            b.wait_for("#sub-state[data-live='yes']", "the live view never subscribed")
            return b.find("#sub-state").text

        state = yield in_thread(subscribe, self.browser)
        self.assertIn(f":{self.shipped.ports['ws']}/mqtt", state)
        # The view's own client is connected through the WS listener.
        listeners = {c.listener for c in self.shipped.broker.connections.values()}
        self.assertIn("ws", listeners)
        pub = self.clients("live-pub", 4)

        def publish():
            pub.connect()
            pub.publish("live/one", "hello, browser", 1)

        yield in_thread(publish)

        def arrived(b):
            item = b.wait_for("#sub-log li[data-topic='live/one']",
                              "the message never reached the live view")
            self.assertIn("hello, browser", item.text)
            self.assertNoErrors(b)

        yield in_thread(arrived, self.browser)


class TopicsTests(DashboardCase):
    @defer.inlineCallbacks
    def test_tree_shared_groups_and_retained(self):
        sub = self.clients("tree-sub", 5)
        pub = self.clients("tree-pub", 4)

        def prepare():
            sub.connect()
            sub.subscribe("plant/+/temp", 0)
            sub.subscribe("$share/crew/plant/#", 0)
            pub.connect()
            pub.publish("plant/a/temp", "20.5", 1, retain=True)

        yield in_thread(prepare)

        def scenario(b):
            b.login()
            b.show("topics")
            b.wait_text("#topic-tree", "tree-sub")
            b.wait_text("#shared-groups", "crew")
            b.wait_for("#retained tr[data-topic='plant/a/temp']")
            b.find("button[aria-label='View plant/a/temp']").click()
            b.wait_text("#retained-payload", "20.5")
            b.find("button[aria-label='Delete plant/a/temp']").click()
            b.wait_text("#status", "Deleted the retained message of plant/a/temp")
            b.wait_gone("#retained tr[data-topic='plant/a/temp']")

        yield in_thread(scenario, self.browser)
        self.assertIsNone(self.shipped.broker.retained.get("plant/a/temp"))


class RulesTests(DashboardCase):
    @defer.inlineCallbacks
    def test_create_use_and_delete_a_rule(self):
        sub = self.clients("rule-sub", 4)

        def subscribe():
            sub.connect()
            sub.subscribe("rule/out", 0)

        yield in_thread(subscribe)

        def create(b):
            b.login()
            b.show("rules")
            b.wait_for("#rule-address")
            b.wait(lambda _d: b.find("#rule-address").get_attribute("value"),
                   "the broker's address was never filled in")
            b.type_into("#rule-sql", 'SELEC payload FROM "rule/in"')
            b.type_into("#rule-topic", "rule/out")
            b.find("#rule-save").click()
            error = b.wait_text("#rule-sql-error", "")
            b.wait(lambda _d: error.text.strip(), "no SQL error was shown")
            self.assertEqual(b.find("#rule-sql").get_attribute("aria-invalid"), "true")
            # The console notes the refused request (HTTP 400): expected.
            self.assertEqual(len(b.errors()), 1)
            b.type_into("#rule-sql", 'SELECT payload FROM "rule/in"')
            b.find("#rule-save").click()
            b.wait_text("#status", "created")
            row = b.wait_for("#rule-list tr[data-sql='SELECT payload FROM \"rule/in\"']")
            return row.get_attribute("data-rule-id")

        rule_id = yield in_thread(create, self.browser)
        self.assertIsNotNone(self.shipped.app.rules.engine.get(int(rule_id)))
        pub = self.clients("rule-pub", 4)

        def use():
            pub.connect()
            pub.publish("rule/in", "through the rule", 1)
            return sub.expect()

        message = yield in_thread(use)
        self.assertEqual(message.topic, "rule/out")
        self.assertIn(b"through the rule", message.payload)

        def delete(b):
            b.find(f"button[aria-label='Delete rule {rule_id}']").click()
            b.wait_gone(f"#rule-list tr[data-rule-id='{rule_id}']")
            self.assertNoErrors(b)

        yield in_thread(delete, self.browser)
        self.assertIsNone(self.shipped.app.rules.engine.get(int(rule_id)))


class BridgesTests(DashboardCase):
    @defer.inlineCallbacks
    def test_create_use_and_delete_a_bridge(self):
        """A bridge to a real mosquitto made in the form (after a bad
        server is refused in place), seen connected, carrying a message
        both ways, then deleted after the confirmation."""
        if MOSQUITTO is None:
            raise SkipTest("mosquitto is not installed")
        remote = Mosquitto(self)
        yield remote.start()
        remote_clients = Clients(self, remote.port)
        watcher = remote_clients("dash-remote-watch", 4)
        yield in_thread(lambda: (watcher.connect(), watcher.subscribe("remote/in", 1)))

        def create(b):
            b.login()
            b.show("bridges")
            b.type_into("#bridge-new-name", "up")
            b.type_into("#bridge-new-server", "http://127.0.0.1:1")
            b.type_into("#bridge-new-clientid", "dash-bridge")
            b.type_into("#bridge-new-forwards-0-a", "dash/out")
            b.type_into("#bridge-new-forwards-0-b", "remote/in")
            b.type_into("#bridge-new-subscription-0-a", "remote/cmd")
            b.type_into("#bridge-new-subscription-0-b", "dash/cmd")
            b.find("#bridge-create").click()
            b.wait(lambda _d: b.find("#bridge-new-server-error").text.strip(),
                   "no error under the server field")
            self.assertIn("mqtt-tcp://", b.find("#bridge-new-server-error").text)
            server = b.find("#bridge-new-server")
            self.assertEqual(server.get_attribute("aria-invalid"), "true")
            self.assertEqual(b.driver.switch_to.active_element, server)
            self.assertEqual(len(b.errors()), 1)  # the refused request (HTTP 400)
            b.type_into("#bridge-new-server", f"mqtt-tcp://127.0.0.1:{remote.port}")
            b.find("#bridge-create").click()
            b.wait_text("#status", "Bridge up created")
            self.assertIsNone(server.get_attribute("aria-invalid"))
            b.wait_for("#bridge-list tr[data-bridge='up'][data-connected='1']",
                       "the new bridge never showed as connected")
            self.assertIn("connected (1 of 1)",
                          b.find("#bridge-list tr[data-bridge='up']").text)

        yield in_thread(create, self.browser)
        service = self.shipped.app.bridges.get("up")
        self.assertEqual((service.created, service.config.clientid), (True, "dash-bridge"))
        local_sub = self.clients("dash-local-sub", 4)
        local_pub = self.clients("dash-local-pub", 4)
        remote_pub = remote_clients("dash-remote-pub", 4)

        def use():
            local_sub.connect()
            local_sub.subscribe("dash/cmd", 1)
            local_pub.connect()
            local_pub.publish("dash/out", "up the bridge", 1)
            up = watcher.expect()
            remote_pub.connect()
            remote_pub.publish("remote/cmd", "down the bridge", 1)
            return up, local_sub.expect()

        up, down = yield in_thread(use)
        self.assertEqual((up.topic, up.payload), ("remote/in", b"up the bridge"))
        self.assertEqual((down.topic, down.payload), ("dash/cmd", b"down the bridge"))

        def delete(b):
            b.find("button[aria-label='Delete up']").click()
            dialog = b.wait_for("#bridge-confirm [role='alertdialog']")
            self.assertIn("Delete bridge up?", dialog.text)
            self.assertEqual(b.driver.switch_to.active_element,
                             b.find("#bridge-confirm-cancel"))
            b.find("#bridge-confirm-cancel").click()
            b.wait_gone("#bridge-confirm [role='alertdialog']")
            b.find("button[aria-label='Delete up']").click()
            b.wait_for("#bridge-confirm-delete").click()
            b.wait_text("#status", "Bridge up deleted")
            b.wait_gone("#bridge-list tr[data-bridge='up']")
            self.assertNoErrors(b)

        yield in_thread(delete, self.browser)
        self.assertIsNone(self.shipped.app.bridges.get("up"))
        self.assertEqual(service.clients, [])


class RuleParameterTests(DashboardCase):
    def test_parameter_errors_in_place(self):
        """A republish without a topic and a SQLite rule without a table
        are refused with the reason under the missing field."""

        def scenario(b):
            b.login()
            b.show("rules")
            b.wait(lambda _d: b.find("#rule-address").get_attribute("value"),
                   "the broker's address was never filled in")
            b.type_into("#rule-sql", 'SELECT payload FROM "params/in"')
            b.find("#rule-save").click()
            b.wait(lambda _d: b.find("#rule-topic-error").text.strip(),
                   "no error under the topic field")
            self.assertIn("topic", b.find("#rule-topic-error").text)
            topic = b.find("#rule-topic")
            self.assertEqual(topic.get_attribute("aria-invalid"), "true")
            self.assertEqual(b.driver.switch_to.active_element, topic)
            self.assertEqual(b.find("#rule-sql-error").text, "")
            self.assertIn("rule-topic-error", topic.get_attribute("aria-describedby"))

            from selenium.webdriver.support.ui import Select

            Select(b.find("#rule-action")).select_by_value("sqlite")
            b.find("#rule-save").click()
            b.wait(lambda _d: b.find("#rule-table-error").text.strip(),
                   "no error under the table field")
            self.assertIn("table", b.find("#rule-table-error").text)
            self.assertEqual(b.find("#rule-table").get_attribute("aria-invalid"), "true")
            # The previous error went away with the new attempt.
            self.assertEqual(b.find("#rule-topic-error").text, "")
            self.assertIsNone(topic.get_attribute("aria-invalid"))
            self.assertEqual(len(b.errors()), 2)  # the two refused requests (HTTP 400)

        return in_thread(scenario, self.browser)


class ConfigurationTests(DashboardCase):
    @defer.inlineCallbacks
    def test_break_and_fix(self):
        path = self.shipped.app.config.source_path
        with open(path, encoding="utf-8") as handle:
            original = handle.read()
        broken = original + "\nmqtt {\n    max_inflight_windw = 10\n}\n"
        bad_line = broken.count("\n", 0, broken.index("max_inflight_windw")) + 1

        def scenario(b):
            b.login()
            b.show("config")
            b.wait(lambda _d: b.find("#config-text").get_attribute("value"),
                   "the file's text never loaded")
            self.assertEqual(b.find("#config-text").get_attribute("value"), original)
            b.set_value("#config-text", broken)
            b.find("#config-save").click()
            where = b.wait_text("#config-error-where", f"line {bad_line}")
            self.assertIn("mqtt.max_inflight_windw", where.text)
            self.assertIn('unknown key (did you mean "max_inflight_window"?)',
                          b.find("#config-error").text)
            editor = b.find("#config-text")
            self.assertEqual(editor.get_attribute("aria-invalid"), "true")
            # The cursor is put on the offending line.
            start = b.driver.execute_script("return arguments[0].selectionStart", editor)
            self.assertEqual(broken.count("\n", 0, start) + 1, bad_line)
            with open(path, encoding="utf-8") as handle:
                self.assertEqual(handle.read(), original)
            b.set_value("#config-text", original.replace("limit_conn = 2", "limit_conn = 3"))
            b.find("#config-save").click()
            b.wait_text("#status", "Saved")
            self.assertIsNone(editor.get_attribute("aria-invalid"))

        yield in_thread(scenario, self.browser)
        with open(path, encoding="utf-8") as handle:
            self.assertIn("limit_conn = 3", handle.read())


class OverviewTests(DashboardCase):
    @defer.inlineCallbacks
    def test_counts_listeners_and_charts(self):
        paho = self.clients("overview-client", 4)
        yield in_thread(paho.connect)

        def scenario(b):
            b.login()
            b.wait(lambda _d: b.find("#stat-connections").text not in ("", "…"),
                   "the counts never loaded")
            self.assertEqual(b.find("#stat-version").text, self.version())
            b.wait_text("#listeners tr[data-listener='tcp']", "1")
            self.assertTrue(b.find_all("#listeners tr[data-listener='ws']"))
            # Two samples (5 s apart) make a line: every chart draws one.
            for n in range(4):
                b.wait(lambda _d, n=n: all(
                    int(line.get_attribute("data-points")) >= 2
                    for line in b.find_all(f"#chart-{n} polyline")),
                    f"chart {n} never drew a line")
            label = b.find("#chart-3 svg").get_attribute("aria-label")
            self.assertIn("connections 1", label)
            self.assertNoErrors(b)
            # Everything the overview transferred, page and requests.
            return b.driver.execute_script(
                "return performance.getEntries()"
                ".reduce((n, e) => n + (e.transferSize || 0), 0)")

        transferred = yield in_thread(scenario, self.browser)
        self.assertGreater(transferred, 0)
        self.assertLess(transferred, 200 * 1024)

    def version(self):
        from nanomq_twisted import __version__

        return __version__


class SessionExpiryTests(DashboardCase):
    """A session unused for ``session_ttl`` ends: the overview's next
    refresh (every 5 s) finds it gone and the page says so."""

    @defer.inlineCallbacks
    def start_broker(self):
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        path = shipped_copy(workdir)
        with open(path, encoding="utf-8") as handle:
            text = rewrite(handle.read(), [(r"session_ttl = 30m", "session_ttl = 1s")], path)
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        app, ports = yield start_config(self, path, ("tcp", "ws", "http"))
        return ShippedBroker(app, ports, workdir)

    @defer.inlineCallbacks
    def test_expired_session_goes_back_to_login(self):
        def scenario(b):
            b.open("/")
            b.wait_for("#login-form")
            b.type_into("#username", "admin")
            b.type_into("#password", "public")
            b.find("#login-button").click()
            b.wait_for("#expired", "the page never said the session had ended")
            self.assertIn("expired=1", b.driver.current_url)

        yield in_thread(scenario, self.browser)


class PhoneTests(DashboardCase):
    """A phone-sized window: nothing wider than the screen but tables
    (which scroll inside their own box)."""

    def make_browser(self, base):
        return Browser(base, width=390, height=844)

    @defer.inlineCallbacks
    def test_no_horizontal_scroll(self):
        def scenario(b):
            b.login()
            for page in ("overview", "clients", "pubsub", "config"):
                b.show(page)
                width = b.driver.execute_script(
                    "return document.documentElement.scrollWidth")
                inner = b.driver.execute_script("return window.innerWidth")
                self.assertLessEqual(width, inner, page)

        yield in_thread(scenario, self.browser)


PAGES = ("overview", "clients", "topics", "pubsub", "bridges", "rules", "config")


class ScreenshotTests(DashboardCase):
    """Every page renders without a console error, with some traffic to
    show; with ``DASHBOARD_SCREENSHOTS`` set, a PNG of each is kept."""

    def make_browser(self, base):
        return Browser(base, width=1280, height=1000)

    @defer.inlineCallbacks
    def test_every_page(self):
        directory = SCREENSHOTS or os.path.abspath(self.mktemp())
        made = queue.Queue()
        sub = self.clients("sensor-dashboard", 5)
        pub = self.clients("sensor-publisher", 4)

        def traffic():
            sub.connect()
            sub.subscribe("sensors/+/temp", 1)
            sub.subscribe("$share/loggers/sensors/#", 0)
            pub.connect()
            for n in range(5):
                pub.publish(f"sensors/room{n}/temp", json.dumps({"celsius": 20 + n}), 1,
                            retain=True)

        yield in_thread(traffic)
        remote = None
        if MOSQUITTO is not None:
            remote = Mosquitto(self)
            yield remote.start()

        def bridge(b):
            """A bridge to the mosquitto, made in the form, connected."""
            b.type_into("#bridge-new-name", "cloud")
            b.type_into("#bridge-new-server", f"mqtt-tcp://127.0.0.1:{remote.port}")
            b.type_into("#bridge-new-clientid", "edge-01")
            b.type_into("#bridge-new-forwards-0-a", "sensors/#")
            b.type_into("#bridge-new-forwards-0-b", "site1/sensors/#")
            b.type_into("#bridge-new-subscription-0-a", "site1/cmd/#")
            b.type_into("#bridge-new-subscription-0-b", "cmd/#")
            b.find("#bridge-create").click()
            b.wait_for("#bridge-list tr[data-bridge='cloud'][data-connected='1']")
            b.driver.execute_script("window.scrollTo(0, 0)")

        def scenario(b):
            b.login()
            for n in range(4):
                b.wait(lambda _d, n=n: all(
                    int(line.get_attribute("data-points")) >= 2
                    for line in b.find_all(f"#chart-{n} polyline")), "no chart")
            for page in PAGES:
                b.show(page)
                b.wait(lambda _d: b.driver.execute_script(
                    "return document.readyState") == "complete", "never loaded")
                if page == "clients":
                    b.wait_for("tr[data-client-id='sensor-dashboard']")
                    b.find("button[aria-label='Details of sensor-dashboard']").click()
                    b.wait_text("#client-detail", "Keepalive")
                elif page == "topics":
                    b.wait_for("#retained tr[data-topic='sensors/room0/temp']")
                elif page == "config":
                    b.wait(lambda _d: b.find("#config-text").get_attribute("value"), "no text")
                elif page == "pubsub":
                    b.type_into("#pub-topic", "sensors/room1/temp")
                    b.type_into("#pub-payload", '{"celsius": 21}')
                    b.find("#sub-start").click()
                    b.wait_for("#sub-state[data-live='yes']")
                    b.wait_for("#sub-log li")
                elif page == "rules":
                    b.wait_for("#rule-list table")
                elif page == "bridges" and remote is not None:
                    bridge(b)
                self.assertEqual(b.errors(), [], page)
                made.put(b.screenshot(directory, f"dashboard-{page}"))

        yield in_thread(scenario, self.browser)
        paths = [made.get_nowait() for _ in PAGES]
        for path in paths:
            with open(path, "rb") as handle:
                self.assertEqual(handle.read(8), b"\x89PNG\r\n\x1a\n")

