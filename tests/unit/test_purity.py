"""The pure layers must not pull in twisted, klein, aioquic or wsproto.

STYLE.md: dependencies point down only; ``mqtt``, ``core``, ``config`` and
the rule SQL and table, and the sans-I/O client session (with the
bridge's queue around it), are importable without a reactor.  Every module of
them is imported, in a fresh interpreter because this test process itself
has already imported twisted.  (tests.unit.test_layers checks the import
graph itself.)
"""

import importlib.util
import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PURE_PACKAGES = ("mqtt", "core", "config")
PURE_MODULES = (
    "nanomq_twisted.rules.sql",
    "nanomq_twisted.rules.engine",
    # the sans-I/O half of the broker's MQTT client, and the bridge's
    # queue around it
    "nanomq_twisted.client.session",
    "nanomq_twisted.client.options",
    "nanomq_twisted.client.interfaces",
    "nanomq_twisted.bridge.session",
)


def _pure_modules():
    names = list(PURE_MODULES)
    for package in PURE_PACKAGES:
        directory = os.path.join(ROOT, "nanomq_twisted", package)
        for filename in sorted(os.listdir(directory)):
            if filename.endswith(".py") and filename != "__init__.py":
                names.append(f"nanomq_twisted.{package}.{filename[:-3]}")
        names.append(f"nanomq_twisted.{package}")
    return tuple(names)


PURE = _pure_modules()
FORBIDDEN = ("twisted", "klein", "aioquic", "wsproto")

_PROBE = f"""
import importlib, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r})))
"""


class PurityTests(SynchronousTestCase):
    def test_pure_packages_import_no_adapters(self):
        present = [name for name in PURE if _exists(name)]
        if not present:
            raise self.skipTest("no pure package exists yet")
        result = subprocess.run(
            [sys.executable, "-c", _PROBE] + present,
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        leaked = json.loads(result.stdout.strip().splitlines()[-1])
        self.assertEqual(leaked, [], f"imported by {present}")


def _exists(name):
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False
