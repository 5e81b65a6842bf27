"""A hypothesis state machine: after any block, an object's optimistic-lock version is odm's
(the one its snapshot holds) unless the user set it by hand, and a hand-set one stays.

A version an abort keeps because it looks set by hand (:func:`odm.models.tracking.
version_set_by_hand`) makes the next ``save()`` raise ``StaleDocument``: so odm itself must
never leave an object whose version differs from its snapshot's, or a legitimate save after an
aborted, retried or read-back block would be refused. The machine holds objects of a locked
document (one stored before the lock was enabled, without a version, in some examples; an
aliased version field in others), loaded before or inside blocks, copied, refreshed, saved,
deleted and inserted again, with versions set by hand; each block writes another collection
first (so its later loads are read back on abort), and ends in a commit, a raise, a failed
inner block, a transient error that ``atomic`` retries (on the commit or on an update), or a
lost connection (the documents are then read back from the server). After every block each
object tells its version truly, and one whose snapshot is the stored document saves.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

import bson
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from pydantic import Field
from pymongo.errors import PyMongoError

import odm
from odm import drivers, executor
from odm.models.tracking import raw_snapshot, version_set_by_hand
from tests.properties import connected_runner, server_property

pytestmark = pytest.mark.odm_drivers("pymongo")  # the rules are odm's, not the driver's


class RuVersionItem(odm.Document):
    n: int = 0

    class Meta:
        collection = "ru_version_items"
        optimistic_lock = True


class RuVersionTicket(odm.Document):
    n: int = 0
    revision: int = Field(default=0, alias="rev")

    class Meta:
        collection = "ru_version_tickets"
        optimistic_lock = True
        version_field = "revision"


class RuVersionEntry(odm.Document):
    n: int = 0

    class Meta:
        collection = "ru_version_entries"


class Abort(Exception):
    """The block's own failure."""


#: What a step or a block may raise without it being a defect: the lock refusing a stale or
#: hand-set object, a document deleted meanwhile, an object the block's delete told it was gone
#: that could not learn the insert again (its save inserts), a block that can only be rolled
#: back, the injected faults.
EXPECTED = (
    Abort, odm.StaleDocument, odm.DoesNotExist, odm.DuplicateKey, odm.TransactionError,
    PyMongoError,
)

STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            ["load", "save", "refresh", "copy", "hand", "queryset_update", "reinsert", "save"]
        ),
        st.integers(0, 7),
    ),
    min_size=1,
    max_size=5,
)
ENDINGS = st.sampled_from(
    ["commit", "raise", "inner_raise", "transient_commit", "transient_update", "lost_connection"]
)
HAND_SET = itertools.count(7_000)


class LockVersionMachine(RuleBasedStateMachine):
    """The objects the user holds, each with the version it set by hand (``None``: none)."""

    given: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.held: list[Any] = []
        self.hand: dict[int, int] = {}
        self.model: type[Any] = RuVersionItem
        self.ident = bson.ObjectId()

    def run(self, coroutine: Any) -> Any:
        return self.given["runner"].run(coroutine)

    @initialize(model=st.sampled_from([RuVersionItem, RuVersionTicket]), old=st.booleans())
    def store(self, model: type[Any], old: bool) -> None:
        self.model = model
        self.run(self._store(old))

    async def _store(self, old: bool) -> None:
        for model in (RuVersionItem, RuVersionTicket, RuVersionEntry):
            await executor.collection(model).delete_many({})
        await self._fail_points_off()
        raw: dict[str, Any] = {"_id": self.ident, "n": 0}
        if not old:  # else stored before the lock was enabled: loads at version 0
            meta = self.model._meta
            raw[meta.db_key(meta.version_field)] = 0
        await executor.collection(self.model).insert_one(raw)
        self._hold(await self.model.objects.get(id=self.ident))

    # -- the objects ------------------------------------------------------------------------

    def _hold(self, document: Any) -> Any:
        if len(self.held) < 8:
            self.held.append(document)
        return document

    def _pick(self, index: int) -> Any:
        return self.held[index % len(self.held)]

    def _version(self, document: Any) -> Any:
        return document.__dict__[type(document)._meta.version_field]

    def _set_by_hand(self, document: Any) -> None:
        value = next(HAND_SET)
        setattr(document, type(document)._meta.version_field, value)
        self.hand[id(document)] = value

    def _odm_set(self, document: Any) -> None:
        """The version is odm's again (loaded, refreshed, inserted): no longer the user's."""
        self.hand.pop(id(document), None)

    # -- steps ------------------------------------------------------------------------------

    async def _step(self, kind: str, index: int) -> None:
        if kind == "load":
            self._hold(await self.model.objects.get(id=self.ident))
            return
        document = self._pick(index)
        if kind == "save":
            document.n += 1
            await document.save()
        elif kind == "refresh":
            await document.refresh()
            self._odm_set(document)
        elif kind == "copy":
            copy = self._hold(document.model_copy())
            if id(document) in self.hand:
                self.hand[id(copy)] = self.hand[id(document)]
        elif kind == "hand":
            self._set_by_hand(document)
        elif kind == "queryset_update":
            await self.model.objects.filter(id=self.ident).update(n=index)
        else:  # reinsert: the document deleted and inserted again through this object
            await document.delete()
            await document.insert()
            self._odm_set(document)

    async def _body(self, steps: list[tuple[str, int]], ending: str, attempt: list[int]) -> None:
        attempt[0] += 1
        first = attempt[0] == 1
        await RuVersionEntry().insert()  # the block wrote: documents loaded now are read back
        if ending == "transient_update" and first:
            await self._arm({"failCommands": ["update"], "errorCode": 112,
                             "errorLabels": ["TransientTransactionError"]})
        for kind, index in steps:
            await self._step(kind, index)
        if ending == "transient_update" and first:
            await RuVersionEntry.objects.filter(n=-1).update(n=0)  # meets the fail point
        if ending == "inner_raise":
            try:
                async with odm.transaction():
                    await self._step("save", 0)
                    raise Abort
            except Abort:
                pass
        if ending == "transient_commit" and first:
            await self._arm({"failCommands": ["commitTransaction"], "errorCode": 112,
                             "errorLabels": ["TransientTransactionError"]})
        if ending == "lost_connection":
            await self._arm({"failCommands": ["insert"], "closeConnection": True})
            await RuVersionEntry().insert()
        if ending == "raise":
            raise Abort

    @rule(steps=STEPS, ending=ENDINGS)
    def block(self, steps: list[tuple[str, int]], ending: str) -> None:
        self.run(self._block(steps, ending))

    async def _block(self, steps: list[tuple[str, int]], ending: str) -> None:
        attempt = [0]
        try:
            await odm.run_in_transaction(self._body, steps, ending, attempt, retries=2)
        except EXPECTED:
            pass
        finally:
            await self._fail_points_off()

    @rule(index=st.integers(0, 7))
    def save_outside(self, index: int) -> None:
        self.run(self._save_outside(self._pick(index)))

    async def _save_outside(self, document: Any) -> None:
        """A save of an object that knows what is stored passes the lock unless its version
        was set by hand; one set by hand is refused."""
        stored = await executor.collection(self.model).find_one({"_id": self.ident})
        current = stored is not None and raw_snapshot(document) == stored
        document.n += 1
        if id(document) in self.hand and self.hand[id(document)] != self._stored_version(stored):
            with pytest.raises(odm.StaleDocument):
                await document.save()
        elif current:
            await document.save()  # must not be refused
            self._odm_set(document)
        else:
            with contextlib.suppress(odm.StaleDocument, odm.DoesNotExist):
                await document.save()

    def _stored_version(self, stored: dict[str, Any] | None) -> Any:
        if stored is None:
            return None
        meta = self.model._meta
        return stored.get(meta.db_key(meta.version_field), 0)

    @invariant()
    def versions_tell_the_truth(self) -> None:
        for document in self.held:
            hand = self.hand.get(id(document))
            if hand is not None:
                assert self._version(document) == hand, (hand, document)
            elif raw_snapshot(document) is not None:
                assert not version_set_by_hand(document), (document, raw_snapshot(document))

    # -- faults -----------------------------------------------------------------------------

    async def _arm(self, data: dict[str, Any]) -> None:
        """Arm the fail point from a session of its own (inside a block the command would
        go in the block's transaction)."""
        await self._admin({"configureFailPoint": "failCommand", "mode": {"times": 1},
                           "data": data})

    async def _fail_points_off(self) -> None:
        await self._admin({"configureFailPoint": "failCommand", "mode": "off"})

    async def _admin(self, command: dict[str, Any]) -> None:
        client = odm.get_client()
        session = await drivers.start_session(client)
        try:
            await drivers.resolve(client.admin.command(command, session=session))
        finally:
            await drivers.end_session(session)


@pytest.fixture
def machine_runner(odm_uri: str) -> Iterator[asyncio.Runner]:
    """A loop of its own (hypothesis drives sync rules) with the ODM connected in it."""
    with connected_runner(odm_uri, "ru_lock_versions") as runner:
        yield runner


def test_versions_after_blocks_are_odms_or_the_users(machine_runner: asyncio.Runner) -> None:
    LockVersionMachine.given.update(runner=machine_runner)
    machine = LockVersionMachine.TestCase
    machine.settings = server_property(max_examples=15, stateful_step_count=5)
    machine().runTest()
