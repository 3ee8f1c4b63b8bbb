"""The house's structure, read from the code: no import loop, and every import goes down a floor.

Floors, top to bottom (../shared/design.md, README's Layout): the command line and the Python API;
analysis, presets and progress; the IMP driver; executors; the engine; the store, models and data;
the configuration; the ground floor (seeds, atomic files, pruning); and errors, the foundation. A module may import
from its own package or from a lower floor, never from a higher one. Imports inside functions
count too: a loop through them still ties the modules together.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
FLOORS = [  # top first
    {"lottery"},  # the package's front: `lottery.find_ticket`, `lottery.__version__`
    {"lottery.cli", "lottery.api"},
    {"lottery.analysis", "lottery.presets", "lottery.progress"},
    {"lottery.imp"},
    {"lottery.execute"},
    {"lottery.engine", "lottery.sparse"},
    {"lottery.store", "lottery.models", "lottery.data"},
    {"lottery.config"},
    {"lottery.seeds", "lottery.atomic", "lottery.version", "lottery.pruning"},
    {"lottery.errors"},  # the foundation: what a user can get wrong, importing nothing of ours
]


def modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "lottery").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ours that `name` imports anywhere in its file (a package's __init__ for a
    name the package holds; the submodule for a submodule)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), or a module importing itself."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))
    for v in edges:
        if v not in index:
            visit(v)
    return out


def floor(name: str) -> tuple[int, str]:
    """(floor number, counting from the top; the area it belongs to)."""
    for number, areas in enumerate(FLOORS):
        for area in sorted(areas, key=len, reverse=True):
            if name == area or (area != "lottery" and name.startswith(area + ".")):
                return number, area
    raise AssertionError(f"{name} is on no floor: add it to FLOORS and to the layout in the docs")


def test_no_import_loop():
    edges = graph()
    assert len(edges) > 40, "the walk found the package"
    assert cycles(edges) == []


def test_every_import_goes_down():
    upward = []
    for name, targets in graph().items():
        mine, my_area = floor(name)
        for t in targets:
            theirs, their_area = floor(t)
            if their_area != my_area and theirs <= mine:
                upward.append(f"{name} (floor {mine}) imports {t} (floor {theirs})")
    assert upward == []


def test_the_walk_sees_a_loop_and_an_upward_import(tmp_path):
    """The checks can fail: two modules importing each other inside functions make a loop."""
    edges = {"lottery.config": {"lottery.data"}, "lottery.data": {"lottery.config"}, "lottery.errors": set()}
    assert cycles(edges) == [["lottery.config", "lottery.data"]]
    source = tmp_path / "config.py"
    source.write_text("def f():\n    from lottery.data import DATASETS\n    from . import errors\n")
    assert imports("lottery.config", source, {"lottery.config", "lottery.data", "lottery.errors"}) == \
        {"lottery.data", "lottery.errors"}
    assert floor("lottery.config")[0] > floor("lottery.data")[0], "config sits below data: that import goes up"
