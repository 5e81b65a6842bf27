"""``python -m bench``: the peer benchmark and/or the MongoDB ODM spec benchmark.

Examples::

    python -m bench                                   # every workload, every implementation
    python -m bench --n 10000 --repeat 3 --peers raw,motor,beanie,odmantic
    python -m bench --only get_by_id,find_all --peers raw,odm
    python -m bench --spec                            # the ODM spec benchmark only
    python -m bench --all --quick                     # both, tiny sizes (CI)
    python -m bench --growth                          # cost at N = 1k, 10k, 100k
    python -m bench --only find_all --peers raw,odm --profile odm   # where odm's time goes
    python -m bench --plot docs/img/bench.png         # ... and the ratios as a chart
    python -m bench --plot-from bench/results.json --plot bench.png   # chart of a past run

Without ``--uri`` a throwaway single-node replica set is started with ``odm.server.LocalServer``.
Every implementation connects with ``w=1`` added to the URI. Results go to stdout and to
``--json`` (default ``bench/results.json``; the sections not run are kept from the old file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient

from .common import (
    IMPLEMENTATIONS,
    WORKLOAD_NAMES,
    Counts,
    machine_info,
    on_server,
    with_write_concern,
)
from .growth import DEFAULT_SIZES, QUICK_SIZES, format_growth_table, run_growth
from .harness import format_table, run_workloads
from .plot import draw
from .profiling import Profiles
from .spec import SpecMode, format_spec_table, run_spec
from .spec_common import TASK_NAMES

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"
DEFAULT_PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
DB_NAME = "odm_bench"


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark odm against raw PyMongo async, Motor, Beanie and ODMantic.",
    )
    parser.add_argument("--n", type=int, default=None, help="documents per collection (10000)")
    parser.add_argument("--repeat", type=int, default=None, help="rounds per workload (5)")
    parser.add_argument("--uri", help="MongoDB replica set URI (else start a LocalServer)")
    parser.add_argument(
        "--only",
        type=_csv,
        default=None,
        help=f"comma list of workloads / spec tasks: {','.join(WORKLOAD_NAMES + TASK_NAMES)}",
    )
    parser.add_argument(
        "--peers",
        type=_csv,
        default=None,
        help=f"comma list of implementations ({','.join(IMPLEMENTATIONS)}); raw is always run",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 round (CI smoke)")
    parser.add_argument("--spec", action="store_true", help="run the ODM spec benchmark only")
    parser.add_argument("--all", action="store_true", help="run the workloads AND the spec")
    parser.add_argument(
        "--spec-full",
        action="store_true",
        help="spec v1.0 timing: 10,000 ops, >= 30 s and 10 iterations or 60 s per task",
    )
    parser.add_argument(
        "--growth",
        action="store_true",
        help="run only the growth benchmark: insert_many, find_all, filter_sort_limit and "
        "stream_memory at each --growth-sizes N, time and peak memory per N",
    )
    parser.add_argument(
        "--growth-sizes",
        type=lambda value: [int(part) for part in _csv(value)],
        default=None,
        help=f"collection sizes of --growth ({','.join(map(str, DEFAULT_SIZES))}; "
        f"--quick: {','.join(map(str, QUICK_SIZES))})",
    )
    parser.add_argument("--spec-ops", type=int, help="spec operations per iteration (2000)")
    parser.add_argument("--spec-large-ops", type=int, help="LARGE_DOC operations (100)")
    parser.add_argument("--spec-iterations", type=int, help="spec iterations (3)")
    parser.add_argument("--stream-n", type=int, help="documents streamed (200000)")
    parser.add_argument("--db", default=DB_NAME, help=f"database name ({DB_NAME}; dropped)")
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_JSON, help=f"results file ({DEFAULT_JSON.name})"
    )
    parser.add_argument(
        "--profile",
        metavar="IMPL",
        help="profile IMPL's timed calls with pyinstrument (its timings then include the "
        "profiler's overhead); one text tree per workload / task in --profile-dir",
    )
    parser.add_argument(
        "--profile-dir",
        type=Path,
        default=DEFAULT_PROFILE_DIR,
        help=f"where --profile writes its trees ({DEFAULT_PROFILE_DIR})",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="draw the ratios of the run (or of --plot-from) as a chart (matplotlib)",
    )
    parser.add_argument(
        "--plot-from",
        type=Path,
        metavar="JSON",
        help="run nothing: draw --plot from this results file (e.g. bench/results.json)",
    )
    return parser


def _peers(requested: list[str] | None, default: list[str]) -> list[str]:
    names = list(requested) if requested else list(default)
    unknown = [n for n in names if n not in IMPLEMENTATIONS]
    if unknown:
        raise SystemExit(f"unknown implementation(s) {unknown}; choose from {IMPLEMENTATIONS}")
    if "raw" not in names:
        names.insert(0, "raw")  # the baseline of every ratio, measured in the same run
    return sorted(names, key=IMPLEMENTATIONS.index)


async def _mongod_version(uri: str) -> str | None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=10000)
    try:
        info = await client.admin.command("buildInfo")
        return str(info.get("version"))
    finally:
        await client.close()


async def _run(args: argparse.Namespace, uri: str) -> dict[str, Any]:
    uri = with_write_concern(uri)
    run_workloads_too = args.all or not (args.spec or args.spec_full)
    run_spec_too = args.all or args.spec or args.spec_full
    out: dict[str, Any] = {"machine": machine_info(await _mongod_version(uri))}
    profiles = Profiles(args.profile) if args.profile else None
    m = out["machine"]
    print(
        f"machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gb']} GB; "
        f"Python {m['python']}, PyMongo {m['pymongo']}, pydantic {m['pydantic']}, "
        f"mongod {m['mongod']}"
    )
    if args.growth:
        out["growth"] = await _growth(args, uri)
        return out
    if run_workloads_too:
        counts = Counts.quick() if args.quick else Counts()
        if args.n is not None:
            counts.n = args.n
        if args.stream_n is not None:
            counts.stream = args.stream_n
        repeat = args.repeat if args.repeat is not None else (1 if args.quick else 5)
        only = [w for w in args.only if w in WORKLOAD_NAMES] if args.only else None
        peers = _peers(args.peers, IMPLEMENTATIONS)
        print(f"workloads: n={counts.n}, repeat={repeat}, peers={','.join(peers)}")
        started = time.perf_counter()
        section = await run_workloads(uri, args.db, counts, repeat, peers, only, profiles=profiles)
        section["elapsed_s"] = round(time.perf_counter() - started, 1)
        out["workloads"] = section
        print()
        print("median seconds per workload (ratio to raw PyMongo async in this run):")
        print(format_table(section))
        print()
    if run_spec_too:
        mode = SpecMode.make(
            "full" if args.spec_full else ("quick" if args.quick else "default"),
            args.spec_ops,
            args.spec_large_ops,
            args.spec_iterations,
        )
        only = [t for t in args.only if t in TASK_NAMES] if args.only else None
        peers = _peers(args.peers, ["raw", "pydantic", "odm", "beanie"])
        print(
            f"ODM spec benchmark: mode={mode.name}, ops={mode.ops}, large_ops={mode.large_ops}, "
            f"iterations={mode.iterations}, peers={','.join(peers)}"
        )
        started = time.perf_counter()
        section = await run_spec(uri, args.db, mode, peers, only, profiles=profiles)
        section["elapsed_s"] = round(time.perf_counter() - started, 1)
        out["spec"] = section
        print()
        print("MB/s per task (median iteration; ratio to raw PyMongo async in this run):")
        print(format_spec_table(section))
        print()
    if profiles is not None:
        print(f"{args.profile}'s timings above include pyinstrument's overhead (not comparable).")
        for path in profiles.write(args.profile_dir):
            print(f"profile written to {path}")
    return out


async def _growth(args: argparse.Namespace, uri: str) -> dict[str, Any]:
    sizes = args.growth_sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    peers = _peers(args.peers, ["raw", "pydantic", "odm"])
    print(f"growth: N={','.join(map(str, sizes))}, repeat={repeat}, peers={','.join(peers)}")
    started = time.perf_counter()
    section = await run_growth(uri, args.db, sizes, peers, repeat, quick=args.quick)
    section["elapsed_s"] = round(time.perf_counter() - started, 1)
    print()
    print("cost per unit at each N (ratio to raw PyMongo async in the same run):")
    print(format_growth_table(section))
    print()
    return section


def _write_json(path: Path, out: dict[str, Any]) -> None:
    merged: dict[str, Any] = {}
    if path.exists():
        try:
            merged = json.loads(path.read_text())
        except (OSError, ValueError):
            merged = {}
    merged.update(out)
    merged["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, get a server, run, print and write the results."""
    args = build_parser().parse_args(argv)
    if args.plot_from is not None:
        if args.plot is None:
            raise SystemExit("--plot-from needs --plot FILE.png")
        print(f"chart written to {draw(json.loads(args.plot_from.read_text()), args.plot)}")
        return 0
    if not args.uri:
        print("starting a local mongod (odm.server.LocalServer) ...")
    out = on_server(args.uri, lambda uri: asyncio.run(_run(args, uri)))
    _write_json(args.json, out)
    print(f"results written to {args.json}")
    if args.plot is not None:
        print(f"chart written to {draw(json.loads(args.json.read_text()), args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
