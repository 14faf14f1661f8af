"""The house rules of src/coinharvest (docs/ARCHITECTURE.md), checked on the source itself.

- Layers only look down: `engine`, `sources`, `storage` (and the modules beside them, and
  the emulator) import nothing from `service` or `cli`; `service` imports nothing from `cli`.
- No import cycles among modules (module-level imports, TYPE_CHECKING ones included).
- Sizes: no module over 400 lines, no class over 250, no function over 40 (migrations and
  declarative payload builders excepted, each named below).
- The package's public API is what `coinharvest.__all__` promises, and importing it is cheap.
"""

from __future__ import annotations

import ast
import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import coinharvest

SRC = Path(coinharvest.__file__).resolve().parent
#: Functions that only build one literal (size rule exempt), as "module:function".
DECLARATIVE = {
    "emulator/upstreams/blockchair.py:_bitcoin_like",
    "emulator/upstreams/blockchair.py:_ethereum",
    "service/metrics.py:_define",
}
HIGHER = ("coinharvest.service", "coinharvest.cli")


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if "migrations" in rel.parts:
            continue
        parts = ["coinharvest", *rel.with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _imports(tree: ast.Module, *, top_level_only: bool) -> set[str]:
    """Modules imported; `top_level_only` skips imports inside functions (lazy imports)."""
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    if top_level_only:  # also look inside `if TYPE_CHECKING:` and try blocks at top level
        nodes = [n for top in tree.body for n in ast.walk(top) if not _in_function(top, n)]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "coinharvest" or m.startswith("coinharvest.")}


def _in_function(top: ast.stmt, node: ast.AST) -> bool:
    if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return any(
            node in ast.walk(f)
            for f in ast.walk(top)
            if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        )
    return False


PARSED = {name: ast.parse(path.read_text()) for name, path in _modules()}
PATHS = dict(_modules())


def test_lower_layers_never_import_the_service_or_the_cli() -> None:
    wrong = []
    for name, tree in PARSED.items():
        below_service = not name.startswith(HIGHER) and name != "coinharvest.__main__"
        for imported in _imports(tree, top_level_only=False):
            service_to_cli = name.startswith(HIGHER[0]) and imported.startswith(HIGHER[1])
            if (below_service and imported.startswith(HIGHER)) or service_to_cli:
                wrong.append(f"{name} imports {imported}")
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = {name: _imports(tree, top_level_only=True) for name, tree in PARSED.items()}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str], done: set[str]) -> None:
        if node in stack:
            cycles.append([*stack[stack.index(node) :], node])
            return
        if node in done or node not in graph:
            return
        for nxt in sorted(graph[node]):
            visit(nxt, [*stack, node], done)
        done.add(node)

    done: set[str] = set()
    for name in sorted(graph):
        visit(name, [], done)
    # A package's __init__ re-exporting its own submodules is not a cycle of the code.
    real = [c for c in cycles if not _reexport_only(c)]
    assert real == []


def _reexport_only(cycle: list[str]) -> bool:
    return any(a.startswith(b + ".") or b.startswith(a + ".") for a, b in itertools.pairwise(cycle))


def _sizes() -> Iterator[tuple[str, int, int]]:
    """(what, lines, limit) for every module, class and function over its limit."""
    for name, tree in PARSED.items():
        path = PATHS[name]
        rel = path.relative_to(SRC).as_posix()
        lines = path.read_text().count("\n")
        if lines > 400:
            yield rel, lines, 400
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            assert node.end_lineno is not None
            size = node.end_lineno - node.lineno + 1
            limit = 250 if isinstance(node, ast.ClassDef) else 40
            if size > limit and f"{rel}:{node.name}" not in DECLARATIVE:
                yield f"{rel}:{node.name}", size, limit


def test_modules_classes_and_functions_stay_small() -> None:
    assert list(_sizes()) == []


@pytest.mark.parametrize("name", coinharvest.__all__)
def test_the_public_api_is_importable_from_the_package(name: str) -> None:
    assert getattr(coinharvest, name) is not None


def test_the_public_api_is_what_the_docs_promise() -> None:
    assert set(coinharvest.__all__) >= {
        "Engine", "ResultSink", "EngineObserver", "RetryPolicy", "Source", "FetchResult",
        "Store", "Coin", "Observation", "RunSummary", "CoinharvestError", "ConfigError",
        "SourceError", "RateLimited", "StoreError",
    }  # fmt: skip


def test_importing_the_package_loads_no_database_or_web_stack() -> None:
    code = (
        "import sys, coinharvest, coinharvest.models, coinharvest.errors;"
        "print(sorted(m for m in ('sqlalchemy', 'fastapi', 'httpx', 'typer', 'rich')"
        " if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
