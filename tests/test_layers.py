"""The package layout is the architecture (README, "Layout"): each layer imports only the layers
below it, the top layer's packages do not import each other, no two modules import each other
(directly or round a longer loop), and no module grows past 500 lines.

The imports are read from the source with `ast`, all of them: inside functions and under
`TYPE_CHECKING` too, since a cycle hidden there is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "journal"
MAX_LINES = 500

# Floors, bottom up. Modules of one floor may import each other (without cycles).
LAYERS = {
    "journal.errors": 0,
    "journal.log": 1,
    "journal.compaction": 2,
    "journal.adoption": 3,
    "journal.replication": 3,
    "journal.ops": 3,
    "journal.native": 4,
    "journal.store": 5,
    "journal.integrations": 6,  # a framework's wiring installs the store: above store/
    "journal.cli": 5,
}
TOP = 5
SURFACE = {"journal", "journal.__main__"}  # the public names and `python -m journal`: above all


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def all_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's own modules that module `name` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            targets = targets or [base]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def layer_of(module: str) -> tuple[str, int]:
    for prefix, floor in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            return prefix, floor
    raise KeyError(module)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A loop of imports (its modules in order, the first repeated last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import that reaches up a floor, or across packages of one of the top floors."""
    wrong = []
    for source, targets in sorted(graph.items()):
        if source in SURFACE:
            continue
        source_package, source_floor = layer_of(source)
        for target in sorted(targets):
            target_package, target_floor = layer_of(target)
            across_top = source_floor == target_floor >= TOP and source_package != target_package
            if target_floor > source_floor or across_top:
                wrong.append(f"{source} imports {target}")
    return wrong


# -- the checks on toy graphs: each can fail ---------------------------------------------------


def test_a_loop_of_imports_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_an_import_up_a_floor_or_across_the_top_is_found() -> None:
    graph = {
        "journal.log.session": {"journal.native"},
        "journal.cli.main": {"journal.store.session_store", "journal.native"},
        "journal.native": {"journal.log.session"},
        "journal.store.session_store": set(),
    }
    assert upward_imports(graph) == [
        "journal.cli.main imports journal.store.session_store",
        "journal.log.session imports journal.native",
    ]


# -- the package itself --------------------------------------------------------------------------


def test_every_module_lives_on_a_floor() -> None:
    for module in all_modules():
        if module not in SURFACE:
            assert layer_of(module), module


def test_no_module_imports_itself_round_a_loop() -> None:
    assert find_cycle(import_graph()) is None


def test_no_layer_imports_a_higher_one_and_the_top_packages_stand_apart() -> None:
    assert upward_imports(import_graph()) == []


def test_the_import_graph_sees_relative_imports() -> None:
    graph = import_graph()
    assert "journal.log.session" in graph["journal.compaction.protocol"]
    assert "journal.log.naming" in graph["journal.log.session"]  # `from . import naming`
    assert "journal.errors" in graph["journal.log.record"]


@pytest.mark.parametrize("module", sorted(all_modules()))
def test_no_module_is_over_500_lines(module: str) -> None:
    lines = all_modules()[module].read_text().count("\n")
    assert lines <= MAX_LINES, f"{module} has {lines} lines"
