"""The layers of the package point one way, and no two modules import each other (docs/architecture.md).

Every ``import`` statement under ``src/unihar`` counts: at module level, inside functions (the lazy
imports that keep ``unihar --help`` fast) and under ``if TYPE_CHECKING:``. A type-only import still
ties the two modules together for a reader and a type checker, and hiding an import cycle behind
``TYPE_CHECKING`` is the usual way one creeps in, so it gets no exemption. Modules named by string and
imported with :mod:`importlib` (the lazy public names of ``unihar``, the dataset registry) are not seen.
``from package import module`` is an edge to the module; ``from package import name``, to the
package's ``__init__`` (which is then a module like any other). The parent packages Python initialises
on the way to a module are not edges: every import does that.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module belongs to the layer of the longest entry equal to its name or a package above
# it; it may import modules of its own layer or of lower ones. The same table is in docs/architecture.md.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        ("unihar.errors", "unihar.jsonfile", "unihar.cache", "unihar.memory", "unihar.assets", "unihar.hub"),
    ),
    ("config", ("unihar.config", "unihar.schema")),
    ("data", ("unihar.data",)),
    ("models", ("unihar.models",)),
    ("backends", ("unihar.inference.device", "unihar.inference.onnx_backend", "unihar.loading")),
    (
        "engine",
        (
            "unihar.inference.engine",
            "unihar.inference.streaming",
            "unihar.inference.results",
            "unihar.inference.palette",
        ),
    ),
    (
        "api",
        (
            "unihar",
            "unihar.inference",
            "unihar.inference.pipeline",
            "unihar.inference.predictor",
            "unihar.inference.render",
            "unihar.recognizer",
            "unihar.teaching",
        ),
    ),
    (
        "applications",
        (
            "unihar.cli",
            "unihar.serving",
            "unihar.training",
            "unihar.inference.batch",
            "unihar.inference.batch_stages",
            "unihar.inference.batch_ray",
        ),
    ),
)


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the package (a package is its ``__init__``)."""
    modules = {}
    for path in sorted((SRC / "unihar").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The module an imported name lives in: itself, or the nearest package or module above it."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, dict[str, int]]:
    """Module -> {module of the package it imports: the line of the first such import}."""
    modules = _modules()
    graph: dict[str, dict[str, int]] = {name: {} for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                # ``from package import module`` imports that module; ``from module import name``, the module
                names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            else:
                continue
            for imported in names:
                target = _target(imported, modules) if imported.split(".")[0] == "unihar" else None
                if target is not None and target != name:
                    graph[name].setdefault(target, node.lineno)
    return graph


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of the layer ``module`` belongs to."""
    best, layer = "", -1
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            if (module == entry or module.startswith(entry + ".")) and len(entry) > len(best):
                best, layer = entry, index
    return layer


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of the graph as ``[a, b, ..., a]``, or None (depth-first search, in sorted order)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_every_module_has_a_layer() -> None:
    """A new top-level module or package must be placed in the table (the root entry covers only itself)."""
    unplaced = [m for m in import_graph() if m != "unihar" and _placed_by(m) in ("", "unihar")]
    assert not unplaced, f"modules in no layer of LAYERS (add them there and to docs/architecture.md): {unplaced}"


def _placed_by(module: str) -> str:
    """The table entry that decides the layer of ``module`` ("" for none)."""
    entries = [e for _, group in LAYERS for e in group if module == e or module.startswith(e + ".")]
    return max(entries, key=len, default="")


def test_no_import_cycles() -> None:
    graph = import_graph()
    remaining = {module: dict(targets) for module, targets in graph.items()}
    cycles = []
    while len(cycles) < 20 and (cycle := find_cycle(remaining)):  # each found, then its first edge cut
        cycles.append(" -> ".join(f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:])) + f" -> {cycle[-1]}")
        del remaining[cycle[0]][cycle[1]]
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_imports_point_down() -> None:
    graph = import_graph()
    upward = [
        f"{module} (line {line}, layer {LAYERS[layer_of(module)][0]}) imports {target} "
        f"(layer {LAYERS[layer_of(target)][0]})"
        for module, targets in sorted(graph.items())
        for target, line in sorted(targets.items())
        if layer_of(target) > layer_of(module)
    ]
    assert not upward, "imports that point up a layer:\n  " + "\n  ".join(upward)


def test_the_checks_see_what_they_look_for() -> None:
    """The graph finds lazy and type-only imports, and the cycle search finds a cycle."""
    graph = import_graph()
    assert "unihar.inference.pipeline" in graph["unihar"]  # under TYPE_CHECKING
    assert "unihar.cli.predict" in graph["unihar.cli"]  # inside a function
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None
