"""The plugin's fixtures for testing an application: a fresh database URI, quiet migrations."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

import odm
import odm.demo
from odm.contrib.pytest import database_uri
from odm.migrations import Runner

MIGRATIONS = Path(odm.demo.__file__).with_name("shop") / "migrations"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://h:1/?replicaSet=rs0", "mongodb://h:1/shop?replicaSet=rs0"),
        ("mongodb://h:1/", "mongodb://h:1/shop"),
        ("mongodb://h:1", "mongodb://h:1/shop"),
        ("mongodb://h:1?w=1", "mongodb://h:1/shop?w=1"),
        ("mongodb://u:p@h:1,h:2/old?replicaSet=rs0", "mongodb://u:p@h:1,h:2/shop?replicaSet=rs0"),
        ("mongodb+srv://cluster.example.org/", "mongodb+srv://cluster.example.org/shop"),
    ],
)
def test_database_uri_puts_the_name_in_the_path(uri: str, expected: str) -> None:
    assert database_uri(uri, "shop") == expected


def test_database_uri_refuses_what_is_not_a_uri() -> None:
    with pytest.raises(ValueError, match="not a MongoDB URI"):
        database_uri("localhost:27017", "shop")


async def test_odm_database_uri_is_fresh_and_binds_nothing(odm_database_uri: str) -> None:
    with pytest.raises(odm.NotConnected):
        odm.get_connection()
    conn = await odm.connect(odm_database_uri, timeout=30.0)
    try:
        assert conn.database.name.startswith("odm_test_")
        assert conn.database.name in odm_database_uri
        assert await conn.database.list_collection_names() == []
    finally:
        await odm.disconnect()


async def test_migrations_print_nothing_unless_asked(
    odm_database: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="odm.migrations"):
        assert await Runner(odm_database, MIGRATIONS).apply() == ["0001_initial"]
    assert capsys.readouterr().out == ""
    assert "apply 0001_initial" in caplog.text           # progress goes to the logger

    lines: list[str] = []
    assert await Runner(odm_database, MIGRATIONS, echo=lines.append).apply() == []
    assert lines == ["nothing to apply"]                  # and to echo, when asked
