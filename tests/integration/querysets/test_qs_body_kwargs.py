"""A request body expanded into keyword arguments is lookups, and nothing else (issue #19, 1).

``exclude(**body)``, ``Q(**body)``, ``filter(Q(...), **body)``, ``get(Q(...), **body)``,
``update(**body)``, ``get_or_create(**body)``... : no key of ``body`` may bind a parameter of
the method itself (Django's CVE-2025-64459 was ``_connector`` / ``_negated`` binding ``Q``'s).
The parameter names tried are collected by introspection of every public method, so a
parameter added later is tried too.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import odm
from odm import Document, Q, QueryError, QuerySet
from odm.aggregates import Count
from odm.contrib.pytest import MonitoredDatabase
from odm.query.compiler import compile_query
from odm.query.query import Query
from odm.queryset import DefaultManager, Manager


class BkNote(Document):
    owner: str
    name: str = ""
    status: str = "open"
    n: int = 0

    class Meta:
        collection = "qs_body_notes"


class BkNoteQuerySet(QuerySet["BkNoteCustom"]):
    def mine(self, owner: str) -> BkNoteQuerySet:
        return self.filter(owner=owner)


class BkNoteCustom(Document):
    owner: str

    objects = BkNoteQuerySet.as_manager()

    class Meta:
        collection = "qs_body_notes_custom"


#: The classes whose public methods may take lookups or field values as ``**kwargs``.
CLASSES: tuple[type[Any], ...] = (
    QuerySet, Manager, DefaultManager, Q, Query, type(BkNote.objects), type(BkNoteCustom.objects)
)
#: Keyword parameters beside ``**kwargs`` that are deliberate, with the reason.
#: ``get_or_create``'s ``defaults`` is Django's keyword, which only fills a new document
#: (tested below). (``watch`` takes keyword-only options and no ``**kwargs``.)
ALLOWED = {("get_or_create", "defaults")}


def public_methods() -> Iterator[tuple[str, Callable[..., Any]]]:
    """(``Class.name``, method) of every public method of :data:`CLASSES`, and ``__init__``."""
    for cls in CLASSES:
        for name, member in inspect.getmembers(cls, callable):
            if not name.startswith("_") or name == "__init__":
                yield f"{cls.__name__}.{name}", member


def parameter_names() -> set[str]:
    """Every parameter name of every public method (and Django's ones a body might carry)."""
    names = {"_connector", "_negated", "negate", "defaults", "create_defaults"}
    for _, method in public_methods():
        try:
            parameters = inspect.signature(method).parameters
        except (TypeError, ValueError):
            continue
        names.update(parameters)
    return names - {"self", "cls"}


def kwargs_methods() -> dict[str, inspect.Signature]:
    """The public methods taking ``**kwargs``, by ``Class.name``."""
    found = {}
    for name, method in public_methods():
        try:
            signature = inspect.signature(method)
        except (TypeError, ValueError):
            continue
        if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            found[name] = signature
    return found


NAMES = sorted(parameter_names())
HOSTILE = [True, "OR", 1, {"$ne": None}]


def test_lookup_methods_have_no_other_keyword_parameter() -> None:
    methods = kwargs_methods()
    # The methods the issue lists are all found, so the introspection does look at them.
    assert {"Q.__init__", "Query.add_filter", "Query.add_exclude"} | {
        f"{cls.__name__}.{name}"
        for cls in (QuerySet, type(BkNote.objects), type(BkNoteCustom.objects))
        for name in ("filter", "exclude", "get", "update", "get_or_create", "update_or_create",
                     "annotate", "aggregate")
    } <= set(methods)
    for name, signature in methods.items():
        for parameter in signature.parameters.values():
            bindable = parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
            if bindable and parameter.name not in ("self", "cls"):
                method = name.rsplit(".", 1)[1]
                assert (method, parameter.name) in ALLOWED, (name, str(signature))
    assert len(NAMES) > 25 and {"_connector", "_negated", "flat", "length"} <= set(NAMES)


def _outcome(build: Callable[[dict[str, Any]], Any], body: dict[str, Any]) -> Any:
    try:
        return build(body)
    except QueryError as exc:
        return ("refused", type(exc))


def _query(negate: bool) -> Callable[[dict[str, Any]], Any]:
    def build(body: dict[str, Any]) -> Any:
        query = Query(BkNote)
        (query.add_exclude if negate else query.add_filter)(**body)
        return compile_query(query).explain()

    return build


BUILDERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "filter": lambda b: BkNote.objects.filter(**b).explain_query(),
    "exclude": lambda b: BkNote.objects.exclude(**b).explain_query(),
    "filter_q": lambda b: BkNote.objects.filter(Q(owner="ann"), **b).explain_query(),
    "exclude_q": lambda b: BkNote.objects.exclude(Q(owner="ann"), **b).explain_query(),
    "q": lambda b: BkNote.objects.filter(Q(**b)).explain_query(),
    "q_or": lambda b: BkNote.objects.filter(Q(owner="ann") | Q(**b)).explain_query(),
    "q_not": lambda b: BkNote.objects.filter(~Q(**b)).explain_query(),
    "annotated": lambda b: BkNote.objects.values("owner").annotate(count=Count()).filter(**b)
    .explain_query(),
    "custom": lambda b: BkNoteCustom.objects.mine("ann").filter(**b).explain_query(),
    "add_filter": _query(False),
    "add_exclude": _query(True),
}


@pytest.mark.parametrize("how", sorted(BUILDERS))
def test_every_parameter_name_in_a_body_is_a_lookup(how: str) -> None:
    """Built without I/O: ``{name: v}`` means exactly what ``{name + "__exact": v}`` means
    (no parameter name holds ``__``, so that spelling can only be a lookup): both are refused
    (an unknown field: every name but the model's own ``owner``), or both compile to the same
    query."""
    build = BUILDERS[how]
    for name in NAMES:
        for value in HOSTILE:
            got = _outcome(build, {name: value})
            assert got == _outcome(build, {f"{name}__exact": value}), (name, value)
            if name not in BkNote.model_fields:
                assert got == ("refused", QueryError), (name, value)
    grouped = BkNote.objects.values("owner")
    for name in NAMES:
        with pytest.raises(QueryError):
            grouped.annotate(**{name: "OR"})


async def test_every_parameter_name_is_refused_by_the_running_methods(
    monitored: MonitoredDatabase,
) -> None:
    """The terminal methods refuse the same bodies before sending anything."""
    qs = BkNote.objects.all()
    monitored.log.clear()
    for name in NAMES:
        if name in BkNote.model_fields:
            continue  # a lookup on that field: covered by the equivalence above
        body = {name: "OR"}
        calls: list[Callable[[dict[str, Any]], Awaitable[Any]]] = [
            lambda b: qs.get(**b),
            lambda b: qs.get(Q(owner="carol"), **b),
            lambda b: qs.update(**b),
            lambda b: qs.aggregate(**b),
            lambda b: qs.update_or_create(**b),
            lambda b: qs.update_or_create({"n": 1}, **b),
            lambda b: qs.get_or_create(**b),  # a str is no ``defaults`` either
        ]
        for call in calls:
            with pytest.raises(QueryError):
                await call(body)
    assert monitored.log.names() == []


async def seed() -> dict[str, BkNote]:
    docs = [
        BkNote(owner="ann", name="a1"),
        BkNote(owner="ann", name="a2", status="deleted"),
        BkNote(owner="bob", name="b1"),
        BkNote(owner="carol", name="c1"),
    ]
    await BkNote.objects.bulk_create(docs)
    return {d.name: d for d in docs}


async def test_the_reported_bodies_are_refused(odm_database: Any) -> None:
    """The four forms of the report: each was a silent change of meaning on main."""
    notes = await seed()
    qs = BkNote.objects.filter(owner="ann")
    with pytest.raises(QueryError, match="_negated"):
        await qs.exclude(status="deleted", **{"_negated": True})
    with pytest.raises(QueryError, match="_connector"):
        await BkNote.objects.filter(Q(owner="ann"), **{"_connector": "OR", "name__ne": ""})
    with pytest.raises(QueryError, match="_connector"):
        await BkNote.objects.get(Q(owner="carol"), **{"_connector": "OR", "id": notes["b1"].id})
    grouped = BkNote.objects.values("owner").annotate(count=Count())
    with pytest.raises(QueryError, match="_negated"):
        await grouped.filter(**{"_negated": True, "owner": "ann"})
    with pytest.raises(QueryError, match="negate"):
        await qs.filter(**{"negate": True})
    # What the developer meant still works.
    assert [n.name for n in await qs.exclude(status="deleted")] == ["a1"]
    assert await grouped.filter(owner="ann") == [{"owner": "ann", "count": 2}]


async def test_defaults_in_a_body(monitored: MonitoredDatabase) -> None:
    """get_or_create: a body's ``defaults`` only fills a new document (never the query, never
    a stored document); update_or_create takes defaults positionally, so there it is a
    lookup; a key both in the lookup and in defaults is a QueryError naming it."""
    await seed()
    monitored.log.clear()
    found, created = await BkNote.objects.get_or_create(
        **{"name": "b1", "defaults": {"owner": "mallory", "status": "x"}}
    )
    assert not created and (found.owner, found.status) == ("bob", "open")
    assert [c["filter"] for c in monitored.log.named("find")] == [{"name": "b1"}]
    assert monitored.log.named("update") == []
    with pytest.raises(QueryError, match=r"update_or_create.*positionally"):
        await BkNote.objects.update_or_create(**{"name": "b1", "defaults": {"owner": "m"}})
    assert (await BkNote.objects.get(name="b1")).owner == "bob"
    for call in (BkNote.objects.get_or_create, BkNote.objects.update_or_create):
        with pytest.raises(QueryError, match="'owner' both") as info:
            await call({"owner": "zed"}, owner="zed", name="z")
        assert info.value.field == "owner"
        with pytest.raises(QueryError, match="'nope'"):
            await call({"nope": 1}, name="z")
        with pytest.raises(QueryError, match="mapping"):
            await call("x", name="z")  # type: ignore[arg-type]
    assert not await BkNote.objects.filter(name="z").exists()
    note, created = await BkNote.objects.update_or_create({"n": 4}, name="b1")
    assert (note.n, created) == (4, False)
    note, created = await BkNote.objects.update_or_create({"owner": "dan"}, name="d1")
    assert (note.owner, created) == ("dan", True)
    assert odm.QueryError is QueryError


class BkPreference(Document):
    """A model with a field named like get_or_create's parameter."""

    user: str
    defaults: dict[str, str] = {}
    n: int = 0

    class Meta:
        collection = "qs_body_preferences"


async def test_defaults_as_a_field(monitored: MonitoredDatabase) -> None:
    """On a model with a field ``defaults``, update_or_create(defaults=...) is the lookup on it
    (it raised TypeError: got multiple values for argument 'defaults'); get_or_create keeps
    Django's keyword, the field being looked up with ``defaults__exact=``."""
    body: dict[str, Any] = {"user": "ann", "defaults": {"theme": "dark"}}
    first, created = await BkPreference.objects.update_or_create({"n": 1}, **body)
    assert created and (first.user, first.defaults, first.n) == ("ann", {"theme": "dark"}, 1)
    again, created = await BkPreference.objects.update_or_create({"n": 2}, **body)
    assert not created and again.id == first.id and again.n == 2
    other, created = await BkPreference.objects.update_or_create(
        {}, user="ann", defaults={"theme": "light"}
    )
    assert created and other.id != first.id
    monitored.log.clear()
    with pytest.raises(QueryError, match=r"'theme'.*defaults__exact") as info:
        await BkPreference.objects.get_or_create(**body)
    assert info.value.field == "theme"
    with pytest.raises(QueryError, match=r"mapping.*defaults__exact"):
        await BkPreference.objects.get_or_create(user="ann", defaults=["x"])  # type: ignore[arg-type]
    assert monitored.log.names() == []
    found, created = await BkPreference.objects.get_or_create(
        user="ann", defaults__exact={"theme": "dark"}
    )
    assert not created and found.id == first.id and found.n == 2
    made, created = await BkPreference.objects.get_or_create(
        {"n": 5}, user="bob", defaults__exact={"theme": "dark"}
    )
    assert created and (made.defaults, made.n) == ({"theme": "dark"}, 5)
    assert await BkPreference.objects.count() == 3
