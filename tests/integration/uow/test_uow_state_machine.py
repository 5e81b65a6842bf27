"""A hypothesis state machine over the unit of work, on the real replica set.

Each rule runs one block of random operations (load, change, save, a changed
``model_copy()`` saved, insert, delete, flush,
a failing inner block, a save cut off by a timeout that the block catches, a queryset
``update()`` or ``delete()`` of the document, a ``refresh()``, a save whose connection is
lost, caught by the block or not) that ends in one
of the ways a block can end: it commits, raises, hits an injected transient error
(``failCommand``: ``atomic`` re-runs it), or its commit fails. Outside blocks it also changes
and saves documents, and has saves cut off by a timeout (the server holds them, then runs or
refuses them). After every rule, every document object the user holds must tell the
truth: its snapshot (for a copy, the later stored form its copies learnt) is the stored
document (``None`` when none is stored), and under the
optimistic lock its version is the stored one. The next ``save()`` of an object then writes
exactly what differs: the machine saves the objects it holds and compares their fields with
the database. The field ``bulk`` is only ever changed on the server, by queryset updates: its
stored value must be what the committed ones made it (the machine replays each block's
writes of it when the block commits), so that a save writing a value of an aborted block, or a
held object that missed an update, is caught. After each run, every session the client
pools can still run a transaction (none is left killed or fenced past the driver's count).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
from collections.abc import Iterator
from typing import Any, ClassVar

import bson
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from pymongo.errors import ConnectionFailure, OperationFailure, PyMongoError
from uow_support import fail_point, fail_points_off

import odm
from odm import F, drivers, executor
from odm.contrib.pytest.queries import capture_queries
from odm.models.copies import known_state
from odm.models.tracking import Unsure, get_snapshot, has_changes
from odm.session import current_unit_of_work
from tests.properties import connected_runner, server_property


class SmPlain(odm.Document):
    n: int = 0
    tags: list[str] = []
    meta: dict[str, int] = {}
    bulk: int = 0

    class Meta:
        collection = "sm_plain"


class SmLocked(odm.Document):
    n: int = 0
    tags: list[str] = []
    meta: dict[str, int] = {}
    bulk: int = 0

    class Meta:
        collection = "sm_locked"
        optimistic_lock = True


MODELS: tuple[type[odm.Document], ...] = (SmPlain, SmLocked)
# One document per model: two collections, and the orders of operations on one document are
# what matters (with more ids, hypothesis seldom draws several on the same one).
IDS = [bson.ObjectId(f"{i:024x}") for i in range(1, 2)]

Key = tuple[int, int]  # (model index, id index)

change = st.one_of(
    st.tuples(st.just("inc"), st.integers(-3, 3)),
    st.tuples(st.just("append"), st.sampled_from(["a", "b", "c"])),
    st.tuples(st.just("pop"), st.just(None)),
    st.tuples(st.just("meta"), st.sampled_from(["x", "y"])),
)
key = st.tuples(st.integers(0, len(MODELS) - 1), st.integers(0, len(IDS) - 1))
# Changes, saves and loads are drawn more often than the rest: the lies hide in their orders
# (a save, then a load of the same document in the block, then an abort).
KINDS = [
    *(["load", "change", "save"] * 3), "insert", "delete", "flush", "inner_fails", "cut_off",
    "bulk_update", "bulk_update", "bulk_delete", "refresh", "lost", "copy_save",
]
operation = st.tuples(st.sampled_from(KINDS), key, change)
ENDINGS = ["commit", "raise", "transient_body", "transient_commit", "commit_fails"]


class Abort(Exception):
    """The block's own failure."""


def apply_change(document: Any, how: tuple[str, Any]) -> None:
    kind, value = how
    if kind == "inc":
        document.n += value
    elif kind == "append":
        document.tags.append(value)
    elif kind == "pop":
        if document.tags:
            document.tags.pop()
    else:
        document.meta[value] = document.meta.get(value, 0) + 1


class UnitOfWorkMachine(RuleBasedStateMachine):
    """The user holds at most one object per (model, id); the machine checks each of them."""

    # What the test gives the machine: its loop and the driver's database. Kept in a dict:
    # hypothesis looks for rules among the class's attributes, and a database answers any.
    given: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        super().__init__()
        self.held: dict[Key, Any] = {}
        self.ending = "commit"
        #: The stored ``bulk`` of each document (``None``: not stored), and the writes of it
        #: made by the running attempt of a block (replayed if it commits).
        self.bulk: dict[Key, int | None] = {}
        self.attempt: list[tuple[str, Key, int]] | None = None
        self.run(self._reset())

    def run(self, coroutine: Any) -> Any:
        return self.given["runner"].run(coroutine)

    async def _reset(self) -> None:
        for model in MODELS:
            await executor.collection(model).delete_many({})
        await fail_points_off(self.given["database"])

    # -- what an operation does, in or out of a block ---------------------------------------

    def _document(self, model: type[Any], ident: str) -> Any:
        return model(id=ident)

    def _wrote(self, kind: str, where: Key, value: int, in_block: bool) -> None:
        """Record a write of ``bulk``: at once outside a block, at the commit inside one."""
        if in_block:
            assert self.attempt is not None
            self.attempt.append((kind, where, value))
        else:
            self._replay([(kind, where, value)])

    def _replay(self, writes: list[tuple[str, Key, int]]) -> None:
        for kind, where, value in writes:
            if kind == "insert":
                self.bulk[where] = value
            elif kind == "delete":
                self.bulk[where] = None
            elif value:  # "inc", by the number of documents it matched
                current = self.bulk.get(where)
                assert current is not None, (where, "an update matched a deleted document")
                self.bulk[where] = current + value

    async def _op(self, op: tuple[str, Any, Any], in_block: bool) -> None:
        name, where, how = op
        if name == "flush":
            if in_block:
                uow = current_unit_of_work()
                await uow.flush()
            return
        model, ident = MODELS[where[0]], IDS[where[1]]
        held = self.held.get(where)
        if name == "load":
            found = await model.objects.filter(id=ident).first()
            if found is not None:
                self.held[where] = found
        elif name == "change" and held is not None:
            apply_change(held, how)
        elif name == "save" and held is not None:
            inserts = not held.is_stored  # a deleted document's save() stores it again
            await held.save()
            if inserts:
                self._wrote("insert", where, held.bulk, in_block)
        elif name == "insert" and (held is None or not held.is_stored):
            # Held or not, the id is free: the user holds every document it ever stored.
            document = held if held is not None else self._document(model, ident)
            self.held[where] = document
            await document.insert()
            self._wrote("insert", where, document.bulk, in_block)
        elif name == "delete" and held is not None and held.is_stored:
            await held.delete()
            self._wrote("delete", where, 0, in_block)
        elif name in ("bulk_update", "bulk_delete"):
            # The user holds the object the block's unit of work tracks (a load in the block):
            # one loaded before the block is a copy of its time, which a write on the server
            # cannot reach (as in Django).
            found = await model.objects.filter(id=ident).first()
            if found is not None:
                self.held[where] = found
            if name == "bulk_update":
                matched = await model.objects.filter(id=ident).update(bulk=F("bulk") + 1)
                self._wrote("inc", where, matched, in_block)
            elif await model.objects.filter(id=ident).delete():
                self._wrote("delete", where, 0, in_block)
        elif name == "copy_save" and where[0] == 0 and held is not None and held.is_stored and (
            not has_changes(held, held.to_bson())
        ):
            # The user saves a changed model_copy() (lists shared) of an object with no change
            # of its own and goes on with the copy. Plain model only: under the lock the
            # object left behind is stale, and the block's next change to it (it is still
            # the object of its id in the block) would raise StaleDocument, rightly.
            dup = held.model_copy()
            apply_change(dup, how)
            await dup.save()
            self.held[where] = dup
        elif name == "refresh" and held is not None and held.is_stored:
            with contextlib.suppress(model.DoesNotExist):
                await held.refresh()
        elif name == "lost" and in_block and held is not None and held.is_stored and (
            self.ending in CUTTABLE
        ):
            # The connection drops at the save's update: it may or may not have run. Caught,
            # the block can only be rolled back; not caught (an "inc"), the block fails on it
            # and the documents are read back from the server.
            apply_change(held, how)
            await outside_the_block(lose_connection(self.given["database"]))
            try:
                await held.save()
            except ConnectionFailure:
                if how[0] == "inc":
                    raise
            finally:
                await outside_the_block(fail_points_off(self.given["database"]))
        elif name == "inner_fails" and in_block and held is not None:
            with contextlib.suppress(Abort):
                async with odm.transaction():
                    apply_change(held, how)
                    await held.save()
                    raise Abort
        elif name == "cut_off" and in_block and held is not None and self.ending in CUTTABLE:
            # The server holds the save's update past the caller's timeout, which the block
            # catches: from then on the block can only be rolled back.
            apply_change(held, how)
            inserts = not held.is_stored  # an insert, which the update's fail point misses
            await outside_the_block(hold_update(self.given["database"]))
            try:
                async with asyncio.timeout(CUT_AFTER):
                    await held.save()
                if inserts:
                    self._wrote("insert", where, held.bulk, in_block)
            except TimeoutError:
                pass
            finally:
                await outside_the_block(fail_points_off(self.given["database"]))

    # -- rules -------------------------------------------------------------------------------

    @initialize()
    def store_every_document(self) -> None:
        """Start with every document stored and held (the user inserted them)."""
        for where in itertools.product(range(len(MODELS)), range(len(IDS))):
            self.run(self._op(("insert", where, None), in_block=False))

    @rule(ops=st.lists(operation, min_size=2, max_size=10), ending=st.sampled_from(ENDINGS))
    def block(self, ops: list[tuple[str, Any, Any]], ending: str) -> None:
        self.run(self._block(ops, ending))

    async def _block(self, ops: list[tuple[str, Any, Any]], ending: str) -> None:
        db = self.given["database"]
        self.ending = ending
        if ending == "transient_commit":
            await fail_command(db, "commitTransaction", transient=True)
        elif ending == "commit_fails":
            await fail_command(db, "commitTransaction", transient=False)

        attempts = 0

        async def body() -> None:
            nonlocal attempts
            attempts += 1
            writes: list[tuple[str, Key, int]] = []
            self.attempt = writes
            current_unit_of_work().on_commit(lambda: self._replay(writes))
            for op in ops:
                await self._op(op, in_block=True)
            if ending == "raise":
                raise Abort
            if ending == "transient_body" and attempts == 1:
                raise PyMongoError_transient()

        try:
            await odm.run_in_transaction(body, retries=3)
        except (Abort, odm.TransactionError):
            pass  # raised by the block, or after its inner block failed
        except ConnectionFailure:
            pass  # a lost connection the block did not catch (atomic retries it if labelled)
        except PyMongoError:
            assert ending == "commit_fails"
        finally:
            self.attempt = None
            await fail_points_off(db)

    @rule(where=key, how=change)
    def change_and_save_outside(self, where: Key, how: tuple[str, Any]) -> None:
        held = self.held.get(where)
        if held is None or not held.is_stored:
            return
        apply_change(held, how)
        self.run(held.save())

    @rule(where=key, how=change, ran=st.booleans())
    def save_cut_off_outside(self, where: Key, how: tuple[str, Any], ran: bool) -> None:
        """A save outside any block, held by the server past the caller's timeout, then run
        or refused there: the document no longer trusts its snapshot."""
        held = self.held.get(where)
        if held is None or not held.is_stored:
            return
        apply_change(held, how)
        self.run(self._save_cut_off(held, ran))

    async def _save_cut_off(self, held: Any, ran: bool) -> None:
        db = self.given["database"]
        entered_before = await hold_update(db, ran=ran)
        try:
            with capture_queries() as sent, contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CUT_AFTER):
                    await held.save()
            if "update" in sent.names():
                await held_update_over(db, entered_before)
        finally:
            await fail_points_off(db)

    @rule(where=key)
    def load_outside(self, where: Key) -> None:
        self.run(self._op(("load", where, None), in_block=False))

    # -- the truth -----------------------------------------------------------------------------

    @invariant()
    def every_object_tells_the_truth(self) -> None:
        self.run(self._check())

    def teardown(self) -> None:
        """After the run, the sessions the client will hand out can all run a transaction:
        a session the unit of work killed or fenced, and pooled again, must not refuse the
        next block its transaction."""
        self.run(every_pooled_session_runs_a_transaction(self.given["database"]))

    async def _check(self) -> None:
        for where, document in self.held.items():
            model = MODELS[where[0]]
            raw = await executor.collection(model).find_one({"_id": document.id})
            if isinstance(get_snapshot(document), Unsure) and raw is not None:
                # It says it does not know (a write of it was cut off): its next save learns.
                await document.save()
                raw = await executor.collection(model).find_one({"_id": document.id})
            # What it believes is stored: its snapshot, or for a copy the later stored form its
            # family learnt (a change made through a list it shares with the held object,
            # written by the flush through that object).
            snapshot = get_snapshot(document)
            believed = snapshot if snapshot is None else known_state(document, snapshot)
            assert believed == raw, (where, believed, raw)
            assert document.is_stored is (raw is not None)
            meta = model._meta
            if meta.optimistic_lock and raw is not None:
                version = getattr(document, meta.version_field)
                assert version == raw.get(meta.db_key(meta.version_field)), (where, version, raw)
            if raw is not None:
                # The next save writes exactly what differs: afterwards memory == database.
                # (Read again only when it sent something: nothing else writes meanwhile.)
                with capture_queries() as sent:
                    await document.save()
                if sent.commands:
                    raw = await executor.collection(model).find_one({"_id": document.id})
                assert raw is not None
                assert document.to_bson() == raw, (where, document.to_bson(), raw)
            # Only committed queryset updates made the stored ``bulk`` (not a save of an
            # object that held an aborted block's value).
            expected = self.bulk.get(where)
            assert (None if raw is None else raw.get("bulk", 0)) == expected, (where, raw, expected)


#: Endings whose fail point a cut-off save may replace (there is one ``failCommand``).
CUTTABLE = ("commit", "raise", "transient_body")
#: Seconds after which a cut-off save gives up, and milliseconds the server holds it.
CUT_AFTER = 0.01
HOLD_MS = 40
#: How long a cut-off update sent whole may take to reach the server, in milliseconds.
ARRIVAL_MS = 3000
#: The server's code for a command that ran out of its ``maxTimeMS``.
MAX_TIME_EXPIRED = 50


async def hold_update(db: Any, *, ran: bool = True) -> int:
    """Make the server hold the next ``update`` for ``HOLD_MS``, then run it (``ran``) or
    refuse it; return how many times the fail point had been entered before (what
    :func:`held_update_over` counts from)."""
    data: dict[str, Any] = {
        "failCommands": ["update"], "blockConnection": True, "blockTimeMS": HOLD_MS,
    }
    if not ran:
        data["errorCode"] = 2
    reply = await db.client.admin.command(
        {"configureFailPoint": "failCommand", "mode": {"times": 1}, "data": data}
    )
    return int(reply["count"])


async def held_update_over(db: Any, entered_before: int) -> None:
    """Return once the update the server holds (``hold_update``, which returned
    ``entered_before``) has run or been refused, so that it cannot write behind the check's
    back: once the server says the fail point held it, when it has left ``$currentOp``.

    An update that has not reached the fail point within a few seconds never will: it was cut
    off before it was sent whole (the driver then closes the connection)."""
    try:
        await db.client.admin.command({
            "waitForFailPoint": "failCommand", "timesEntered": entered_before + 1,
            "maxTimeMS": ARRIVAL_MS,
        })
    except OperationFailure as error:
        if error.code != MAX_TIME_EXPIRED:
            raise
        return
    names = [model._meta.collection for model in MODELS]
    match = {"command.$db": db.name, "command.update": {"$in": names}}
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 5
    while True:
        cursor = db.client.admin.aggregate([{"$currentOp": {}}, {"$match": match}])
        if asyncio.iscoroutine(cursor):
            cursor = await cursor  # PyMongo's async aggregate is a coroutine, Motor's a cursor
        if not await cursor.to_list(None):
            return
        assert loop.time() < give_up, "the held update did not end"
        await asyncio.sleep(0.003)


#: How many of the client's pooled server sessions the teardown tries (more than the machine,
#: which runs one block at a time, leaves pooled).
POOLED = 6


async def every_pooled_session_runs_a_transaction(db: Any) -> None:
    """Start a transaction, read and abort in each of the next :data:`POOLED` sessions the
    client hands out (each held until the end, so that each is a different one); a session
    whose server state refuses it (a fence numbered past the driver's count) raises."""
    sessions = [await drivers.start_session(db.client) for _ in range(POOLED)]
    try:
        for session in sessions:
            await drivers.start_transaction(session)
            await drivers.resolve(db[MODELS[0]._meta.collection].find_one({}, session=session))
            await drivers.resolve(session.abort_transaction())
    finally:
        for session in sessions:
            await drivers.end_session(session)


async def outside_the_block(admin_call: Any) -> None:
    """Run ``admin_call`` in a task with an empty context: inside a block the driver would
    send it in the transaction."""
    await asyncio.create_task(admin_call, context=contextvars.Context())


async def lose_connection(db: Any) -> None:
    """Make the server close the connection at the next ``update``."""
    await fail_point(db, {"failCommands": ["update"], "closeConnection": True})


def PyMongoError_transient() -> PyMongoError:
    return PyMongoError("injected transient error", error_labels=["TransientTransactionError"])


async def fail_command(db: Any, command: str, *, transient: bool) -> None:
    """Make the next ``command`` fail, with a transient error or a plain one."""
    data: dict[str, Any] = {"failCommands": [command], "errorCode": 112 if transient else 2}
    if transient:
        data["errorLabels"] = ["TransientTransactionError"]
    await fail_point(db, data)


@pytest.fixture
def machine_runner(odm_uri: str, odm_driver: str) -> Iterator[asyncio.Runner]:
    """A loop of its own (hypothesis drives sync rules) with the ODM connected in it."""
    with connected_runner(odm_uri, "odm_uow_sm", driver=odm_driver) as runner:
        yield runner


#: Examples per run: the long variant (``--odm-long``) runs many on both drivers; the default
#: run fewer on Motor (past its end of life since May 2026, and its own paths, the driver's
#: thread pool, are pinned by the tests that cut its calls off), to keep CI in its time.
EXAMPLES = {"pymongo": 100, "motor": 40}
LONG_EXAMPLES = 600


def test_the_unit_of_work_state_machine(
    machine_runner: asyncio.Runner, odm_long: bool, odm_driver: str
) -> None:
    UnitOfWorkMachine.given.update(runner=machine_runner, database=machine_runner.run(_database()))
    machine = UnitOfWorkMachine.TestCase
    machine.settings = server_property(
        max_examples=LONG_EXAMPLES if odm_long else EXAMPLES[odm_driver], stateful_step_count=12
    )
    machine().runTest()


async def _database() -> Any:
    return odm.get_database()
