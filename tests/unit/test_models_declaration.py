"""Declaring documents: options, collection names, indexes, and errors at class creation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

import pytest
from pymongo import ReadPreference, WriteConcern

import odm
from odm.document import Document, Embedded
from odm.models.declaration import collection_name
from odm.models.fields import Field, Indexed, Reference, utcnow
from odm.models.indexes import Index, index_differences
from odm.models.loading import load_into
from odm.registry import Registry, registry


class DeclAddress(Embedded):
    city: str
    zip_code: str | None = Field(default=None, alias="zip")


class DeclPerson(Document):
    email: Annotated[str, Indexed(unique=True)]
    name: str
    address: DeclAddress | None = None
    created: datetime = Field(default_factory=utcnow)
    when: list[datetime] = []

    class Meta:
        indexes = [Index("address.zip_code"), Index("-created", name="newest")]
        ordering = ["-created"]
        read_preference = "secondaryPreferred"
        write_concern = {"w": "majority"}


def test_collection_name_default_is_snake_case_plural() -> None:
    assert DeclPerson._meta.collection == "decl_persons"
    assert [collection_name(n) for n in ("Customer", "OrderItem", "Category", "Box", "Day")] == [
        "customers", "order_items", "categories", "boxes", "days"
    ]
    assert collection_name("HTTPLog") == "http_logs"


def test_options_are_resolved() -> None:
    meta = DeclPerson._meta
    assert meta.ordering == ("-created",)
    assert meta.read_preference == ReadPreference.SECONDARY_PREFERRED
    assert meta.write_concern == WriteConcern(w="majority")
    assert {i.name: i.keys for i in meta.indexes} == {
        "address.zip_1": [("address.zip", 1)],
        "newest": [("created", -1)],
        "email_1": [("email", 1)],
    }
    assert meta.db_key("id") == "_id"
    assert meta.db_path("address__zip_code") == "address.zip"
    assert registry.get("DeclPerson") is DeclPerson
    assert DeclPerson in registry.models(alias="default")
    assert registry.for_collection("decl_persons") is DeclPerson


def test_id_is_stored_as_underscore_id_but_shown_as_id() -> None:
    person = DeclPerson(email="a@x.io", name="Ann")
    assert "id" in person.model_dump() and "_id" not in person.model_dump()
    assert "_id" in person.to_bson() and "id" not in person.to_bson()
    assert '"id":"' in person.model_dump_json()
    again = DeclPerson.model_validate(person.to_bson())
    assert again.id == person.id
    assert DeclPerson(id=str(person.id), email="b", name="b").id == person.id


def test_custom_id_type_is_still_stored_as_underscore_id() -> None:
    class Keyed(Document):
        id: str
        value: int = 0

        class Meta:
            collection = "decl_keyed"

    assert Keyed(id="k1").to_bson() == {"_id": "k1", "value": 0}
    assert Keyed.model_validate({"_id": "k2"}).id == "k2"


def test_per_model_exceptions() -> None:
    assert issubclass(DeclPerson.DoesNotExist, odm.DoesNotExist)
    assert issubclass(DeclPerson.MultipleObjectsReturned, odm.MultipleObjectsReturned)
    assert DeclPerson.DoesNotExist is not Document.DoesNotExist


def test_each_models_does_not_exist_names_its_model() -> None:
    """What an error handler answers with (the aiohttp integration's 404 names the model,
    not the filter) without parsing the class's name."""

    class DeclNamed(Document):
        name: str = ""

        class Meta:
            collection = "decl_named"

    assert DeclPerson.DoesNotExist.model is DeclPerson
    assert DeclNamed.DoesNotExist.model is DeclNamed
    assert odm.DoesNotExist.model is None


def test_a_manager_like_class_attribute_is_left_alone() -> None:
    class Manager:
        def __get__(self, instance: Any, owner: type[Any]) -> str:
            return f"manager of {owner.__name__}"

        def __set_name__(self, owner: type[Any], name: str) -> None:
            self.name = name

    class Managed(Document):
        name: str
        objects = Manager()
        label: ClassVar[str] = "x"

        class Meta:
            collection = "decl_managed"

    assert Managed.objects == "manager of Managed"  # type: ignore[comparison-overlap]
    assert set(Managed.model_fields) == {"id", "name"}


def test_references_know_their_target() -> None:
    class Pet(Document):
        owner: Reference[DeclPerson]
        other: Reference[DeclPerson] | None = None

        class Meta:
            collection = "decl_pets"

    person = DeclPerson(email="a@x.io", name="Ann")
    pet = Pet(owner=person)
    assert pet.owner.model is DeclPerson and pet.owner.document is person
    assert pet.to_bson()["owner"] == person.id
    loaded = Pet.model_validate({"_id": pet.id, "owner": person.id})
    assert loaded.owner.model is DeclPerson and loaded.owner == person.id
    assert Pet.model_validate({"owner": str(person.id)}).owner.id == person.id


def test_optimistic_lock_adds_a_version_field() -> None:
    class Locked(Document):
        name: str

        class Meta:
            collection = "decl_locked"
            optimistic_lock = True

    assert Locked.model_fields["version"].default == 0
    assert Locked._meta.optimistic_lock


def test_abstract_bases_pass_their_options_on() -> None:
    class Base(Document):
        tenant: str

        class Meta:
            abstract = True
            indexes = [Index("tenant")]
            write_concern = 1

    class Child(Base):
        name: str

    assert Base not in registry
    assert Child._meta.collection == "childs"
    assert [i.name for i in Child._meta.indexes] == ["tenant_1"]
    assert Child._meta.write_concern == WriteConcern(w=1)


# -- errors at class creation ----------------------------------------------------------------


def test_index_on_an_unknown_field() -> None:
    with pytest.raises(odm.DeclarationError, match=r"BadIndex: index 'nope_1'.* 'nope'"):

        class BadIndex(Document):
            name: str

            class Meta:
                indexes = [Index("nope")]


def test_index_on_an_unknown_embedded_field() -> None:
    with pytest.raises(odm.DeclarationError, match=r"BadNested.*'address.street'.*DeclAddress"):

        class BadNested(Document):
            address: DeclAddress

            class Meta:
                indexes = [Index("address.street")]


def test_two_classes_on_one_collection() -> None:
    class First(Document):
        name: str

        class Meta:
            collection = "decl_shared"

    with pytest.raises(odm.DeclarationError, match=r"Second: collection 'decl_shared'.*First"):

        class Second(Document):
            name: str

            class Meta:
                collection = "decl_shared"


def test_unknown_meta_option() -> None:
    with pytest.raises(odm.DeclarationError, match=r"BadOption.Meta: unknown option.*'colection'"):

        class BadOption(Document):
            name: str

            class Meta:
                colection = "x"


def test_ttl_on_a_field_that_is_not_a_datetime() -> None:
    with pytest.raises(odm.DeclarationError, match=r"BadTtl: TTL index 'age_1'.*'age'.*datetime"):

        class BadTtl(Document):
            age: int

            class Meta:
                indexes = [Index("age", expire_after=60)]


def test_ttl_on_a_list_of_datetimes_is_accepted() -> None:
    assert DeclPerson._meta  # `when: list[datetime]` would be accepted:

    class GoodTtl(Document):
        when: list[datetime] | None = None

        class Meta:
            indexes = [Index("when", expire_after=60)]

    assert GoodTtl._meta.indexes[0].expire_after == 60


def test_bad_ordering_shard_key_and_concerns() -> None:
    with pytest.raises(odm.DeclarationError, match=r"BadOrder: Meta.ordering .* 'missing'"):

        class BadOrder(Document):
            class Meta:
                ordering = ["-missing"]

    with pytest.raises(odm.DeclarationError, match=r"BadShard: Meta.shard_key .* 'tenant'"):

        class BadShard(Document):
            class Meta:
                shard_key = ("tenant",)

    with pytest.raises(odm.DeclarationError, match=r"BadRead.Meta: unknown read preference"):

        class BadRead(Document):
            class Meta:
                read_preference = "sometimes"


def test_index_entries_must_be_indexes() -> None:
    with pytest.raises(odm.DeclarationError, match=r"BadEntry.Meta.indexes: 'name'"):

        class BadEntry(Document):
            name: str

            class Meta:
                indexes = ["name"]


def test_polymorphic_subclass_cannot_move_collection() -> None:
    class Root(Document):
        class Meta:
            collection = "decl_roots"
            polymorphic = True

    with pytest.raises(odm.DeclarationError, match=r"Leaf: Meta.collection 'elsewhere'"):

        class Leaf(Root):
            class Meta:
                collection = "elsewhere"


# -- Index specs -----------------------------------------------------------------------------


def test_index_spec_and_model() -> None:
    index = Index("name", "-created", unique=True, expire_after=10, partial={"a": 1})
    assert index.spec() == {
        "name": "name_1_created_-1",
        "key": [("name", 1), ("created", -1)],
        "unique": True,
        "expireAfterSeconds": 10,
        "partialFilterExpression": {"a": 1},
    }
    model = index.to_index_model().document
    assert model["name"] == "name_1_created_-1" and model["unique"] is True
    assert Index(text=["a", "b"]).spec()["key"] == [("a", "text"), ("b", "text")]
    with pytest.raises(ValueError):
        Index()


def test_index_differences() -> None:
    index = Index("name", unique=True)
    server = {"v": 2, "name": "name_1", "key": {"name": 1}, "unique": True}
    assert index_differences(index.spec(), server) == []
    assert index_differences(index.spec(), {**server, "unique": False}) == [
        "unique=False on the server, True declared"
    ]
    text = Index(text=["b", "a"])
    server_text = {"name": text.name, "key": {"_fts": "text", "_ftsx": 1},
                   "weights": {"a": 1, "b": 1}}
    assert index_differences(text.spec(), server_text) == []


def test_a_registry_is_an_instance() -> None:
    own = Registry()
    assert len(own) == 0 and list(own) == []
    own.register(DeclPerson)
    assert own.get("DeclPerson") is DeclPerson
    with pytest.raises(LookupError):
        own.get("Nobody")


def test_a_stored_document_that_does_not_fit_is_told_from_bad_input() -> None:
    """What an HTTP API answers 500 for (the database's data) and 400 for (the request's)."""
    person = DeclPerson(email="a@example.org", name="Ann")
    with pytest.raises(odm.ValidationError) as stored:
        load_into(person, {"_id": person.id, "email": "a@example.org", "name": 5})
    assert odm.exceptions.is_stored_document_error(stored.value)
    assert f"DeclPerson document _id={person.id!r}" == stored.value.title
    with pytest.raises(odm.ValidationError) as given:
        DeclPerson(email="b@example.org", name=5)
    assert not odm.exceptions.is_stored_document_error(given.value)
