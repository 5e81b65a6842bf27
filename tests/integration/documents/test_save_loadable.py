"""``save()`` never stores a document its model would refuse to load.

Pydantic validates a value when a model is built and when a field is assigned, not when a
value it holds changes in place (``doc.tags.append(1)`` on a ``list[str]``), nor a value
written to ``__dict__``. ``save()`` sees those changes (it compares the object with its
stored snapshot), and stored them as they were: every later read of the document then
failed. Now the changed fields are validated again before anything is sent.

The property: hypothesis draws in-place changes, well typed or not, of lists, dicts, an
embedded model and a list of them, ``__dict__`` writes, and a cross-field validator that a
change of either field can break. After each ``save()``:

- it went through exactly when the model validates the object's stored form (the oracle:
  ``model_validate(doc.to_bson())``), so no valid save is refused;
- when it went through, the stored document is the object's, and it loads;
- when it was refused, with a ``ValidationError`` naming a changed field, the stored
  document is what it was before, byte for byte;

alone or in ``odm.transaction()`` (a refused save there aborts it).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from typing import Annotated, Any, Literal

import bson
import pytest
from bson import json_util
from hypothesis import given
from hypothesis import strategies as st
from pydantic import (
    AfterValidator,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

import odm
from odm import executor
from odm.contrib.pytest import MonitoredDatabase
from odm.document import Document, Embedded
from odm.executor import CODEC_OPTIONS
from odm.models.fields import Field
from tests.properties import server_property


class LoadGeo(Embedded):
    tags: list[str] = []
    n: int = 0


class PlainDoc(Document):
    """Fields of every kind, and no validator of its own: only its changed fields are
    validated again."""

    tags: list[str] = []
    counts: dict[str, int] = {}
    geo: LoadGeo = Field(default_factory=LoadGeo)
    geos: list[LoadGeo] = []
    limit: int = 3

    class Meta:
        collection = "save_loadable_plain_docs"


class LoadDoc(PlainDoc):
    """The same fields with a validator across two of them: its whole new stored document is
    validated again."""

    class Meta:
        collection = "save_loadable_docs"

    @model_validator(mode="after")
    def _within_limit(self) -> LoadDoc:
        if len(self.tags) > self.limit:
            raise ValueError(f"more than {self.limit} tags")
        return self


def _fewer_than_limit(tags: list[str], info: ValidationInfo) -> list[str]:
    # A read validates in declared order: info.data has no "limit" (declared later) yet.
    limit = info.data.get("limit")
    if limit is not None and len(tags) > limit:
        raise ValueError("sees a field declared later")
    return tags


def _covers(limit: int, info: ValidationInfo) -> int:
    # Reads fields declared earlier, as a read validated them ("5" in counts is then 5).
    if len(info.data.get("tags", ())) > limit + 1 or sum(info.data.get("counts", {}).values()) > 50:
        raise ValueError("limit below what the other fields hold")
    return limit


class InfoDoc(PlainDoc):
    """Validators given ``info`` that read other fields (``Annotated``, not decorators): its
    whole new stored document is validated, in declared order, as a read validates it."""

    tags: Annotated[list[str], AfterValidator(_fewer_than_limit)] = []
    limit: Annotated[int, AfterValidator(_covers)] = 3

    class Meta:
        collection = "save_loadable_info_docs"


Doc = LoadDoc | PlainDoc | InfoDoc

ITEMS = st.sampled_from(["a", "b", 1, None, 2.5, ["x"], {"k": "v"}])
COUNTS = st.sampled_from([0, 7, "5", 49, "x", 1.5, None, [1]])


def mutate(doc: Doc, step: tuple[Any, ...]) -> None:
    """Apply one drawn change to ``doc``, in place or past pydantic (``__dict__``)."""
    kind, value = step
    if kind == "tags.append":
        doc.tags.append(value)
    elif kind == "tags.pop":
        if doc.tags:
            doc.tags.pop()
    elif kind == "counts.set":
        doc.counts["k"] = value
    elif kind == "geo.tags.append":
        doc.geo.tags.append(value)
    elif kind == "geo.n":
        doc.geo.__dict__["n"] = value
    elif kind == "geos.append":
        doc.geos.append(LoadGeo() if value else {"n": "x"})  # type: ignore[arg-type]
    elif kind == "geos.tags.append":
        if doc.geos and isinstance(doc.geos[-1], LoadGeo):
            doc.geos[-1].tags.append(value)
    elif kind == "limit":
        doc.__dict__["limit"] = value


MUTATIONS = st.one_of(
    st.tuples(st.just("tags.append"), ITEMS),
    st.tuples(st.just("tags.pop"), st.none()),
    st.tuples(st.just("counts.set"), COUNTS),
    st.tuples(st.just("geo.tags.append"), ITEMS),
    st.tuples(st.just("geo.n"), COUNTS),
    st.tuples(st.just("geos.append"), st.booleans()),
    st.tuples(st.just("geos.tags.append"), ITEMS),
    st.tuples(st.just("limit"), st.sampled_from([0, 1, 5, "x", 2.0])),
)
#: A save step says whether it runs in ``odm.transaction()``.
STEPS = st.lists(
    st.one_of(st.tuples(st.just("mutate"), MUTATIONS), st.tuples(st.just("save"), st.booleans())),
    min_size=1,
    max_size=12,
)


def canonical(value: Any) -> Any:
    """``value`` as canonical extended JSON, parsed back (types apart, key order ignored)."""
    return json.loads(json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS))


def loads(model: type[Doc], raw: dict[str, Any]) -> bool:
    """The oracle: whether ``model`` validates ``raw`` as a read gets it back."""
    back = read_back(raw)
    if back is None:
        return False
    try:
        model.model_validate(back)
    except ValidationError:
        return False
    return True


async def stored(doc: Doc) -> dict[str, Any]:
    found = await executor.find_one(type(doc), {"_id": doc.id})
    assert found is not None
    return found


@pytest.mark.parametrize("model", [LoadDoc, PlainDoc, InfoDoc])
@server_property(max_examples=40)
@given(steps=STEPS)
async def test_a_save_stores_only_what_its_model_loads(
    monitored: MonitoredDatabase, model: type[Doc], steps: list[tuple[Any, ...]]
) -> None:
    doc: Doc = model()
    await doc.insert()
    for kind, step in [*steps, ("save", False)]:
        if kind == "mutate":
            with _quiet():
                mutate(doc, step)
            continue
        before = await stored(doc)
        with _quiet():
            expected_to_load = loads(model, doc.to_bson())
        try:
            with _quiet():
                await save(doc, in_block=step)
        except ValidationError as error:
            assert not expected_to_load, f"a valid save was refused: {error}"
            assert canonical(await stored(doc)) == canonical(before)  # nothing was written
            doc = await model.objects.get(id=doc.id)  # start again from what is stored
            continue
        with _quiet():
            saved = doc.to_bson()
        assert expected_to_load, f"stored what {model.__name__} cannot load: {saved!r}"
        assert canonical(await stored(doc)) == canonical(saved)
        await model.objects.get(id=doc.id)  # and it loads


async def save(doc: Doc, *, in_block: bool) -> None:
    """``doc.save()``, alone or in a transaction of its own (a refusal there aborts it)."""
    if not in_block:
        await doc.save()
        return
    async with odm.transaction():
        await doc.save()


class _quiet:
    """Silence pydantic's serializer warnings for the wrongly typed values these tests put
    in place on purpose (the refusal under test is odm's, not the warning)."""

    def __enter__(self) -> None:
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc: object) -> None:
        self._catch.__exit__(*exc)


async def test_an_in_place_append_of_the_wrong_type_is_refused_naming_the_field(
    monitored: MonitoredDatabase,
) -> None:
    doc = PlainDoc(tags=["a"])
    await doc.insert()
    doc.tags.append(123)  # type: ignore[arg-type]
    monitored.log.clear()
    with _quiet(), pytest.raises(ValidationError) as raised:
        await doc.save()
    assert monitored.log.names() == []  # refused before anything was sent
    assert raised.value.title == "PlainDoc"
    assert raised.value.errors()[0]["loc"] == ("tags", 1)
    assert (await stored(doc))["tags"] == ["a"]


async def test_an_in_place_change_that_breaks_a_validator_across_fields_is_refused(
    monitored: MonitoredDatabase,
) -> None:
    doc = LoadDoc(tags=["a", "b", "c"])
    await doc.insert()
    doc.tags.append("d")  # four tags: more than limit=3
    with pytest.raises(ValidationError, match="more than 3 tags"):
        await doc.save()
    assert (await stored(doc))["tags"] == ["a", "b", "c"]


async def test_a_flush_at_commit_refuses_it_too_and_the_block_writes_nothing(
    monitored: MonitoredDatabase,
) -> None:
    doc = LoadDoc(tags=["a"], counts={"k": 1})
    await doc.insert()
    with pytest.raises(ValidationError) as raised, _quiet():
        async with odm.transaction():
            held = await LoadDoc.objects.get(id=doc.id)
            held.counts["k"] = "many"  # type: ignore[assignment]
            held.tags.append("b")  # a valid change in the same flush
    assert raised.value.errors()[0]["loc"] == ("counts", "k")
    raw = await stored(doc)
    assert raw["counts"] == {"k": 1} and raw["tags"] == ["a"]


async def test_an_embedded_models_in_place_change_is_validated_from_what_is_stored(
    monitored: MonitoredDatabase,
) -> None:
    doc = PlainDoc(geos=[LoadGeo(tags=["a"])])
    await doc.insert()
    doc.geos[0].tags.append(["nested"])  # type: ignore[arg-type]
    with _quiet(), pytest.raises(ValidationError) as raised:
        await doc.save()
    assert raised.value.errors()[0]["loc"][:3] == ("geos", 0, "tags")
    doc = await PlainDoc.objects.get(id=doc.id)
    doc.geos[0].tags.append("b")  # well typed: saved, and it loads
    await doc.save()
    assert (await PlainDoc.objects.get(id=doc.id)).geos[0].tags == ["a", "b"]


# -- fields of every kind: no valid save is refused -----------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class RichPart(Embedded):
    label: str = Field(default="", alias="lbl")
    sizes: tuple[int, ...] = ()


class RichDoc(Document):
    """Kinds whose dump differs from what a read gets back (tuples, sets, dates, enums,
    aliases), a constrained list, and a frozen list, which refuses assignments but not a
    change in place."""

    colour: Colour = Colour.RED
    day: dt.date = dt.date(2024, 1, 2)
    labels: set[str] = set()
    short: list[Annotated[str, StringConstraints(max_length=3)]] = []
    frozen: list[int] = Field(default_factory=list, frozen=True)
    part: RichPart = Field(default_factory=RichPart, alias="p")
    parts: list[RichPart] = []
    maybe: int | None = None
    kind: Literal["a", "b"] = "a"

    class Meta:
        collection = "save_loadable_rich_docs"


RICH_VALUES = st.sampled_from(
    [
        "ab", "abcdef", 3, None, 2.5, Colour.BLUE, "blue", "c", dt.date(2025, 5, 6),
        dt.datetime(2025, 5, 6, tzinfo=dt.UTC), (1, 2), [1, "x"], {"lbl": "z"},
    ]
)
RICH_FIELDS = st.sampled_from(["colour", "day", "maybe", "kind", "part"])


def mutate_rich(doc: RichDoc, step: tuple[Any, ...]) -> None:
    """Apply one drawn change to ``doc``, in place or past pydantic (``__dict__``)."""
    kind, *args = step
    if kind == "labels.add":
        if isinstance(args[0], str):
            doc.labels.add(args[0])
    elif kind == "short.append":
        doc.short.append(args[0])
    elif kind == "frozen.append":
        doc.frozen.append(args[0])
    elif kind in ("part.sizes", "part.label"):
        if isinstance(doc.part, RichPart):  # not when "part" itself was put past pydantic
            doc.part.__dict__[kind.removeprefix("part.")] = args[0]
    elif kind == "parts.append":
        doc.parts.append(RichPart())
    elif kind == "bypass":
        doc.__dict__[args[0]] = args[1]


RICH_MUTATIONS = st.one_of(
    st.tuples(st.just("labels.add"), RICH_VALUES),
    st.tuples(st.just("short.append"), RICH_VALUES),
    st.tuples(st.just("frozen.append"), RICH_VALUES),
    st.tuples(st.just("part.sizes"), RICH_VALUES),
    st.tuples(st.just("part.label"), RICH_VALUES),
    st.tuples(st.just("parts.append")),
    st.tuples(st.just("bypass"), RICH_FIELDS, RICH_VALUES),
)


def read_back(raw: dict[str, Any]) -> dict[str, Any] | None:
    """``raw`` as a read would get it back (BSON encoded and decoded with the ODM's codec),
    or ``None`` when BSON cannot hold it (the driver refuses it before sending)."""
    try:
        return bson.decode(bson.encode(raw, codec_options=CODEC_OPTIONS), CODEC_OPTIONS)
    except (bson.errors.InvalidDocument, TypeError, OverflowError):
        return None


@server_property(max_examples=40)
@given(steps=st.lists(st.one_of(RICH_MUTATIONS, st.just(("save",))), min_size=1, max_size=10))
async def test_a_save_of_any_kind_of_field_is_refused_only_when_a_read_would_fail(
    monitored: MonitoredDatabase, steps: list[tuple[Any, ...]]
) -> None:
    doc = RichDoc()
    await doc.insert()
    for step in [*steps, ("save",)]:
        if step[0] != "save":
            with _quiet():
                mutate_rich(doc, step)
            continue
        with _quiet():
            back = read_back(doc.to_bson())
            expected_to_load = loads(RichDoc, doc.to_bson())
        before = await stored(doc)
        try:
            with _quiet():
                await doc.save()
        except ValidationError as error:
            assert not expected_to_load, f"a save a read would load was refused: {error}"
            assert canonical(await stored(doc)) == canonical(before)
            doc = await RichDoc.objects.get(id=doc.id)
            continue
        except (bson.errors.InvalidDocument, odm.QueryError):
            assert back is None  # BSON cannot hold it: refused by the encoder, unsent
            assert canonical(await stored(doc)) == canonical(before)
            doc = await RichDoc.objects.get(id=doc.id)
            continue
        assert expected_to_load, "stored what RichDoc cannot load"
        await RichDoc.objects.get(id=doc.id)


async def test_validators_given_info_see_what_a_read_gives_them(
    monitored: MonitoredDatabase,
) -> None:
    """``InfoDoc``'s validators read other fields through ``info.data``: the save's check
    gives them what a read gives them (the fields declared before, validated), so a save a
    read loads is never refused, one a read refuses always is, and none raises anything else."""
    doc = await InfoDoc(tags=["a"]).insert()
    doc.tags.extend(["b", "c", "d"])  # four tags, limit 3: only "limit" sees "tags" on a read
    await doc.save()
    assert (await InfoDoc.objects.get(id=doc.id)).tags == ["a", "b", "c", "d"]

    doc.tags.append("e")  # five: "limit"'s validator refuses it on a read
    with pytest.raises(ValidationError, match="limit below"):
        await doc.save()
    assert (await stored(doc))["tags"] == ["a", "b", "c", "d"]

    doc = await InfoDoc.objects.get(id=doc.id)
    doc.counts["k"] = "5"  # type: ignore[assignment]  # a read makes it 5
    doc.tags.pop()
    with _quiet():
        await doc.save()  # "limit"'s validator sums the counts as a read validated them
    assert (await InfoDoc.objects.get(id=doc.id)).counts == {"k": 5}


class RefTarget(Document):
    name: str = "t"

    class Meta:
        collection = "save_loadable_targets"


class RefHolder(Document):
    refs: list[odm.Reference[RefTarget]] = []
    amounts: list[odm.Decimal] = []

    class Meta:
        collection = "save_loadable_holders"


@pytest.mark.parametrize(
    ("field", "value"),
    [("refs", "document"), ("refs", "id"), ("amounts", "abc")],
)
async def test_a_value_pydantic_cannot_dump_is_refused_naming_the_field(
    monitored: MonitoredDatabase, field: str, value: str
) -> None:
    """A document (or a bare id) appended to a list of references, text to a list of
    decimals: pydantic's serializer fails on them with an error that names neither class
    nor field; ``save()`` raises pydantic's ``ValidationError`` naming both, unsent."""
    target = await RefTarget().insert()
    holder = await RefHolder().insert()
    item = {"document": target, "id": target.id}.get(value, value)
    getattr(holder, field).append(item)
    monitored.log.clear()
    with _quiet(), pytest.raises(ValidationError) as raised:
        await holder.save()
    assert raised.value.title == "RefHolder"
    assert raised.value.errors()[0]["loc"] == (field,)
    assert "cannot be stored" in str(raised.value)
    assert monitored.log.names() == []
    with _quiet(), pytest.raises(ValidationError):  # and so does its stored form
        holder.to_bson()
