"""How many pytest-xdist workers ``-n auto`` starts under the odm plugin (docs/testing.md)."""

from __future__ import annotations

import os

import pytest

from odm.contrib import pytest as plugin


def _auto(monkeypatch: pytest.MonkeyPatch, **env: str) -> int | None:
    for name in ("ODM_TEST_URI", "PYTEST_XDIST_AUTO_NUM_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return plugin.pytest_xdist_auto_num_workers(config=None)  # type: ignore[arg-type]


def test_one_worker_per_cpu_up_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    cpus = len(os.sched_getaffinity(0))
    assert _auto(monkeypatch) == max(1, min(cpus, plugin.MAX_AUTO_WORKERS))


def test_the_cap_holds_on_a_machine_with_many_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert _auto(monkeypatch) == plugin.MAX_AUTO_WORKERS


def test_without_sched_getaffinity_the_cpu_count_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert _auto(monkeypatch) == 3


def test_a_shared_server_means_no_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    # One server for every worker: a fail point set by one test would fail another's commands.
    assert _auto(monkeypatch, ODM_TEST_URI="mongodb://127.0.0.1:1/?replicaSet=rs0") == 0


def test_xdists_own_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    # None lets pytest-xdist's own hook read the variable.
    assert _auto(monkeypatch, PYTEST_XDIST_AUTO_NUM_WORKERS="3", ODM_TEST_URI="x") is None



def test_the_run_asks_the_plugin_before_xdist(
    monkeypatch: pytest.MonkeyPatch, pytestconfig: pytest.Config
) -> None:
    # The number pytest-xdist uses for -n auto: the first answer of every implementation of
    # the hook, xdist's own (one per CPU, ignoring ODM_TEST_URI) among them.
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    monkeypatch.setenv("ODM_TEST_URI", "mongodb://127.0.0.1:1/?replicaSet=rs0")
    assert pytestconfig.hook.pytest_xdist_auto_num_workers(config=pytestconfig) == 0
    monkeypatch.delenv("ODM_TEST_URI")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    workers = pytestconfig.hook.pytest_xdist_auto_num_workers(config=pytestconfig)
    assert workers == plugin.MAX_AUTO_WORKERS
