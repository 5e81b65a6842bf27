"""An operator key in an update value of a typed field is refused, never dropped.

``filter(prefs={"$set": {...}})`` was refused naming the operator, but
``update(prefs={"$set": {...}})`` on an embedded-model field was accepted: pydantic ignored the
key it does not declare and the stored ``prefs`` became the model's defaults (a hostile body
destroyed stored data, and ``update()`` returned 1). So did ``items=[{"$where": "..."}]`` on
a list of embedded models, and ``F("items").push/add_to_set/pull({..., "$x": 1})``. A key
starting with ``$`` or holding ``.`` or NUL, at any depth of the raw value, is now refused
with a ``QueryError`` naming the field and the key before anything is sent, in every update
path, as in a filter (docs/querysets.md, Safety rules 2 and 3).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from odm import Document, Embedded, F, QueryError
from odm.contrib.pytest import MonitoredDatabase
from odm.query import Query
from odm.query.compiler import compile_update
from tests.properties import server_property

pytestmark = pytest.mark.odm_drivers("pymongo")


class UkPrefs(Embedded):
    theme: str = "light"
    notify: bool = True


class UkLine(Embedded):
    prefs: UkPrefs = UkPrefs()


class UkAccount(Document):
    name: str
    prefs: UkPrefs = UkPrefs()
    items: list[UkPrefs] = []
    lines: list[UkLine] = []
    extra: dict[str, Any] = {}
    anything: Any = None

    class Meta:
        collection = "uk_accounts"


DECLARED = {"theme", "notify"}
TEXT = st.text(st.characters(codec="utf-8"), max_size=5)
KEYS = st.sampled_from(
    ["$set", "$where", "$x", "$", "$each", "a.b", ".", "x.", "a\x00b", "\x00", "ok", "junk",
     "city", "__proto__", "$$ROOT"]
) | TEXT
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=10,
)


@st.composite
def prefs_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A JSON body for a ``UkPrefs``: its declared fields valid when given, and keys it does not
    declare (some starting with ``$``, holding ``.`` or NUL) over JSON values nested at will, so
    that the type would take the body whatever keys it holds."""
    body: dict[str, Any] = {}
    if draw(st.booleans()):
        body["theme"] = draw(TEXT)
    if draw(st.booleans()):
        body["notify"] = draw(st.booleans())
    extras = draw(st.dictionaries(KEYS.filter(lambda k: k not in DECLARED), JSON, max_size=3))
    return {**extras, **body} if draw(st.booleans()) else {**body, **extras}


def hostile_keys(value: Any) -> list[str]:
    """The keys, at any depth of ``value``, that no update value may hold."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found += [k for k in item if k.startswith("$") or "." in k or "\x00" in k]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def stored(body: dict[str, Any]) -> dict[str, Any]:
    """What the model validates ``body`` to, as stored."""
    return UkPrefs.model_validate(body).model_dump(by_alias=True)


BASE_ITEMS = [{"theme": "x", "notify": True}, {"theme": "light", "notify": True}]


def expected(base: dict[str, Any], how: str, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """The stored document once ``how`` wrote ``bodies`` to ``base`` (all accepted)."""
    after = dict(base)
    values = [stored(b) for b in bodies]
    if how == "set_prefs":
        after["prefs"] = values[0]
    elif how == "set_items":
        after["items"] = values
    elif how == "push":
        after["items"] = base["items"] + values
    elif how == "add_to_set":
        after["items"] = list(base["items"])
        after["items"] += [v for i, v in enumerate(values) if v not in base["items"] + values[:i]]
    elif how == "pull":
        after["items"] = [i for i in base["items"] if i not in values]
    elif how == "each":
        after["lines"] = [{**line, "prefs": values[0]} for line in base["lines"]]
    return after


def update_of(how: str, bodies: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The field ``how`` writes (as an error names it) and the ``update()`` keywords."""
    if how == "set_prefs":
        return "prefs", {"prefs": bodies[0]}
    if how == "set_items":
        return "items", {"items": bodies}
    if how == "each":
        return "lines__prefs", {"lines": F("lines").each(prefs=bodies[0])}
    return "items", {"items": getattr(F("items"), how)(*bodies)}


HOWS = ["set_prefs", "set_items", "push", "add_to_set", "pull", "each"]


@pytest.fixture
async def account(monitored: MonitoredDatabase) -> dict[str, Any]:
    """The raw stored account each example starts from."""
    made = await UkAccount(
        name="ann",
        prefs=UkPrefs(theme="dark", notify=False),
        items=[UkPrefs(**i) for i in BASE_ITEMS],
        lines=[UkLine(prefs=UkPrefs(theme="l1")), UkLine()],
    ).insert()
    raw = await monitored.database[UkAccount._meta.collection].find_one({"_id": made.id})
    assert raw is not None
    return raw


@server_property(max_examples=150)
@given(how=st.sampled_from(HOWS), bodies=st.lists(prefs_bodies(), min_size=1, max_size=3))
async def test_update_refuses_hostile_keys_in_typed_values(
    monitored: MonitoredDatabase, account: dict[str, Any], how: str,
    bodies: list[dict[str, Any]],
) -> None:
    """Refused, naming the field and a hostile key, iff one is at any depth of the value;
    then nothing was sent and the document is as it was. Accepted, what is stored is what
    the model validates the value to."""
    if how in ("set_prefs", "each"):
        bodies = bodies[:1]
    collection = monitored.database[UkAccount._meta.collection]
    await collection.replace_one({"_id": account["_id"]}, account)
    field, values = update_of(how, bodies)
    hostile = hostile_keys(bodies)
    monitored.log.clear()
    try:
        matched = await UkAccount.objects.filter(id=account["_id"]).update(**values)
    except QueryError as error:
        event(f"{how}: refused")
        assert hostile, f"{how} {bodies!r} refused: {error}"
        assert error.field == field, (error.field, field)
        assert any(repr(key) in str(error) for key in hostile), str(error)
        assert monitored.log.commands == [], monitored.log.names()
        assert await collection.find_one({"_id": account["_id"]}) == account
        return
    event(f"{how}: accepted")
    assert not hostile, f"{how} {bodies!r} accepted with {hostile}"
    assert matched == 1
    assert "update" in monitored.log.names()
    assert await collection.find_one({"_id": account["_id"]}) == expected(account, how, bodies)


async def test_the_reported_bodies_are_refused(
    monitored: MonitoredDatabase, account: dict[str, Any]
) -> None:
    """The report's own requests: each refused before anything is sent, data intact."""
    collection = monitored.database[UkAccount._meta.collection]
    qs = UkAccount.objects.filter(id=account["_id"])
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("prefs", "$set", {"prefs": {"$set": {"theme": "blue"}}}),
        ("items", "$where", {"items": [{"$where": "sleep(1000)"}]}),
        ("items", "$x", {"items": F("items").push({"theme": "c", "$x": 1})}),
        ("items", "$x", {"items": F("items").add_to_set({"theme": "c", "$x": 1})}),
        ("items", "$x", {"items": F("items").pull({"theme": "c", "$x": 1})}),
        ("items", "$each", {"items": F("items").push({"theme": "c", "$each": 1})}),
        ("prefs", "a.b", {"prefs": {"theme": "t", "junk": [{"a.b": 1}]}}),
        ("lines__prefs", "$set", {"lines": F("lines").each(prefs={"$set": {}})}),
    ]
    for field, key, values in cases:
        monitored.log.clear()
        with pytest.raises(QueryError, match=re.escape(repr(key))) as caught:
            await qs.update(**values)
        assert caught.value.field == field
        assert monitored.log.commands == []
    assert await collection.find_one({"_id": account["_id"]}) == account


def test_free_form_fields_refuse_such_keys_in_update_as_in_filter() -> None:
    """A free-form field (dict, Any) keeps every key, so an operator key in its value is
    refused by the literal check, in filter() and update() alike (save() stores it as data)."""
    for field in ("extra", "anything"):
        for body in ({"$set": 1}, {"a": [{"b.c": 1}]}, {"a": {"\x00": 1}}):
            with pytest.raises(QueryError) as in_filter:
                Query(UkAccount).add_filter(**{field: body})
            with pytest.raises(QueryError) as in_update:
                compile_update(UkAccount, {field: body})
            assert in_filter.value.field is not None and field in in_filter.value.field
            assert in_update.value.field == field


def test_filter_refuses_a_dotted_key_as_update_does() -> None:
    """One check serves both: a '.' or NUL key in an embedded value, which the model would
    drop, is refused in a filter too."""
    for body in ({"theme": "t", "a.b": 1}, {"theme": "t", "x": {"\x00": 1}}):
        with pytest.raises(QueryError, match="prefs__exact: the value holds the key"):
            Query(UkAccount).add_filter(prefs=body)
        with pytest.raises(QueryError, match="value for 'prefs' holds the key"):
            compile_update(UkAccount, {"prefs": body})


def test_a_cyclic_value_is_walked_once() -> None:
    """A value holding itself (under a key the model drops) ends the walk: the filter's check
    looped forever on one before."""
    body: dict[str, Any] = {"theme": "t"}
    body["again"] = body
    body["twice"] = [body, body]
    Query(UkAccount).add_filter(prefs=body)
    assert compile_update(UkAccount, {"prefs": body}) == {
        "$set": {"prefs": {"theme": "t", "notify": True}}
    }
    body["twice"].append({"$x": body})
    with pytest.raises(QueryError, match=r"'\$x'"):
        compile_update(UkAccount, {"prefs": body})
