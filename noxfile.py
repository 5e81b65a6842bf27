"""nox sessions. ``tests``: the whole suite on every Python that ``requires-python`` admits.

The README's ``.venv`` runs the suite on 3.11 (``.venv/bin/pytest``); ``nox -s tests-3.12
tests-3.13`` runs it on the other interpreters (``.ci/run`` runs the two side by side after
the 3.11 run). Each session is a fresh virtualenv with ``.[dev]`` installed, as a user's would
be, and runs the same ``pytest``, with one difference on the interpreters other than 3.11:
the checks whose outcome does not depend on the interpreter that runs them are left to the
3.11 run, so that the three runs fit in CI's time (see ``INTERPRETER_INDEPENDENT``). Give
pytest arguments after ``--`` to run anything else.

Interpreters are looked up as ``python3.X`` on ``PATH``; where a pyenv shim stands there
without that version enabled (``pyenv: python3.12: command not found``), the pyenv install
of that version is put on ``PATH`` instead, so that ``nox`` works on these machines without
``pyenv global`` being changed.

``nox -s mutation`` (not in the default sessions, nor in CI): mutation testing with mutmut 3 of
the modules that guard what the database holds (the unit of work, its journal, change tracking,
the diff, instance writes, the query filters). Each target runs against the tests that exercise
it, one shared ``mongod`` replica set for all its mutants (``$ODM_TEST_URI``), in its own
scratch directory under ``build/mutation/<target>/`` (git-ignored: mutmut's ``mutants/`` copy,
hypothesis's database and mutmut's cache stay out of the work tree, and a second run only
re-tests what changed). The session fails when a target kills less than ``MIN_SCORE`` of its
non-equivalent mutants.

    nox -s mutation                      # every target
    nox -s "mutation(target='instance')"  # one target
    nox -R -s "mutation(target='instance')" -- "odm.blocks.x__concern*"  # some mutants

See docs/mutation-testing.md for the numbers measured and the equivalent mutants left out.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import nox

#: Every minor version that ``requires-python = ">=3.11"`` admits and the classifiers list.
PYTHONS = ["3.11", "3.12", "3.13"]

#: The Python that the README's ``.venv`` (and so the first, complete CI run) uses.
MAIN_PYTHON = "3.11"

#: Left out of the runs on the other interpreters, because the 3.11 run already gives their
#: answer: ruff and mypy check the source against ``target-version``/``python_version`` 3.11
#: whatever runs them; the typing tests run mypy and pyright on samples (static analysis, the
#: same verdict whichever interpreter starts them); the documentation site is built by mkdocs
#: from the source's text (mkdocstrings reads it statically); the wheel is pure Python
#: (``py3-none-any``), built and installed the same way by every interpreter; the layer
#: contracts and the package list are read from the source (import-linter, ``ast``); and the
#: benchmark's tools (``bench/``, in no wheel: a maintainer's tool) are tested for their
#: plumbing (arguments, reports, plots), while their figures on each Python are measured by
#: hand (docs/performance.md). Together they are the slowest tests, and leaving them out keeps
#: the three runs within CI's time. A path is left out whole (``--ignore``), a test id
#: (``file::test``) alone (``--deselect``).
INTERPRETER_INDEPENDENT = [
    "tests/unit/test_static.py",
    "tests/unit/test_typed_constructors.py",
    "tests/unit/test_typed_version.py",
    "tests/unit/test_mypy_plugin.py",
    "tests/unit/test_architecture.py",
    "tests/unit/test_packaging.py",
    "tests/unit/test_bench_cpu_paths.py",
    "tests/integration/bench",
    "tests/integration/querysets/test_qs_typing.py",
    "tests/docs/test_docs.py::test_site_builds_strictly",
    "tests/install",
]

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = False


def _runs(executable: str) -> bool:
    """Whether ``executable --version`` works (a bare pyenv shim fails for disabled versions)."""
    try:
        return subprocess.run(
            [executable, "--version"], capture_output=True, check=False, timeout=30
        ).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _pyenv_bin(version: str) -> str | None:
    """The ``bin`` directory of pyenv's newest install of ``version`` (``3.12`` -> 3.12.x)."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    installs = sorted(
        Path(root, "versions").glob(f"{version}.*"),
        key=lambda p: [int(part) for part in p.name.split(".") if part.isdigit()],
    )
    for install in reversed(installs):
        if (install / "bin" / f"python{version}").exists():
            return str(install / "bin")
    return None


def _expose_interpreters() -> None:
    """Put each supported interpreter that ``PATH`` cannot run ahead on ``PATH`` (see above)."""
    for version in PYTHONS:
        found = shutil.which(f"python{version}")
        if found and _runs(found):
            continue
        directory = _pyenv_bin(version)
        if directory is not None:
            os.environ["PATH"] = directory + os.pathsep + os.environ.get("PATH", "")


_expose_interpreters()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The test suite (the README's ``pytest``) on one interpreter; extra args go to pytest."""
    # --no-compile: pip would byte-compile every module it installs (mkdocs-material's,
    # matplotlib's, pyright's...), ~17 s of each session's ~60 s here, most of them never
    # imported by the run; Python compiles and caches those it does import, as it goes.
    session.install("--no-compile", "-e", ".[dev]")
    args = list(session.posargs)
    if not args and session.python != MAIN_PYTHON:
        args = [
            f"--deselect={path}" if "::" in path else f"--ignore={path}"
            for path in INTERPRETER_INDEPENDENT
        ]
    session.run("pytest", *args)


# -- mutation testing ------------------------------------------------------------------------

ROOT = Path(__file__).parent
MUTMUT = "mutmut==3.8.1"
MIN_SCORE = 0.90

# The targets: the modules mutated together (one stats run for them) and the tests that
# exercise them. Per-mutant runs only use the tests covering the mutated function (mutmut
# records which), so a wider test list costs once (the stats run), not per mutant.
# Left out: tests whose verdict hangs on wall-clock timing (cancellation at random moments,
# 200 concurrent transfers, a deadline over five blocked chunks): on a loaded machine they
# fail without any mutant, and mutmut stops when its stats run sees a failure.
_TIMING_TESTS = "not keep_the_total and not cancel and not bounds_the_whole_call"
_INSTANCE_TESTS = [
    "-k",
    _TIMING_TESTS,
    "tests/integration/uow",
    "tests/integration/documents",
    "tests/unit/test_models_tracking.py",
    "tests/unit/test_models_save_diff.py",
    "tests/unit/test_tracking_mutants.py",
]
TARGETS: dict[str, tuple[list[str], list[str]]] = {
    "instance": (
        [
            "odm/blocks.py", "odm/uow.py", "odm/server_transactions.py", "odm/journal.py",
            "odm/models/tracking.py", "odm/models/writes.py",
        ],
        _INSTANCE_TESTS,
    ),
    "diffing": (
        ["odm/models/diffing.py"],
        [
            "tests/unit/test_models_tracking.py",
            "tests/unit/test_models_save_diff.py",
            "tests/unit/test_models_roundtrip.py",
            "tests/unit/test_tracking_mutants.py",
            "tests/integration/documents/test_save_diff.py",
        ],
    ),
    "query": (
        ["odm/query/q.py", "odm/query/where.py"],
        [
            "tests/unit/test_query_q.py",
            "tests/unit/test_query_compiler.py",
            "tests/unit/test_query_lookups.py",
            "tests/unit/test_query_models.py",
            "tests/unit/test_query_safety.py",
            "tests/unit/test_query_fast_paths.py",
            "tests/unit/test_query_mutants.py",
            "tests/integration/querysets/test_qs_lookups.py",
        ],
    ),
}

# Mutants no test can kill because the mutated program behaves the same (see
# docs/mutation-testing.md for each one's reason). They count neither as killed nor survived.
_FAST_PATH = "a fast path: the general lookup builds the same filter"
_DRAINED = "the deque only drains the map: its length is never read"
_ROOT_SPLIT = "root is only ever given with split=False (elemmatch)"
_NO_ITEM = "a join of at most one part has no separator"
_NUMBER_KIND = "another distinct kind number: the kinds are only compared with each other"
_SHORTCUT = "a shortcut skipped: the general comparison gives the same answer"
_MAPPING_EQ = "unreachable: a mapping is == only to a mapping"
_UNSET_VALUE = "the value of an unset is never read: the update writes '' for each"
EQUIVALENT: dict[str, str] = {
    # odm/models/tracking.py
    "odm.models.tracking.x_set_snapshots__mutmut_2": _DRAINED,
    "odm.models.tracking.x_set_snapshots__mutmut_4": _DRAINED,
    "odm.models.tracking.x_set_snapshots__mutmut_14": _DRAINED,
    "odm.models.tracking.x_collection_model__mutmut_3": "a declared model's root is never None",
    # odm/models/diffing.py
    "odm.models.diffing.x__bson_value__mutmut_8": "ms * 1001: only compared, still one-to-one",
    "odm.models.diffing.x__number_type__mutmut_3": _NUMBER_KIND,
    "odm.models.diffing.x__number_type__mutmut_8": _NUMBER_KIND,
    "odm.models.diffing.x__same_scalar__mutmut_7": "a == b: equal non-zero values share a sign",
    "odm.models.diffing.x__same_equal__mutmut_1": _SHORTCUT,
    "odm.models.diffing.x__same_equal__mutmut_2": _SHORTCUT,
    "odm.models.diffing.x__same_equal__mutmut_4": _SHORTCUT,
    "odm.models.diffing.x__same_equal__mutmut_28": "a dict is a Mapping: the same test",
    "odm.models.diffing.x__same_equal__mutmut_29": _MAPPING_EQ,
    "odm.models.diffing.x__same_equal__mutmut_31": _MAPPING_EQ,
    "odm.models.diffing.x_same__mutmut_4": _SHORTCUT,
    "odm.models.diffing.x_same__mutmut_5": _SHORTCUT,
    "odm.models.diffing.x_same__mutmut_8": _SHORTCUT,
    "odm.models.diffing.x_diff_value__mutmut_25": _UNSET_VALUE,
    "odm.models.diffing.x_diff_value__mutmut_26": _UNSET_VALUE,
    "odm.models.diffing.x_diff_value__mutmut_30": (
        "len(old) == len(new): only reached for values not same(), so never pushed"
    ),
    # odm/models/writes.py
    "odm.models.writes.x_prepare_update__mutmut_39": (
        "no change set unsets or pushes the version: only nested keys are unset, an int "
        "is never pushed to"
    ),
    # odm/journal.py
    "odm.journal.xǁJournalǁreload__mutmut_41": "zip(strict=False): ids is built from group",
    # odm/uow.py
    "odm.uow.xǁUnitOfWorkǁ_flush_pass__mutmut_20": (
        "ordered=False: in a transaction a failed write aborts them all anyway"
    ),
    # odm/query/q.py
    "odm.query.q.xǁQǁ__repr____mutmut_9": _NO_ITEM,
    "odm.query.q.xǁQǁ__repr____mutmut_11": _NO_ITEM,
    "odm.query.q.xǁQǁ__repr____mutmut_14": _NO_ITEM,
    # odm/query/where.py
    "odm.query.where.x__elements__mutmut_1": "only a LIST field type has an item",
    "odm.query.where.x_key_plan__mutmut_3": "a cache bypassed: the same plan, computed again",
    "odm.query.where.x_key_plan__mutmut_6": "a cache bypassed: the same plan, computed again",
    "odm.query.where.x_key_plan__mutmut_7": "a cache bypassed: the same plan, computed again",
    "odm.query.where.x_key_plan__mutmut_27": "a cache bypassed: the same plan, computed again",
    "odm.query.where.x_key_plan__mutmut_28": "a cache bypassed: the same plan, computed again",
    "odm.query.where.x_key_plan__mutmut_17": "unreachable: split_lookup only returns lookups",
    "odm.query.where.x_key_plan__mutmut_18": "unreachable: split_lookup only returns lookups",
    "odm.query.where.x_key_plan__mutmut_19": "unreachable: split_lookup only returns lookups",
    "odm.query.where.x_key_plan__mutmut_20": "unreachable: split_lookup only returns lookups",
    "odm.query.where.x_field_condition__mutmut_6": _FAST_PATH,
    "odm.query.where.x_field_condition__mutmut_8": _FAST_PATH,
    "odm.query.where.x_field_condition__mutmut_9": _FAST_PATH,
    "odm.query.where.x_field_condition__mutmut_20": "resolve_f is only read for an F() value",
    "odm.query.where.x__leaf__mutmut_17": "key.split(SEP)[0] is key.split(SEP, 1)[0]",
    "odm.query.where.x__leaf__mutmut_19": "key.split(SEP, 2)[0] is key.split(SEP, 1)[0]",
    "odm.query.where.x__leaf__mutmut_62": "Where's joins default to ()",
    "odm.query.where.x_compile_q__mutmut_7": "~Q() compiles to nothing, as Q() does",
    "odm.query.where.x_compile_q__mutmut_18": _ROOT_SPLIT,
    "odm.query.where.x_compile_q__mutmut_29": _ROOT_SPLIT,
}


def _mutmut_config(modules: list[str], tests: list[str]) -> str:
    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(f'"{item}"' for item in items) + "]"

    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["odm"]\n'
        f"only_mutate = {toml_list(modules)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        # One driver is enough to tell a mutant apart: the other doubles every database test.
        'pytest_add_cli_args = ["-o", "odm_drivers=pymongo", "-p", "no:cacheprovider", "-q", '
        '"-x"]\n'
        # Fork each mutant's run from a process that only collected the tests, not from
        # mutmut's own, which ran them all for its stats: its warm caches (the per-model
        # filter-key and path caches) would hide every mutant of the code that fills them.
        'process_isolation = "forkserver"\n'
        # A mutant that loops for ever (the flush's hook loop) is stopped at 5x the time its
        # tests took unmutated (mutmut's default of 15x costs minutes per such mutant).
        "timeout_multiplier = 5.0\n"
    )


def _prepare(workdir: Path, modules: list[str], tests: list[str]) -> None:
    """Copy what the tests need into ``workdir``, with the mutmut configuration."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("odm", "contrib", "tests"):
        shutil.copytree(
            ROOT / name,
            workdir / name,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"),
        )
    pyproject = (ROOT / "pyproject.toml").read_text()
    (workdir / "pyproject.toml").write_text(pyproject + _mutmut_config(modules, tests))


def _start_server(python: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [python, "-m", "odm", "server", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 60
    for line in process.stdout:
        match = re.search(r"ready: (\S+)", line)
        if match:
            return process, match.group(1)
        if time.monotonic() > deadline:
            break
    process.kill()
    raise RuntimeError("the mongod for mutation testing did not start")


def score(results: str, module: str) -> tuple[dict[str, int], list[str]]:
    """Count the ``mutmut results --all true`` lines of ``module`` (``odm/uow.py``) by
    status, equivalents apart; return the counts and the mutants left alive."""
    prefix = module.removesuffix(".py").replace("/", ".") + ".x"
    counts: dict[str, int] = {}
    alive: list[str] = []
    for line in results.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name.startswith(prefix):
            continue
        if name in EQUIVALENT:
            status = "equivalent"
        counts[status] = counts.get(status, 0) + 1
        if status not in ("killed", "equivalent", "timeout"):
            alive.append(f"{name}: {status}")
    return counts, alive


@nox.session(reuse_venv=True, default=False)
@nox.parametrize("target", list(TARGETS))
def mutation(session: nox.Session, target: str) -> None:
    """Mutation testing of some modules (mutmut 3), against a throwaway replica set."""
    modules, tests = TARGETS[target]
    session.install("-e", ".[dev]", MUTMUT)
    workdir = ROOT / "build" / "mutation" / target
    _prepare(workdir, modules, tests)
    python = str(Path(session.bin) / "python")
    server, uri = _start_server(python)
    try:
        with session.chdir(workdir):
            env = {"ODM_TEST_URI": uri}
            session.run("mutmut", "run", "--max-children", "2", *session.posargs, env=env)
            results = session.run("mutmut", "results", "--all", "true", env=env, silent=True)
    finally:
        server.terminate()
        server.wait(30)
    failed = []
    for module in modules:
        counts, alive = score(str(results), module)
        considered = sum(n for status, n in counts.items() if status != "equivalent")
        killed = counts.get("killed", 0) + counts.get("timeout", 0)
        ratio = killed / considered if considered else 1.0
        session.log(f"{module}: {counts}; killed {killed}/{considered} = {ratio:.1%}")
        for line in alive:
            session.log(f"  {line}")
        if ratio < MIN_SCORE:
            failed.append(f"{module} {ratio:.1%}")
    if failed and not session.posargs:
        session.error(f"under {MIN_SCORE:.0%} of non-equivalent mutants killed: {failed}")
