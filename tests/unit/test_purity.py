"""The pure layers must not pull in twisted, klein, aioquic or wsproto.

STYLE.md: dependencies point down only; ``mqtt``, ``core`` and ``config``
are importable without a reactor.  Checked in a fresh interpreter because
this test process itself has already imported twisted.
"""

import importlib.util
import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PURE = ("nanomq_twisted.mqtt", "nanomq_twisted.core", "nanomq_twisted.config")
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
