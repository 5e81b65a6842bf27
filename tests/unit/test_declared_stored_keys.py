"""A field stored under a key MongoDB would not read as one field is refused as the class is
made, naming the class and the field: a key with ``.`` (read as a path by updates and
filters), one starting with ``$`` (an operator), an empty one, one with a NUL character.

Accepted, such a key came back under another reading: ``save()`` of a changed field sent
``$set: {"a.b": 1}``, which wrote ``{"a": {"b": 1}}`` beside the stored ``"a.b"``, and the
object said 1 where the database kept 0.
"""

from __future__ import annotations

import pytest
from pydantic import AliasGenerator, ConfigDict, Field

import odm
from odm import registry
from odm.exceptions import DeclarationError

BAD = {
    "a.b": "contains '.'",
    "$x": "starts with '$'",
    "$": "starts with '$'",
    "": "is empty",
    "x\x00y": "contains a NUL character",
}


@pytest.mark.parametrize("key", list(BAD))
def test_a_documents_field_under_a_bad_key_is_refused(key: str) -> None:
    with pytest.raises(DeclarationError) as refused:

        class SkBadDocument(odm.Document):
            v: int = Field(0, alias=key)

            class Meta:
                collection = "sk_bad"

    assert str(refused.value).startswith(f"SkBadDocument.v: stored under {key!r}, which "), (
        refused.value
    )
    assert BAD[key] in str(refused.value)
    assert "SkBadDocument" not in {model.__name__ for model in registry}


@pytest.mark.parametrize("key", list(BAD))
def test_an_embedded_models_field_under_a_bad_key_is_refused(key: str) -> None:
    with pytest.raises(DeclarationError, match=r"^SkBadPart\.v: stored under ") as refused:

        class SkBadPart(odm.Embedded):
            v: int = Field(0, serialization_alias=key)

    assert BAD[key] in str(refused.value)


def test_an_alias_generator_is_checked_as_each_alias_is() -> None:
    with pytest.raises(DeclarationError, match=r"^SkGenerated\.city: stored under 'addr\.city'"):

        class SkGenerated(odm.Embedded):
            model_config = ConfigDict(
                alias_generator=AliasGenerator(serialization_alias=lambda name: f"addr.{name}")
            )
            city: str = ""


def test_keys_mongodb_reads_as_one_field_are_accepted() -> None:
    class SkGood(odm.Document):
        price: int = Field(0, alias="price$")  # "$" only at the start is an operator
        name: str = Field("", alias="Name With Spaces")
        plain: int = 0

        class Meta:
            collection = "sk_good"

    assert [SkGood._meta.db_key(n) for n in ("id", "price", "name", "plain")] == [
        "_id", "price$", "Name With Spaces", "plain",
    ]
