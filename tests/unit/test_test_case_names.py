# -*- test-case-name: tests.unit.test_test_case_names -*-
"""
Every ``test-case-name`` header names test modules that exist.

Twisted's convention (trial ``--testmodule``, editors that run "the tests
of this file") reads the first line of a module; a header pointing at a
module nobody wrote sends whoever follows it nowhere.
"""

import os
import re

from twisted.trial.unittest import SynchronousTestCase

REPO = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)
SOURCES = ("nanomq_twisted", "twisted", "tests")
HEADER = re.compile(r"-\*-\s*test-case-name:\s*(.*?)\s*-\*-")


def headers():
    """``(path, [module, ...])`` of every header under ``SOURCES``."""
    for top in SOURCES:
        for directory, dirs, files in os.walk(os.path.join(REPO, top)):
            dirs[:] = [d for d in dirs if d not in ("node_modules", "__pycache__")]
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(directory, name)
                with open(path, encoding="utf-8") as f:
                    first = f.readline() + f.readline()
                match = HEADER.search(first)
                if match:
                    modules = [m.strip() for m in match.group(1).split(",") if m.strip()]
                    yield os.path.relpath(path, REPO), modules


class TestCaseNameTests(SynchronousTestCase):
    def test_named_test_modules_exist(self):
        missing = []
        count = 0
        for path, modules in headers():
            count += 1
            for module in modules:
                target = os.path.join(REPO, *module.split(".")) + ".py"
                if not os.path.isfile(target):
                    missing.append(f"{path}: {module}")
        self.assertGreater(count, 50)
        self.assertEqual(missing, [])
