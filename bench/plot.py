"""``--plot FILE.png``: the ratios of a run as one chart (matplotlib, log scale).

Every bar is an implementation's cost relative to raw PyMongo async in the same run, so 1.0 is
raw and lower is better on every row: a workload's median time divided by raw's (for
``stream_memory``, the growth of the resident memory), a spec task's raw MB/s divided by the
implementation's (the time per operation relative to raw; the spec's own ratio is its
inverse). Cells that did not run (``n/a``) have no bar.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["SERIES", "cost_ratios", "draw"]

#: The implementations drawn, in order, with their label and colour.
SERIES: list[tuple[str, str, str]] = [
    ("pydantic", "the floor (raw + plain pydantic)", "#9e9e9e"),
    ("odm", "odm", "#1f77b4"),
    ("motor", "Motor", "#2ca02c"),
    ("beanie", "Beanie", "#ff7f0e"),
    ("odmantic", "ODMantic", "#d62728"),
]

_TICKS = (0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0)
_WIDE_TICKS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)


def cost_ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Return ``{row label: {implementation: cost relative to raw}}`` for the workloads and
    spec tasks of a results file (``bench/results.json``'s shape), in their run order."""
    rows: dict[str, dict[str, float]] = {}
    workloads = results.get("workloads", {}).get("results", {})
    for workload, cells in workloads.items():
        label = "stream_memory (RSS)" if workload == "stream_memory" else workload
        rows[label] = {
            name: float(cell["ratio_to_raw"])
            for name, cell in cells.items()
            if cell.get("status") == "ok" and cell.get("ratio_to_raw")
        }
    tasks = results.get("spec", {}).get("results", {})
    for task, cells in tasks.items():
        raw = cells.get("raw", {})
        if raw.get("status") != "ok":
            continue
        rows[f"spec: {task}"] = {
            name: raw["mb_per_s"] / cell["mb_per_s"]
            for name, cell in cells.items()
            if cell.get("status") == "ok" and cell.get("mb_per_s")
        }
    return rows


def _title(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    return (
        "cost relative to raw PyMongo async in the same run (log scale; lower is better)\n"
        f"{m.get('cpu_model', '?')}, {m.get('cores', '?')} cores; Python {m.get('python', '?')}, "
        f"PyMongo {m.get('pymongo', '?')}, pydantic {m.get('pydantic', '?')}, "
        f"mongod {m.get('mongod', '?')}"
    )


def draw(results: dict[str, Any], path: Path) -> Path:
    """Draw the chart of ``results`` into ``path`` (PNG) and return ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = cost_ratios(results)
    labels = list(rows)
    series = [s for s in SERIES if any(s[0] in cells for cells in rows.values())]
    height = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(11, 0.5 * len(labels) + 1.6))
    for index, (name, legend, colour) in enumerate(series):
        ys = [
            row - 0.4 + height * (index + 0.5)
            for row, label in enumerate(labels)
            if name in rows[label]
        ]
        xs = [rows[label][name] for label in labels if name in rows[label]]
        ax.barh(ys, xs, height=height, color=colour, label=legend)
        if name == "odm":
            for x, y in zip(xs, ys, strict=True):
                ax.annotate(
                    f"{x:.2f}x",
                    (x, y),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7,
                    color=colour,
                )
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    values = [x for cells in rows.values() for x in cells.values()] or [1.0]
    low, high = min(0.8, min(values) * 0.85), max(1.25, max(values) * 1.3)
    ax.set_xlim(low, high)
    dense = high / low < 8  # a narrow range: the fine ticks; else one per decade step
    ticks = [t for t in (_TICKS if dense else _WIDE_TICKS) if low <= t <= high]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("x raw (1.0 = raw PyMongo async)")
    ax.set_title(_title(results), fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
