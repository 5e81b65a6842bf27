"""insert / save / refresh / delete against the real server, with the commands they send."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import pytest

import odm
from odm import executor, signals
from odm.contrib.pytest import MonitoredDatabase
from odm.document import Document, Embedded
from odm.models.fields import Field, Indexed, Reference, utcnow
from odm.models.loading import load_documents
from odm.schema import ensure_indexes
from odm.timeouts import MAX_TIMEOUT


class LifeAddress(Embedded):
    street: str
    city: str
    zip: str | None = None


class LifeCustomer(Document):
    email: Annotated[str, Indexed(unique=True)]
    name: str
    age: int = 0
    tags: list[str] = []
    address: LifeAddress | None = None
    extra: dict[str, Any] = {}
    created: datetime = Field(default_factory=utcnow)

    class Meta:
        collection = "life_customers"


class LifeOrder(Document):
    customer: Reference[LifeCustomer]
    total: float
    status: str = "new"

    class Meta:
        collection = "life_orders"
        optimistic_lock = True


class Tenanted(Document):
    tenant: str
    value: int = 0

    class Meta:
        collection = "life_tenanted"
        shard_key = ("tenant", "id")


async def load(model: type[Any], id: Any) -> Any:
    raw = await executor.find_one(model, {"_id": id})
    assert raw is not None
    return load_documents(model, [raw])[0]


async def test_insert_save_refresh_delete(monitored: MonitoredDatabase) -> None:
    c = LifeCustomer(email="a@x.io", name="Ann")
    await c.insert()
    stored = await monitored.database.life_customers.find_one({"_id": c.id})
    assert stored["email"] == "a@x.io" and "id" not in stored

    monitored.log.clear()
    c.age = 31
    await c.save()
    (update,) = monitored.log.named("update")
    assert update["updates"][0]["u"] == {"$set": {"age": 31}}
    assert update["updates"][0]["q"] == {"_id": c.id}

    await monitored.database.life_customers.update_one({"_id": c.id}, {"$set": {"name": "Bo"}})
    await c.refresh()
    assert c.name == "Bo" and c.age == 31

    await c.delete()
    assert await monitored.database.life_customers.count_documents({}) == 0
    with pytest.raises(LifeCustomer.DoesNotExist):
        await c.refresh()
    assert issubclass(LifeCustomer.DoesNotExist, odm.DoesNotExist)


async def test_save_of_a_new_document_inserts_it(monitored: MonitoredDatabase) -> None:
    c = LifeCustomer(email="new@x.io", name="New")
    await c.save()
    assert [name for name, _ in monitored.log.commands] == ["insert"]
    assert c.is_stored


async def test_save_without_change_sends_nothing(monitored: MonitoredDatabase) -> None:
    c = LifeCustomer(email="a@x.io", name="Ann", address=LifeAddress(street="s", city="Paris"))
    await c.insert()
    loaded = await load(LifeCustomer, c.id)
    monitored.log.clear()
    await c.save()
    await loaded.save()
    loaded.age = 0  # assigning the same value is no change either
    await loaded.save()
    assert monitored.log.commands == []


async def test_a_concurrent_change_to_another_field_survives(monitored: MonitoredDatabase) -> None:
    await LifeCustomer(email="a@x.io", name="Ann").insert()
    raw = await monitored.database.life_customers.find_one({})
    mine = load_documents(LifeCustomer, [raw])[0]
    await monitored.database.life_customers.update_one({}, {"$set": {"name": "Changed"}})
    mine.age = 40
    await mine.save()
    stored = await monitored.database.life_customers.find_one({})
    assert stored["name"] == "Changed" and stored["age"] == 40


async def test_concurrent_list_appends_both_survive(monitored: MonitoredDatabase) -> None:
    c = LifeCustomer(email="a@x.io", name="Ann", tags=["a"])
    await c.insert()
    first, second = await load(LifeCustomer, c.id), await load(LifeCustomer, c.id)
    first.tags.append("b")
    second.tags.append("c")
    monitored.log.clear()
    await first.save()
    await second.save()
    updates = [u["updates"][0]["u"] for u in monitored.log.named("update")]
    assert updates == [{"$push": {"tags": {"$each": ["b"]}}}, {"$push": {"tags": {"$each": ["c"]}}}]
    stored = await monitored.database.life_customers.find_one({})
    assert stored["tags"] == ["a", "b", "c"]


async def test_nested_paths_whole_lists_and_unset(monitored: MonitoredDatabase) -> None:
    c = LifeCustomer(
        email="a@x.io", name="Ann", tags=["a", "b"], extra={"k": 1, "gone": 2},
        address=LifeAddress(street="s", city="Paris"),
    )
    await c.insert()
    loaded = await load(LifeCustomer, c.id)
    loaded.address.city = "Lyon"  # type: ignore[union-attr]
    loaded.tags.remove("a")
    del loaded.extra["gone"]
    loaded.extra["k"] = {"deep": True}
    monitored.log.clear()
    await loaded.save()
    (update,) = monitored.log.named("update")
    assert update["updates"][0]["u"] == {
        "$set": {"address.city": "Lyon", "tags": ["b"], "extra.k": {"deep": True}},
        "$unset": {"extra.gone": ""},
    }
    again = await load(LifeCustomer, c.id)
    assert again.model_dump() == loaded.model_dump()


async def test_in_place_change_under_any_is_seen(monitored: MonitoredDatabase) -> None:
    c = LifeCustomer(email="a@x.io", name="Ann", extra={"nested": {"n": 1}})
    await c.insert()
    loaded = await load(LifeCustomer, c.id)
    loaded.extra["nested"]["n"] = 2
    await loaded.save()
    stored = await monitored.database.life_customers.find_one({})
    assert stored["extra"] == {"nested": {"n": 2}}


async def test_optimistic_lock(monitored: MonitoredDatabase) -> None:
    customer = LifeCustomer(email="a@x.io", name="Ann")
    await customer.insert()
    order = LifeOrder(customer=customer, total=10)
    await order.insert()
    assert order.version == 0
    first, second = await load(LifeOrder, order.id), await load(LifeOrder, order.id)
    first.total = 11
    await first.save()
    assert first.version == 1
    second.total = 12
    with pytest.raises(odm.StaleDocument, match="LifeOrder"):
        await second.save()
    with pytest.raises(odm.StaleDocument):
        await second.delete()
    stored = await monitored.database.life_orders.find_one({})
    assert stored["total"] == 11 and stored["version"] == 1
    await second.refresh()
    second.total = 12
    await second.save()
    assert (await monitored.database.life_orders.find_one({}))["version"] == 2
    assert (await second.customer.fetch()).email == "a@x.io"


class SelfSaving(Document):
    """A before_save hook that saves the document itself first (once)."""

    total: float
    note: str = ""

    class Meta:
        collection = "life_self_saving"
        optimistic_lock = True

    async def before_save(self) -> None:
        if self.total == 2 and not self.note:  # the test's save, not the insert
            self.note = "saved by the hook"
            await self.save()


async def test_a_hook_that_writes_the_document_is_seen_by_the_save_around_it(
    monitored: MonitoredDatabase,
) -> None:
    """save() compares against the snapshot as it is after the hooks ran: the hook's own save
    moved the version on, and the outer save finds nothing left to write (a stale snapshot
    would send the version the hook's save replaced, and fail as StaleDocument)."""
    doc = await SelfSaving(total=1).insert()
    doc.total = 2
    monitored.log.clear()
    await doc.save()
    assert doc.version == 1
    assert len(monitored.log.named("update")) == 1
    stored = await monitored.database.life_self_saving.find_one({})
    assert (stored["total"], stored["note"], stored["version"]) == (2, "saved by the hook", 1)


async def test_shard_key_is_in_the_filter_of_every_instance_write(
    monitored: MonitoredDatabase
) -> None:
    doc = Tenanted(tenant="acme")
    await doc.insert()
    doc.value = 5
    await doc.save()
    await doc.refresh()
    await doc.delete()
    filters = [monitored.log.named("update")[0]["updates"][0]["q"],
               monitored.log.named("find")[0]["filter"],
               monitored.log.named("delete")[0]["deletes"][0]["q"]]
    assert all(f == {"_id": doc.id, "tenant": "acme"} for f in filters), filters


async def test_duplicate_key_names_the_index(monitored: MonitoredDatabase) -> None:
    await ensure_indexes(models=[LifeCustomer])
    await LifeCustomer(email="a@x.io", name="Ann").insert()
    with pytest.raises(odm.DuplicateKey, match="email_1") as info:
        await LifeCustomer(email="a@x.io", name="Bo").insert()
    assert info.value.__cause__ is not None


async def test_hooks_and_signals_order(monitored: MonitoredDatabase) -> None:
    calls: list[str] = []

    class Hooked(Document):
        name: str

        class Meta:
            collection = "life_hooked"

        async def before_save(self) -> None:
            calls.append("before_save")

        async def after_save(self) -> None:
            calls.append("after_save")

        async def before_delete(self) -> None:
            calls.append("before_delete")

        async def after_delete(self) -> None:
            calls.append("after_delete")

    def pre_save(sender: type[Any], document: Any, created: bool) -> None:
        calls.append(f"pre_save created={created}")

    async def post_save(sender: type[Any], document: Any, created: bool) -> None:
        calls.append(f"post_save created={created}")

    def pre_delete(sender: type[Any], document: Any) -> None:
        calls.append("pre_delete")

    async def post_delete(sender: type[Any], document: Any) -> None:
        calls.append("post_delete")

    def other(sender: type[Any], **kwargs: Any) -> None:
        calls.append("other model")

    pairs = [(signals.pre_save, pre_save), (signals.post_save, post_save),
             (signals.pre_delete, pre_delete), (signals.post_delete, post_delete)]
    for signal, receiver in pairs:
        signal.connect(receiver, sender=Hooked)
    signals.pre_save.connect(other, sender=LifeCustomer)
    try:
        doc = Hooked(name="x")
        await doc.save()
        doc.name = "y"
        await doc.save()
        await doc.delete()
    finally:
        for signal, receiver in pairs:
            assert signal.disconnect(receiver, sender=Hooked)
        signals.pre_save.disconnect(other, sender=LifeCustomer)
    assert calls == [
        "before_save", "pre_save created=True", "post_save created=True", "after_save",
        "before_save", "pre_save created=False", "post_save created=False", "after_save",
        "before_delete", "pre_delete", "post_delete", "after_delete",
    ]


async def test_a_pre_save_receiver_can_veto(monitored: MonitoredDatabase) -> None:
    def veto(sender: type[Any], **kwargs: Any) -> None:
        raise RuntimeError("no")

    signals.pre_save.connect(veto, sender=LifeCustomer)
    try:
        with pytest.raises(RuntimeError):
            await LifeCustomer(email="a@x.io", name="Ann").insert()
    finally:
        signals.pre_save.disconnect(veto, sender=LifeCustomer)
    assert monitored.log.named("insert") == []


async def test_invalid_assignment_fails_before_anything_is_written(
    monitored: MonitoredDatabase
) -> None:
    c = LifeCustomer(email="a@x.io", name="Ann")
    with pytest.raises(odm.ValidationError):
        c.age = "old"  # type: ignore[assignment]
    with pytest.raises(odm.ValidationError):
        LifeCustomer(email="a@x.io")  # type: ignore[call-arg]
    assert monitored.log.commands == []


async def test_timeout_and_write_concern_are_accepted(monitored: MonitoredDatabase) -> None:
    c = LifeCustomer(email="a@x.io", name="Ann")
    await c.insert(timeout=5.0, write_concern={"w": "majority"})
    (insert,) = monitored.log.named("insert")
    assert insert["writeConcern"] == {"w": "majority"}
    c.age = 2
    await c.save(timeout=5.0)
    await c.refresh(timeout=5.0)
    await c.delete(timeout=5.0)
    with pytest.raises(ValueError):
        await c.insert(timeout=0)


async def test_the_longest_timeout_accepted_is_one_the_server_takes(
    monitored: MonitoredDatabase,
) -> None:
    """``MAX_TIMEOUT`` is what the server takes as ``maxTimeMS``: every operation
    and block works under it, and a millisecond more is refused before anything is sent."""
    longest = MAX_TIMEOUT
    c = LifeCustomer(email="a@x.io", name="Ann")
    await c.insert(timeout=longest)
    async with odm.transaction(timeout=longest):
        loaded = await LifeCustomer.objects.timeout(longest).get(id=c.id)
        loaded.age = 3
    assert await LifeCustomer.objects.timeout(longest).filter(age=3).count() == 1
    (find,) = [cmd for cmd in monitored.log.named("find") if "maxTimeMS" in cmd]
    assert 0 < find["maxTimeMS"] <= 2**31 - 1
    sent = len(monitored.log.commands)
    with pytest.raises(ValueError, match=r"at most 2\.14748e\+06"):
        await c.refresh(timeout=longest + 0.001)
    assert len(monitored.log.commands) == sent


async def test_stored_document_that_no_longer_fits(monitored: MonitoredDatabase) -> None:
    c = LifeCustomer(email="a@x.io", name="Ann")
    await c.insert()
    await monitored.database.life_customers.update_one({}, {"$set": {"age": "old"}})
    raw = await executor.find_one(LifeCustomer, {})
    assert raw is not None
    with pytest.raises(odm.ValidationError) as info:
        load_documents(LifeCustomer, [raw])
    assert str(c.id) in str(info.value) and "age" in str(info.value)
    (invalid,) = load_documents(LifeCustomer, [raw], lenient=True)
    assert isinstance(invalid, odm.Invalid) and invalid.raw["_id"] == c.id
