"""Figures of the reliability tests, and docs/reliability.md rendered from them.

Each test records its numbers with the ``figures`` fixture (``figures("failover.stepdown",
attempted=..., lost=0)``). At the end of the session they are written to
``tests/reliability/.figures.json`` (git-ignored scratch) and, with
``--odm-write-reliability-page``, when every section of the page was produced by this run and
nothing failed, ``docs/reliability.md`` is rendered from them: the page shows the figures of the
last full run, the date and the machine, never hand-written numbers (the classes of failures
closed are appended from ``static_sections.md``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pymongo
import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
FIGURES_FILE = HERE / ".figures.json"
PAGE = ROOT / "docs" / "reliability.md"

Recorder = Callable[..., None]
_FIGURES: dict[str, dict[str, Any]] = {}
_FAILED: list[str] = []

# The sections the page needs; the page is only rewritten when the run produced all of them.
SECTIONS = (
    "failover.stepdown",
    "failover.sigkill",
    "faults",
    "hostile.compile",
    "hostile.end_to_end",
    "hostile.http",
    "limits.too_large",
    "limits.bulk",
    "limits.deep",
    "limits.http_load",
)


@pytest.fixture
def figures() -> Recorder:
    """Record figures under a section name; later calls add to (or overwrite) its keys."""

    def record(section: str, **numbers: Any) -> None:
        _FIGURES.setdefault(section, {}).update(numbers)
        shown = ", ".join(f"{k}={v}" for k, v in numbers.items())
        print(f"[reliability] {section}: {shown}")

    return record


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember failures of this folder: a failed run does not rewrite the page."""
    if report.failed and "tests/reliability" in report.nodeid.replace(os.sep, "/"):
        _FAILED.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write the figures, and the page when this run produced every section."""
    if not _FIGURES:
        return
    run = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "long": bool(session.config.getoption("--odm-long", default=False)),
    }
    FIGURES_FILE.write_text(json.dumps({"run": run, "figures": _FIGURES}, indent=2, default=str))
    missing = [s for s in SECTIONS if s not in _FIGURES]
    if missing or _FAILED:
        why = f"missing sections {missing}" if missing else f"failures {_FAILED}"
        print(f"\n[reliability] docs/reliability.md left as it was ({why})")
        return
    if not session.config.getoption("--odm-write-reliability-page", default=False):
        # The page is tracked: a test run leaves the work tree as it found it.
        print("\n[reliability] figures in tests/reliability/.figures.json; pass "
              "--odm-write-reliability-page to rewrite docs/reliability.md from them")
        return
    PAGE.write_text(render(run, _FIGURES))
    print(f"\n[reliability] wrote {PAGE.relative_to(ROOT)}")


def machine() -> str:
    """A one-line description of where the figures come from."""
    cpus = os.cpu_count() or 0
    return (
        f"{platform.system()} {platform.machine()}, {cpus} CPU(s), Python "
        f"{sys.version_info.major}.{sys.version_info.minor}, PyMongo {pymongo.version}"
    )


def _table(rows: list[tuple[str, Any]]) -> str:
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def _load_rows(f: dict[str, Any]) -> list[tuple[str, Any]]:
    keys = [
        ("load", "concurrent workers"),
        ("duration_s", "load duration (s)"),
        ("failover_s", "time without a writable primary (s)"),
        ("attempted", "writes attempted"),
        ("acknowledged", "writes acknowledged"),
        ("retried", "writes retried (driver retries + transaction re-runs)"),
        ("unknown", "writes that raised (outcome unknown, not counted as lost)"),
        ("lost", "acknowledged writes missing afterwards"),
        ("duplicated", "writes applied twice"),
        ("transfers_acknowledged", "transfers acknowledged"),
        ("total_before", "money total before"),
        ("total_after", "money total after"),
    ]
    return [(label, f[key]) for key, label in keys if key in f]


def render(run: dict[str, Any], figs: dict[str, dict[str, Any]]) -> str:
    """The Markdown page (tables and text blocks only: the docs runner executes python blocks)."""
    step, kill = figs["failover.stepdown"], figs["failover.sigkill"]
    faults = figs["faults"]
    comp, e2e, http = figs["hostile.compile"], figs["hostile.end_to_end"], figs["hostile.http"]
    big, bulk, deep, load = (
        figs["limits.too_large"], figs["limits.bulk"], figs["limits.deep"],
        figs["limits.http_load"],
    )
    inputs = comp["examples"] + e2e["examples"] + http["examples"]
    fault_rows = [(name, outcome) for name, outcome in sorted(faults.items())]
    variant = "long variant (`--odm-long`)" if run["long"] else "default CI variant"
    return f"""# Reliability

What the ODM guarantees when the database fails over, misbehaves or is fed hostile input, and
the figures that prove it. **Every number on this page is written by the test suite itself**
(`tests/reliability/`, rendered by its `conftest.py` at the end of a full run): nothing here is
typed by hand. Last run: {run["date"]}, {variant}, on {run["machine"]}. Run it yourself:

```text
pytest tests/reliability              # CI size, about 2-3 minutes on 2 cores
pytest tests/reliability --odm-long   # bigger loads, 30 s of HTTP load, more fuzz examples
pytest tests/reliability --odm-write-reliability-page   # rewrite this page from the run
```

## The guarantee

- A write the ODM **acknowledged** (the call returned) is in the database afterwards, once.
- A write that **raised** may or may not have been applied: the tests count it as *unknown*,
  never as lost. Retry it only if it is idempotent, or check first (see below).
- `insert()`, `save()` (one `update_one`), `delete()` and `bulk_create()` are retryable writes:
  the driver retries them once after a failover or a network error (as many times as fit in
  `timeout=` when one is given) and the server applies them exactly once.
- `QuerySet.update()` / `.delete()` on one id (`filter(id=x)`) send `update_one` /
  `delete_one`: retryable writes too, applied once.
- Other `QuerySet.update()` / `.delete()` send `update_many` / `delete_many`, which MongoDB does
  **not** retry: after a failover they raise (a `pymongo.errors.AutoReconnect` /
  `NotPrimaryError`). Run them inside `@odm.atomic` when they must survive a failover; the
  transaction is re-run on `TransientTransactionError`.
- `@odm.atomic` re-runs the whole body on `TransientTransactionError` and retries only the
  commit on `UnknownTransactionCommitResult`, so a transaction is applied exactly once or not
  at all. Use `w="majority"` (the URI's `w=majority`) when an acknowledged write must survive
  the loss of the primary: a `w=1` write can be rolled back by a failover.
- After `save()`, `insert()`, `delete()` or `bulk_create()` raised an error of unknown
  outcome (a timeout, a cancellation, a lost connection, an unconfirmed write concern), the
  document does not trust its snapshot: its next `save()` or `delete()` reads the stored
  document first, so a list append that did run is not sent a second time
  (docs/documents.md, "A write cut off").

## Replica-set failover under load

A 3-member replica set on 127.0.0.1 (`odm.server.LocalServer(members=3,
equal_priorities=True, election_timeout_ms=2000)`: no member takes the primary back after a
failover, and a dead primary is noticed within 2 s instead of 10; `w=majority`, retryable
writes on). Concurrent workers run inserts (unique keys), `save()` of changed fields
(a `$push` of an operation id: a double apply would show as a duplicate), `F()` updates
(`filter(id=...).update(n=F("n") + 1, ops=F("ops").push(op))`, counter and log in one update)
and `@odm.atomic` transfers between accounts; the primary is stepped down
(`replSetStepDown`, `force`) in one run and SIGKILLed in the other. Afterwards every
acknowledged write is checked to be present exactly once, every counter equals the length of its
duplicate-free log, and the sum of the balances is unchanged and equals what the stored transfer
records explain.

### Step-down

{_table(_load_rows(step))}

### SIGKILL of the primary

{_table(_load_rows(kill))}

## Fault injection

With the `failCommand` fail point of a single-node replica set (each fault switched off after its
test). Every fault ends in a retried success applied exactly once, or a typed error with nothing
written.

{_table(fault_rows)}

## Hostile input

{inputs:,} generated values (nested dicts and lists, `$` keys, dotted keys, huge strings, NUL
bytes, regex metacharacters, wrong types) went into `filter`, `get`, `update`, `Model(...)` and
the HTTP endpoints of the example shop. The commands the server received were recorded with a
PyMongo `CommandListener`: no user-supplied value ever appeared as an operator or a field path,
and every failure was a typed error (`odm.QueryError`, pydantic's `ValidationError`, ...) or a
4xx answer, except the known gaps counted below (each has a strict-xfail test that turns green
when fixed): values BSON cannot encode (a NUL byte in a free-form dict key, an int beyond 64 bits)
pass validation and fail in the encoder (nothing is sent), and an invalid pattern given to the
`regex` lookup is refused by the server, both with untyped errors.

{_table([
    ("values compiled without I/O (filter, get, exclude, update)", f"{comp['examples']:,}"),
    ("  of which refused with a typed error", f"{comp['refused']:,}"),
    ("values run against the server (filter, get, update, Model + insert)",
     f"{e2e['examples']:,}"),
    ("  commands recorded and checked", f"{e2e['commands']:,}"),
    ("HTTP requests with hostile bodies, ids and parameters", f"{http['examples']:,}"),
    ("  answered 4xx", f"{http['4xx']:,}"),
    ("  answered 5xx", http["5xx"]),
    ("  answered 500 by the known BSON-encoding gap", http.get("known_bug_500", 0)),
    ("untyped errors of the known gaps (end to end)", e2e.get("untyped_errors", 0)),
    ("operators or field paths from user input", comp["injections"] + e2e["injections"]
     + http["injections"]),
])}

### Classes of holes closed

Each class below was found by attacking the ODM as a request would, and is closed for the
whole class, with a regression test (in `tests/integration/querysets/` unless said).

- **A body expanded into keyword arguments binds a parameter of the method** (`_connector` and
  `_negated` of `Q`, as in Django's CVE-2025-64459). No public method that takes lookups or
  field values as `**kwargs` (`filter`, `exclude`, `get`, `Q`, `update`, `annotate`,
  `aggregate`, `get_or_create`, `update_or_create`, `Query.add_filter` / `add_exclude`) has
  another keyword parameter a body can bind: every key is a lookup, an unknown one a
  `QueryError`. A `Q`'s connector and negation are set only by `&`, `|` and `~`;
  `update_or_create` takes its defaults positionally (its `defaults=` is the lookup on a field
  of that name); `get_or_create`'s `defaults=` (Django's keyword) only fills a new document,
  never the query nor a stored document.
  `test_qs_body_kwargs.py` tries every parameter name of every public method (collected by
  introspection); `test_hostile_input.py::test_http_bodies_expanded_as_lookups` does it over
  HTTP on the example shop.
- **A value nested past MongoDB's 100 levels** (the server's untyped depth error, a 500; a bare
  `RecursionError` from 1,000 levels). Documents, updates and filter values deeper than
  `odm.nesting.MAX_DEPTH` are refused before anything is sent (`ValidationError` or
  `QueryError` naming the field); chains of one connector in `Q` are flattened (a loop of
  1,000 `|` is one `$or`) and `Q` objects nested deeper than 40 are refused;
  `odm.contrib.aiohttp.json_body` turns the JSON parser's `RecursionError` into a 400, and
  so every body it cannot decode (an integer over 4,300 digits, bytes invalid in the charset,
  an unknown `charset=`).
  `test_qs_depth.py`, `test_hostile_input.py::test_http_deep_bodies_are_400`.
- **Untyped errors from body-shaped input.** A field both in the lookup and in `defaults`, or an
  unknown one there, is a `QueryError` naming it; `order_by` on two lists is refused before
  sending, and the server's "parallel arrays" refusal (arrays in free-form fields) is a
  `QueryError` naming the sort. `in_bulk` refuses a string or a mapping as its ids (it read
  them as characters or keys). A list or an object as a field name of `only`, `values`,
  `select_related`... is a `QueryError` naming the method (the per-model caches raised
  "unhashable type"); a collation locale or a search language MongoDB does not know is
  refused before sending (the server's refusal was untyped); a lone surrogate in a string (a
  JSON body may hold `"\\ud800"`, which UTF-8 cannot encode) is a `ValidationError`, not the
  encoder's `UnicodeEncodeError`. `test_qs_typed_errors.py`,
  `test_qs_collation.py`, `test_qs_search.py`, `tests/unit/test_query_percall_fast_paths.py`.
- **A change stream delivering events its filter cannot prove.** A delete event carries the
  document's key and nothing else, so deletes are delivered only when the filter is on `id`
  alone; any other filter, a negative one (`exclude`, `ne`, `nin`) too, is matched on the
  changed document. `test_qs_watch.py`.
- **Server cursors left open when a loop is left early.** `async for` over a queryset closes
  its batches with the iterator, in one step, so the cursor is killed at the event loop's next
  turn without the garbage collector's help; `contextlib.aclosing` closes an iterator kept
  around (docs/querysets.md). `test_qs_cursors.py`.

## Limits

{_table([
    ("document over 16 MB (insert)", big["insert"]),
    ("document over 16 MB (update making it too large)", big["update"]),
    ("  documents written by the refused calls", big["written"]),
    (f"bulk_create of {bulk['documents']:,} documents", f"{bulk['seconds']} s, "
     f"{bulk['stored']:,} stored"),
    ("1,000-deep nesting (Model)", deep["model"]),
    ("1,000-deep nesting (insert of a free-form dict)", deep["insert"]),
    ("1,000-deep nesting (filter value)", deep["filter"]),
    ("1,000 nested Q objects", deep["q"]),
    ("HTTP load: concurrent requests held", load["concurrency"]),
    ("HTTP load: duration (s)", load["duration_s"]),
    ("HTTP load: requests served", f"{load['requests']:,}"),
    ("HTTP load: errors (non-2xx)", load["errors"]),
    ("HTTP load: connections checked out and not returned", load["leaked_connections"]),
    ("HTTP load: transactions started and never finished", load["open_transactions"]),
])}
""" + STATIC_SECTIONS



#: Hand-written sections (no figures: classes of failures closed, with their tests), kept
#: beside this file and appended to the rendered page.
STATIC_SECTIONS = "\n" + (HERE / "static_sections.md").read_text()
