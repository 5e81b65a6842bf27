"""ensure_indexes: each index kind on the real server, conflicts reported, never dropped."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import pytest

import odm
from odm import executor
from odm.document import Document, Embedded
from odm.models.fields import Field, Indexed, utcnow
from odm.models.indexes import Index
from odm.schema import IndexConflict, ensure_indexes
from odm.session import _bound_session


class IdxAddress(Embedded):
    city: str


class IdxCustomer(Document):
    email: Annotated[str, Indexed(unique=True)]
    code: Annotated[str | None, Indexed(sparse=True, name="code_sparse")] = None
    name: str
    age: int = 0
    address: IdxAddress | None = None
    created: datetime = Field(default_factory=utcnow)

    class Meta:
        collection = "idx_customers"
        indexes = [
            Index("name", "-created"),
            Index("created", expire_after=3600),
            Index("address.city", partial={"age": {"$gte": 18}}),
            Index(text=["name", "address.city"]),
        ]


class IdxConflicting(Document):
    name: str

    class Meta:
        collection = "idx_conflicting"
        indexes = [Index("name", unique=True, name="by_name")]


async def server_indexes(model: type[Any]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in await executor.list_indexes(model)}


async def test_each_index_kind_exists_with_its_options(odm_database: Any) -> None:
    created = await ensure_indexes(models=[IdxCustomer])
    assert sorted(created["idx_customers"]) == sorted(i.name for i in IdxCustomer._meta.indexes)
    found = await server_indexes(IdxCustomer)
    assert found["email_1"]["unique"] is True
    assert found["code_sparse"]["sparse"] is True and dict(found["code_sparse"]["key"]) == {
        "code": 1
    }
    assert list(found["name_1_created_-1"]["key"].items()) == [("name", 1), ("created", -1)]
    assert found["created_1"]["expireAfterSeconds"] == 3600
    assert found["address.city_1"]["partialFilterExpression"] == {"age": {"$gte": 18}}
    text = found["name_text_address.city_text"]
    assert set(text["weights"]) == {"name", "address.city"}
    for index in IdxCustomer._meta.indexes:
        assert odm.models.indexes.index_differences(index.spec(), found[index.name]) == []


async def test_ensure_indexes_twice_creates_nothing_new(odm_database: Any) -> None:
    await ensure_indexes(models=[IdxCustomer])
    again = await ensure_indexes(models=[IdxCustomer])
    assert again == {"idx_customers": []}


async def test_a_conflicting_index_is_reported_never_dropped(odm_database: Any) -> None:
    await odm_database.idx_conflicting.create_index("name", name="by_name")
    with pytest.raises(IndexConflict) as info:
        await ensure_indexes(models=[IdxConflicting])
    message = str(info.value)
    assert "'by_name'" in message and "'idx_conflicting'" in message and "unique" in message
    assert isinstance(info.value, odm.ConfigurationError)
    assert "by_name" in await server_indexes(IdxConflicting)


async def test_same_keys_under_another_name_is_reported(odm_database: Any) -> None:
    await odm_database.idx_conflicting.create_index("name", unique=True, name="other")
    with pytest.raises(IndexConflict, match="idx_conflicting"):
        await ensure_indexes(models=[IdxConflicting])


async def test_refused_inside_a_transaction(odm_database: Any) -> None:
    client = odm.get_client()
    session = await odm.drivers.start_session(client)
    await odm.drivers.start_transaction(session)
    token = _bound_session.set(session)
    try:
        with pytest.raises(odm.TransactionError, match="transaction"):
            await ensure_indexes(models=[IdxCustomer])
    finally:
        _bound_session.reset(token)
        await odm.drivers.resolve(session.abort_transaction())
        await odm.drivers.resolve(session.end_session())


async def test_connect_with_ensure_indexes(odm_uri: str, odm_driver: Any) -> None:
    await odm.connect(
        odm_uri, db="odm_idx_connect", alias="idx", models=[IdxAddressBook],
        ensure_indexes=True, driver=odm_driver,
    )
    try:
        assert "owner_1" in await server_indexes(IdxAddressBook)
    finally:
        await odm.get_client("idx").drop_database("odm_idx_connect")
        await odm.disconnect("idx")


class IdxAddressBook(Document):
    owner: Annotated[str, Indexed()]

    class Meta:
        collection = "idx_books"
        alias = "idx"
