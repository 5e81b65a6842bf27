"""Instructions per operation of each one-at-a-time variant: ``python -m bench.instructions``.

The wall and CPU time of a one-at-a-time workload move by a few per cent from run to run on a
shared 2-core machine, as much as the distance being measured (docs/performance-internals.md).
Valgrind's callgrind counts the instructions the process runs in user space instead: the same
count for the same code and data, whatever else the machine is doing. Each variant of
:mod:`bench.layers` runs in a process of its own under callgrind, twice: once with ``--few``
operations and once with ``--few`` plus ``--ops``, after the same warm-up. The difference,
divided by ``--ops``, is its instructions per operation; the start-up, the imports and the
warm-up cancel out.

Not counted: the server's work (another process), the kernel's (the system calls), and the time
lost to cache misses. So a cell is the work odm adds, not the time it takes: an operation that
waits on the server runs its code with cold caches, and its wall-clock ratio comes out above
its instruction ratio (docs/performance-internals.md, "Warm and cold").

``--misses`` counts those too: callgrind then simulates a core's caches (:data:`CACHES`: 32 KB
of L1 for instructions and for data, 512 KB of L2, as on the 2-core machines measured) and
each cell also gives the L2 misses per operation, the lines the operation had to fetch from
further away. Between two operations of one process the driver, the event loop and the
validation run too, so a piece of odm's code that is not touched again until the next operation
is evicted as it is in a real run (not by the server, which the simulation does not see). The
count is as repeatable as the instructions', and it is what tells apart two versions of the
same work that touch more or less distinct code and data; about twice as slow to run.

Needs ``valgrind`` on the PATH. Under callgrind each process takes about 30 s (the imports
alone run ~1.9 billion instructions). ``--jobs`` processes run at once (the counts do not
depend on it), so the default run of 16 variants takes about 8 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import odm
from odm import executor

from .common import add_data_options, on_server

#: The checkout: the counted processes import ``bench`` from it.
ROOT = Path(__file__).resolve().parents[1]
#: Operations every counted process runs before the counted ones (connections, caches, plans).
WARM_UP = 20
#: The workloads whose processes run one at a time, whatever ``--jobs`` says.
ALONE = frozenset({"transaction_transfer"})

#: The caches callgrind simulates with ``--misses``: size, ways and line size of the L1 for
#: instructions, the L1 for data and the L2 of one core of the machines measured (AMD EPYC).
CACHES = ("--I1=32768,8,64", "--D1=32768,8,64", "--LL=524288,8,64")
#: callgrind's names of the events that are misses of the last simulated level (the L2):
#: instruction fetches, data reads, data writes.
L2_MISSES = ("ILmr", "DLmr", "DLmw")

_EVENTS = re.compile(r"^==\d+== Events +: ([A-Za-z0-9 ]+)$", re.MULTILINE)
_COLLECTED = re.compile(r"^==\d+== Collected : ([\d ]+)$", re.MULTILINE)


def collected_events(report: str) -> dict[str, int]:
    """Return ``{event: count}`` from callgrind's report ``report`` (its standard error):
    ``Ir`` (instructions) alone, or with the cache simulation every miss and access event."""
    found = _COLLECTED.findall(report)
    if len(found) != 1:
        raise RuntimeError(f"no instruction count in callgrind's output:\n{report[-2000:]}")
    counts = [int(value) for value in found[0].split()]
    names = _EVENTS.findall(report)
    # Without the event line (older reports) the one count is the instructions'.
    events = names[0].split() if len(names) == 1 else ["Ir"]
    if len(events) != len(counts):
        raise RuntimeError(f"callgrind's events and counts do not match:\n{report[-2000:]}")
    return dict(zip(events, counts, strict=True))


def collected(report: str) -> int:
    """Return the instruction count in callgrind's report ``report`` (its standard error)."""
    return collected_events(report)["Ir"]


def l2_misses(events: dict[str, int]) -> int:
    """Return the misses of the simulated L2 in ``events`` (:func:`collected_events` of a run
    with the cache simulation)."""
    return sum(events[name] for name in L2_MISSES)


def count_events(command: Sequence[str], *, misses: bool = False) -> dict[str, int]:
    """Run ``command`` under callgrind and return its events (:func:`collected_events`);
    ``misses``: with the simulated caches of :data:`CACHES`.

    The hash seed is fixed: with a random one, dicts and sets of strings differ from run to run
    and so do the counts."""
    simulation = ["--cache-sim=yes", *CACHES] if misses else []
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *simulation,
         *command],
        capture_output=True, text=True, check=False, cwd=ROOT,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed under callgrind:\n{result.stderr[-2000:]}")
    return collected_events(result.stderr)


def count(command: Sequence[str]) -> int:
    """Run ``command`` under callgrind and return the instructions it ran."""
    return count_events(command)["Ir"]


def per_operation(few: int, many: int, ops: int) -> float:
    """Events (instructions, misses) per operation from the counts of a run of few and of
    ``ops`` more."""
    return (many - few) / ops


# The benchmark's models are imported where they are used: importing them declares them, and
# the tests import this module beside models of their own.


async def _seed(uri: str, db: str, n: int) -> dict[str, list[str]]:
    """Seed the data; return the variants of each workload."""
    from . import impl_odm
    from .layers import Layers

    await odm.connect(uri, db=db, models=[impl_odm.Item, impl_odm.Account])
    try:
        layers = Layers(random.Random(7))
        await layers.seed(n)
        return {workload: list(variants) for workload, variants in layers.workloads().items()}
    finally:
        await odm.disconnect()


async def _drop(uri: str, db: str) -> None:
    from . import impl_odm

    await odm.connect(uri, db=db, models=[impl_odm.Item])
    try:
        await executor.collection(impl_odm.Item).database.client.drop_database(db)
    finally:
        await odm.disconnect()


async def run_variant(uri: str, db: str, workload: str, variant: str, ops: int) -> None:
    """The counted process: ``WARM_UP`` operations of the variant, then ``ops`` more."""
    from . import impl_odm
    from .layers import Layers

    await odm.connect(uri, db=db, models=[impl_odm.Item, impl_odm.Account])
    try:
        layers = Layers(random.Random(7))
        await layers.attach()
        run = layers.workloads()[workload][variant]
        await run(WARM_UP)
        if ops:
            await run(ops)
    finally:
        await odm.disconnect()


#: One variant's counts per operation: ``{"instructions": n}``, and ``"L2 misses"`` with
#: ``--misses``.
PerOperation = dict[str, float]


def measure(
    uri: str, db: str, names: dict[str, list[str]], python: str, few: int, ops: int, jobs: int,
    *, misses: bool = False,
) -> dict[str, dict[str, PerOperation]]:
    """Return ``{workload: {variant: counts per operation}}`` for the variants ``names``
    (``{workload: [variant, ...]}``) of the data seeded already; ``misses``: the L2 misses too,
    from callgrind's cache simulation."""
    wanted = [(w, v) for w, variants in names.items() for v in variants]

    def child(workload: str, variant: str, n: int) -> list[str]:
        return [
            python, "-m", "bench.instructions", "--child", workload, variant, str(n),
            "--uri", uri, "--db", db,
        ]

    def one_run(command: list[str]) -> dict[str, int]:
        events = count_events(command, misses=misses)
        found = {"instructions": events["Ir"]}
        if misses:
            found["L2 misses"] = l2_misses(events)
        return found

    # Two transfers at once would move the same accounts and fail on write conflicts: the
    # processes of a workload that writes to shared documents run one at a time.
    runs = {(w, v, n): child(w, v, n) for w, v in wanted for n in (few, few + ops)}
    counts: dict[tuple[str, str, int], dict[str, int]] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        apart = [key for key in runs if key[0] not in ALONE]
        counts.update(zip(apart, pool.map(one_run, [runs[key] for key in apart]), strict=True))
    for key in runs:
        if key not in counts:
            counts[key] = one_run(runs[key])
    report: dict[str, dict[str, PerOperation]] = {}
    for workload, variant in wanted:
        low, high = counts[workload, variant, few], counts[workload, variant, few + ops]
        report.setdefault(workload, {})[variant] = {
            event: per_operation(low[event], high[event], ops) for event in low
        }
    return report


def format_report(report: dict[str, dict[str, PerOperation]]) -> str:
    """One line per workload and count: each variant's thousands per operation, and its ratio
    to the floor's (the first variant)."""
    lines = []
    for workload, variants in report.items():
        floor = next(iter(variants.values()))
        for event in floor:
            cells = "  ".join(
                f"{name} {value[event] / 1000:.{0 if event == 'instructions' else 2}f}k "
                f"{value[event] / floor[event]:.3f}"
                for name, value in variants.items()
            )
            lines.append(f"{workload:22s} {event:12s} {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse the options; seed, count every variant, print the report, drop the database."""
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    add_data_options(parser, "odm_bench_instructions")
    parser.add_argument("--ops", type=int, default=100, help="operations counted (100)")
    parser.add_argument("--few", type=int, default=20, help="operations of the short run (20)")
    parser.add_argument("--jobs", type=int, default=2, help="processes at once (2)")
    parser.add_argument("--python", default=sys.executable, help="the interpreter counted")
    parser.add_argument("--misses", action="store_true",
                        help="simulate a core's caches and count the L2 misses too (slower)")
    parser.add_argument("--child", nargs=3, metavar=("WORKLOAD", "VARIANT", "OPS"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--seed-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seed_only:  # the data of --child runs, left in place
        asyncio.run(_seed(args.uri, args.db, args.n))
        return
    if args.child:
        workload, variant, ops = args.child
        asyncio.run(run_variant(args.uri, args.db, workload, variant, int(ops)))
        return
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not on the PATH (Debian: apt-get install valgrind)")
    only = args.only.split(",") if args.only else None

    def counted(uri: str) -> dict[str, dict[str, PerOperation]]:
        names = asyncio.run(_seed(uri, args.db, args.n))
        if only:
            names = {w: v for w, v in names.items() if w in only}
        try:
            return measure(uri, args.db, names, args.python, args.few, args.ops, args.jobs,
                           misses=args.misses)
        finally:
            asyncio.run(_drop(uri, args.db))

    report = on_server(args.uri, counted)
    version = subprocess.run(
        [args.python, "-c", "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    what = "instructions and L2 misses" if args.misses else "instructions"
    print(f"{what} per operation (thousands), and over the floor's; Python {version}")
    print(format_report(report))


if __name__ == "__main__":
    main()
