"""Fixtures for the migration tests: the CLI as a subprocess against a fresh database."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[3]


def uri_with_database(uri: str, name: str) -> str:
    """Put a database name into a server URI that has none."""
    if "/?" in uri:
        return uri.replace("/?", f"/{name}?", 1)
    return uri.rstrip("/") + "/" + name


@dataclass
class Project:
    """A temporary project: its migrations directory, its database, and the CLI."""

    root: Path
    uri: str
    db: Any

    @property
    def migrations(self) -> Path:
        return self.root / "migrations"

    def write(self, name: str, source: str) -> Path:
        self.migrations.mkdir(exist_ok=True)
        path = self.migrations / name
        path.write_text(textwrap.dedent(source))
        return path

    def command(self, *args: str) -> list[str]:
        verb, *rest = args
        return [
            sys.executable, "-m", "odm", "migrate", verb,
            "--uri", self.uri, "--dir", str(self.migrations), *rest,
        ]

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("MONGODB_URI", None)
        # The test modules (e.g. models for `make`) import from the project's directory.
        env["PYTHONPATH"] = os.pathsep.join([str(self.root), str(ROOT)])
        env.update(extra)
        return env

    def run(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), cwd=self.root, env=self.env(**env), capture_output=True,
            text=True, timeout=timeout, check=False,
        )

    def ok(self, *args: str, **env: str) -> str:
        result = self.run(*args, **env)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def popen(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args), cwd=self.root, env=self.env(**env), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )

    def applied(self) -> list[str]:
        return sorted(d["_id"] for d in self.db["_odm_migrations"].find())


@pytest.fixture
def project(odm_uri: str, tmp_path: Path) -> Iterator[Project]:
    """A project directory and a fresh database, dropped afterwards."""
    name = f"odm_mig_{uuid.uuid4().hex[:10]}"
    client: MongoClient[dict[str, Any]] = MongoClient(odm_uri)
    try:
        yield Project(tmp_path, uri_with_database(odm_uri, name), client[name])
    finally:
        client.drop_database(name)
        client.close()


@pytest.fixture(scope="module")
def standalone_uri() -> Iterator[str]:
    """A standalone server (no replica set, so no transactions) for this module's tests."""
    from odm.server import LocalServer, memory_temp_dir

    server = LocalServer(replica_set=None, temp_dir=memory_temp_dir())
    server.start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def solo(standalone_uri: str, tmp_path: Path) -> Iterator[Project]:
    """Like ``project``, on the standalone server."""
    name = f"odm_solo_{uuid.uuid4().hex[:10]}"
    client: MongoClient[dict[str, Any]] = MongoClient(standalone_uri)
    try:
        yield Project(tmp_path, uri_with_database(standalone_uri, name), client[name])
    finally:
        client.drop_database(name)
        client.close()
