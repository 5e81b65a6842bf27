"""The MongoDB ODM Performance Benchmark: datasets, task metadata and the task interface.

The spec is ``source/benchmarking/odm-benchmarking.md`` in mongodb/specifications (v1.0); its
datasets are in ``../shared/bench-data/odm-spec/`` (``$ODM_SPEC_DATA`` overrides the path).
An implementation module provides ``SPEC_TASKS: dict[str, type[SpecTask]]`` plus
``spec_setup(sctx)`` / ``spec_teardown(sctx)``; :mod:`bench.spec` times the tasks.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bson import ObjectId, json_util

#: Bytes of the ``updated_value`` string the spec scores update tasks by.
UPDATED_VALUE_BYTES = 13


@dataclass(frozen=True)
class SpecTaskInfo:
    """A spec task: its dataset file (for the byte size) and whether it scores 13 B per op."""

    name: str
    dataset: str
    update: bool = False
    large: bool = False  # uses ``large_ops`` (LARGE_DOC is 3.2 MB) instead of ``ops``
    title: str = ""


TASKS = [
    SpecTaskInfo("small_create", "small_doc.json", title="flat small: create"),
    SpecTaskInfo("small_update", "small_doc.json", update=True, title="flat small: update"),
    SpecTaskInfo("small_find_by_id", "small_doc.json", title="flat small: find by _id"),
    SpecTaskInfo(
        "small_find_foreign_key", "small_doc.json", title="flat small: find by foreign key"
    ),
    SpecTaskInfo("large_create", "large_doc.json", large=True, title="flat large: create"),
    SpecTaskInfo(
        "large_update", "large_doc.json", update=True, large=True, title="flat large: update"
    ),
    SpecTaskInfo("nested_create", "large_doc_nested.json", title="nested: create"),
    SpecTaskInfo(
        "nested_update", "large_doc_nested.json", update=True, title="nested: update nested field"
    ),
    SpecTaskInfo("nested_find", "large_doc_nested.json", title="nested: find by nested field"),
    SpecTaskInfo(
        "nested_find_array", "large_doc_nested.json", title="nested: find by nested array field"
    ),
]
TASK_NAMES = [t.name for t in TASKS]


def data_dir() -> Path:
    """Where the spec datasets are: ``$ODM_SPEC_DATA`` or ``../shared/bench-data/odm-spec``."""
    configured = os.environ.get("ODM_SPEC_DATA")
    if configured:
        return Path(configured)
    here = Path(__file__).resolve().parent
    for candidate in (
        here / "data" / "odm-spec",
        here.parent.parent / "shared" / "bench-data" / "odm-spec",
        Path("/work/shared/bench-data/odm-spec"),
    ):
        if (candidate / "small_doc.json").exists():
            return candidate
    raise FileNotFoundError(
        "the ODM spec datasets were not found: set $ODM_SPEC_DATA to the directory holding "
        "small_doc.json, large_doc.json and large_doc_nested.json"
    )


def load_dataset(name: str) -> dict[str, Any]:
    """Load one dataset file (Extended JSON: large_doc's image is ``$binary``)."""
    text = (data_dir() / name).read_text()
    doc: dict[str, Any] = json_util.loads(text)
    return doc


def dataset_bytes(name: str) -> int:
    """The size of a dataset file, which the spec scores by."""
    return (data_dir() / name).stat().st_size


def task_bytes_per_op(info: SpecTaskInfo) -> int:
    """Bytes one operation of ``info`` counts for."""
    return UPDATED_VALUE_BYTES if info.update else dataset_bytes(info.dataset)


def nested_with_ids(nested: dict[str, Any]) -> dict[str, Any]:
    """A copy of LARGE_DOC_NESTED with a fresh ``unique_id`` ObjectId in each embedded document
    (each item of ``embedded_str_doc_array`` too), as the spec's model objects have."""
    out: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, list):
            out[key] = [dict(item, unique_id=ObjectId()) for item in value]
        else:
            out[key] = dict(value, unique_id=ObjectId())
    return out


@dataclass
class SpecContext:
    """What a spec task may use: the datasets (plain dicts), the op counts, a scratch ``state``."""

    uri: str
    db_name: str
    ops: int
    large_ops: int
    small: dict[str, Any]
    large: dict[str, Any]
    nested: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)

    def fresh(self, which: str) -> dict[str, Any]:
        """A deep copy of one dataset (``small``, ``large`` or ``nested``)."""
        return copy.deepcopy(getattr(self, which))


class SpecTask:
    """One spec task of one implementation; the phases of the spec, all optional but ``do``.

    The harness creates one instance per task and calls ``setup`` once, then per iteration
    ``before``, ``do`` (timed) and ``after``, then ``teardown`` once.
    """

    async def setup(self, sctx: SpecContext) -> None:
        """Once per task, untimed."""

    async def before(self, sctx: SpecContext) -> None:
        """Before each iteration, untimed."""

    async def do(self, sctx: SpecContext) -> None:
        """The timed operation: ``sctx.ops`` (or ``sctx.large_ops``) operations."""
        raise NotImplementedError

    async def after(self, sctx: SpecContext) -> None:
        """After each iteration, untimed."""

    async def teardown(self, sctx: SpecContext) -> None:
        """Once per task, untimed."""
