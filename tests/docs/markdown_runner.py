"""Run every ```python block of one markdown file, in order, in one namespace.

Used by ``test_docs.py`` in a subprocess per file, so that each page starts from a fresh
interpreter (its own model registry) as a reader's script would. Top-level ``await`` works as
in ``python -m asyncio``. ``mongodb://localhost:27017`` in a snippet is pointed at the test
server, so the docs show the address a reader uses while the suite runs against its own server.
Each page connects itself, as a reader's script would; whatever it left connected is dropped
and disconnected at the end.

A block whose fence names a file (```` ```python title="test_app.py" ````, mkdocs-material's
code-block title, any language) is not run in that namespace: it is written to that file in an
empty directory, and when the page has any, ``pytest`` runs there in a subprocess, as the
reader's project would, against the suite's server (``$ODM_TEST_URI``), with warnings turned
into errors so that the settings the page shows are shown to be warning-free.

Usage: ``python markdown_runner.py FILE HOST:PORT``; exit status 1 with the failing block's
line number and traceback on the first failure.
"""

from __future__ import annotations

import ast
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import traceback
import types
from pathlib import Path
from typing import Any

FENCE = re.compile(
    r"^```(?P<lang>[\w+-]*)(?P<info>[^\n]*)\n(?P<body>.*?)^```\s*$", re.M | re.S
)
TITLE = re.compile(r'title="(?P<name>[\w./-]+)"')


def python_blocks(text: str) -> list[tuple[int, str]]:
    """Return (first line number, source) of every ```python block of ``text`` that names no
    file (those are run in the page's namespace)."""
    blocks = []
    for match in FENCE.finditer(text):
        if match.group("lang") in ("python", "py") and not TITLE.search(match.group("info")):
            line = text.count("\n", 0, match.start("body")) + 1
            blocks.append((line, match.group("body")))
    return blocks


def file_blocks(text: str) -> dict[str, str]:
    """Return {file name: content} of the blocks of ``text`` whose fence names a file."""
    files: dict[str, str] = {}
    for match in FENCE.finditer(text):
        title = TITLE.search(match.group("info"))
        if title is not None:
            files[title.group("name")] = files.get(title.group("name"), "") + match.group("body")
    return files


def run_project(files: dict[str, str]) -> None:
    """Write ``files`` into an empty directory and run pytest there if any is a test module."""
    if not any(Path(name).name.startswith("test_") for name in files):
        return
    with tempfile.TemporaryDirectory(prefix="odm-docs-") as directory:
        for name, content in files.items():
            target = Path(directory, name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
            cwd=directory, capture_output=True, text=True, timeout=600, check=False,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        summary = result.stdout.strip().splitlines()[-1:] or [""]
        if result.returncode != 0 or "warning" in summary[0] or "passed" not in summary[0]:
            raise AssertionError(
                f"the page's test project failed:\n{result.stdout}\n{result.stderr}"
            )
        print(f"its test project: {summary[0]}")


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
    files = file_blocks(text)
    run_project(files)
    return len(blocks) + len(files)


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
