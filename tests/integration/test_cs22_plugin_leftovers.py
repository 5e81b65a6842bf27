"""The plugin's database fixtures leave the server clean for the next test: a fail point the
test armed and never fired is turned off, and a transaction it left open is ended (with a
warning), instead of failing a later test or making the database's drop wait two minutes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SAMPLE = '''
from pymongo import AsyncMongoClient

FAIL_NEXT_INSERT = {
    "configureFailPoint": "failCommand", "mode": {"times": 1},
    "data": {"failCommands": ["insert"], "errorCode": 2},
}
KEPT = []  # what a leaky application keeps alive


async def test_arms_a_fail_point_it_never_fires(odm_database):
    await odm_database.client.admin.command(FAIL_NEXT_INSERT)


async def test_inserts_after_it(odm_database):
    await odm_database.t.insert_one({"x": 1})


async def test_leaves_a_transaction_open(odm_database):
    session = odm_database.client.start_session()
    await session.start_transaction()
    await odm_database.t.insert_one({"x": 1}, session=session)


async def test_an_application_leaves_both(odm_database_uri):
    client = AsyncMongoClient(odm_database_uri)
    session = client.start_session()
    await session.start_transaction()
    await client.get_default_database().t.insert_one({"x": 1}, session=session)
    await client.admin.command(FAIL_NEXT_INSERT)
    KEPT.append((client, session))


async def test_inserts_after_the_application(odm_monitored):
    await odm_monitored.database.t.insert_one({"x": 1})
'''


def test_a_test_s_fail_points_and_open_transactions_do_not_reach_the_next(
    tmp_path: Path, odm_uri: str
) -> None:
    (tmp_path / "test_leaky.py").write_text(SAMPLE)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "odm_drivers = pymongo\n"
    )
    # Only the plugins the sample needs: the others would double the run's start-up.
    env = {**os.environ, "ODM_TEST_URI": odm_uri, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    plugins = ["-p", "pytest_asyncio.plugin", "-p", "odm.contrib.pytest"]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugins, str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )
    assert "5 passed" in run.stdout, run.stdout
    assert run.stdout.count("the test left a transaction open") == 2, run.stdout
