"""Run every ```python block of one markdown file, in order, in one namespace.

Used by ``test_docs.py`` in a subprocess per file, so that each page starts from a fresh
interpreter (its own model registry) as a reader's script would. Top-level ``await`` works as
in ``python -m asyncio``. ``mongodb://localhost:27017`` in a snippet is pointed at the test
server, so the docs show the address a reader uses while the suite runs against its own server.
Each page connects itself, as a reader's script would; whatever it left connected is dropped
and disconnected at the end.

Usage: ``python markdown_runner.py FILE HOST:PORT``; exit status 1 with the failing block's
line number and traceback on the first failure.
"""

from __future__ import annotations

import ast
import asyncio
import re
import sys
import traceback
import types
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^```\s*$", re.M | re.S)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """Return (first line number, source) of every ```python block of ``text``."""
    blocks = []
    for match in FENCE.finditer(text):
        if match.group("lang") in ("python", "py"):
            line = text.count("\n", 0, match.start("body")) + 1
            blocks.append((line, match.group("body")))
    return blocks


async def run_file(path: Path, address: str) -> int:
    """Run the blocks of ``path``; return the number of blocks run."""
    import odm

    module = types.ModuleType("__docs__")
    sys.modules["__docs__"] = module
    namespace: dict[str, Any] = module.__dict__
    text = path.read_text()
    blocks = python_blocks(text)
    try:
        for line, source in blocks:
            source = source.replace("localhost:27017", address)
            # Blank lines keep the traceback's line numbers those of the markdown file.
            code = compile(
                "\n" * (line - 1) + source,
                str(path),
                "exec",
                flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
            )
            result = eval(code, namespace)
            if asyncio.iscoroutine(result):
                await result
    finally:
        for connection in odm.connection.connections():
            await connection.client.drop_database(connection.database.name)
        await odm.disconnect(None)
    return len(blocks)


def main() -> int:
    """Run one file given on the command line."""
    path, address = Path(sys.argv[1]), sys.argv[2]
    try:
        count = asyncio.run(run_file(path, address))
    except Exception:
        traceback.print_exc()
        return 1
    print(f"{path}: {count} python block(s) ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
