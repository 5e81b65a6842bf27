"""The cyclic GC around batch work: paused inside, a long batch's objects handed to the oldest
generation at the end (without a collection walking them), the collector back on, frozen
objects of the program left frozen, cycles still collected."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import weakref
from collections.abc import Iterator

import bson
import pytest

from odm.document import Document, Embedded
from odm.gcpause import (
    MIN_BATCH,
    PROMOTE_BATCH,
    PROMOTION_AVAILABLE,
    paused_gc,
    promotes_batches,
)
from odm.models.loading import load_documents


class Size(Embedded):
    width: float
    unit: str


class Crate(Document):
    label: str
    tags: list[str]
    size: Size


def _raws(count: int) -> list[dict[str, object]]:
    return [
        {
            "_id": bson.ObjectId(),
            "label": f"crate {n}",
            "tags": ["a", "b"],
            "size": {"width": float(n), "unit": "cm"},
        }
        for n in range(count)
    ]


#: The tests of the promotion itself, where it happens (not on 3.14+ or the free-threaded
#: build, nor in a test process that froze objects of its own).
promotes = pytest.mark.skipif(
    not promotes_batches(), reason="long batches are not promoted on this Python"
)


def _ids_in_generation(generation: int) -> set[int]:
    return {id(obj) for obj in gc.get_objects(generation=generation)}


@pytest.fixture
def collector_on() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    gc.collect()
    try:
        yield
    finally:
        if not was_enabled:
            gc.disable()


@promotes
@pytest.mark.usefixtures("collector_on")
def test_a_long_loaded_batch_ends_in_the_oldest_generation_with_the_collector_back_on() -> None:
    documents = load_documents(Crate, _raws(PROMOTE_BATCH))
    assert gc.isenabled()
    oldest = _ids_in_generation(2)
    # The documents, their embedded models and their lists: none left to a young collection.
    for document in documents:
        assert id(document) in oldest
        assert id(document.size) in oldest
        assert id(document.tags) in oldest
    young = _ids_in_generation(0) | _ids_in_generation(1)
    assert not young & {id(document) for document in documents}


@pytest.mark.usefixtures("collector_on")
def test_a_short_batch_is_left_to_the_collector() -> None:
    documents = load_documents(Crate, _raws(MIN_BATCH // 4))
    assert gc.isenabled()
    # Not paused, not promoted: the instances are where any new object is (no collection
    # was run in between: the batch allocates fewer objects than the young threshold).
    assert gc.get_threshold()[0] > MIN_BATCH // 4 * 8
    young = _ids_in_generation(0)
    assert all(id(document) in young for document in documents)


@pytest.mark.usefixtures("collector_on")
def test_a_page_of_documents_is_paused_for_but_not_promoted() -> None:
    with paused_gc(PROMOTE_BATCH - 1):
        assert not gc.isenabled()
        made = [[n] for n in range(10)]
    assert gc.isenabled()
    assert id(made) in _ids_in_generation(0)


@pytest.mark.usefixtures("collector_on")
def test_a_failed_batch_promotes_nothing() -> None:
    with pytest.raises(RuntimeError), paused_gc(PROMOTE_BATCH):
        assert not gc.isenabled()
        made = [[n] for n in range(10)]
        raise RuntimeError("the batch failed")
    assert gc.isenabled()
    assert id(made) in _ids_in_generation(0)


@promotes
@pytest.mark.usefixtures("collector_on")
def test_a_cycle_made_during_a_batch_is_still_collected() -> None:
    class Node:
        other: object = None

    with paused_gc(PROMOTE_BATCH):
        first, second = Node(), Node()
        first.other, second.other = second, first
        marker = id(first)
    del first, second
    assert marker in _ids_in_generation(2)  # promoted with the batch ...
    assert gc.collect() >= 2  # ... and freed by the next full collection
    assert marker not in {id(obj) for obj in gc.get_objects()}


def test_an_inner_pause_leaves_the_outer_one_in_charge() -> None:
    gc.enable()
    with paused_gc(MIN_BATCH):
        with paused_gc(MIN_BATCH):
            pass
        assert not gc.isenabled()  # the inner block found it paused: left it alone
    assert gc.isenabled()


def test_a_program_that_froze_objects_keeps_them_frozen() -> None:
    # In a process of its own, which freezes objects after a first batch (once some are
    # frozen, the answer is kept for the process).
    script = textwrap.dedent(
        """
        import gc
        from odm.gcpause import PROMOTE_BATCH, paused_gc

        with paused_gc(PROMOTE_BATCH):
            first = [[n] for n in range(1000)]
        kept = [[n] for n in range(1000)]
        gc.freeze()
        frozen = gc.get_freeze_count()
        assert frozen >= 1000, frozen
        with paused_gc(PROMOTE_BATCH):
            made = [[n] for n in range(1000)]
        assert gc.isenabled()
        assert gc.get_freeze_count() == frozen, (gc.get_freeze_count(), frozen)
        assert id(made) not in {id(o) for o in gc.get_objects(generation=2)}
        print("ok")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def _run(script: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_what_the_interpreter_freezes_at_start_up_is_immortal() -> None:
    # The premise of promoting on CPython 3.12 (which starts with objects of its own frozen):
    # handed to the oldest generation, an immortal object can never be freed by a collection.
    # Nothing else may be frozen in a fresh interpreter.
    out = _run(
        """
        import gc
        frozen = gc.get_freeze_count()
        seen = {id(o) for o in gc.get_objects()}
        gc.unfreeze()
        revealed = [o for o in gc.get_objects() if id(o) not in seen and o is not seen]
        mortal = [o for o in revealed if sys.getrefcount(o) < 2**32 - 1]
        print(frozen, len(mortal))
        """.replace("import gc", "import gc, sys")
    )
    frozen, mortal = map(int, out.split())
    assert mortal == 0, out
    assert frozen <= 1000


@pytest.mark.skipif(not PROMOTION_AVAILABLE, reason="no promotion on this Python")
def test_a_fresh_process_promotes_long_batches_whatever_the_interpreter_froze() -> None:
    # CPython 3.12 keeps a few hundred objects of its own frozen from start-up: they do not
    # make it a program that freezes objects, and the first promotion takes them along.
    out = _run(
        """
        import gc
        from odm.gcpause import PROMOTE_BATCH, paused_gc, promotes_batches

        at_start = gc.get_freeze_count()
        for _ in range(2):  # 3.12's full collections freeze its own objects again
            assert promotes_batches()
            with paused_gc(PROMOTE_BATCH):
                made = [[n] for n in range(1000)]
            assert id(made) in {id(o) for o in gc.get_objects(generation=2)}
            gc.collect()
            assert gc.get_freeze_count() <= at_start, (gc.get_freeze_count(), at_start)
        print("ok")
        """
    )
    assert out == "ok"


@pytest.mark.usefixtures("collector_on")
def test_cycles_made_between_long_batches_are_mostly_left_to_young_collections() -> None:
    # A stream: batches of documents, and between them the program's own loop body, which
    # here leaves a reference cycle behind per row. Only what is still young when a batch ends
    # is promoted with it: less than one young generation, which a young collection empties
    # every `threshold` allocations of tracked objects (the gen0 threshold: 700 up to CPython
    # 3.12, 2000 on 3.13), here 3 per cycle (two nodes and a weak reference). Besides those,
    # each young collection keeps the cycle the loop still holds, in the middle generation
    # until its next collection (every `middle` young ones), so it may be promoted too. The
    # loop body makes as many cycles per batch as 6 young collections take, on every version,
    # so that the same share of them is left to young collections.
    class Node:
        __slots__ = ("__weakref__", "other")
        other: Node

    threshold, middle, _ = gc.get_threshold()
    batches, per_batch = 20, 2 * threshold
    alive: list[weakref.ref[Node]] = []
    made = 0
    for _batch in range(batches):
        with paused_gc(PROMOTE_BATCH):
            rows = [[n] for n in range(PROMOTE_BATCH)]
        for _row in range(per_batch):
            first, second = Node(), Node()
            first.other, second.other = second, first
            alive.append(weakref.ref(first))
            made += 1
        del first, second, rows
    still_there = sum(1 for ref in alive if ref() is not None)
    assert made == batches * per_batch
    # What each batch promoted waits for a full collection; so do the cycles made since the
    # last young collection, at the end. Promoting after every document would leave all of
    # them until a full collection.
    young_at_most = threshold // 3 + 1 + middle
    assert still_there <= (batches + 1) * young_at_most, (still_there, threshold)
    assert still_there < made // 5, (still_there, made)  # the bound above: 1/6 and a little
