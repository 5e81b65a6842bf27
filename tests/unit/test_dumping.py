"""``to_bson()`` built from the class's plan is exactly pydantic's ``to_python(by_alias=True)``.

odm.models.dumping copies the fields the plan vouches for (plain values, flat embedded models,
lists of plain values) and leaves every other field to pydantic, that field alone. Each case
checks the result against pydantic's serializer on the same instance: the same keys in the
same order, equal values of the same types at every depth, and no container shared with the
instance. Hypothesis puts values of the right AND of the wrong types into the fields (through
``model_construct`` and ``__dict__``, as a user's code can), so that every fallback runs.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import warnings
from typing import Annotated, Any, Literal

import bson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, PlainSerializer, computed_field

import odm
from odm.models.dumping import dump_document, dump_field
from odm.models.model_plan import OTHER, document_plan


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Dims(odm.Embedded):
    width: float = 1.0
    height: float = 2.0
    unit: str = "cm"


class Tagged(odm.Embedded):
    code: str = "a"
    when: dt.datetime | None = None
    color: Color = Color.RED


class Aliased(odm.Embedded):
    city: str = "Paris"
    zip_code: str = odm.Field(default="75000", alias="zip")


class Hidden(odm.Embedded):
    shown: int = 1
    secret: str = odm.Field(default="s", exclude=True)


class Plain(BaseModel):
    x: int = 0
    y: int = 0


class Loud(odm.Embedded):
    word: Annotated[str, PlainSerializer(lambda v: v.upper())] = "hi"


class Open(odm.Embedded):
    model_config = ConfigDict(extra="allow")
    a: int = 0


class Lean(odm.Document):
    """A field of every kind the plan dumps itself (``dumps_alone``)."""

    name: str = "n"
    count: int = 0
    ratio: float = 1.5
    flag: bool = False
    when: dt.datetime = odm.Field(default_factory=lambda: dt.datetime(2024, 1, 2, tzinfo=dt.UTC))
    day: dt.date | None = None
    color: Color = Color.RED
    kind: Literal["a", "b"] = "a"
    blob: bytes = b"x"
    other_id: odm.ObjectId = odm.Field(default_factory=bson.ObjectId)
    label: str = odm.Field(default="x", alias="lbl")
    maybe: int | None = None
    tags: list[str] = []
    scores: list[int | None] = []
    anything: Any = None
    dims: Dims = odm.Field(default_factory=Dims)
    more_dims: list[Dims] = []
    tagged: Tagged = odm.Field(default_factory=Tagged)
    maybe_dims: Dims | None = None
    aliased: Aliased = odm.Field(default_factory=Aliased)
    hidden: Hidden = odm.Field(default_factory=Hidden)
    plain: Plain = odm.Field(default_factory=Plain)
    skipped: str = odm.Field(default="no", exclude=True)

    class Meta:
        collection = "dumping_lean"


class Wide(Lean):
    """The same, plus fields only pydantic dumps: the whole document is pydantic's."""

    price: odm.Decimal = odm.Field(default_factory=lambda: decimal.Decimal("1.50"))
    meta: dict[str, Any] = {}
    loud: Loud = odm.Field(default_factory=Loud)
    open: Open = odm.Field(default_factory=Open)

    class Meta:
        collection = "dumping_wide"


def typed(value: Any) -> Any:
    """``value`` with every dict's key order and every value's type made part of equality."""
    if isinstance(value, dict):
        return ("dict", [(k, typed(v)) for k, v in value.items()])
    if isinstance(value, list | tuple):
        return (type(value).__name__, [typed(v) for v in value])
    return (type(value), value)


def containers(value: Any) -> list[int]:
    """The ids of the dicts and lists reachable from ``value`` (models looked into)."""
    found: list[int] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, BaseModel):
            stack.extend(item.__dict__.values())
            stack.extend((item.__pydantic_extra__ or {}).values())
        elif isinstance(item, dict):
            found.append(id(item))
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            found.append(id(item))
            stack.extend(item)
    return found


def pydantic_dump(doc: BaseModel) -> Any:
    return type(doc).__pydantic_serializer__.to_python(doc, by_alias=True)


def check(doc: odm.Document, *, by_plan: bool = True) -> None:
    """``doc.to_bson()`` is pydantic's dump; ``by_plan``: the plan built it (else pydantic
    dumped the whole document, which a missing field asks for)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic warns of unexpected types: not our point
        expected = pydantic_dump(doc)
        ours = dump_document(doc)
        whole = doc.to_bson()
    assert (ours is not None) == by_plan
    assert typed(whole) == typed(expected)
    shared = set(containers(whole)) & set(containers(doc))
    assert not shared, "the dump shares a container with the instance"


def test_the_plan_knows_the_kinds() -> None:
    lean = document_plan(Lean)
    assert lean is not None and lean.dumps_alone
    plan = document_plan(Wide)
    assert plan is not None and not plan.dumps_alone
    names = [field[0] for field in plan.fields]
    assert "skipped" not in names and not plan.complete
    subs = {field[0]: field[4] for field in plan.fields}
    dims = subs["dims"]
    assert dims is not None and dims.flat and dims.complete
    hidden = subs["hidden"]
    assert hidden is not None and hidden.flat and not hidden.complete
    aliased = subs["aliased"]
    assert aliased is not None and not aliased.flat
    loud = subs["loud"]
    assert loud is not None and [field[2] for field in loud.fields] == [OTHER]
    assert subs["open"] is None  # extra="allow": pydantic dumps it


FILLED: dict[str, Any] = {
    "tags": ["a", "b"],
    "scores": [1, None],
    "anything": {"z": [1]},
    "more_dims": [Dims(), Dims(width=3)],
    "maybe_dims": Dims(unit="m"),
    "day": dt.date(2024, 5, 6),
    "tagged": Tagged(when=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), color=Color.BLUE),
}


def test_defaults_and_filled_documents() -> None:
    check(Lean())
    check(Lean(**FILLED))
    check(Wide(), by_plan=False)
    check(
        Wide(**FILLED, meta={"k": {"x": [1]}}, open=Open(a=1, b=[2])),  # type: ignore[call-arg]
        by_plan=False,
    )


def test_a_subclass_instance_is_dumped_by_pydantic() -> None:
    class MoreDims(Dims):
        depth: float = 3.0

    doc = Lean()
    doc.__dict__["dims"] = MoreDims()
    doc.__dict__["more_dims"] = [Dims(), MoreDims()]
    check(doc)  # pydantic dumps the declared class's fields only


def test_deleted_and_reordered_fields() -> None:
    doc = Lean()
    del doc.dims.unit  # pydantic allows it; its dump then lacks the key
    check(doc, by_plan=False)
    doc = Lean()
    unit = doc.dims.__dict__.pop("unit")
    doc.dims.__dict__["unit"] = unit  # the same keys, another order
    check(doc)


def test_a_missing_document_field_falls_back_to_pydantic() -> None:
    doc = Lean()
    del doc.__dict__["count"]
    check(doc, by_plan=False)


def test_dump_field_matches_the_whole_dump() -> None:
    doc = Wide(tags=["q"], more_dims=[Dims()])
    plan = document_plan(Wide)
    assert plan is not None
    expected = pydantic_dump(doc)
    for field in plan.fields:
        assert typed(dump_field(doc, field)) == typed(expected[field[1]]), field[0]


class Computed(odm.Document):
    a: int = 1

    @computed_field  # type: ignore[prop-decorator]
    @property
    def double(self) -> int:
        return self.a * 2

    class Meta:
        collection = "dumping_computed"


def test_a_class_without_a_plan_is_dumped_by_pydantic() -> None:
    assert document_plan(Computed) is None
    doc = Computed(a=2)
    assert doc.to_bson() == pydantic_dump(doc) == {"_id": doc.id, "a": 2, "double": 4}


# -- any value in any field -----------------------------------------------------------------

SCALARS = (
    st.text(max_size=3)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.none()
    | st.binary(max_size=3)
    | st.sampled_from([Color.RED, Color.BLUE])
    | st.datetimes(timezones=st.just(dt.UTC))
    | st.dates()
    | st.builds(bson.ObjectId)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=2)
    ),
    max_leaves=5,
)
FIELDS = [name for name in Lean.model_fields if name != "skipped"]
SUB_FIELDS = {
    "dims": list(Dims.model_fields),
    "tagged": list(Tagged.model_fields),
    "aliased": list(Aliased.model_fields),
    "hidden": list(Hidden.model_fields),
    "plain": list(Plain.model_fields),
}


@settings(max_examples=300, deadline=None)
@given(
    top=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=4),
    inner=st.lists(
        st.tuples(st.sampled_from(sorted(SUB_FIELDS)), st.data()), max_size=2
    ),
    items=st.lists(VALUES, max_size=3),
)
def test_any_value_in_any_field(
    top: dict[str, Any], inner: list[tuple[str, Any]], items: list[Any]
) -> None:
    doc = Lean(tags=["a"], more_dims=[Dims()])
    for name, value in top.items():
        doc.__dict__[name] = value  # as model_construct or a careless user would
    for name, data in inner:
        sub = doc.__dict__.get(name)
        if isinstance(sub, BaseModel):
            field = data.draw(st.sampled_from(SUB_FIELDS[name]))
            sub.__dict__[field] = data.draw(VALUES)
    if isinstance(doc.__dict__.get("tags"), list):
        doc.__dict__["tags"] = [*doc.__dict__["tags"], *items]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pydantic_dump(doc)
    except Exception:
        # pydantic cannot dump it: neither may to_bson() return something else.
        with pytest.raises(Exception), warnings.catch_warnings():  # noqa: B017
            warnings.simplefilter("ignore")
            doc.to_bson()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_plan = dump_document(doc) is not None
        expected = pydantic_dump(doc)
        plan = document_plan(Lean)
        assert plan is not None
        for field in plan.fields:  # what save() dumps for one field
            assert typed(dump_field(doc, field)) == typed(expected[field[1]]), field[0]
    check(doc, by_plan=by_plan)
