"""The package's floors hold: import-linter's contracts (pyproject.toml) and no import cycle.

import-linter checks the layers of docs/architecture.md, that the declaration and query layers
do no I/O, and that no package's modules import each other in a loop. The second test is
stricter about cycles: it walks every ``import`` of every module with :mod:`ast`, the deferred
ones inside function bodies included, so an import moved into a function to dodge a loop is
still a loop; ``if TYPE_CHECKING:`` imports may cross the floors, but make no loop either.
The last keeps the deferred imports that remain few and explained.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "odm"


def test_import_linter_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "BROKEN" not in report
    assert report.count("KEPT") == 4, report


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[1] == "contrib":  # a link to the top-level contrib/, an integration
            continue
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return "TYPE_CHECKING" in ast.unparse(test)


def _imports(
    module: str, path: Path, known: dict[str, Path], type_only: bool = False
) -> Iterator[tuple[str, int, bool]]:
    """Yield (imported odm module, line, deferred) for each import of ``module`` (with
    ``type_only``, the ``if TYPE_CHECKING:`` ones too)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def target(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            names = [f"{base}.{alias.name}" for alias in node.names]
        out = []
        for name in names:
            while name not in known and "." in name:
                name = name.rpartition(".")[0]
            if name in known and name != module:
                out.append(name)
        return out

    def walk(body: list[ast.stmt], deferred: bool) -> Iterator[tuple[str, int, bool]]:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                for name in target(node):
                    yield name, node.lineno, deferred
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                if type_only:
                    yield from walk(node.body, deferred)
                yield from walk(node.orelse, deferred)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from walk(node.body, True)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    inner = getattr(node, field, None)
                    if isinstance(inner, list):
                        stmts = [s for s in inner if isinstance(s, ast.stmt)]
                        handlers = [h for h in inner if isinstance(h, ast.ExceptHandler)]
                        yield from walk(stmts, deferred)
                        for handler in handlers:
                            yield from walk(handler.body, deferred)

    yield from walk(ast.parse(path.read_text()).body, False)


def _graph(type_only: bool = False) -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    known = _modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    deferred: list[tuple[str, int, str]] = []
    for module, path in known.items():
        for imported, line, late in _imports(module, path, known, type_only):
            # Importing a submodule runs its package's __init__ first; an __init__ that only
            # re-exports is the package's face, not a dependency of its own modules.
            graph[module].add(imported)
            if late:
                deferred.append((module, line, imported))
    return graph, deferred


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import cycle of ``graph`` (a list of modules), or ``None``."""
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as error:
        found: list[str] = error.args[1]
        return found
    return None


def _without_package_faces(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    # A package's __init__ re-exporting its modules is not part of a loop through them.
    for module in graph:
        if (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists():
            graph[module] = {m for m in graph[module] if not m.startswith(module + ".")}
    return graph


def test_no_import_cycle_even_through_deferred_imports() -> None:
    graph = _without_package_faces(_graph()[0])
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_no_import_cycle_even_through_type_only_imports() -> None:
    """Imports made for type checkers alone are allowed across the floors' contract, but not
    in a loop either: two modules that name each other's types belong together, or one of
    them should describe what it needs (a Protocol), as odm.query.extras does for Query."""
    graph = _without_package_faces(_graph(type_only=True)[0])
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_cycle_check_finds_a_cycle() -> None:
    found = _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert found is not None and found[0] == found[-1] and set(found) == {"a", "b", "c"}
    assert _cycle({"a": {"b"}, "b": set()}) is None


def _reason(line: str) -> bool:
    """Tell whether ``line`` carries a comment that is more than a tool's pragma."""
    _, hash_, comment = line.partition("#")
    comment = comment.strip()
    return bool(hash_) and bool(comment) and not comment.startswith(("type:", "noqa"))


def test_each_deferred_import_says_why() -> None:
    _, deferred = _graph()
    unexplained = []
    for module, line, imported in deferred:
        lines = _modules()[module].read_text().splitlines()
        # The reason: a comment on the import's line or above it in the same block of imports.
        block = [lines[line - 1]]
        for text in reversed(lines[: line - 1]):
            stripped = text.strip()
            if stripped and not stripped.startswith(("from ", "import ", "#")):
                break
            block.append(text)
        if not any(_reason(text) for text in block):
            unexplained.append(f"{module}:{line} imports {imported} in a function body")
    assert not unexplained, "\n".join(unexplained)
    assert len(deferred) <= 10, deferred
