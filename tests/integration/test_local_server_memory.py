"""Where a LocalServer keeps its temporary data: ``temp_dir`` (the pytest plugin's server in
memory, :func:`odm.server.memory_temp_dir`), removed at stop, swept from there after a crash;
and whether its majority writes wait for the journal (the plugin's do not)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from pymongo import MongoClient, WriteConcern

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


def _journal_default(uri: str) -> bool:
    with MongoClient(uri, serverSelectionTimeoutMS=30_000) as client:
        config = client.admin.command("replSetGetConfig")["config"]
    return bool(config.get("writeConcernMajorityJournalDefault", True))


def test_majority_writes_wait_for_the_journal_by_default(tmp_path: Path) -> None:
    # The plugin's server (the next test, and every test's writes) is the one told not to.
    with LocalServer(temp_dir=tmp_path) as server:
        assert server.journaled_majority is True
        assert _journal_default(server.uri) is True
        with MongoClient(server.uri, serverSelectionTimeoutMS=30_000) as client:
            client.kept.items.with_options(
                write_concern=WriteConcern(w="majority")
            ).insert_one({"_id": 1})
            assert client.kept.items.find_one({"_id": 1}) == {"_id": 1}


def test_the_plugins_server_does_not_wait_for_the_journal(
    odm_server: LocalServer | None, odm_uri: str
) -> None:
    if odm_server is None:
        pytest.skip("$ODM_TEST_URI names a server of the user's own")
    assert odm_server.journaled_majority is False
    assert _journal_default(odm_uri) is False
