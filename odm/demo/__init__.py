"""``odm demo``: the example shop, served on odm, against a MongoDB it starts itself if need be.

With no ``--uri`` (nor ``$MONGODB_URI``) the demo starts a single-node replica set
(:class:`odm.server.LocalServer`, a temporary data directory); with one it uses that server.
Then it applies the shop's migrations (:mod:`odm.demo.shop`'s ``migrations/`` directory, through
:class:`odm.migrations.Runner`), seeds a few documents into an empty database, serves the
aiohttp application and prints its address with a few ``curl`` lines to try. SIGINT (Ctrl-C) or
SIGTERM stops the application, then the server it started, whose data directory is removed.

The shop itself lives in :mod:`odm.demo.shop` so that an installed ``odm`` carries it; the
repository's ``examples/shop`` runs the same code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from .. import drivers
from ..connection import redact_uri
from ..migrations.cli import open_database
from ..migrations.runner import Runner
from ..server import LocalServer

DEFAULT_DATABASE = "shop"
"""The database the demo uses when the URI names none."""

Echo = Callable[[str], None]


def _echo(line: str) -> None:
    print(line, flush=True)


def register(subparsers: Any) -> None:
    """Add the ``demo`` sub-command to the ``odm`` command."""
    parser = subparsers.add_parser(
        "demo",
        help="serve the example shop (an aiohttp app on odm) until Ctrl-C",
        description="Serve the example shop: start a local replica set unless --uri or "
        "$MONGODB_URI names a server, apply the shop's migrations, seed a few documents into "
        "an empty database and serve the aiohttp app until Ctrl-C or SIGTERM.",
    )
    parser.add_argument(
        "--uri",
        default=None,
        help="MongoDB to use (else $MONGODB_URI, else a local replica set the demo starts); "
        f"the database is the URI's, default {DEFAULT_DATABASE!r}",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (0: a free one)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``odm demo`` with parsed arguments; return the exit status."""
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        print(
            "odm demo: error: the demo needs aiohttp: pip install 'odm-mongo[aiohttp,server]'",
            file=sys.stderr,
        )
        return 1
    uri = args.uri or os.environ.get("MONGODB_URI") or None
    asyncio.run(serve(uri, host=args.host, port=args.port))
    return 0


def with_database(uri: str, default: str = DEFAULT_DATABASE) -> str:
    """Return ``uri`` with ``default`` as its database when its path names none."""
    scheme, _, rest = uri.partition("://")
    hosts, _, path = rest.partition("/")
    database, question, options = path.partition("?")
    return f"{scheme}://{hosts}/{database or default}{question}{options}"


async def apply_migrations(uri: str, *, echo: Echo = _echo, timeout: float = 10.0) -> list[str]:
    """Apply the shop's pending migrations to the database of ``uri``; return their ids."""
    # Deferred: the shop's models import aiohttp, an optional extra (see serve()).
    from .shop import MIGRATIONS

    client, database = await open_database(uri, timeout)
    try:
        runner = Runner(database, MIGRATIONS, echo=lambda line: echo(f"  {line}"))
        return await runner.apply()
    finally:
        await drivers.close_client(client)


def try_lines(base: str, first: str, second: str) -> list[str]:
    """The ``curl`` lines printed for the reader, given the ids of two customers. The POSTs
    say they send JSON: the shop refuses other bodies (415), as any page could make a browser
    send them cross-site (docs/aiohttp.md)."""
    post = f"curl -X POST -H 'Content-Type: application/json' {base}"
    return [
        f"curl {base}/customers",
        f"curl {base}/customers/{first}/orders",
        f"{post}/customers -d '{{\"email\": \"cy@example.org\", \"name\": \"Cy\", "
        f"\"balance\": 2000}}'",
        f"{post}/customers/{first}/orders -d '{{\"total\": 500, "
        f"\"items\": [{{\"sku\": \"mug\", \"qty\": 1}}]}}'",
        f"{post}/transfers -d '{{\"source\": \"{first}\", \"target\": "
        f"\"{second}\", \"amount\": 1000}}'",
    ]


async def serve(
    uri: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    echo: Echo = _echo,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve the shop until SIGINT / SIGTERM (or until ``stop`` is set); clean up after.

    ``uri=None`` starts a :class:`odm.server.LocalServer` for the duration. Signals that arrive
    while the demo is still starting cancel the start-up; everything started so far is stopped.
    """
    # Deferred: aiohttp and the admin are optional extras, needed only when the demo runs.
    from aiohttp import web

    from ..contrib.admin import local_only  # type: ignore[import-not-found, unused-ignore]
    from .shop import Customer, create_app, seed

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    started = False

    def on_signal() -> None:
        stop.set()
        if not started and main_task is not None:
            main_task.cancel()

    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal)
    try:
        async with AsyncExitStack() as stack:
            if uri is None:
                echo("starting a local MongoDB replica set (temporary data) ...")
                server = await stack.enter_async_context(LocalServer())
                stack.callback(echo, "MongoDB stopped, temporary data removed")
                uri = server.uri_for(DEFAULT_DATABASE)
                echo(f"MongoDB ready: {uri}")
            else:
                uri = with_database(uri)
                echo(f"using MongoDB at {redact_uri(uri)}")
            echo("applying the shop's migrations ...")
            await apply_migrations(uri, echo=echo)

            # handler_cancellation: a client that goes away cancels its handler, and so
            # aborts its unit of work instead of committing work nobody sees the answer to.
            # The admin writes to the database: served to this machine only, and said so.
            app = create_app(uri, admin=local_only)
            runner = web.AppRunner(app, handler_cancellation=True)
            await runner.setup()  # connects (setup_odm's cleanup context)
            stack.push_async_callback(runner.cleanup)
            if not await Customer.objects.exists():
                await seed()
                echo("seeded two customers and an order")
            site = web.TCPSite(runner, host, port)
            await site.start()
            bound_host, bound_port = runner.addresses[0][:2]
            shown = "localhost" if bound_host in ("0.0.0.0", "::") else bound_host
            if ":" in shown:
                shown = f"[{shown}]"
            base = f"http://{shown}:{bound_port}"
            customers = await Customer.objects.order_by("email")[:2]
            ids = [str(c.id) for c in customers] + ["<id>", "<id>"]
            echo(f"the shop is serving on {base}")
            echo(f"the admin: {base}/admin/ (local-only: served to requests from this machine)")
            echo("try:")
            for line in try_lines(base, ids[0], ids[1]):
                echo(f"  {line}")
            echo("press Ctrl-C to stop")
            started = True
            await stop.wait()
            echo("stopping ...")
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
        echo("start-up interrupted; everything started was stopped")
    finally:
        for sig in signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
    echo("stopped")
