"""LocalServer's start survives a member that stops answering for a moment, as one does on a
machine too loaded to schedule it (the cause of test_ctrl_c_cleans_up's failures under load:
the sample's server did not start).

The fault is real: the first member's process is stopped (SIGSTOP) right after it answered its
first ping and continued (SIGCONT) 1.5 s later. A command sent once while it is stopped must
wait for it, not fail after the half second that the polling checks allow themselves.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from pymongo import MongoClient

from odm.server import LocalServer

PAUSE = 1.5


class PausedAfterFirstPing(LocalServer):
    """A LocalServer whose first member is stopped for ``PAUSE`` seconds once it answered."""

    paused: threading.Timer | None = None

    def _wait_until(self, what: str, check: Any) -> Any:
        result = super()._wait_until(what, check)
        if self.paused is None and what.endswith("answering"):
            member = self.processes[0]
            member.send_signal(signal.SIGSTOP)
            self.paused = threading.Timer(PAUSE, member.send_signal, (signal.SIGCONT,))
            self.paused.start()
        return result


def test_a_member_that_stalls_after_its_first_ping_still_gets_initiated() -> None:
    server = PausedAfterFirstPing()
    try:
        server.start()
        assert server.paused is not None, "the member was never paused"
        with MongoClient(server.uri, serverSelectionTimeoutMS=30_000) as client:
            assert client.admin.command("hello")["isWritablePrimary"]
            assert client.admin.command("replSetGetStatus")["set"] == "rs0"
    finally:
        if server.paused is not None:
            server.paused.join()
        server.stop()


def test_election_settings_are_part_of_the_first_configuration() -> None:
    # One member: the configuration is built the same way for any number of them (below),
    # and a set of several with equal priorities waits out an election (~15 s) before it has
    # a primary; tests/reliability starts three that way.
    server = LocalServer(members=1, equal_priorities=True, election_timeout_ms=2000)
    try:
        server.start()
        with MongoClient(server.uri, serverSelectionTimeoutMS=30_000) as client:
            config = client.admin.command("replSetGetConfig")["config"]
            assert client.admin.command("hello")["isWritablePrimary"]
        # Version 1: nothing was reconfigured after replSetInitiate.
        assert config["version"] == 1
        assert [m["priority"] for m in config["members"]] == [1]
        assert config["settings"]["electionTimeoutMillis"] == 2000
    finally:
        server.stop()


def test_equal_priorities_and_the_election_timeout_go_to_every_member() -> None:
    server = LocalServer(members=3, equal_priorities=True, election_timeout_ms=2000)
    server.ports = [27100, 27101, 27102]  # as start() would pick them; nothing is started
    config: Any = server._first_config()
    assert [m["priority"] for m in config["members"]] == [1, 1, 1]
    assert [m["host"] for m in config["members"]] == [
        "127.0.0.1:27100", "127.0.0.1:27101", "127.0.0.1:27102"
    ]
    assert config["settings"] == {"electionTimeoutMillis": 2000}


def test_member_zero_is_preferred_unless_priorities_are_equal() -> None:
    server = LocalServer(members=3)
    server.ports = [27100, 27101, 27102]  # as start() would pick them; nothing is started
    config: Any = server._first_config()
    assert [m["priority"] for m in config["members"]] == [2, 1, 1]
    assert "settings" not in config


def test_a_non_positive_election_timeout_is_refused() -> None:
    for bad in (0, -5):
        try:
            LocalServer(members=3, election_timeout_ms=bad)
        except ValueError as exc:
            assert "election_timeout_ms" in str(exc) and str(bad) in str(exc)
        else:
            raise AssertionError(f"election_timeout_ms={bad} was accepted")
