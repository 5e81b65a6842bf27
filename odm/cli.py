"""The ``odm`` console command (also ``python -m odm``): a thin shell over the library.

Each sub-command lives in the module that owns its logic and registers itself here through a
``register(subparsers)`` function; this module only assembles them and maps errors to exit codes.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._version import __version__
from .exceptions import OdmError
from .server import LocalServer

Handler = Callable[[argparse.Namespace], int]


def _register_server(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "server",
        help="run a local single-node replica set until Ctrl-C",
        description="Start mongod as a replica set on 127.0.0.1 and keep it running until "
        "Ctrl-C or SIGTERM; the data directory is temporary unless --dbpath is given.",
    )
    parser.add_argument("--port", type=int, default=27017, help="first member's port (0: free)")
    parser.add_argument("--members", type=int, default=1, help="replica set members")
    parser.add_argument("--dbpath", default=None, help="keep data here instead of a temp dir")
    parser.set_defaults(handler=_run_server)


def _run_server(args: argparse.Namespace) -> int:
    server = LocalServer(port=args.port or None, members=args.members, dbpath=args.dbpath)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            print(f"MongoDB replica set ready: {server.uri}", flush=True)
            print("Press Ctrl-C to stop.", flush=True)
            await stop.wait()
        print("stopped", flush=True)

    asyncio.run(serve())
    return 0


def _command_registrars() -> list[Callable[[Any], None]]:
    # Deferred: the demo needs the optional aiohttp extra, migrations the driver; neither may
    # slow down or break `odm --help` and `odm server`.
    from .demo import register as _register_demo
    from .migrations.cli import register as _register_migrate

    return [_register_server, _register_migrate, _register_demo]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``odm`` command with every sub-command."""
    parser = argparse.ArgumentParser(
        prog="odm", description="odm: a Django-style async ODM for MongoDB."
    )
    parser.add_argument("--version", action="version", version=f"odm {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in _command_registrars():
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``odm`` command; return its exit status (0 on success)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except OdmError as exc:
        print(f"odm: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
