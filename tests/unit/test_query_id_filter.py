"""``where.id_filter``, the filter of ``get(id=...)``: whatever the model and the value, it is
the filter that ``field_condition`` and the class's ``_cls`` condition make, or the same error.

Its short cut (a value of exactly the id's literal type, from a per-class plan) must never
answer differently from the general path; hypothesis draws the values, the models cover the
default ``ObjectId`` id, ids of other types, and polymorphic families (one class's ``_cls``
value, and a base whose filter lists several).
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import bson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from odm import Decimal as OdmDecimal
from odm.document import Document
from odm.exceptions import QueryError
from odm.query.where import field_condition, id_filter


class IdPlain(Document):
    name: str = ""

    class Meta:
        collection = "id_filter_plain"


class IdByName(Document):
    id: str  # type: ignore[assignment]

    class Meta:
        collection = "id_filter_by_name"


class IdByNumber(Document):
    id: int  # type: ignore[assignment]

    class Meta:
        collection = "id_filter_by_number"


class IdByUuid(Document):
    id: uuid.UUID  # type: ignore[assignment]

    class Meta:
        collection = "id_filter_by_uuid"


class IdByDecimal(Document):
    id: OdmDecimal  # type: ignore[assignment]

    class Meta:
        collection = "id_filter_by_decimal"


class IdAnimal(Document):
    name: str = ""

    class Meta:
        collection = "id_filter_animals"
        polymorphic = True


class IdCat(IdAnimal):
    lives: int = 9


class IdLion(IdCat):
    pride: str = ""


class IdBird(Document):
    """A family only the test of a subclass declared later grows."""

    class Meta:
        collection = "id_filter_birds"
        polymorphic = True


class IdParrot(IdBird):
    words: int = 0


MODELS = [IdPlain, IdByName, IdByNumber, IdByUuid, IdByDecimal, IdAnimal, IdCat, IdLion]

values = st.one_of(
    st.builds(bson.ObjectId),
    st.text(max_size=30),
    st.sampled_from(["$ne", "a.b", "\x00", "5f0c0c0c0c0c0c0c0c0c0c0c", ""]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.floats(allow_nan=False),
    st.none(),
    st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.binary(max_size=8),
    st.dictionaries(st.sampled_from(["$ne", "$gt", "a", "a.b"]), st.none(), max_size=2),
    st.lists(st.builds(bson.ObjectId), max_size=2),
)


def _general(model: type[Any], key: str, value: Any) -> Any:
    try:
        return {**field_condition(model, key, value).mql, **model._meta.class_filter()}
    except QueryError as exc:
        return ("QueryError", str(exc), exc.field)


def _short(model: type[Any], key: str, value: Any) -> Any:
    try:
        return id_filter(model, key, value)
    except QueryError as exc:
        return ("QueryError", str(exc), exc.field)


@given(
    model=st.sampled_from(MODELS), key=st.sampled_from(["id", "id__exact"]), value=values
)
def test_the_filter_of_get_by_id_is_the_general_one(model: type[Any], key: str, value: Any) -> None:
    first = _short(model, key, value)
    again = _short(model, key, value)  # the second call reads the cached plan
    assert first == _general(model, key, value)
    assert again == first
    if isinstance(first, dict):
        assert [type(v) for v in first.values()] == [
            type(v) for v in _general(model, key, value).values()
        ]


def test_the_short_cut_takes_an_object_id_as_its_own_condition() -> None:
    ident = bson.ObjectId()
    assert id_filter(IdPlain, "id", ident) == {"_id": ident}
    assert id_filter(IdCat, "id", ident) == {"_id": ident, "_cls": {"$in": ["IdCat", "IdLion"]}}
    assert id_filter(IdLion, "id", ident) == {"_id": ident, "_cls": "IdLion"}


def test_each_filter_has_a_class_list_of_its_own() -> None:
    """A class with subclasses has a ``_cls`` condition holding a list: no two filters share
    it (the root of the family has none: it reads every class)."""
    ident = bson.ObjectId()
    assert id_filter(IdAnimal, "id", ident) == {"_id": ident}
    first = id_filter(IdCat, "id", ident)
    second = id_filter(IdCat, "id", ident)
    assert first == second
    assert first["_cls"]["$in"] is not second["_cls"]["$in"]


@pytest.mark.parametrize("value", ["not an id", {"$ne": None}, 12])
def test_a_value_that_is_no_object_id_is_refused_as_filter_refuses_it(value: Any) -> None:
    with pytest.raises(QueryError) as short:
        id_filter(IdPlain, "id", value)
    with pytest.raises(QueryError) as general:
        field_condition(IdPlain, "id", value)
    assert str(short.value) == str(general.value)


def test_a_decimal_id_is_validated_not_taken_as_it_is() -> None:
    assert id_filter(IdByDecimal, "id", decimal.Decimal("1.5")) == {
        "_id": bson.Decimal128("1.5")
    }


def test_a_subclass_declared_later_joins_the_filter() -> None:
    """The plan keeps the class's ``_cls`` condition: declaring a subclass forgets it."""
    ident = bson.ObjectId()
    assert id_filter(IdParrot, "id", ident) == {"_id": ident, "_cls": "IdParrot"}

    class IdMacaw(IdParrot):
        colours: int = 3

    assert id_filter(IdParrot, "id", ident) == {
        "_id": ident,
        "_cls": {"$in": ["IdParrot", "IdMacaw"]},
    }
