"""``odm demo`` as a user runs it: a subprocess that serves the seeded shop and stops cleanly."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from pymongo import AsyncMongoClient

from odm.demo import with_database

ROOT = Path(__file__).resolve().parents[3]
STARTUP_TIMEOUT = 90.0
SERVING = re.compile(r"the shop is serving on (http://\S+)")


@dataclass
class Demo:
    """A running ``odm demo`` and what it printed so far."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        """Everything printed so far."""
        return "\n".join(self.lines)

    async def read_until(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """Read lines until one matches ``pattern``; fail with the output otherwise."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.process.stdout.readline()
                if not raw:
                    await self.process.wait()
                    pytest.fail(f"odm demo exited ({self.process.returncode}):\n{self.output}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                match = pattern.search(line)
                if match:
                    return match

    async def interrupt(self, sig: int = signal.SIGINT, timeout: float = 60.0) -> int:
        """Send ``sig`` (SIGINT: as Ctrl-C does) and return the exit status once it exited."""
        self.process.send_signal(sig)
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            rest = await self.process.stdout.read()
            self.lines.extend(rest.decode().splitlines())
            return await self.process.wait()


async def start_demo(*args: str, tmpdir: Path) -> Demo:
    """Start ``python -m odm demo ARGS`` with its temporary files under ``tmpdir``."""
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1"}
    env.pop("MONGODB_URI", None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "odm", "demo", *args,
        cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    return Demo(process)


@pytest.fixture
def demo_tmpdir(tmp_path: Path) -> Path:
    """A private TMPDIR for the demo (its mongod dies with it: ``PR_SET_PDEATHSIG``)."""
    return tmp_path


def processes_using(path: Path) -> list[str]:
    """The command lines of the processes whose arguments mention ``path``."""
    result = subprocess.run(
        ["pgrep", "-a", "-f", str(path)], capture_output=True, text=True, check=False
    )
    return [line for line in result.stdout.splitlines() if "pgrep" not in line]


async def get_json(url: str) -> object:
    """GET ``url`` and return its JSON body (asserting a 200)."""
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def run_curl_line(line: str) -> None:
    """Send what a printed ``curl [-X METHOD] URL [-H HEADER]... [-d BODY]`` line sends, and
    assert a 2xx answer."""
    words = shlex.split(line)[1:]
    method, url, headers, body = "GET", "", {}, None
    while words:
        word = words.pop(0)
        if word == "-X":
            method = words.pop(0)
        elif word == "-H":
            name, _, value = words.pop(0).partition(":")
            headers[name.strip()] = value.strip()
        elif word == "-d":
            body = words.pop(0)
        else:
            url = word
    async with aiohttp.ClientSession() as http, http.request(
        method, url, headers=headers, data=body
    ) as response:
        assert 200 <= response.status < 300, (line, response.status, await response.text())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
async def test_demo_serves_the_seeded_shop_and_stops_cleanly(
    demo_tmpdir: Path, sig: int
) -> None:
    demo = await start_demo("--port", "0", tmpdir=demo_tmpdir)
    try:
        base = (await demo.read_until(SERVING, STARTUP_TIMEOUT)).group(1)
        await demo.read_until(re.compile("press Ctrl-C to stop"), 10)
        assert "starting a local MongoDB replica set" in demo.output
        assert "apply 0001_initial" in demo.output
        port = int(base.rsplit(":", 1)[1])
        assert port not in (0, 8080)  # the real, bound port is printed
        mongods = [p for p in processes_using(demo_tmpdir) if "mongod" in p]
        assert mongods, "the demo's mongod should run from a data directory under TMPDIR"

        customers = await get_json(f"{base}/customers")
        assert isinstance(customers, list)
        assert [c["email"] for c in customers] == ["ann@example.org", "bob@example.org"]
        assert customers[0]["balance"] == 100_00 - 12_50
        orders = await get_json(f"{base}/customers/{customers[0]['id']}/orders")
        assert isinstance(orders, list)
        assert [o["total"] for o in orders] == [12_50]
        assert f"curl {base}/customers" in demo.output

        status = await demo.interrupt(sig)
    finally:
        if demo.process.returncode is None:
            demo.process.kill()
            await demo.process.wait()
    assert status == 0, demo.output
    assert demo.lines[-1] == "stopped", demo.output
    assert "temporary data removed" in demo.output
    assert processes_using(demo_tmpdir) == []
    assert list(demo_tmpdir.iterdir()) == [], "the demo left temporary files behind"


async def test_demo_uses_the_server_given_by_uri(odm_uri: str, demo_tmpdir: Path) -> None:
    name = f"odm_demo_{uuid.uuid4().hex[:12]}"
    uri = with_database(odm_uri, name)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(odm_uri)
    try:
        demo = await start_demo("--uri", uri, "--port", "0", tmpdir=demo_tmpdir)
        try:
            base = (await demo.read_until(SERVING, STARTUP_TIMEOUT)).group(1)
            assert "starting a local MongoDB" not in demo.output
            assert processes_using(demo_tmpdir) == []  # no mongod of its own
            customers = await get_json(f"{base}/customers")
            assert isinstance(customers, list) and len(customers) == 2
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/") as landing:
                    assert landing.status == 200
                    page = await landing.text()
                    assert 'href="/admin/"' in page and 'href="/customers"' in page
                    assert "this machine only" in page
                # The demo allows local requests only, and this test is one.
                async with http.get(f"{base}/admin/") as index:
                    assert index.status == 200
                    assert "Customer" in await index.text()
                async with http.get(f"{base}/admin/_migrations/") as listed:
                    assert "0001_initial" in await listed.text()
            await demo.read_until(re.compile("press Ctrl-C to stop"), 10)
            assert f"{base}/admin/ (local-only" in demo.output

            database = client[name]
            assert await database.customers.count_documents({}) == 2
            indexes = {i["name"]: i async for i in await database.customers.list_indexes()}
            assert indexes["email_1"].get("unique") is True
            assert "customer_1_created_1" in await database.orders.index_information()
            # Every curl line it prints for the reader works as printed.
            tried = [line.strip() for line in demo.lines if line.strip().startswith("curl ")]
            assert len(tried) == 5, demo.output
            for line in tried:
                await run_curl_line(line)
            seeded = await database.customers.count_documents({})
            assert seeded == 3  # the two seeded customers and the one a curl line added
            status = await demo.interrupt()
        finally:
            if demo.process.returncode is None:
                demo.process.kill()
                await demo.process.wait()
        assert status == 0, demo.output

        # A second run on the same database applies nothing and does not seed again.
        again = await start_demo("--uri", uri, "--port", "0", tmpdir=demo_tmpdir)
        try:
            await again.read_until(SERVING, STARTUP_TIMEOUT)
            assert "nothing to apply" in again.output
            assert "seeded" not in again.output
            assert await client[name].customers.count_documents({}) == seeded
            assert await again.interrupt() == 0, again.output
        finally:
            if again.process.returncode is None:
                again.process.kill()
                await again.process.wait()
    finally:
        await client.drop_database(name)
        await client.close()


async def test_an_interrupt_during_start_up_stops_what_was_started(demo_tmpdir: Path) -> None:
    demo = await start_demo("--port", "0", tmpdir=demo_tmpdir)
    try:
        await demo.read_until(re.compile("starting a local MongoDB"), STARTUP_TIMEOUT)
        status = await demo.interrupt()
    finally:
        if demo.process.returncode is None:
            demo.process.kill()
            await demo.process.wait()
    assert status == 0, demo.output
    assert demo.lines[-1] == "stopped", demo.output
    assert processes_using(demo_tmpdir) == []
    assert list(demo_tmpdir.iterdir()) == [], "the demo left temporary files behind"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://h:1", "mongodb://h:1/shop"),
        ("mongodb://h:1/", "mongodb://h:1/shop"),
        ("mongodb://h:1/?replicaSet=rs0", "mongodb://h:1/shop?replicaSet=rs0"),
        ("mongodb://u:p@h:1,h:2/mine?w=1", "mongodb://u:p@h:1,h:2/mine?w=1"),
    ],
)
def test_with_database_fills_in_the_default_database(uri: str, expected: str) -> None:
    assert with_database(uri) == expected
