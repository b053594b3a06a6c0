# -*- test-case-name: tests.unit.test_layers -*-
"""
The layers import downward only, and no modules import each other in a
circle (docs/architecture.md has the picture).

Every module of the package is parsed (``ast``, nothing is imported) and
every ``import``/``from ... import`` of a project module -- also the ones
inside functions, which hide cycles best -- becomes an edge of the module
graph.  Two rules are checked:

1. an edge never goes to a higher layer, and between different packages of
   the same layer not at all;
2. the graph has no cycle (Tarjan's strongly connected components).
"""

import ast
import os

from twisted.trial.unittest import SynchronousTestCase

PACKAGE = "nanomq_twisted"
ROOT = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, PACKAGE)

#: Lowest first.  A module belongs to the longest prefix that names it.
LAYERS = (
    # the wire, the pure domain, the pure rule SQL and table, config
    ("", "mqtt"),
    ("core",),
    ("rules.sql", "rules.engine"),
    ("config",),
    # adapters
    ("logging",),
    # the broker's own MQTT client sits beside the listeners: it speaks
    # over the same transports and is used by bridges and rules above it
    ("transport", "persistence", "webhook", "auth", "client"),
    ("bridge", "rules"),
    ("http",),
    # the composition root, and the command line on top of it
    ("app",),
    ("tap", "__main__"),
)


def _modules():
    """``{dotted name without the package prefix: path}``."""
    found = {}
    for directory, _dirs, files in os.walk(ROOT):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            if rel == "__init__":
                rel = ""
            elif rel.endswith(".__init__"):
                rel = rel[: -len(".__init__")]
            found[rel] = path
    return found


def _imports(name, path, modules):
    """The project modules ``name`` imports, anywhere in its body."""
    is_package = path.endswith("__init__.py")
    package = name if is_package else name.rpartition(".")[0]
    targets = set()
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                if node.level > 1:
                    parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            elif node.module == PACKAGE or (node.module or "").startswith(PACKAGE + "."):
                base = node.module[len(PACKAGE) + 1:]
            else:
                continue
            for alias in node.names:
                candidate = f"{base}.{alias.name}" if base else alias.name
                targets.add(candidate if candidate in modules else base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    targets.add(alias.name[len(PACKAGE) + 1:])
    targets.discard(name)
    return {t for t in targets if t in modules}


def _layer_of(name):
    """``(rank, prefix)`` of the longest layer prefix naming ``name``."""
    best = None
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if prefix == "" and name != "":
                continue
            named = name == prefix or name.startswith(prefix + ".")
            if named and (best is None or len(prefix) > len(best[1])):
                best = (rank, prefix)
    return best


def _top(prefix):
    return prefix.split(".")[0]


def graph():
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def cycles(edges):
    """The strongly connected components with more than one module."""
    index = {}
    low = {}
    stack = []
    on_stack = set()
    found = []
    counter = [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


class LayerTests(SynchronousTestCase):
    def test_every_module_has_a_layer(self):
        unplaced = [name for name in graph() if _layer_of(name) is None]
        self.assertEqual(unplaced, [])

    def test_imports_go_downward_only(self):
        wrong = []
        for name, targets in sorted(graph().items()):
            rank, prefix = _layer_of(name)
            for target in sorted(targets):
                target_rank, target_prefix = _layer_of(target)
                if target_rank > rank or (
                    target_rank == rank and _top(target_prefix) != _top(prefix)
                ):
                    wrong.append(f"{name} -> {target}")
        self.assertEqual(wrong, [])

    def test_no_import_cycles(self):
        self.assertEqual(cycles(graph()), [])

    def test_the_checks_can_fail(self):
        """The checker sees what it is meant to see: a made-up upward edge
        and a made-up cycle are both reported."""
        edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
        self.assertEqual(cycles(edges), [["a", "b", "c"]])
        self.assertEqual(_layer_of("core.broker"), (1, "core"))
        self.assertEqual(_layer_of("rules.sql"), (2, "rules.sql"))
        self.assertEqual(_layer_of("rules.service"), (6, "rules"))
        self.assertEqual(_layer_of("client.protocol"), (5, "client"))
        edges = graph()
        self.assertIn("core.session", edges["core.broker"])
        self.assertIn("rules.sql", edges["config.bridges"])
        # Bridges and remote republish share one client; it uses the
        # core's one outbound QoS engine.
        self.assertIn("client.protocol", edges["bridge.client"])
        self.assertIn("client.protocol", edges["rules.client"])
        self.assertIn("core.outbound", edges["client.session"])
