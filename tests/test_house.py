"""The house's shape, read from the source: no import circle between modules, and imports run down
the rooms (DESIGN.md: helpers live in the lowest room that uses them). The graph is built with `ast`
from every module the package maps (pyproject's package-dir), relative imports resolved; imports
inside functions and under TYPE_CHECKING count too, since a reader follows them all.

`python tests/test_house.py` prints the circles and every arrow that runs back up."""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "edge_retalk"

# The rooms from the bottom up: a module may import from its own room and the rooms below it.
# "" is the package itself (`from .. import __version__`).
ROOMS = (
    "errors", "", "models", "boards",
    "io",          # media in and out, worker threads, schema, stage timing
    "provenance",  # the synthetic-media marks
    "engines",     # one Engine per runtime, the format table, manifests, the model cache
    "devices",     # board profiles, placement, autotune
    "face",        # tracker, landmark sets, face geometry
    "audio",       # features, speech encoder, lip shape, visemes
    "tts",
    "generators",  # renderers and compositor
    "avatar",
    "file_mode",
    "say",
    "live",
    "bench",       # drives whole file and live runs and times them
    "quality",     # evaluation: runs whole pipelines
    "api",
    "quant", "export", "training",
    "cli", "launcher", "__main__",
)

# Arrows that still run back up, as (importing module, imported module) below the package name.
# This list may only shrink (issue 37: 17 climbs and 2 circles when it was first counted).
KNOWN_CLIMBS: set[tuple[str, str]] = {
    # espeak's phonemizer, which depends on nothing, belongs below audio (audio/ or a text room)
    ("audio.alignment", "tts.phonemes"),
    # a type annotation only (TYPE_CHECKING): the writer burns in the label it is given
    ("io.video_writer", "provenance.labels"),
}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name, from pyproject's package-dir."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    found = {}
    for name, folder in config["tool"]["setuptools"]["package-dir"].items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([name, *parts])] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (a name imported from a package counts as the
    submodule of that name when there is one, else as the package)."""
    found = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in found.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [f"{target}.{alias.name}" for alias in node.names]
                targets = [name if name in found else target for name in names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[module].update(t for t in targets if t in found and t != module)
    return graph


def room(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def climbs(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """Imports from a room into a room above it, without the package name."""
    level = {name: i for i, name in enumerate(ROOMS)}
    short = lambda module: module.partition(".")[2] or PACKAGE  # noqa: E731
    return {(short(a), short(b)) for a, targets in graph.items() for b in targets
            if level[room(b)] > level[room(a)]}


def test_every_room_is_placed():
    assert {room(module) for module in modules()} <= set(ROOMS)


def test_no_import_circle():
    assert circles(import_graph()) == []


def test_imports_run_down_the_rooms_except_the_listed_climbs():
    found = climbs(import_graph())
    assert found - KNOWN_CLIMBS == set(), "new arrows that run back up: move the helper down instead"
    assert KNOWN_CLIMBS - found == set(), "climbs gone: strike them from KNOWN_CLIMBS"


if __name__ == "__main__":
    graph = import_graph()
    for group in circles(graph):
        print("circle:", " <-> ".join(group))
    for a, b in sorted(climbs(graph)):
        print(f"climb: {a} -> {b}")
    print(f"{len(circles(graph))} circles, {len(climbs(graph))} climbs")
