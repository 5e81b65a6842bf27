"""The checks a queryset's ``update()`` runs before it writes, and the filter it writes with.

MongoDB stops an ``update_many`` at a document holding what an operator refuses, keeping what
it wrote before it, and writes without complaint a list its model can no longer load. The
compiled update carries what a matching document must hold and must not become
(:mod:`odm.query.update_checks`); here they are asked of the server (one ``find`` or
aggregation of at most one document each), and a document that fails one is named in a
``QueryError`` before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import executor
from .exceptions import QueryError
from .models.options import ID_KEY
from .query.matched_positions import PositionTests, position_tests
from .query.update_checks import (
    MISSING,
    Guard,
    Need,
    binds_element,
    located,
    mentions,
    value_at,
)
from .query.updates import CompiledUpdate
from .session import current_unit_of_work

__all__ = ["checked_filter"]


async def checked_filter(
    model: type[Any],
    filter: dict[str, Any],
    compiled: CompiledUpdate,
    *,
    single: bool,
    timeout: float | None,
    options: Mapping[str, Any],
    aggregated: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Run the checks of ``compiled`` against the documents ``filter`` matches (``single``:
    it matches one at most) and return the filter to write with: ``filter`` leaving out the
    documents a guard refuses. ``options``: the queryset's collation, if any;
    ``aggregated``: the tests an aggregation ran to choose the documents that ``filter``
    leaves out (those across a reference)."""
    _refuse_unmatched_lists(model, filter, compiled.matched_lists, aggregated)
    # The checks read from the primary, where the write goes.
    read = {"timeout": timeout, "read_preference": "primary", **options}
    if compiled.needs and not single and current_unit_of_work() is None:
        # Inside a transaction a refused document aborts it all: nothing to ask first.
        await _refuse_unfit(model, filter, located(compiled.needs, filter), read)
    if not compiled.guards:
        return filter
    guards = located(compiled.guards, filter)
    await _refuse_guarded(model, filter, guards, read)
    return _without_guarded(filter, guards)


def _refuse_unmatched_lists(
    model: type[Any],
    filter: Mapping[str, Any],
    matched_lists: Sequence[str],
    aggregated: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Refuse a ``matched()`` update of a list that a document can match the filter without
    an element of: ``$`` would have no element to write, and MongoDB would stop an
    ``update_many`` there, keeping what it wrote before (:func:`binds_element`); one whose
    filter lets ``$`` take another element's position (:func:`_refuse_ambiguous`); and one
    testing an element of the list among the ``aggregated`` tests, which the write does not
    repeat (the element ``$`` writes need not meet them)."""
    for path in matched_lists:
        in_aggregation = any(binds_element(tests, path) for tests in aggregated)
        if in_aggregation or not binds_element(filter, path):
            if in_aggregation or mentions(list(aggregated), path):
                raise QueryError(_aggregated_message(path), field=path)
            if not mentions(filter, path):
                raise QueryError(
                    f"matched() writes the element of {path!r} that the filter matched, but "
                    f"the filter does not test {path!r}: filter on it, or use each()",
                    field=path,
                )
            raise QueryError(_unbound_message(path), field=path)
        _refuse_ambiguous(position_tests(model, filter, path))


def _unbound_message(path: str) -> str:
    """The error of a ``matched()`` update whose filter tests the list at ``path`` without
    telling MongoDB, for every matching document, which element it matched."""
    name = path.replace(".", "__")
    return (
        f"matched() writes the element of {path!r} that the filter matched, but a document "
        f"can match this filter with no element of {path!r} noted (MongoDB notes one only "
        "for a test of the elements that every matching document passes: not inside |, "
        "exclude() or ~Q, nor with __ne, __nin, __size or __isnull), and MongoDB would stop "
        "the update at it, keeping what it wrote before; the update was not sent: test an "
        f"element outside any | (filter({name}=...); {name}__in=[...] rather than an | of "
        f"values; a field of its elements, {name}__<field>=...), or use each() to write "
        "every element (each(Q(...)) on a list of models: those a condition chooses)"
    )


def _aggregated_message(path: str) -> str:
    """The error of a ``matched()`` update whose filter tests the list at ``path`` together
    with a test through a reference, which an aggregation runs before the update."""
    name = path.replace(".", "__")
    return (
        f"matched() writes the element of {path!r} that the filter matched, but the filter "
        f"tests {path!r} together with a test through a reference (in one |, exclude() or "
        "~Q): such tests run in the aggregation that chooses the documents, and the update, "
        "sent with their ids and the tests of the collection's own fields alone, cannot "
        f"tell MongoDB which element of {path!r} met them; the update was not sent: test an "
        f"element of {path!r} on its own, outside any | (filter({name}=...) beside the "
        "reference's test), or use each()"
    )


def _refuse_ambiguous(tests: PositionTests) -> None:
    """Refuse a ``matched()`` update whose filter does not tell MongoDB which element of the
    list to write: it also tests another list (``$`` may take the position of that list's
    element), or tests the list more than once (``$`` takes the element meeting one test,
    which need not meet the others)."""
    path, name = tests.path, tests.path.replace(".", "__")
    if tests.others:
        others = ", ".join(repr(key) for key in dict.fromkeys(tests.others))
        raise QueryError(
            f"matched() writes the element of {path!r} that the filter matched, but the "
            f"filter also tests {others}, which may hold a list: MongoDB's $ takes the "
            "position of the last element it matched in ANY list, so it could write another "
            f"element of {path!r}, or pad it with nulls; the update was not sent: test only "
            f"{path!r} positively (choose the documents by the other list first, e.g. "
            "filter(id__in=[...]); exclude() on another list is fine), or use each()",
            field=path,
        )
    if len(tests.own) > 1:
        keys = [key for key in dict.fromkeys(tests.own) if key != path]
        where = f" (on {', '.join(repr(key) for key in keys)})" if keys else ""
        raise QueryError(
            f"matched() writes the element of {path!r} that the filter matched, but the "
            f"filter tests {path!r} {len(tests.own)} times{where}: MongoDB may meet each with "
            "another element, and $ writes the one that met the last test, which need not "
            "meet the others; the update was not sent: test one element with all the "
            f"conditions in one {name}__elemmatch=..., or use each()",
            field=path,
        )


# -- needs: what a matching document must hold ------------------------------------------------


async def _refuse_unfit(
    model: type[Any], filter: Mapping[str, Any], needs: Sequence[Need], read: Mapping[str, Any]
) -> None:
    """Raise ``QueryError`` before an ``update_many`` that a matching document would stop
    part-way: one holding what the update's operator refuses (``F("n") + 1`` where ``n``
    is null or a list, ``F("tags").push(x)`` where ``tags`` is null), or something other
    than a document where the update writes inside it (``address__n=1`` where
    ``address`` is null).

    MongoDB stops an ``update_many`` at such a document and keeps what it wrote before
    it: asked first, nothing is written. One ``find`` of at most one document (and, when
    one is refused for what an element holds, one per value checked, to name it). (A
    document changed between the check and the write is still refused by the server,
    and :mod:`odm.executor` says what that left.) ``read``: the options of the finds.
    """
    unfit = [need.unfit() for need in needs]
    either = unfit[0] if len(unfit) == 1 else {"$or": unfit}
    projected = {
        "projection": dict.fromkeys({(n.within or n.path).split(".")[0] for n in needs}, 1),
        **read,
    }
    probe = {"$and": [filter, either]} if filter else either
    raw = await executor.find_one(model, probe, **projected)
    if raw is None:
        return
    need = await _refused_need(model, raw, needs, unfit, projected)
    raise QueryError(_unfit_message(model, raw, need), field=need.key)


async def _refused_need(
    model: type[Any],
    raw: Mapping[str, Any],
    needs: Sequence[Need],
    unfit: Sequence[Mapping[str, Any]],
    read: Mapping[str, Any],
) -> Need:
    """The first of ``needs`` the document ``raw`` (which one of them refuses) fails: told
    from its values for a field of the document, asked of the server for a field of the
    elements (the condition choosing them is in the query language)."""
    for need in needs:
        if need.within is None and not need.fits(value_at(raw, need.path)):
            return need
    for need, test in zip(needs, unfit, strict=True):
        if need.within is not None and await executor.find_one(
            model, {ID_KEY: raw[ID_KEY], **test}, **read
        ):
            return need
    return needs[0]  # changed since: the server's refusal would have named it


#: What :func:`_unfit_value` answers when the refused value cannot be told (the document
#: changed since it was refused).
_UNTOLD = object()

#: What each alias of :class:`odm.query.update_checks.Need` asks for, for messages.
_NEEDED: dict[str, str] = {
    "number": "a number",
    "array": "a list",
    "object": "a document",
    "container": "a document or a list",
}


def _unfit_message(model: type[Any], raw: Mapping[str, Any], need: Need) -> str:
    """The error of an update ``need`` refuses in the document ``raw``: which document, what
    it holds where, and how to go on."""
    needed = _NEEDED[need.alias]
    value = _unfit_value(raw, need)
    if value is MISSING:
        held = "nothing"
    elif value is None:
        held = "null"
    elif value is _UNTOLD:
        held = "another value"
    else:
        held = f"a {type(value).__name__}"
    where = "there" if need.label == need.key else f"at {need.label!r}"
    if need.of is not None:
        where = f"in an element of {need.of!r}" + (f" at {need.label!r}" if need.path else "")
    leave = ""
    if (value is None or value is MISSING) and need.within is None:
        # isnull=False leaves out a missing value as well as a null one.
        leave = f"leave such documents out (filter({need.label}__isnull=False)) or "
    return (
        f"{model.__name__} update: cannot write {need.key!r}: the matching document "
        f"_id={raw.get(ID_KEY)!r} holds {held} {where}, not {needed}, and MongoDB would stop "
        f"the update at it, keeping what it wrote before; nothing was written; {leave}store "
        f"{needed} there first"
    )


def _unfit_value(raw: Mapping[str, Any], need: Need) -> Any:
    """What ``raw`` holds where ``need`` refuses it (in an element: the first element whose
    value it refuses), ``MISSING`` for nothing, ``_UNTOLD`` when it cannot be told."""
    if need.within is None:
        return value_at(raw, need.path)
    elements = value_at(raw, need.within)
    for element in elements if isinstance(elements, list) else ():
        value = value_at(element, need.path) if need.path else element
        if not need.fits(value):
            return value
    return _UNTOLD


# -- guards: what a matching document must not become -----------------------------------------


async def _refuse_guarded(
    model: type[Any], filter: Mapping[str, Any], guards: Sequence[Guard], read: Mapping[str, Any]
) -> None:
    """Raise ``QueryError`` naming a matching document the update would leave unloadable
    (:class:`odm.query.update_checks.Guard`): MongoDB would write it without complaint.
    ``read``: the options of the reads."""
    for guard in guards:
        raw = await _guarded_document(model, filter, guard, read)
        if raw is not None:
            raise QueryError(
                f"{model.__name__} update: cannot write {guard.key!r}: the matching "
                f"document _id={raw.get(ID_KEY)!r} {guard.reason}, and {guard.outcome}; "
                "nothing was written",
                field=guard.key,
            )


async def _guarded_document(
    model: type[Any], filter: Mapping[str, Any], guard: Guard, read: Mapping[str, Any]
) -> dict[str, Any] | None:
    """One matching document ``guard`` refuses (its ``_id``), or ``None``."""
    pipeline = guard.pipeline(filter)
    if pipeline is not None:
        rows = await executor.aggregate_list(model, pipeline, **read)
        return rows[0] if rows else None
    assert guard.bad is not None
    probe = {"$and": [filter, guard.bad]} if filter else guard.bad
    return await executor.find_one(model, probe, projection={ID_KEY: 1}, **read)


def _without_guarded(filter: Mapping[str, Any], guards: Sequence[Guard]) -> dict[str, Any]:
    """``filter`` leaving out the documents the guards match: one changed since the check
    is not written, rather than broken."""
    bad = [guard.bad for guard in guards if guard.bad is not None]
    if not bad:  # only aggregations tell these: the check is all there is
        return dict(filter)
    kept = {"$nor": bad}
    return {"$and": [filter, kept]} if filter else kept
