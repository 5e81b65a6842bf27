"""Where a LocalServer keeps its temporary data: ``temp_dir`` (the pytest plugin's server in
memory, :func:`odm.server.memory_temp_dir`), removed at stop, swept from there after a crash."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from pymongo import MongoClient

from odm.server import (
    SHARED_MEMORY_DIR,
    TEMP_PREFIX,
    LocalServer,
    memory_temp_dir,
    remove_abandoned_dirs,
)


def test_the_data_lives_in_temp_dir_and_goes_with_the_server(tmp_path: Path) -> None:
    server = LocalServer(replica_set=None, temp_dir=tmp_path)
    try:
        server.start()
        assert server.dbpath.parent == tmp_path
        assert server.dbpath.name.startswith(TEMP_PREFIX)
        with MongoClient(server.uri, serverSelectionTimeoutMS=30_000) as client:
            client.kept.items.insert_one({"n": 1})
        assert any(server.dbpath.glob("member0/*.wt"))
    finally:
        server.stop()
    assert list(tmp_path.iterdir()) == []


def test_a_crashed_servers_data_is_swept_from_its_own_temp_dir(tmp_path: Path) -> None:
    left = tmp_path / f"{TEMP_PREFIX}crashed"
    (left / "member0").mkdir(parents=True)
    (left / "owner.lock").touch()  # its owner died: nobody holds the lock
    assert remove_abandoned_dirs(tmp_path) == [left]
    assert not left.exists()


def test_memory_is_offered_only_with_room_to_spare() -> None:
    assert memory_temp_dir(min_free=2**62) is None
    if not SHARED_MEMORY_DIR.is_dir():
        assert memory_temp_dir() is None
        return
    free = shutil.disk_usage(SHARED_MEMORY_DIR).free
    assert memory_temp_dir(min_free=free // 2) == SHARED_MEMORY_DIR


def test_the_plugins_server_keeps_its_data_in_memory_where_it_can(
    odm_server: LocalServer | None,
) -> None:
    if odm_server is None:
        pytest.skip("$ODM_TEST_URI names a server of the user's own")
    if os.environ.get("TMPDIR"):
        assert odm_server.dbpath.parent == Path(tempfile.gettempdir())
        return
    expected = memory_temp_dir(min_free=0)
    if expected is None:
        pytest.skip("this machine has no /dev/shm to write to")
    assert odm_server.dbpath.parent == expected
