"""Finding, loading and ordering migration files. No I/O beyond reading the files.

A migration is a file ``NNNN_slug.py`` in the migrations directory; its id is the file name
without ``.py``. It defines ``steps`` (a list of :func:`odm.migrations.step` or operations) and
may define ``__depends__`` (ids it needs applied first) and ``__transactional__`` (``False``
to never run it in a transaction). Files are ordered by dependency, ties broken by id.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import traceback
import types
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..exceptions import MigrationError
from .operations import Operation, Step, step

#: What a migration file is called: ASCII digits, an underscore, a slug. (``\d`` would take
#: any Unicode digit: ``٠٠٠٢_b.py`` would sort and number unlike what it looks like.)
FILE_PATTERN = re.compile(r"^([0-9]+)_([A-Za-z0-9_]+)\.py$")


@dataclass
class Migration:
    """One loaded migration file."""

    id: str
    path: Path
    steps: list[Step]
    depends: frozenset[str] = frozenset()
    transactional: bool = True
    checksum: str = ""
    doc: str = ""
    extra: dict[str, object] = field(default_factory=dict)


def checksum(content: bytes) -> str:
    """Return the checksum recorded for a file: SHA-256 of its content, line endings unified.

    Unifying ``\\r\\n`` keeps a checkout with other line-ending settings from looking edited.
    """
    return hashlib.sha256(content.replace(b"\r\n", b"\n")).hexdigest()


def discover(directory: Path) -> list[Path]:
    """Return the migration files of ``directory`` sorted by name (none if it does not exist).

    Python files that do not look like ``NNNN_slug.py`` are refused rather than skipped, since
    a misnamed migration that silently never runs is worse than an error; ``_``-prefixed
    helpers (``__init__.py``, ``_shared.py``) are allowed.
    """
    if not directory.is_dir():
        return []
    files = []
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() != ".py" or path.name.startswith("_"):
            continue
        if path.suffix != ".py":
            # Python would not import it, and the glob once skipped it without a word.
            raise MigrationError(
                f"{path}: a migration file name ends in .py (lower case), not {path.suffix}"
            )
        if not FILE_PATTERN.match(path.name):
            raise MigrationError(
                f"{path}: not a migration file name; expected NNNN_slug.py (e.g. 0001_initial.py)"
            )
        files.append(path)
    return files


def _error_line(exc: BaseException, path: Path) -> int | None:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == str(path):
            return frame.lineno
    return None


def where(exc: BaseException, path: Path) -> str:
    """Return ``path:line`` of the innermost frame of ``path`` that ``exc`` went through."""
    line = _error_line(exc, path)
    return f"{path}:{line}" if line is not None else str(path)


def exit_call(exc: SystemExit) -> str:
    """Return the ``sys.exit(...)`` call that raised ``exc``, as the file would have written it."""
    code = "" if exc.code is None else repr(exc.code)
    return f"sys.exit({code})"


def _load_error(exc: BaseException, path: Path) -> str:
    if isinstance(exc, SystemExit):
        return (
            f"{where(exc, path)}: the file called {exit_call(exc)} while loading; a migration "
            "must not exit"
        )
    return f"{where(exc, path)}: {type(exc).__name__}: {exc}"


def load_file(path: Path) -> Migration:
    """Load one migration file; errors name the file and line."""
    content = path.read_bytes()
    migration_id = path.stem
    try:
        code = compile(content, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise MigrationError(
            f"{path}:{exc.lineno or '?'}: syntax error: {exc.msg}"
        ) from None
    module = types.ModuleType(f"odm_migration_{migration_id}")
    module.__file__ = str(path)
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        # SystemExit too: a file calling sys.exit() (or exit()) at import time must not end
        # the whole `odm migrate` process without saying which file did it.
        raise MigrationError(_load_error(exc, path)) from exc
    namespace = module.__dict__
    if "steps" not in namespace:
        raise MigrationError(f"{path}: no `steps` list; a migration defines steps = [step(...)]")
    steps = _steps(path, namespace["steps"])
    depends = namespace.get("__depends__", set())
    if isinstance(depends, str):
        depends = {depends}
    if not isinstance(depends, Iterable) or isinstance(depends, bytes):
        raise MigrationError(f"{path}: __depends__ must be a set of migration ids")
    depends = list(depends)  # once: a generator checked first would then be empty
    if not all(isinstance(d, str) for d in depends):
        raise MigrationError(f"{path}: __depends__ must be a set of migration ids")
    transactional = namespace.get("__transactional__", True)
    if not isinstance(transactional, bool):
        raise MigrationError(f"{path}: __transactional__ must be True or False")
    return Migration(
        id=migration_id,
        path=path,
        steps=steps,
        depends=frozenset(d.removesuffix(".py") for d in depends),
        transactional=transactional,
        checksum=checksum(content),
        doc=_first_line(module.__doc__),
    )


def _first_line(doc: object) -> str:
    """Return the first line of a file's docstring (a file may assign ``__doc__`` anything)."""
    lines = doc.strip().splitlines() if isinstance(doc, str) else []
    return lines[0] if lines else ""


def _steps(path: Path, value: object) -> list[Step]:
    if not isinstance(value, list | tuple):
        raise MigrationError(f"{path}: `steps` must be a list, not {type(value).__name__}")
    steps: list[Step] = []
    for number, item in enumerate(value, 1):
        if isinstance(item, Step):
            # Built as Step(...) rather than with step(): checked as step() checks, now rather
            # than when the run reaches it (a rollback, maybe years later).
            try:
                step(item.apply, item.rollback)
            except MigrationError as exc:
                raise MigrationError(f"{path}: step {number}: {exc}") from None
            steps.append(item)
        elif isinstance(item, Operation) or callable(item):
            # A bare operation or callable is a step without rollback.
            steps.append(Step(apply=item))
        else:
            raise MigrationError(
                f"{path}: step {number} is a {type(item).__name__}; use step(apply, rollback)"
            )
    return steps


def order(
    migrations: Sequence[Migration],
    applied: Collection[str] = frozenset(),
    allow_applied_missing: bool = False,
) -> list[Migration]:
    """Return ``migrations`` in dependency order, ties broken by id.

    Raises :class:`MigrationError` naming a missing dependency or the members of a cycle.
    ``applied`` names the applied migrations: a dependency among them whose file is gone is
    said to be so, and with ``allow_applied_missing`` it counts as met (``list`` still lists).
    """
    by_id = {m.id: m for m in migrations}
    for migration in migrations:
        _check_dependencies(migration, by_id, applied, allow_applied_missing)
    met = {d for m in migrations for d in m.depends if d not in by_id}  # applied, file gone
    waiting = {m.id: len(m.depends - met) for m in migrations}
    dependents: dict[str, list[str]] = {m.id: [] for m in migrations}
    for migration in migrations:
        for dep in migration.depends - met:
            dependents[dep].append(migration.id)
    ready = [mid for mid, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    result: list[Migration] = []
    while ready:
        mid = heapq.heappop(ready)
        result.append(by_id[mid])
        for child in dependents[mid]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(result) != len(migrations):
        cycle = find_cycle({m.id: m.depends for m in migrations})
        raise MigrationError(f"dependency cycle: {' -> '.join(cycle)}")
    return result


def _check_dependencies(
    migration: Migration,
    by_id: Mapping[str, Migration],
    applied: Collection[str],
    allow_applied_missing: bool,
) -> None:
    missing = sorted(d for d in migration.depends if d not in by_id)
    gone = [d for d in missing if d in applied]
    absent = [d for d in missing if d not in applied]
    if absent:
        raise MigrationError(
            f"missing dependency: {migration.id} depends on {', '.join(absent)}, "
            f"which is not in {migration.path.parent}"
        )
    if gone and not allow_applied_missing:
        raise MigrationError(
            f"missing dependency: {migration.id} depends on {', '.join(gone)}, which is "
            f"applied but its file is missing from {migration.path.parent}; restore the file "
            "(or drop the dependency, or `odm migrate unmark` a migration gone for good)"
        )


def find_cycle(graph: dict[str, frozenset[str]]) -> list[str]:
    """Return one cycle of ``graph`` (id -> dependencies) as a path ending where it starts."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state:
                found = visit(dep)
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
    return []


def ancestors(migrations: Sequence[Migration], target: str) -> set[str]:
    """Return the ids ``target`` depends on, directly or not (without ``target`` itself)."""
    by_id = {m.id: m for m in migrations}
    seen: set[str] = set()
    todo = list(by_id[target].depends) if target in by_id else []
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo.extend(by_id[current].depends if current in by_id else ())
    return seen


def load(
    directory: Path, applied: Collection[str] = frozenset(), allow_applied_missing: bool = False
) -> list[Migration]:
    """Load every migration of ``directory`` in dependency order (see :func:`order`)."""
    files = [load_file(path) for path in discover(directory)]
    return order(files, applied, allow_applied_missing)


def resolve_id(migrations: Iterable[Migration], given: str) -> str:
    """Return the id ``given`` names: the full id, the file name or a unique number prefix."""
    return resolve_name([m.id for m in migrations], given)


def resolve_name(ids: Sequence[str], given: str) -> str:
    """Return the id among ``ids`` that ``given`` names (see :func:`resolve_id`)."""
    given = given.removesuffix(".py")
    if given in ids:
        return given
    numbered = [mid for mid in ids if mid.split("_", 1)[0] == given]
    if len(numbered) == 1:
        return numbered[0]  # "0001" names 0001_a even when 00010_b also starts with it
    matches = numbered or [mid for mid in ids if mid.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise MigrationError(f"no migration {given!r} in the migrations directory")
    raise MigrationError(f"{given!r} is ambiguous: {', '.join(matches)}")


def slugify(text: str) -> str:
    """Return a file-name slug for a description: ``"Add email index"`` -> ``add_email_index``."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug[:60].rstrip("_") or "migration"


def next_number(directory: Path) -> int:
    """Return the number for a new file: one more than the highest existing one."""
    numbers = [
        int(match.group(1))
        for path in discover(directory)
        if (match := FILE_PATTERN.match(path.name))
    ]
    return max(numbers, default=0) + 1


def leaves(migrations: Sequence[Migration]) -> list[str]:
    """Return the ids nothing depends on (what a new file should depend on)."""
    needed = {dep for m in migrations for dep in m.depends}
    return sorted(m.id for m in migrations if m.id not in needed)
