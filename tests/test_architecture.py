"""The layers of docs/architecture.md, enforced: who may import whom, and no import circle.

    sim.scenario  <-  sim.model  <-  sim.measure  <-  sim.runs  <-  sim.cli
                                                         ^
                                          analysis  -----'  (sim.runs.contract, and the table-only measure.stats/batches)

Every import counts (module level or inside a function), except those under ``if TYPE_CHECKING:``,
which exist for annotations only and never run; so does a module named by a string to
``importlib.import_module`` or ``__import__``. The root package ``sim`` (its lazy API names) is a layer of
its own, below the CLI: it may load sim.runs and what sim.runs stands on, never ``analysis``.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# layer -> the layers (module prefixes) it may import, besides itself
ALLOWED = {
    "sim.scenario": (),
    "sim.model": ("sim.scenario",),
    "sim.measure": ("sim.model", "sim.scenario"),
    "sim.runs": ("sim.measure", "sim.model", "sim.scenario"),
    # the real cluster, beside sim.runs: the same facts (the recorder and its event kinds, not the
    # simulation) measured by the same sim.measure, written in the results contract
    "sim.real": ("sim.scenario", "sim.measure", "sim.runs.contract", "sim.model.recorder", "sim.model.events"),
    "sim.cli": ("sim.runs", "sim.real", "sim.measure", "sim.model", "sim.scenario", "analysis", "sim"),
    "analysis": ("sim.runs.contract", "sim.measure.stats", "sim.measure.batches", "sim.scenario"),
    # the root package alone (not a prefix of the layers above): `sim.run`, `sim.sweep`, `sim.explore`, ...
    "sim": ("sim.runs", "sim.measure", "sim.model", "sim.scenario"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for d in ("sim", "analysis") for p in (ROOT / d).rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _named_import(node: ast.Call) -> str | None:
    """The module a call ``import_module("x.y")`` / ``importlib.import_module(f"x.{name}")`` / ``__import__("x")``
    names, as far as its string says (an f-string up to its first placeholder), or None."""
    f = node.func
    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
    if name not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.JoinedStr):
        arg = arg.values[0] if arg.values else None
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value.rstrip(".") or None
    return None


@functools.cache
def imports_of(module: str) -> frozenset[str]:
    """The kafkasim modules `module` imports when it runs (absolute names, submodules resolved)."""
    path = MODULES[module]
    return imports_in(path.read_text(), module, is_package=path.name == "__init__.py")


def imports_in(source: str, module: str, *, is_package: bool = False, type_checking: bool = False) -> frozenset[str]:
    """The kafkasim modules the source of `module` imports: import statements and named imports by string
    (with `type_checking`, those under ``if TYPE_CHECKING:`` too)."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_checking:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in MODULES else base)
        elif isinstance(node, ast.Call) and (named := _named_import(node)):
            found.add(named)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return frozenset(m for m in found if m.split(".")[0] in ("sim", "analysis"))


def _layer(module: str) -> str | None:
    if module == "sim":
        return "sim"
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if layer != "sim" and (module == layer or module.startswith(layer + ".")):
            return layer
    return None


def _allowed(importer: str, imported: str) -> bool:
    layer = _layer(importer)
    if layer is None:  # not a kafkasim module: test_every_module_belongs_to_a_layer reports it
        return True
    if _layer(imported) == layer or imported == "sim":  # the root package holds __version__ and lazy API names
        return True
    return any(imported == p or imported.startswith(p + ".") for p in ALLOWED[layer])


def test_every_module_belongs_to_a_layer():
    assert set(MODULES) - {m for m in MODULES if _layer(m)} == set()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module):
    bad = sorted(m for m in imports_of(module) if not _allowed(module, m))
    assert not bad, f"{module} imports {bad}: not allowed for layer {_layer(module)} (docs/architecture.md)"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of `graph` (module -> modules it imports), or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def walk(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if n == m:
                continue
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (cycle := walk(n)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := walk(m)):
            return cycle
    return None


def test_no_import_circle():
    cycle = find_cycle({m: set(imports_of(m)) & set(MODULES) for m in MODULES})
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_rules_catch_a_violation():
    """The checker itself works: an upward import and a circle are both reported."""
    assert not _allowed("sim.model.broker", "sim.measure.metrics")
    assert not _allowed("analysis.plots", "sim.model.cluster")
    assert not _allowed("sim.runs.runner", "analysis.tables")
    assert not _allowed("sim.real.run", "sim.model.cluster") and not _allowed("sim.real.run", "sim.runs.runner")
    assert _allowed("sim.real.parse", "sim.model.recorder")
    assert _allowed("sim.measure.metrics", "sim.model.recorder")
    assert "sim.model.messages" in imports_of("sim.model.broker")  # `from sim.model import messages as m`
    # the root package once drew explore's timeline through analysis, by a string, inside a function
    old_root = ('from importlib import import_module\n'
                'def _timeline(run, path):\n    import_module("analysis.plots").failover_timeline(run, path)\n')
    assert imports_in(old_root, "sim", is_package=True) == {"analysis.plots"}
    assert not _allowed("sim", "analysis.plots") and not _allowed("sim", "sim.cli")
    assert _allowed("sim", "sim.runs.explore") and _allowed("sim", "sim.scenario.schema")
    assert imports_in('m = __import__("analysis")\n', "sim.model.x") == {"analysis"}
    assert imports_in('import importlib\nimportlib.import_module(f"analysis.{name}")\n', "sim.runs.x") == {"analysis"}
    # the circle the CLI once had: sim.cli imported its sweep command, which imported sim.cli back
    assert find_cycle({"sim.cli": {"sim.cli_sweep"}, "sim.cli_sweep": {"sim.cli"}}) == ["sim.cli", "sim.cli_sweep", "sim.cli"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


# What a broker is made of reaches its host only through small Protocols (PartitionHost, SlowDiskHost,
# FetcherHost, FetchServingHost), never by naming `Broker` (issue 23): not even under TYPE_CHECKING.
BROKER_PARTS = ("sim.model.partition", "sim.model.disk", "sim.model.fetcher", "sim.model.log",
                "sim.model.fetch_session", "sim.model.replica_manager")
BROKER_MODULES = ("sim.model.broker", "sim.model.hardware")  # Broker and its subclass HardwareBroker


def imports_any_time(module: str) -> frozenset[str]:
    """Every kafkasim module `module` names in an import, TYPE_CHECKING blocks included."""
    path = MODULES[module]
    return imports_in(path.read_text(), module, is_package=path.name == "__init__.py", type_checking=True)


@pytest.mark.parametrize("module", BROKER_PARTS)
def test_the_parts_of_a_broker_never_import_it(module):
    bad = sorted(imports_any_time(module) & set(BROKER_MODULES))
    assert not bad, f"{module} imports {bad}: it must reach its broker through a Protocol (its *Host)"


def test_the_broker_check_sees_type_checking_imports():
    """`imports_any_time` counts what `imports_of` leaves out: the Broker import the old partition.py
    made for its annotations only."""
    assert "sim.model.broker" in imports_any_time("sim.model.hardware")
    assert "sim.model.recorder" in imports_any_time("sim.model.broker")  # under TYPE_CHECKING there
    assert "sim.model.recorder" not in imports_of("sim.model.broker")
