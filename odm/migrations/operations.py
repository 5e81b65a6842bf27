"""Steps and the ready-made operations a migration file lists in ``steps``.

A step pairs an ``apply`` with an optional ``rollback``. Each is either an :class:`Operation`
(``create_index(...)``, ``batched_update(...)``, ...) or a callable taking the driver database
that returns an awaitable (an ``async def``) or an operation (``lambda db: batched_update(...)``).

Operations say whether they may run inside a multi-document transaction: MongoDB refuses most
DDL (``dropIndexes``, ``collMod``, ``drop``, index builds on non-empty collections) and
``$out``/``$merge`` inside one, and long data steps would hit its 60 s limit, so those run
outside it and are written to be safe to run twice (a killed run repeats the last of them).
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo.errors import OperationFailure

from .. import drivers
from ..exceptions import MigrationError

#: MongoDB error codes an idempotent operation treats as "already done".
_NAMESPACE_NOT_FOUND = 26
_INDEX_NOT_FOUND = 27
_NAMESPACE_EXISTS = 48

Echo = Callable[[str], None]


@dataclass
class Context:
    """What a running step can see: the database, where it is, and how to report progress."""

    database: Any
    migration_id: str = "-"
    direction: str = "apply"
    step_index: int = 0
    #: The collection that holds resume positions (``None``: positions are not kept).
    state: Any = None
    #: True while the step runs inside the file's transaction.
    in_transaction: bool = False
    #: True when the server runs multi-document transactions (a replica set or mongos).
    transactions: bool = False
    echo: Echo = field(default=lambda line: None)
    #: Proves the run still holds the migrations lock, extending its lease; takes the session
    #: whose transaction the proof must join (``None``: the task's own). ``None``: no lock.
    prove: Callable[[Any], Awaitable[None]] | None = None
    #: Returns the seconds left of the lock's lease as the run knows it to be stored: retries
    #: of a failed transaction stop there. ``None``: no lock, the driver's own bound.
    lease_left: Callable[[], float] | None = None
    #: Awaits a write with its driver calls bounded by what is left of the lock's lease,
    #: raising ``LeaseRanOut`` for one that does not finish within it
    #: (``MigrationLock.bounded``): a write made without a transaction then cannot land once
    #: another run may hold the lock. ``None``: no lock.
    lease_bounded: Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]] | None = None
    #: Counts the operations a step has run so that each has its own resume position.
    ordinal: int = 0
    #: The checksum of the migration's file, stored with every resume position so that a
    #: position saved for other content is never resumed from.
    checksum: str = ""

    def next_key(self) -> str:
        """Return a stable key for the next resumable operation of the current step."""
        self.ordinal += 1
        return f"{self.migration_id}:{self.direction}:{self.step_index}:{self.ordinal}"


_current: contextvars.ContextVar[Context | None] = contextvars.ContextVar(
    "odm_migration_context", default=None
)


def current_context() -> Context | None:
    """Return the context of the step running in this task, if any."""
    return _current.get()


def bind_context(context: Context) -> contextvars.Token[Context | None]:
    """Make ``context`` the current one (the runner calls this around each step)."""
    return _current.set(context)


def unbind_context(token: contextvars.Token[Context | None]) -> None:
    """Undo :func:`bind_context`."""
    _current.reset(token)


class Operation:
    """One database change a step can apply or roll back.

    Subclasses implement :meth:`run` and :meth:`describe`. An operation is also awaitable, so
    that an ``async def`` step may ``await create_index(...)`` inside the current migration.
    """

    #: Whether the operation may run inside the file's transaction.
    transactional: bool = False
    #: How it runs when not in the transaction (``plan`` shows it).
    outside_note: str = (
        "MongoDB refuses it in one; the steps before it commit first and it runs on its own"
    )

    async def run(self, context: Context) -> None:
        """Perform the operation."""
        raise NotImplementedError

    def describe(self) -> str:
        """Return one line saying what the operation does (shown by ``plan``)."""
        raise NotImplementedError

    def __await__(self) -> Generator[Any, None, None]:
        context = current_context()
        if context is None:
            raise MigrationError(
                f"{self.describe()}: awaited outside a migration; pass it to step() instead"
            )
        if context.in_transaction and not self.transactional:
            # The server would refuse it with a less helpful message, or (for batched updates)
            # it would turn a resumable job into one long transaction.
            raise MigrationError(
                f"{self.describe()} cannot run inside the file's transaction: make it a step's "
                "apply (step(apply=...)) or set __transactional__ = False in the file"
            )
        return self.run(context).__await__()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"


def collection_of(context: Context, collection: Any) -> Any:
    """Return the driver collection ``collection`` names (a name or a collection object)."""
    if isinstance(collection, str):
        return context.database[collection]
    return collection


def collection_name(collection: Any) -> str:
    """Return the name of a collection given by name or as a driver object."""
    return collection if isinstance(collection, str) else str(collection.name)


StepAction = Operation | Callable[[Any], Any]


@dataclass(frozen=True)
class Step:
    """One entry of a migration's ``steps``: what to apply and how to undo it."""

    apply: StepAction
    rollback: StepAction | None = None

    def describe(self, rollback: bool = False) -> str:
        """Return one line naming what the step does (or its rollback)."""
        action = self.rollback if rollback else self.apply
        return describe_action(action)


def describe_action(action: StepAction | None) -> str:
    """Describe an operation, or a callable by name and line (callables are never called)."""
    if action is None:
        return "(nothing)"
    if isinstance(action, Operation):
        return action.describe()
    code = getattr(action, "__code__", None)
    name = getattr(action, "__qualname__", repr(action))
    if code is not None:
        return f"call {name} (line {code.co_firstlineno})"
    return f"call {name}"


def step(apply: StepAction, rollback: StepAction | None = None) -> Step:
    """Return a step: ``apply`` runs on ``apply``, ``rollback`` (if any) undoes it."""
    for what, action in (("apply", apply), ("rollback", rollback)):
        if action is not None and not (isinstance(action, Operation) or callable(action)):
            raise MigrationError(
                f"step({what}=...) must be an operation or a callable taking the database, "
                f"not {type(action).__name__}"
            )
    return Step(apply=apply, rollback=rollback)


def resolve_action(action: StepAction, database: Any) -> Operation | Awaitable[Any] | None:
    """Turn a step action into what will run, without running it.

    Calling a lambda that builds an operation has no effect; calling an ``async def`` only
    creates its coroutine. The runner looks at the result to decide whether it may join the
    transaction, then awaits it.
    """
    if isinstance(action, Operation):
        return action
    result = action(database)
    if isinstance(result, Operation) or inspect.isawaitable(result):
        return result
    return None


def _index_keys(keys: str | Sequence[Any] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    if isinstance(keys, str):
        # "-created" reads as a descending key, as in Meta.ordering.
        return [(keys[1:], -1)] if keys.startswith("-") else [(keys, 1)]
    if isinstance(keys, Mapping):
        return list(keys.items())
    result: list[tuple[str, Any]] = []
    for item in keys:
        if isinstance(item, str):
            result.extend(_index_keys(item))
        else:
            name, direction = item
            result.append((str(name), direction))
    return result


def default_index_name(keys: Sequence[tuple[str, Any]]) -> str:
    """Return the name MongoDB gives an index on ``keys`` (``email_1``, ``a_1_b_-1``)."""
    return "_".join(f"{name}_{direction}" for name, direction in keys)


class CreateIndex(Operation):
    """Create an index; running it again with the same definition does nothing."""

    def __init__(self, collection: Any, keys: Any, **options: Any) -> None:
        self.collection = collection
        self.keys = _index_keys(keys)
        self.options = dict(options)
        self.options.setdefault("name", default_index_name(self.keys))

    @property
    def name(self) -> str:
        """The index's name."""
        return str(self.options["name"])

    async def run(self, context: Context) -> None:
        """Build the index."""
        await collection_of(context, self.collection).create_index(self.keys, **self.options)

    def describe(self) -> str:
        """Say which index on which collection."""
        extra = {k: v for k, v in self.options.items() if k != "name"}
        opts = "".join(f", {k}={v!r}" for k, v in sorted(extra.items()))
        return (
            f"create index {self.name} on {collection_name(self.collection)} "
            f"{self.keys!r}{opts}"
        )


class DropIndex(Operation):
    """Drop an index by name (or key spec); a missing index or collection is not an error."""

    def __init__(self, collection: Any, index: str | Sequence[Any]) -> None:
        self.collection = collection
        self.index = index if isinstance(index, str) else default_index_name(_index_keys(index))

    async def run(self, context: Context) -> None:
        """Drop the index."""
        try:
            await collection_of(context, self.collection).drop_index(self.index)
        except OperationFailure as exc:
            if exc.code not in (_INDEX_NOT_FOUND, _NAMESPACE_NOT_FOUND):
                raise

    def describe(self) -> str:
        """Say which index on which collection."""
        return f"drop index {self.index} on {collection_name(self.collection)}"


class RenameField(Operation):
    """Rename a field in every document that has it (one ``updateMany``; safe to repeat)."""

    def __init__(
        self, collection: Any, old: str, new: str, filter: Mapping[str, Any] | None = None
    ) -> None:
        self.collection = collection
        self.old = old
        self.new = new
        self.filter = dict(filter or {})

    async def run(self, context: Context) -> None:
        """Rename the field."""
        query = {**self.filter, self.old: {"$exists": True}}
        await collection_of(context, self.collection).update_many(
            query, {"$rename": {self.old: self.new}}
        )

    def describe(self) -> str:
        """Say which field on which collection."""
        return f"rename field {self.old} to {self.new} in {collection_name(self.collection)}"


class SetValidator(Operation):
    """Set (or with ``None`` remove) a collection's validator, creating the collection if needed."""

    def __init__(
        self,
        collection: Any,
        validator: Mapping[str, Any] | None,
        *,
        level: str = "strict",
        action: str = "error",
    ) -> None:
        self.collection = collection
        self.validator = dict(validator) if validator else {}
        self.level = level
        self.action = action

    async def run(self, context: Context) -> None:
        """Run ``collMod`` (or ``create`` when the collection does not exist)."""
        name = collection_name(self.collection)
        options = {"validationLevel": self.level, "validationAction": self.action}
        try:
            await context.database.command(
                {"collMod": name, "validator": self.validator, **options}
            )
        except OperationFailure as exc:
            if exc.code != _NAMESPACE_NOT_FOUND:
                raise
            await context.database.create_collection(name, validator=self.validator, **options)

    def describe(self) -> str:
        """Say which collection and whether the validator is set or removed."""
        name = collection_name(self.collection)
        if not self.validator:
            return f"remove the validator of {name}"
        return f"set the validator of {name} ({self.level}, {self.action})"


class CreateCollection(Operation):
    """Create a collection with options; an existing one is left as it is."""

    def __init__(self, name: str, **options: Any) -> None:
        self.name = name
        self.options = options

    async def run(self, context: Context) -> None:
        """Create the collection."""
        try:
            await context.database.create_collection(self.name, **self.options)
        except OperationFailure as exc:
            if exc.code != _NAMESPACE_EXISTS:
                raise
        except Exception as exc:  # PyMongo raises CollectionInvalid when it already exists.
            if type(exc).__name__ != "CollectionInvalid":
                raise

    def describe(self) -> str:
        """Name the collection."""
        return f"create collection {self.name}"


class DropCollection(Operation):
    """Drop a collection (and its data); a missing one is not an error."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def run(self, context: Context) -> None:
        """Drop the collection."""
        await context.database.drop_collection(self.name)

    def describe(self) -> str:
        """Name the collection."""
        return f"drop collection {self.name}"


class RunPipeline(Operation):
    """Run an aggregation pipeline to the end, typically one ending in ``$merge`` or ``$out``."""

    def __init__(self, collection: Any, pipeline: Sequence[Mapping[str, Any]]) -> None:
        self.collection = collection
        self.pipeline = [dict(stage) for stage in pipeline]
        # $out and $merge are refused inside transactions; a read-only pipeline may join one.
        self.transactional = not any(
            "$out" in stage or "$merge" in stage for stage in self.pipeline
        )

    async def run(self, context: Context) -> None:
        """Run the pipeline and drain its cursor."""
        cursor = await drivers.aggregate(collection_of(context, self.collection), self.pipeline)
        async for _ in cursor:
            pass

    def describe(self) -> str:
        """Name the collection and the pipeline's stages."""
        stages = ", ".join(next(iter(stage), "?") for stage in self.pipeline)
        return f"run pipeline on {collection_name(self.collection)} [{stages}]"


def create_index(collection: Any, keys: Any, **options: Any) -> CreateIndex:
    """Return an operation creating an index: ``create_index("customers", "email", unique=True)``.

    ``keys`` is a field name (``"-field"`` for descending), a list of names or ``(field,
    direction)`` pairs, or a mapping; ``options`` are ``createIndexes`` options (``name``,
    ``unique``, ``sparse``, ``expireAfterSeconds``, ``partialFilterExpression``, ...).
    """
    return CreateIndex(collection, keys, **options)


def drop_index(collection: Any, index: str | Sequence[Any]) -> DropIndex:
    """Return an operation dropping the index named ``index`` (or defined by those keys)."""
    return DropIndex(collection, index)


def rename_field(
    collection: Any, old: str, new: str, filter: Mapping[str, Any] | None = None
) -> RenameField:
    """Return an operation renaming field ``old`` to ``new`` in every document that has it."""
    return RenameField(collection, old, new, filter)


def set_validator(
    collection: Any,
    validator: Mapping[str, Any] | None,
    *,
    level: str = "strict",
    action: str = "error",
) -> SetValidator:
    """Return an operation setting a collection's validator (``{"$jsonSchema": ...}``).

    ``None`` removes the validator. The collection is created if it does not exist.
    """
    return SetValidator(collection, validator, level=level, action=action)


def create_collection(name: str, **options: Any) -> CreateCollection:
    """Return an operation creating collection ``name`` with ``create`` options."""
    return CreateCollection(name, **options)


def drop_collection(name: str) -> DropCollection:
    """Return an operation dropping collection ``name``."""
    return DropCollection(name)


def run_pipeline(collection: Any, pipeline: Sequence[Mapping[str, Any]]) -> RunPipeline:
    """Return an operation running an aggregation ``pipeline`` on ``collection`` to its end."""
    return RunPipeline(collection, pipeline)
