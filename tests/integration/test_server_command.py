"""``odm server``: a local replica set until Ctrl-C, leaving nothing behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient

ODM = str(Path(sys.executable).parent / "odm")


def test_odm_server_serves_until_ctrl_c_and_cleans_up(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [ODM, "server", "--port", "0"], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    started = time.monotonic()
    line = proc.stdout.readline()
    assert line.startswith("MongoDB replica set ready: mongodb://127.0.0.1:"), line
    uri = line.split(": ", 1)[1].strip()
    ready_after = time.monotonic() - started
    print(f"odm server ready after {ready_after:.1f} s")
    with MongoClient(uri, serverSelectionTimeoutMS=10_000) as client:
        assert client.admin.command("hello")["isWritablePrimary"]
        client.scratch.things.insert_one({"x": 1})  # a replica set: transactions would work
    assert list(tmp_path.glob("odm-mongod-*")), "the data lives in a temporary directory"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "stopped" in out
    assert list(tmp_path.glob("odm-mongod-*")) == []
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True)
    assert left.stdout.strip() == ""
