"""``odm migrate make``: diff the models' indexes and validators against the live database.

For each concrete model's collection: a declared index missing on the server is created; one
whose keys or options differ is dropped and created again; an index on the server that no
model declares (other than ``_id_``) is dropped, its rollback recreating it exactly. Models
with ``Meta.validate_on_server = True`` get the ``$jsonSchema`` validator that
:func:`odm.models.jsonschema.validator_for` builds from their pydantic schema; a validator that
differs is replaced, the rollback restoring the old one.
The file is written only when there is a difference, so ``make`` after applying it is empty.
"""

from __future__ import annotations

import importlib
import pprint
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pymongo.errors import OperationFailure

from .. import drivers
from ..exceptions import MigrationError
from ..models.indexes import index_differences
from ..models.jsonschema import validator_for
from ..registry import registry
from . import loader
from .recorder import APPLIED, LOCK, LOG, STATE, Recorder

#: Index options copied from the server when an undeclared index is dropped (for its rollback).
_KEPT_OPTIONS = (
    "unique",
    "sparse",
    "expireAfterSeconds",
    "partialFilterExpression",
    "weights",
    "default_language",
    "language_override",
    "collation",
    "hidden",
    "2dsphereIndexVersion",
    "bits",
    "min",
    "max",
)
_INTERNAL = {APPLIED, LOG, STATE, LOCK}


def import_models(models: str | None) -> None:
    """Import the module(s) declaring the models (comma separated) so that they register."""
    if not models:
        raise MigrationError(
            "make needs the models: pass --models module.path or set models in [tool.odm]"
        )
    for name in models.split(","):
        try:
            importlib.import_module(name.strip())
        except ImportError as exc:
            raise MigrationError(f"cannot import models module {name.strip()!r}: {exc}") from exc


def concrete_models(alias: str = "default") -> list[type[Any]]:
    """Return one model per collection of ``alias``: the root of each family."""
    chosen: dict[str, type[Any]] = {}
    for model in registry:
        meta = model._meta
        if meta.abstract or meta.alias != alias:
            continue
        root = getattr(meta, "root", None) or model
        chosen.setdefault(meta.collection, root)
    return [chosen[name] for name in sorted(chosen)]


# -- the diff ------------------------------------------------------------------------------


def _server_keys(info: Mapping[str, Any]) -> list[tuple[str, Any]]:
    keys: list[tuple[str, Any]] = []
    for path, direction in dict(info.get("key", {})).items():
        if path == "_fts":
            keys.extend((w, "text") for w in sorted(info.get("weights") or {}))
        elif path != "_ftsx":
            keys.append((path, int(direction) if isinstance(direction, float) else direction))
    return keys


def _create_call(collection: str, keys: list[tuple[str, Any]], options: Mapping[str, Any]) -> str:
    args = [repr(collection), repr([tuple(k) for k in keys])]
    args.extend(f"{name}={value!r}" for name, value in options.items())
    return f"create_index({', '.join(args)})"


def _server_options(info: Mapping[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {"name": info["name"]}
    for key in _KEPT_OPTIONS:
        if key in info and not (key == "weights" and not info[key]):
            value = info[key]
            options[key] = dict(value) if isinstance(value, Mapping) else value
    if "collation" in options:
        options["collation"].pop("version", None)  # the server's ICU version, not an option
    return options


async def _indexes(database: Any, collection: str) -> dict[str, dict[str, Any]]:
    try:
        cursor = await drivers.resolve(database[collection].list_indexes())
        return {info["name"]: dict(info) async for info in cursor}
    except OperationFailure as exc:
        if exc.code == 26:  # NamespaceNotFound: no collection yet, so no index
            return {}
        raise


async def _validators(database: Any) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    cursor = await drivers.resolve(database.list_collections())
    async for info in cursor:
        found[info["name"]] = dict(info.get("options", {}).get("validator") or {})
    return found


async def diff(database: Any, models: list[type[Any]]) -> list[tuple[str, str]]:
    """Return the steps (apply source, rollback source) that bring the database to the models."""
    steps: list[tuple[str, str]] = []
    validators = await _validators(database)
    for model in models:
        meta = model._meta
        name = meta.collection
        if name in _INTERNAL:
            continue
        existing = await _indexes(database, name)
        declared = {index.name: index for index in meta.indexes}
        for index_name in sorted(set(existing) - set(declared) - {"_id_"}):
            info = existing[index_name]
            steps.append((
                f"drop_index({name!r}, {index_name!r})",
                _create_call(name, _server_keys(info), _server_options(info)),
            ))
        for index_name, index in declared.items():
            spec = index.spec()
            options = {k: v for k, v in spec.items() if k not in ("key",)}
            create = _create_call(name, list(spec["key"]), options)
            drop = f"drop_index({name!r}, {index_name!r})"
            found = existing.get(index_name)
            if found is None:
                steps.append((create, drop))
            elif index_differences(spec, found):
                restore = _create_call(name, _server_keys(found), _server_options(found))
                steps.append((drop, restore))
                steps.append((create, drop))
        if getattr(meta, "validate_on_server", False):
            wanted = validator_for(model)
            current: dict[str, Any] | None = validators.get(name) or None
            if current != wanted:
                new = pprint.pformat(wanted, sort_dicts=False)
                old = pprint.pformat(current, sort_dicts=False)
                steps.append((f"set_validator({name!r}, {new})", f"set_validator({name!r}, {old})"))
    return steps


def render(
    steps: list[tuple[str, str]], depends: list[str], models: str, now: datetime | None = None
) -> str:
    """Return the source of a migration file with ``steps``."""
    when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    body = []
    for apply, rollback in steps:
        body.append(f"    step(\n        {_indent(apply)},\n        {_indent(rollback)},\n    ),")
    dep = "{" + ", ".join(repr(d) for d in depends) + "}" if depends else "set()"
    return (
        f'"""Indexes and validators of {models} (written by `odm migrate make`, {when})."""\n\n'
        "import datetime  # noqa: F401  (for dates in filters, if any)\n\n"
        "from bson import ObjectId  # noqa: F401\n\n"
        "from odm.migrations import create_index, drop_index, set_validator, step  # noqa: F401\n"
        f"\n__depends__ = {dep}\n\nsteps = [\n" + "\n".join(body) + "\n]\n"
    )


def _indent(source: str) -> str:
    return source.replace("\n", "\n        ")


async def make(
    database: Any,
    directory: Path,
    *,
    models: str | None,
    name: str | None = None,
    alias: str = "default",
    echo: Callable[[str], None] = print,
) -> Path | None:
    """Write a migration for the differences between the models and the database.

    Returns the file written, or ``None`` when there is nothing to do. Refuses to run while
    migrations are pending: the live database would not yet show what they do, and the new
    file would repeat them.
    """
    migrations = loader.load(directory)
    applied = await Recorder(database).applied()
    pending = [m.id for m in migrations if m.id not in applied]
    if pending:
        raise MigrationError(
            f"pending migrations: {', '.join(pending)}; apply them before `make`, or the new "
            "file would repeat them"
        )
    import_models(models)
    chosen = concrete_models(alias)
    if not chosen:
        raise MigrationError(f"no Document classes with alias {alias!r} found in {models}")
    steps = await diff(database, chosen)
    if not steps:
        return None
    slug = loader.slugify(name) if name else "auto_" + datetime.now(UTC).strftime("%Y%m%d_%H%M")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{loader.next_number(directory):04d}_{slug}.py"
    path.write_text(render(steps, loader.leaves(migrations), str(models)))
    echo(f"created {path} ({len(steps)} step(s))")
    return path
