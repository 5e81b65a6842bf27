"""``odm.Decimal``: a ``decimal.Decimal`` validated from Decimal128, dumped to Decimal128 (Python
mode) or a string (JSON mode); a plain ``decimal.Decimal`` field is refused at class creation."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Annotated

import bson
import pytest
from pydantic import BaseModel, Field, PlainSerializer, TypeAdapter, ValidationError

import odm
from odm.document import Document, Embedded
from odm.models.fields import Decimal
from odm.query.paths import field_type_of


class Priced(BaseModel):
    price: Decimal
    bounded: Annotated[Decimal, Field(ge=0, max_digits=5, decimal_places=2)] = D("0")
    many: list[Decimal] = []


def test_validates_from_decimal128_numbers_and_strings() -> None:
    model = Priced(price=bson.Decimal128("1.50"), bounded="3.25", many=[1, 2.5, "-0"])
    assert model.price == D("1.50") and str(model.price) == "1.50"
    assert model.many == [D(1), D("2.5"), D("-0")]
    assert all(isinstance(v, D) for v in (model.price, model.bounded, *model.many))


def test_dumps_decimal128_in_python_mode_and_a_string_in_json() -> None:
    model = Priced(price=D("1.50"), many=[D("2")])
    assert model.model_dump() == {
        "price": bson.Decimal128("1.50"), "bounded": bson.Decimal128("0"),
        "many": [bson.Decimal128("2")],
    }
    assert model.model_dump_json() == '{"price":"1.50","bounded":"0","many":["2"]}'
    assert Priced.model_validate_json(model.model_dump_json()) == model


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1" * 35, "cannot be stored as a BSON Decimal128"),
        ("1e7000", "cannot be stored as a BSON Decimal128"),
        ("NaN", "finite number"),
        ("abc", "valid decimal"),
    ],
)
def test_refuses_what_decimal128_cannot_hold(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Priced(price=value)


def test_field_constraints_still_apply() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Priced(price=1, bounded=-1)
    with pytest.raises(ValidationError, match="no more than 5 digits"):
        Priced(price=1, bounded="123.456")


def test_query_values_become_decimal128() -> None:
    class DecQueried(Document):
        price: Decimal
        maybe: Decimal | None = None

        class Meta:
            collection = "unit_dec_queried"

    try:
        price = field_type_of(DecQueried, "price")
        assert price.convert(D("1.5"), "price") == bson.Decimal128("1.5")
        assert price.convert("2", "price") == bson.Decimal128("2")
        maybe = field_type_of(DecQueried, "maybe")
        assert maybe.convert(D("1.5"), "maybe") == bson.Decimal128("1.5")
        assert maybe.convert(None, "maybe") is None
        assert bson.encode({"v": price.convert(D("0.1"), "price")})
    finally:
        odm.registry.unregister(DecQueried)


def test_a_plain_decimal_field_is_refused_at_class_creation() -> None:
    with pytest.raises(odm.DeclarationError, match=r"DecPlain.price: a decimal.Decimal .*Decimal"):

        class DecPlain(Document):
            price: D


def test_a_plain_decimal_inside_an_embedded_list_is_refused() -> None:
    class DecLine(Embedded):
        amount: D | None = None

    with pytest.raises(odm.DeclarationError, match=r"DecOrder.lines: .*\(at DecLine.amount\)"):

        class DecOrder(Document):
            lines: list[DecLine] = []


def test_a_decimal_with_its_own_serializer_is_accepted() -> None:
    class DecAsString(Document):
        price: Annotated[D, PlainSerializer(str)]
        price2: Decimal

        class Meta:
            collection = "unit_dec_as_string"

    try:
        assert DecAsString(price=D("1.5"), price2=1).to_bson()["price"] == "1.5"
    finally:
        odm.registry.unregister(DecAsString)


def test_json_schema() -> None:
    schema = TypeAdapter(Decimal).json_schema()
    assert schema == TypeAdapter(D).json_schema()  # the same as a plain Decimal for API users
