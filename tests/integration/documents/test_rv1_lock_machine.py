"""A hypothesis state machine over several objects of one document under the optimistic lock.

The user holds a few objects of one locked document: loaded with ``get()``, made with
``model_copy()``, loaded inside a block. It saves, deletes and refreshes them, sets their
version by hand (as a client's request body would, also after a save in a block that then
aborts), and saves inside blocks that commit, raise or whose commit fails with a transient
error. The model of truth: a write by instance succeeds iff the object's version is the one it
was loaded with (nobody set it by hand) and that is the stored version; otherwise it raises
``StaleDocument``. After every step each object's snapshot holds the version it was loaded
with, its version field what odm or the user put there, an object at the stored version agrees
with the database, and the stored values are those of the last write that succeeded.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from pydantic import Field
from pymongo.errors import PyMongoError

import odm
from odm import StaleDocument, executor
from odm.contrib.pytest import MonitoredDatabase
from odm.models.tracking import get_snapshot
from tests.properties import connected_runner, server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the checks are odm's, not the driver's


class Rv1LockInvoice(odm.Document):
    number: str = "a"
    total: int = 0

    class Meta:
        collection = "rv1_lock_invoices"
        optimistic_lock = True


class Rv1LockTicket(odm.Document):
    number: str = "a"
    total: int = 0
    revision: int = Field(default=0, alias="rev")

    class Meta:
        collection = "rv1_lock_tickets"
        optimistic_lock = True
        version_field = "revision"


class Rv1LockAnimal(odm.Document):
    number: str = "a"
    total: int = 0

    class Meta:
        collection = "rv1_lock_animals"
        optimistic_lock = True
        polymorphic = True


class Rv1LockCat(Rv1LockAnimal):
    lives: int = 9


#: (the class queried, the class stored): a polymorphic subclass is loaded through its root.
FAMILIES: list[tuple[type[odm.Document], type[odm.Document]]] = [
    (Rv1LockInvoice, Rv1LockInvoice),
    (Rv1LockTicket, Rv1LockTicket),
    (Rv1LockAnimal, Rv1LockCat),
]


class Abort(Exception):
    """The block's own failure."""


@dataclass
class Held:
    """What the model of truth knows of one object the user holds."""

    document: Any
    loaded: int | None  # the version its snapshot holds (None: not stored, after a delete)
    version: int  # what its version field holds


async def _fail_next_commit(db: Any, *, armed: bool = True) -> None:
    """Make the next ``commitTransaction`` fail with a transient error, or (``armed=False``)
    no longer. Sent outside any block: inside one the driver would send it in the
    transaction."""
    data = {
        "failCommands": ["commitTransaction"],
        "errorCode": 112,
        "errorLabels": ["TransientTransactionError"],
    }
    mode = {"times": 1} if armed else "off"
    command = {"configureFailPoint": "failCommand", "mode": mode, "data": data}
    await asyncio.create_task(db.client.admin.command(command), context=contextvars.Context())


class LockMachine(RuleBasedStateMachine):
    """Objects of one locked document, and the version and total it holds."""

    given: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Held] = []
        self.stored: int | None = None  # the stored version (None: not stored)
        self.total = 0
        self.totals = itertools.count(1)
        self.queried: type[Any] = Rv1LockInvoice
        self.made: type[Any] = Rv1LockInvoice
        self.ident: Any = None

    def run(self, coroutine: Any) -> Any:
        return self.given["runner"].run(coroutine)

    @property
    def key(self) -> str:
        meta = self.queried._meta
        return str(meta.db_key(meta.version_field))

    @property
    def name(self) -> str:
        return str(self.queried._meta.version_field)

    # -- setup -------------------------------------------------------------------------------

    @initialize(family=st.sampled_from(FAMILIES), old=st.booleans())
    def store_the_document(self, family: tuple[type[Any], type[Any]], old: bool) -> None:
        """Store the document: through odm, or as a document stored before the lock (no
        version: it loads as 0)."""
        self.queried, self.made = family
        self.run(self._store(old))

    async def _store(self, old: bool) -> None:
        for queried, _ in FAMILIES:
            await executor.collection(queried).delete_many({})
        document = await self.made(number="a").insert()
        self.ident = document.id
        self.stored = getattr(document, self.name)
        if old:
            await executor.collection(self.queried).update_one(
                {"_id": self.ident}, {"$unset": {self.key: ""}}
            )
            self.stored = None
        await self._load()

    async def _load(self) -> None:
        document = await self.queried.objects.get(id=self.ident)
        self.held.append(Held(document, self.stored or 0, self.stored or 0))
        # A document stored without a version is at version 0 for the model: the snapshot
        # says None, which _snapshot_version reads as 0.
        self.stored = self.stored or 0

    # -- rules -------------------------------------------------------------------------------

    @precondition(lambda self: self.stored is not None and len(self.held) < 4)
    @rule()
    def load(self) -> None:
        self.run(self._load())

    @precondition(lambda self: 0 < len(self.held) < 4)
    @rule(data=st.data())
    def copy(self, data: st.DataObject) -> None:
        source = data.draw(st.sampled_from(self.held))
        self.held.append(Held(source.document.model_copy(), source.loaded, source.version))

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), delta=st.sampled_from([0, 1, -1, 50]))
    def set_version(self, data: st.DataObject, delta: int) -> None:
        """A client's version copied on the object (``delta``: how far from the loaded one)."""
        held = data.draw(st.sampled_from(self.held))
        held.version = (held.loaded or 0) + delta
        setattr(held.document, self.name, held.version)

    def _save_outcome(self, held: Held) -> str:
        """What a save of ``held`` must do: "insert", "write" or "stale"."""
        if held.loaded is None:
            return "insert" if self.stored is None else "duplicate"
        if held.version != held.loaded or held.loaded != self.stored:
            return "stale"
        return "write"

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def save(self, data: st.DataObject) -> None:
        held = data.draw(st.sampled_from(self.held))
        self.run(self._save(held, ending=None))

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), ending=st.sampled_from(["commit", "raise", "transient_commit"]))
    def save_in_block(self, data: st.DataObject, ending: str) -> None:
        held = data.draw(st.sampled_from(self.held))
        self.run(self._save(held, ending=ending))

    async def _save(self, held: Held, ending: str | None) -> None:
        outcome = self._save_outcome(held)
        total = next(self.totals)
        held.document.total = total
        try:
            await self._write(held.document, ending)
        except StaleDocument:
            assert outcome == "stale", outcome
            return
        except odm.DuplicateKey:
            assert outcome == "duplicate", outcome
            return
        except (Abort, PyMongoError):
            assert outcome in ("write", "insert"), outcome
            assert ending in ("raise", "transient_commit"), ending
            return
        assert outcome in ("write", "insert"), outcome
        assert ending in (None, "commit"), ending
        version = getattr(held.document, self.name)
        if outcome == "write":
            assert version == held.loaded + 1  # type: ignore[operator]
        held.loaded = held.version = self.stored = version
        self.total = total

    async def _write(self, document: Any, ending: str | None) -> None:
        """Save ``document``, outside a block (``ending`` None) or in one ending so."""
        if ending is None:
            await document.save()
            return
        if ending == "transient_commit":
            await _fail_next_commit(self.given["database"])
        try:
            async with odm.transaction():
                await document.save()
                if ending == "raise":
                    raise Abort
        finally:
            if ending == "transient_commit":  # not sent when the save was refused
                await _fail_next_commit(self.given["database"], armed=False)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), delta=st.sampled_from([1, 50]))
    def set_version_after_a_save_in_an_aborted_block(
        self, data: st.DataObject, delta: int
    ) -> None:
        """Save in a block, then copy a client's version on the object, and abort: the hand-set
        version is the user's, as the block's other changes are, and stays (an abort used to
        put back the version from before the block over it)."""
        held = data.draw(st.sampled_from(self.held))
        self.run(self._set_version_after_an_aborted_save(held, delta))

    async def _set_version_after_an_aborted_save(self, held: Held, delta: int) -> None:
        outcome = self._save_outcome(held)
        held.document.total = next(self.totals)
        try:
            async with odm.transaction():
                await held.document.save()
                held.version = getattr(held.document, self.name) + delta
                setattr(held.document, self.name, held.version)
                raise Abort
        except StaleDocument:
            assert outcome == "stale", outcome
        except odm.DuplicateKey:
            assert outcome == "duplicate", outcome
        except Abort:
            assert outcome in ("write", "insert"), outcome

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        held = data.draw(st.sampled_from(self.held))
        self.run(self._delete(held))

    async def _delete(self, held: Held) -> None:
        if held.loaded is None:
            return  # not stored: delete() does nothing, a save() inserts it
        outcome = "stale" if held.version != held.loaded or held.loaded != self.stored else "go"
        try:
            await held.document.delete()
        except StaleDocument:
            assert outcome == "stale"
            return
        assert outcome == "go"
        held.loaded = None
        self.stored = None

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), ending=st.sampled_from(["commit", "raise"]))
    def delete_in_block(self, data: st.DataObject, ending: str) -> None:
        held = data.draw(st.sampled_from(self.held))
        self.run(self._delete_in_block(held, ending))

    async def _delete_in_block(self, held: Held, ending: str) -> None:
        if held.loaded is None:
            return
        outcome = "stale" if held.version != held.loaded or held.loaded != self.stored else "go"
        try:
            async with odm.transaction():
                await held.document.delete()
                if ending == "raise":
                    raise Abort
        except StaleDocument:
            assert outcome == "stale"
            return
        except Abort:
            assert outcome == "go"
            return
        assert outcome == "go"
        held.loaded = None
        self.stored = None

    @precondition(lambda self: self.stored is not None and len(self.held) < 4)
    @rule(delta=st.sampled_from([0, 0, -1, 1]))
    def update_or_create_at_a_version(self, delta: int) -> None:
        """The compare-and-set of a request body: ``update_or_create({version: seen, ...})``;
        the user keeps the object."""
        self.run(self._update_or_create(delta))

    async def _update_or_create(self, delta: int) -> None:
        assert self.stored is not None
        seen, total = self.stored + delta, next(self.totals)
        defaults = {self.name: seen, "total": total}
        try:
            document, created = await self.queried.objects.update_or_create(
                defaults, id=self.ident
            )
        except StaleDocument:
            assert delta != 0
            return
        assert delta == 0 and not created
        self.stored = self.stored + 1
        self.total = total
        self.held.append(Held(document, self.stored, self.stored))

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def refresh(self, data: st.DataObject) -> None:
        held = data.draw(st.sampled_from(self.held))
        self.run(self._refresh(held))

    async def _refresh(self, held: Held) -> None:
        try:
            await held.document.refresh()
        except self.queried.DoesNotExist:
            assert self.stored is None
            return
        assert self.stored is not None
        held.loaded = held.version = self.stored

    @precondition(lambda self: self.stored is not None and len(self.held) < 4)
    @rule(delta=st.sampled_from([0, 0, 1]), ending=st.sampled_from(["commit", "raise"]))
    def change_in_block(self, delta: int, ending: str) -> None:
        """Load the document in a block, change it (and maybe its version), let the flush
        write it at the block's end; the user keeps the object."""
        self.run(self._change_in_block(delta, ending))

    async def _change_in_block(self, delta: int, ending: str) -> None:
        total = next(self.totals)
        loaded = self.stored
        assert loaded is not None
        found: list[Any] = []
        try:
            async with odm.transaction():
                document = await self.queried.objects.get(id=self.ident)
                found.append(document)
                document.total = total
                setattr(document, self.name, loaded + delta)
                if ending == "raise":
                    raise Abort
        except StaleDocument:
            assert delta != 0
        except Abort:
            pass
        else:
            assert delta == 0
            self.stored = loaded + 1
            self.total = total
        (document,) = found
        held = Held(document, loaded, loaded + delta)
        if self.stored != loaded:
            held.loaded = held.version = self.stored
        self.held.append(held)

    # -- the truth ---------------------------------------------------------------------------

    @invariant()
    def every_object_tells_its_version(self) -> None:
        for held in self.held:
            snapshot = get_snapshot(held.document)
            if held.loaded is None:
                assert snapshot is None
                continue
            assert snapshot is not None
            assert (snapshot.get(self.key) or 0) == held.loaded, (snapshot, held)
            assert getattr(held.document, self.name) == held.version, held

    @invariant()
    def the_database_holds_the_last_write(self) -> None:
        self.run(self._check_stored())

    async def _check_stored(self) -> None:
        raw = await executor.collection(self.queried).find_one({"_id": self.ident})
        if self.stored is None:
            assert raw is None
            return
        assert raw is not None and (raw.get(self.key) or 0) == self.stored
        assert raw["total"] == self.total, (raw, self.total)
        for held in self.held:
            if held.loaded == self.stored and held.version == held.loaded:
                assert get_snapshot(held.document) == raw


@pytest.fixture
def lock_runner(odm_uri: str, odm_driver: str) -> Iterator[asyncio.Runner]:
    """A loop of its own (hypothesis drives sync rules) with the ODM connected in it."""
    with connected_runner(odm_uri, "rv1_lock_sm", driver=odm_driver) as runner:
        yield runner


def test_the_lock_state_machine(lock_runner: asyncio.Runner) -> None:
    LockMachine.given.update(runner=lock_runner, database=odm.get_database())
    machine = LockMachine.TestCase
    machine.settings = server_property(max_examples=20, stateful_step_count=8)
    machine().runTest()


async def test_an_old_document_set_by_hand_is_named_at_version_0(
    monitored: MonitoredDatabase,
) -> None:
    """A document stored before the lock loads at version 0: the refusal said "loaded at
    version None"."""
    collection = monitored.database[Rv1LockTicket._meta.collection]
    await collection.insert_one({"number": "old"})
    document = await Rv1LockTicket.objects.get()
    document.revision = 5
    with pytest.raises(
        StaleDocument, match=r"its revision is 5, but it was loaded at version 0 \(stored "
        r"without one\); "
    ):
        await document.delete()
    assert await collection.count_documents({}) == 1
    await document.refresh()
    await document.delete()  # at the version it loads at: deleted
    assert await collection.count_documents({}) == 0
