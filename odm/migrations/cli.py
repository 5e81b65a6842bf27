"""``odm migrate``: the verbs over :mod:`odm.migrations.runner` (argument parsing and output only).

Every verb takes ``--uri`` (else ``$MONGODB_URI``, else ``uri`` in ``[tool.odm]`` of the
``pyproject.toml`` in the current directory) and ``--dir`` (else ``migrations`` in ``[tool.odm]``,
else ``migrations/``). Exit status: 0 on success, 3 when the lock is held by someone else, 130
when interrupted (Ctrl-C), 1 on any other error (a step's own ``sys.exit()`` included), always
with a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pymongo.errors import ConfigurationError as DriverConfigurationError
from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri

from .. import drivers
from ..connection import redact_uri
from ..exceptions import ConfigurationError, ConnectionFailed, OdmError
from . import loader
from .autodetect import make
from .cleanup import error_text
from .lock import LockHeld, break_lock, shown_holder
from .runner import Runner

EXIT_ERROR = 1
EXIT_LOCK_HELD = 3
#: Stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

NEW_TEMPLATE = '''"""{description}"""

from odm.migrations import step  # noqa: F401  (and create_index, batched_update, ...)

__depends__ = {depends}

steps = [
    # step(apply, rollback): operations from odm.migrations, or async functions of the database
]
'''


def register(subparsers: Any) -> None:
    """Add ``migrate`` and its verbs to the ``odm`` command."""
    parser = subparsers.add_parser(
        "migrate",
        help="create, apply and roll back migrations",
        description="Migrations: files of steps in migrations/, applied under a deploy lock.",
    )
    verbs = parser.add_subparsers(title="verbs", metavar="VERB")
    parser.set_defaults(handler=_usage(parser))

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--uri", help="MongoDB URI with the database name (else $MONGODB_URI)")
    common.add_argument("--dir", help="migrations directory (default: migrations/)")
    common.add_argument(
        "--lock-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for a held lock before giving up (default 30)",
    )
    common.add_argument(
        "--lock-lease",
        type=float,
        default=60.0,
        help="seconds the lock stays valid without a heartbeat (default 60)",
    )
    common.add_argument(
        "--connect-timeout", type=float, default=10.0, help="seconds to reach the server"
    )

    def verb(name: str, help: str, run: Callable[[argparse.Namespace], int]) -> Any:
        sub = verbs.add_parser(name, parents=[common], help=help, description=help)
        sub.set_defaults(handler=run)
        return sub

    new = verb("new", "write an empty migration file", _new)
    new.add_argument("description", help='what it does, e.g. "add email index"')
    make = verb("make", "write a migration from the models' indexes and validators", _make)
    make.add_argument("--models", help="module declaring the models (else [tool.odm] models)")
    make.add_argument("--name", help="slug of the file (default: auto_DATE)")
    make.add_argument("--alias", default="default", help="only models of this Meta.alias")
    plan = verb("plan", "print what apply would do, changing nothing", _plan)
    plan.add_argument("--to", help="only up to this migration (and its dependencies)")
    plan.add_argument("--force", action="store_true", help="ignore applied files that changed")
    _restart_option(plan)
    apply = verb("apply", "apply pending migrations in dependency order", _apply)
    apply.add_argument("--to", help="only up to this migration (and its dependencies)")
    apply.add_argument("--force", action="store_true", help="apply despite changed files")
    _restart_option(apply)
    rollback = verb("rollback", "roll back applied migrations (the last one by default)", _rollback)
    target = rollback.add_mutually_exclusive_group()
    target.add_argument("--to", help="roll back everything applied after this migration")
    target.add_argument("--steps", type=int, help="roll back the last N migrations")
    rollback.add_argument(
        "--force",
        action="store_true",
        help="roll back changed files too, and go on despite applied files that are missing",
    )
    _restart_option(rollback)
    verb("list", "list migrations: applied, pending, changed, missing, renamed", _list)
    mark = verb(
        "mark", "record a migration as applied without running it (or a renamed file)", _mark
    )
    mark.add_argument("id")
    unmark = verb("unmark", "forget a migration was applied, without rolling it back", _unmark)
    unmark.add_argument("id")
    breaker = verb("break-lock", "remove the lock once its lease has expired", _break_lock)
    breaker.add_argument(
        "--force", action="store_true", help="remove it even though its lease has not expired"
    )


def _restart_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--restart",
        action="append",
        default=[],
        metavar="ID",
        help="start this file over, forgetting where an earlier failed or killed run of it "
        "stopped (needed once the file was edited since); may be repeated",
    )


def _usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def show(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def _project_settings() -> dict[str, Any]:
    path = Path.cwd() / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc
    settings = config.get("tool", {}).get("odm", {})
    return dict(settings) if isinstance(settings, dict) else {}


def _directory(args: argparse.Namespace) -> Path:
    return Path(args.dir or _project_settings().get("migrations") or "migrations")


def _uri(args: argparse.Namespace) -> str:
    uri = args.uri or os.environ.get("MONGODB_URI") or _project_settings().get("uri")
    if not uri:
        raise ConfigurationError(
            "no MongoDB URI: pass --uri, set $MONGODB_URI, or set uri in [tool.odm] of "
            "pyproject.toml"
        )
    return str(uri)


def _echo(line: str) -> None:
    print(line, flush=True)


def _fail(message: str, status: int = EXIT_ERROR) -> int:
    # One line, whatever the exception text holds: scripts and CI logs read the first line.
    print(f"odm migrate: error: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return status


def _with_database(
    args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]
) -> int:
    async def main() -> int:
        client, database = await open_database(_uri(args), args.connect_timeout)
        try:
            return await work(database)
        finally:
            await drivers.close_client(client)

    return _guarded(lambda: asyncio.run(main()))


async def open_database(uri: str, timeout: float) -> tuple[Any, Any]:
    """Return a checked client and the database the URI names.

    Migrations use their own client rather than ``odm.connect``: they must not bind models or
    touch the app's aliases, and they need nothing but the driver.
    """
    try:
        parsed = parse_uri(uri, warn=True)
    except (DriverConfigurationError, ValueError) as exc:
        raise ConfigurationError(f"invalid MongoDB URI {redact_uri(uri)!r}: {exc}") from exc
    name = parsed.get("database")
    if not name:
        raise ConfigurationError(
            f"no database name in {redact_uri(uri)!r}: put one in the URI "
            "(mongodb://host:27017/shop)"
        )
    nodes = parsed.get("nodelist") or []
    address = ",".join(f"{host}:{port}" for host, port in nodes) or redact_uri(uri)
    client = drivers.create_client(
        uri,
        "pymongo",
        serverSelectionTimeoutMS=max(500, int(timeout * 1000)),
        tz_aware=True,
        uuidRepresentation="standard",
    )
    try:
        async with asyncio.timeout(timeout + 1):
            await client.admin.command("ping")
    except (PyMongoError, TimeoutError, OSError) as exc:
        await drivers.close_client(client)
        cause: BaseException | str = exc
        if isinstance(exc, TimeoutError):
            cause = f"no answer within {timeout:g} s"
        elif isinstance(exc, PyMongoError):
            cause = f"no answer within {timeout:g} s ({str(exc).split(',')[0]})"
        raise ConnectionFailed(address, cause) from exc
    return client, client[str(name)]


def _project_on_path() -> None:
    # Migration files and `make --models` import the project's modules (``from shop.models
    # import Customer``). `python -m odm` puts the current directory on sys.path, but the `odm`
    # console script does not: put it there, as Alembic's `prepend_sys_path = .` does.
    cwd = str(Path.cwd())
    if not any(entry in ("", ".", cwd) for entry in sys.path):
        sys.path.insert(0, cwd)


def _guarded(run: Callable[[], int]) -> int:
    _project_on_path()
    try:
        return run()
    except KeyboardInterrupt:
        # The runner said where it stopped (stdout) and logged it; it undid nothing.
        return _fail("interrupted", EXIT_INTERRUPTED)
    except LockHeld as exc:
        return _fail(str(exc), EXIT_LOCK_HELD)
    except OdmError as exc:
        return _fail(str(exc))
    except PyMongoError as exc:
        return _fail(error_text(exc))
    except OSError as exc:
        return _fail(f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug of ours: still one line, with what it was
        return _fail(f"unexpected {type(exc).__name__}: {exc}")


def _runner(args: argparse.Namespace, database: Any) -> Any:
    return Runner(
        database,
        _directory(args),
        echo=_echo,
        lock_lease=args.lock_lease,
        lock_timeout=args.lock_timeout,
    )


def _new(args: argparse.Namespace) -> int:
    def run() -> int:
        directory = _directory(args)
        migrations = loader.load(directory)
        depends = loader.leaves(migrations)
        number = loader.next_number(directory)
        path = directory / f"{number:04d}_{loader.slugify(args.description)}.py"
        directory.mkdir(parents=True, exist_ok=True)
        text = NEW_TEMPLATE.format(
            description=args.description.replace('"""', "'''"),
            depends="{" + ", ".join(repr(d) for d in depends) + "}" if depends else "set()",
        )
        path.write_text(text)
        _echo(f"created {path}")
        return 0

    return _guarded(run)


def _make(args: argparse.Namespace) -> int:
    async def work(database: Any) -> int:
        models = args.models or _project_settings().get("models")
        path = await make(
            database, _directory(args), models=models, name=args.name, alias=args.alias,
            echo=_echo,
        )
        if path is None:
            _echo("no changes detected")
        return 0

    return _with_database(args, work)


def _plan(args: argparse.Namespace) -> int:
    async def work(database: Any) -> int:
        await _runner(args, database).plan(to=args.to, force=args.force, restart=args.restart)
        return 0

    return _with_database(args, work)


def _apply(args: argparse.Namespace) -> int:
    async def work(database: Any) -> int:
        await _runner(args, database).apply(to=args.to, force=args.force, restart=args.restart)
        return 0

    return _with_database(args, work)


def _rollback(args: argparse.Namespace) -> int:
    async def work(database: Any) -> int:
        await _runner(args, database).rollback(
            to=args.to, steps=args.steps, force=args.force, restart=args.restart
        )
        return 0

    return _with_database(args, work)


def _list(args: argparse.Namespace) -> int:
    async def work(database: Any) -> int:
        runner = _runner(args, database)
        rows = await runner.status()
        note = await runner.unfinished_note()
        if note is not None:
            _echo(note)
        if not rows:
            _echo(f"no migrations in {_directory(args)}")
        width = max((len(row.id) for row in rows), default=0)
        for row in rows:
            line = f"{row.id:<{width}}  {row.state}"
            if row.record is not None and row.record.applied_at is not None:
                when = row.record.applied_at.isoformat(timespec="seconds")
                how = "marked" if row.record.marked else f"{row.record.duration_ms} ms"
                line += f"  {when} by {row.record.applied_by} ({how})"
            if row.state == "changed":
                line += "  <- file changed since applied"
            elif row.state == "missing":
                line += "  <- applied but the file is gone"
            elif row.rolled_back:
                line += (
                    f"  <- an earlier rollback stopped part-way ({row.rolled_back} step(s) "
                    "rolled back); `odm migrate rollback` resumes it"
                )
            elif row.state == "renamed":
                line += (
                    f"  <- {row.renamed_from} renamed (applied as {row.renamed_from}); "
                    f"`odm migrate mark {row.id}` records the new name"
                )
            _echo(line)
        return 0

    return _with_database(args, work)


def _mark(args: argparse.Namespace) -> int:
    async def work(database: Any) -> int:
        await _runner(args, database).mark(args.id)
        return 0

    return _with_database(args, work)


def _unmark(args: argparse.Namespace) -> int:
    async def work(database: Any) -> int:
        await _runner(args, database).unmark(args.id)
        return 0

    return _with_database(args, work)


def _break_lock(args: argparse.Namespace) -> int:
    async def work(database: Any) -> int:
        removed = await break_lock(database, force=args.force)
        if removed is None:
            _echo("no lock was held")
        else:
            _echo(f"removed the lock held by {shown_holder(removed.get('holder', '?'))}")
        return 0

    return _with_database(args, work)
