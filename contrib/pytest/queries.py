"""Query assertions for tests: how many commands a block sends, and which ones scan a collection.

Django has ``assertNumQueries``; this is that for odm, plus a check that the reads a test made
are served by an index. Both work on the commands the driver sends, whichever client sent them
(the test's ``odm_database``, or an application's own connection): the plugin registers one
PyMongo command listener for the whole run (:func:`install`, before any client exists), and it
hands each command to the captures open at that moment.

- ``with assert_num_queries(2): ...`` fails when the block sent another number of commands,
  listing them. Handshakes, cursor upkeep (``getMore``, ``killCursors``) and the like are not
  counted (:data:`odm.contrib.pytest.HOUSEKEEPING`).
- ``await assert_no_collection_scans(log)`` runs ``explain`` on every captured ``find``,
  ``aggregate`` and ``count`` and fails for each one that the server would answer with a
  collection scan of a collection that has documents, naming the query's shape and the
  ``Index(...)`` that would serve it. A read with neither a filter nor a sort reads everything
  by design and is not reported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from pymongo import monitoring

from odm import connection

from .log import HOUSEKEEPING, CommandLog

__all__ = [
    "CollectionScan",
    "Queries",
    "assert_no_collection_scans",
    "assert_num_queries",
    "capture_queries",
    "collection_scans",
    "install",
    "listening",
]

#: Commands that a collection scan check explains.
READS = frozenset({"find", "aggregate", "count"})

#: Fields of a sent command that ``explain`` must not be given: session, transaction and
#: cluster bookkeeping that the driver added (explain runs outside any session).
_NOT_EXPLAINED = frozenset(
    {"lsid", "txnNumber", "autocommit", "startTransaction", "readConcern", "writeConcern"}
)

#: Filter operators of a range (or otherwise non-equality) condition: their fields go after
#: the equality and sort fields of a suggested index (the Equality, Sort, Range rule).
_RANGE = frozenset(
    {"$gt", "$gte", "$lt", "$lte", "$ne", "$nin", "$regex", "$exists", "$type", "$not",
     "$elemMatch", "$size", "$all", "$mod"}
)

_active: list[monitoring.CommandListener] = []
_lock = threading.Lock()  # Motor's listener calls come from the driver's threads


def _listening() -> list[monitoring.CommandListener]:
    """The captures open now (a copy: one may close while a command is handed out)."""
    with _lock:
        return list(_active)


class _Dispatcher(monitoring.CommandListener):
    """The one listener registered with PyMongo: forwards commands to the open captures."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        """Hand the command to every capture open now."""
        for listener in _listening():
            listener.started(event)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Hand the reply to every capture open now (a log ignores it)."""
        for listener in _listening():
            listener.succeeded(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Hand the failure to every capture open now (a log ignores it)."""
        for listener in _listening():
            listener.failed(event)


_installed = False


def install() -> None:
    """Register the dispatching listener with PyMongo, once. Only clients created afterwards
    report to it, so the plugin calls this when pytest starts."""
    global _installed
    if not _installed:
        monitoring.register(_Dispatcher())
        _installed = True


@contextmanager
def capture_queries(ignore: frozenset[str] = HOUSEKEEPING) -> Iterator[CommandLog]:
    """Collect the commands sent by any client while the block runs (leaving out ``ignore``)."""
    log = CommandLog(ignore=ignore)
    with listening(log):
        yield log


@contextmanager
def listening(listener: monitoring.CommandListener) -> Iterator[None]:
    """Hand ``listener`` the commands that any client sends while the block runs, with their
    replies and failures."""
    install()
    with _lock:
        _active.append(listener)
    try:
        yield
    finally:
        with _lock:
            _active.remove(listener)


@contextmanager
def _paused() -> Iterator[None]:
    # The check's own explain and count commands are not the test's queries.
    with _lock:
        saved = list(_active)
        _active.clear()
    try:
        yield
    finally:
        with _lock:
            _active[:0] = saved


def describe(log: CommandLog) -> str:
    """One numbered line per captured command: its name, collection and arguments."""
    lines = []
    for number, (name, command) in enumerate(log.commands, 1):
        arguments = {k: v for k, v in command.items() if k != name and _kept(k)}
        lines.append(f"  {number}. {name} {command.get(name)!r} {arguments}")
    return "\n".join(lines)


@contextmanager
def assert_num_queries(
    expected: int, *, ignore: frozenset[str] = HOUSEKEEPING
) -> Iterator[CommandLog]:
    """Fail unless the block sends exactly ``expected`` commands (housekeeping not counted).

    Yields the :class:`CommandLog` of the block, for closer assertions.
    """
    with capture_queries(ignore) as log:
        yield log
    if len(log.commands) != expected:
        raise AssertionError(
            f"expected {expected} quer{'y' if expected == 1 else 'ies'}, "
            f"{len(log.commands)} were sent:\n{describe(log)}"
        )


@dataclass(frozen=True)
class CollectionScan:
    """A captured read that the server answers by scanning its whole collection."""

    command: str
    database: str
    collection: str
    documents: int
    shape: Any
    sort: Mapping[str, Any]
    index: str | None

    def __str__(self) -> str:
        sort = f", sort {dict(self.sort)}" if self.sort else ""
        fix = (f"an index that would serve it: {self.index}" if self.index
               else "no single index serves this shape")
        return (f"{self.command} on {self.database}.{self.collection} scans the collection "
                f"({self.documents} document(s)): filter {self.shape}{sort}; {fix}")


def _kept(key: str) -> bool:
    return not key.startswith("$") and key not in _NOT_EXPLAINED


def _filter_and_sort(
    name: str, command: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    if name == "find":
        return dict(command.get("filter") or {}), dict(command.get("sort") or {})
    if name == "count":
        return dict(command.get("query") or {}), {}
    pipeline = list(command.get("pipeline") or [])
    match: dict[str, Any] = {}
    sort: dict[str, Any] = {}
    if pipeline and "$match" in pipeline[0]:
        match = dict(pipeline.pop(0)["$match"])
    if pipeline and "$sort" in pipeline[0]:
        sort = dict(pipeline[0]["$sort"])
    return match, sort


def shape(value: Any) -> Any:
    """The query shape of a filter: its fields and operators, every value replaced by ``?``."""
    if isinstance(value, Mapping):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
        return [shape(item) for item in value]
    return "?"


def suggest_index(filter: Mapping[str, Any], sort: Mapping[str, Any]) -> str | None:
    """An ``Index(...)`` serving ``filter`` and ``sort``: equality fields, then the sort, then
    range fields (MongoDB's ESR rule). ``None`` when the filter's top level is ``$or``-like."""
    equality: list[str] = []
    ranges: list[str] = []

    def visit(conditions: Mapping[str, Any]) -> bool:
        for key, condition in conditions.items():
            if key == "$and":
                if not all(visit(part) for part in condition):
                    return False
            elif key.startswith("$"):
                return False  # $or, $nor, $expr, $text...: not one compound index
            elif isinstance(condition, Mapping) and any(op in _RANGE for op in condition):
                ranges.append(key)
            else:
                equality.append(key)
        return True

    if not visit(filter):
        return None
    keys: dict[str, str] = {}  # field -> its key in Index(...), in index order
    for field in equality:
        keys.setdefault(field, field)
    for field, direction in sort.items():
        keys.setdefault(field, f"-{field}" if direction == -1 else field)
    for field in ranges:
        keys.setdefault(field, field)
    if not keys:
        return None
    return "Index(" + ", ".join(f'"{key}"' for key in keys.values()) + ")"


def _stages(plan: Any) -> Iterator[str]:
    if isinstance(plan, Mapping):
        if isinstance(plan.get("stage"), str):
            yield plan["stage"]
        for value in plan.values():
            yield from _stages(value)
    elif isinstance(plan, list):
        for item in plan:
            yield from _stages(item)


def _winning_plans(explained: Any) -> Iterator[Any]:
    if isinstance(explained, Mapping):
        for key, value in explained.items():
            if key == "winningPlan":
                yield value
            else:
                yield from _winning_plans(value)
    elif isinstance(explained, list):
        for item in explained:
            yield from _winning_plans(item)


async def collection_scans(log: CommandLog, client: Any = None) -> list[CollectionScan]:
    """Explain every captured read; return those answered by a collection scan of a non-empty
    collection. ``client`` runs the explains (default: the default alias's client)."""
    client = client if client is not None else connection.get_connection().client
    found: list[CollectionScan] = []
    with _paused():
        for name, command in log.commands:
            if name not in READS:
                continue
            filter, sort = _filter_and_sort(name, command)
            if not filter and not sort:
                continue  # reads everything by design: no index would help
            database = client[command["$db"]]
            collection = command[name]
            explained = await database.command(
                {"explain": {k: v for k, v in command.items() if _kept(k)},
                 "verbosity": "queryPlanner"}
            )
            plans = list(_winning_plans(explained))
            if not any("COLLSCAN" in _stages(plan) for plan in plans):
                continue
            documents = await database[collection].estimated_document_count()
            if documents:
                found.append(CollectionScan(
                    name, database.name, collection, documents, shape(filter), sort,
                    suggest_index(filter, sort),
                ))
    return found


async def assert_no_collection_scans(log: CommandLog, client: Any = None) -> None:
    """Fail when a captured ``find``/``aggregate``/``count`` scans a collection that has
    documents; the message names each query's shape and the index that would serve it."""
    scans = await collection_scans(log, client)
    if scans:
        raise AssertionError(
            f"{len(scans)} quer{'y scans' if len(scans) == 1 else 'ies scan'} a whole collection:\n"
            + "\n".join(f"  - {scan}" for scan in scans)
        )


@dataclass
class Queries:
    """What the ``odm_queries`` fixture yields: every command sent during the test, and the
    assertions over them."""

    log: CommandLog

    def assert_num_queries(self, expected: int) -> AbstractContextManager[CommandLog]:
        """Fail unless the ``with`` block sends exactly ``expected`` commands."""
        return assert_num_queries(expected)

    async def assert_no_collection_scans(self, client: Any = None) -> None:
        """Fail when a read sent so far in the test scans a non-empty collection."""
        await assert_no_collection_scans(self.log, client)
