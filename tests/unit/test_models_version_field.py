"""A declared optimistic-lock counter (#23 item 2): ``version: int = 0`` (or the name
``Meta.version_field`` gives) is the field odm counts in; a declaration that contradicts the
lock is refused at class creation, naming class and field, and leaves nothing registered."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field

from odm import DeclarationError, Document
from odm.registry import registry

WANTED = "declare it `{name}: int = 0`, or leave it out and odm adds that field"


def declare(name: str, annotation: Any, default: Any = ..., **meta: Any) -> type[Any]:
    """A locked Document class named ``name`` declaring ``version`` as given (no default when
    ``default`` is ``...``)."""
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": name,
        "__annotations__": {"version": annotation},
        "Meta": type("Meta", (), {"optimistic_lock": True, **meta}),
    }
    if default is not ...:
        namespace["version"] = default
    return type(Document)(name, (Document,), namespace)


def refused(name: str) -> None:
    assert not [model for model in registry if model.__qualname__.endswith(name)]


@pytest.mark.parametrize(
    ("annotation", "default", "spelled"),
    [(str, "0", "str"), (int | None, None, "int | None"), (bool, False, "bool"),
     (float, 0.0, "float")],
)
def test_a_counter_that_is_not_an_int_is_refused(
    annotation: Any, default: Any, spelled: str
) -> None:
    with pytest.raises(DeclarationError) as raised:
        declare("VfWrongType", annotation, default)
    assert str(raised.value) == (
        f"VfWrongType.version: the optimistic lock's counter must be an int, not {spelled}; "
        + WANTED.format(name="version")
    )
    refused("VfWrongType")


@pytest.mark.parametrize(
    ("default", "found"),
    [
        (..., "it has no default"),
        (5, "its default is 5"),
        (Field(default_factory=int), "it has a default factory"),
    ],
)
def test_a_counter_that_does_not_start_at_0_is_refused(default: Any, found: str) -> None:
    with pytest.raises(DeclarationError) as raised:
        declare("VfWrongStart", int, default)
    assert str(raised.value) == (
        "VfWrongStart.version: the optimistic lock's counter starts at 0 for a new document, "
        f"so it must default to 0 ({found}); " + WANTED.format(name="version")
    )
    refused("VfWrongStart")


@given(st.integers().filter(lambda n: n != 0))
def test_every_other_int_default_is_refused(default: int) -> None:
    with pytest.raises(DeclarationError, match=rf"its default is {default}\)"):
        declare("VfAnyStart", int, default)


def test_a_counter_that_is_not_a_field_is_refused() -> None:
    with pytest.raises(DeclarationError) as raised:
        declare("VfClassVar", ClassVar[int], 0)
    assert str(raised.value).startswith(
        "VfClassVar.version: Meta.optimistic_lock counts versions in 'version', which is not a "
        "field"
    )
    refused("VfClassVar")


def test_a_renamed_counter_is_checked_under_its_name() -> None:
    with pytest.raises(DeclarationError, match=r"\bVfRenamed\.revision: .* not str; declare it "
                       r"`revision: int = 0`"):

        class VfRenamed(Document):
            revision: str = "a"

            class Meta:
                optimistic_lock = True
                version_field = "revision"

    refused("VfRenamed")


def test_an_inherited_field_that_cannot_count_is_refused_where_the_lock_starts() -> None:
    class VfUnlockedBase(Document):
        version: str = "draft"

        class Meta:
            abstract = True

    with pytest.raises(DeclarationError, match=r"\bVfLockedChild\.version: .* not str"):

        class VfLockedChild(VfUnlockedBase):
            class Meta:
                optimistic_lock = True

    refused("VfLockedChild")


def test_a_polymorphic_child_refused_stays_out_of_its_family() -> None:
    class VfAnimal(Document):
        class Meta:
            collection = "vf_animals"
            polymorphic = True

    class VfMammal(VfAnimal):
        pass

    with pytest.raises(DeclarationError, match=r"\bVfCat\.version: "):

        class VfCat(VfMammal):
            version: str = "x"

            class Meta:
                optimistic_lock = True

    assert set(VfAnimal._meta.family) == {"VfAnimal", "VfMammal"}
    assert VfMammal._meta.class_values == ("VfMammal",)  # what a find on VfMammal matches


@pytest.mark.parametrize(
    "declaration",
    [
        (int, 0),
        (Annotated[int, Field(ge=0)], 0),
        (int, Field(default=0, alias="v")),
        (int, Field(0, description="the lock's counter")),
    ],
    ids=["plain", "annotated", "alias", "described"],
)
def test_an_int_defaulting_to_0_is_the_counter(declaration: tuple[Any, Any]) -> None:
    model = declare("VfDeclared", *declaration)
    assert model._meta.optimistic_lock and model._meta.version_field == "version"
    assert model.model_fields["version"].annotation is int
    assert model().version == 0


def test_without_the_lock_a_version_field_is_any_field() -> None:
    class VfFree(Document):
        version: str = "v1"

    assert VfFree().version == "v1" and not VfFree._meta.optimistic_lock
