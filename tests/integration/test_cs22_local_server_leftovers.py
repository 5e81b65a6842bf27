"""A LocalServer whose process was killed (SIGKILL: no ``stop()``, no atexit) leaves its data
directory, a few hundred MB of journal; the next LocalServer removes it, and nothing that a
live process or a running mongod still uses."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from odm.server import LocalServer, ServerStartError

#: How a LocalServer names its temporary data directory, and the lock its process holds there.
TEMP_PREFIX = "odm-mongod-"
OWNER_LOCK = "owner.lock"

KILLED_RUN = """
import os, signal
from odm.server import LocalServer
server = LocalServer().start()
print(server.dbpath, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_run(tmp: Path) -> Path:
    """The data directory of a LocalServer whose process was SIGKILLed while it ran."""
    run = subprocess.run(
        [sys.executable, "-c", KILLED_RUN], env={**os.environ, "TMPDIR": str(tmp)},
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    left = Path(run.stdout.strip())
    assert left.is_dir()
    _wait_for_unlock(left / "member0" / "mongod.lock")
    return left


def _wait_for_unlock(path: Path, timeout: float = 10) -> None:
    """Wait until no process holds ``path``'s flock: the killed run's mongod dies a moment
    after it (the kernel's PR_SET_PDEATHSIG signal), and lets go of its mongod.lock then."""
    descriptor = os.open(path, os.O_RDONLY)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, f"a mongod still holds {path}"
                time.sleep(0.05)
    finally:
        os.close(descriptor)


def test_the_next_server_removes_what_a_killed_run_left_and_only_that(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    left = _killed_run(tmp_path)
    # An older odm's directory (no owner lock): nothing tells whether it is in use.
    older = tmp_path / f"{TEMP_PREFIX}older"
    (older / "member0").mkdir(parents=True)
    # The owner died, but its mongod lives on (macOS has no PR_SET_PDEATHSIG).
    orphan = tmp_path / f"{TEMP_PREFIX}orphan"
    (orphan / "member0").mkdir(parents=True)
    (orphan / OWNER_LOCK).touch()
    (orphan / "member0" / "mongod.lock").touch()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    live = LocalServer()
    mine = live.dbpath  # claimed by this process, not started
    mongod_lock = os.open(orphan / "member0" / "mongod.lock", os.O_RDONLY)
    try:
        fcntl.flock(mongod_lock, fcntl.LOCK_EX)
        # /bin/false exits at once: the start fails after the sweep, without a real mongod.
        with pytest.raises(ServerStartError):
            LocalServer(mongod="/bin/false", startup_timeout=5).start()
        assert not left.exists()
        assert mine.is_dir() and older.is_dir() and orphan.is_dir()
    finally:
        os.close(mongod_lock)
        live.stop()
    assert not mine.exists()
