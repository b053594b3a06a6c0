"""
A headless Chromium driven by Selenium for the dashboard tests
(tests/e2e/test_dashboard.py), and the waits they use.

Every call here blocks, so tests run them off the reactor thread
(``in_thread``).  Waits are Selenium's ``WebDriverWait`` on a DOM
condition with a deadline, never a sleep.  Debian's ``chromium`` and
``chromium-driver`` (``/usr/bin/chromedriver``) are used; `missing` says
what is not installed so the tests can skip with that message.
"""

import os
import shutil

#: Seconds any one DOM condition may take to come true.
DEADLINE = 30

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMEDRIVER = "chromedriver"


def _chromium():
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def missing():
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401 -- only whether it is there
    except ImportError:
        return "selenium is not installed (pip install '.[test]')"
    if _chromium() is None:
        return "no chromium on PATH (Debian: apt-get install chromium)"
    if shutil.which(CHROMEDRIVER) is None:
        return "no chromedriver on PATH (Debian: apt-get install chromium-driver)"
    return None


class Browser:
    """One headless Chromium window (``width`` x ``height``) and helpers
    over it; ``base`` is the dashboard's origin (``http://127.0.0.1:<port>``)."""

    def __init__(self, base, width=1280, height=900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = _chromium()
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", f"--window-size={width},{height}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(shutil.which(CHROMEDRIVER))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.base = base

    def quit(self):
        self.driver.quit()

    # -- navigation and lookup ------------------------------------------------

    def open(self, path):
        self.driver.get(self.base + path)

    def find(self, css):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait(self, condition, message):
        """Wait until ``condition(driver)`` is truthy; returns its value.

        The pages redraw as data arrives (a chart every few seconds), so an
        element the condition found can be replaced before it is read: that
        is "not yet", and the condition is tried again."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(
            self.driver, DEADLINE, ignored_exceptions=(StaleElementReferenceException,)
        ).until(condition, message)

    def wait_for(self, css, message=None):
        """The element ``css`` once it is in the DOM and displayed."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec

        return self.wait(ec.visibility_of_element_located((By.CSS_SELECTOR, css)),
                         message or f"{css} never appeared")

    def wait_gone(self, css, message=None):
        self.wait(lambda d: not self.find_all(css), message or f"{css} never went away")

    def wait_text(self, css, text, message=None):
        """The element ``css`` once its text contains ``text``."""
        def has_text(_driver):
            for element in self.find_all(css):
                if text in element.text:
                    return element
            return False

        return self.wait(has_text, message or f"{css} never said {text!r}")

    def show(self, page):
        """Go to a dashboard page (``#/<page>``) and wait for its heading
        (the shell marks ``main`` with the page it has drawn)."""
        self.open(f"/dashboard/#/{page}")
        return self.wait_for(f"main[data-page='{page}'] h1", f"page {page} never drew")

    def type_into(self, css, text, clear=True):
        element = self.find(css)
        if clear:
            element.clear()
        element.send_keys(text)
        return element

    def set_value(self, css, text):
        """Set a (large) field's value at once, as a paste would."""
        element = self.find(css)
        self.driver.execute_script(
            "arguments[0].value = arguments[1];"
            "arguments[0].dispatchEvent(new Event('input'));", element, text)
        return element

    # -- logging in -------------------------------------------------------------

    def login(self, username="admin", password="public"):
        self.open("/")
        self.wait_for("#login-form")
        self.type_into("#username", username)
        self.type_into("#password", password)
        self.find("#login-button").click()
        self.wait_for("main[data-page='overview'] h1", "the overview never came after logging in")

    # -- evidence ----------------------------------------------------------------

    def errors(self):
        """The browser console's errors since the last call."""
        return [entry["message"] for entry in self.driver.get_log("browser")
                if entry["level"] == "SEVERE"]

    def screenshot(self, directory, name):
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{name}.png")
        self.driver.save_screenshot(path)
        return path
