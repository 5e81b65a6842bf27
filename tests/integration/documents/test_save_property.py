"""The change-tracking property: after ``save()`` of any object, the stored document is that
object's fields, compared by BSON type and value.

Hypothesis draws sequences of steps on the objects of one stored document: mutations of
nested models, lists and dicts (keys with dots, ``$`` keys, the empty key, positional forms;
values equal in Python but not in BSON: ``0.0`` / ``-0.0``, ``1`` / ``1.0`` / ``True`` /
``Int64(1)``), copies (``copy.copy``, ``copy.deepcopy``, ``model_copy``, deep or not: the
copies share what the shallow ones share) and pickle round trips of all of them together, and
saves through any of them. After each save the stored document (read back raw) must equal
the saved object's ``to_bson()`` as canonical extended JSON, which tells int32, int64, double
and bool apart and keeps the sign of zero. Issue #19 items 2, 3 and 4; run under both drivers.
"""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import bson
from bson import json_util
from hypothesis import given
from hypothesis import strategies as st

from odm import executor
from odm.contrib.pytest import MonitoredDatabase
from odm.document import Document, Embedded
from odm.models.fields import Field
from tests.properties import server_property


class PropGeo(Embedded):
    lat: float = 0.0
    tags: list[str] = []


class PropDoc(Document):
    n: int = 0
    x: float = 0.0
    tags: list[str] = []
    geo: PropGeo = Field(default_factory=PropGeo)
    geos: list[PropGeo] = []
    meta: dict[str, Any] = {}
    anything: Any = None

    class Meta:
        collection = "save_property_docs"


KEYS = st.sampled_from(["k", "a", "a.b", "$x", "$", "", "tags.$[]", "$[]", "0", "x.$[i]"])
SCALARS = st.sampled_from(
    [0, 1, -1, 2**40, bson.Int64(1), 0.0, -0.0, 1.0, 1.5, True, False, None, "s", ""]
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=6,
)
NUMBERS = st.sampled_from([0.0, -0.0, 1.0, 2.5, -1.0])
WORDS = st.sampled_from(["a", "b", "c"])


def _meta_holder(doc: PropDoc, nested: bool) -> dict[str, Any]:
    """The dict a meta step changes: ``meta`` or a sub-dict of it (made when missing)."""
    if not nested:
        return doc.meta
    sub = doc.meta.get("k")
    if not isinstance(sub, dict):
        sub = doc.meta["k"] = {}
    return sub


def mutate(doc: PropDoc, step: tuple[Any, ...]) -> None:
    """Apply one drawn mutation to ``doc`` (in place where the step is in place)."""
    kind, *args = step
    if kind == "n":
        doc.n = args[0]
    elif kind == "x":
        doc.x = args[0]
    elif kind == "append":
        doc.tags.append(args[0])
    elif kind == "pop":
        if doc.tags:
            doc.tags.pop()
    elif kind == "tags":
        doc.tags = list(args[0])
    elif kind == "geo.lat":
        doc.geo.lat = args[0]
    elif kind == "geo.append":
        doc.geo.tags.append(args[0])
    elif kind == "geos.append":
        doc.geos.append(PropGeo(lat=args[0]))
    elif kind == "geos.lat":
        if doc.geos:
            doc.geos[-1].lat = args[0]
    elif kind == "meta.set":
        _meta_holder(doc, args[0])[args[1]] = args[2]
    elif kind == "meta.del":
        _meta_holder(doc, args[0]).pop(args[1], None)
    elif kind == "anything":
        doc.anything = args[0]


MUTATIONS = st.one_of(
    st.tuples(st.just("n"), st.sampled_from([0, 1, -1, 2**40])),
    st.tuples(st.just("x"), NUMBERS),
    st.tuples(st.just("append"), WORDS),
    st.tuples(st.just("pop")),
    st.tuples(st.just("tags"), st.lists(WORDS, max_size=3)),
    st.tuples(st.just("geo.lat"), NUMBERS),
    st.tuples(st.just("geo.append"), WORDS),
    st.tuples(st.just("geos.append"), NUMBERS),
    st.tuples(st.just("geos.lat"), NUMBERS),
    st.tuples(st.just("meta.set"), st.booleans(), KEYS, VALUES),
    st.tuples(st.just("meta.del"), st.booleans(), KEYS),
    st.tuples(st.just("anything"), VALUES),
)
COPIES = st.sampled_from(["copy", "deepcopy", "model_copy", "model_copy_deep"])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("mutate"), st.integers(0, 7), MUTATIONS),
        st.tuples(st.just("copy"), st.integers(0, 7), COPIES),
        st.tuples(st.just("pickle")),
        st.tuples(st.just("save"), st.integers(0, 7)),
    ),
    min_size=1,
    max_size=14,
)


def duplicate(doc: PropDoc, how: str) -> PropDoc:
    if how == "copy":
        return copy.copy(doc)
    if how == "deepcopy":
        return copy.deepcopy(doc)
    return doc.model_copy(deep=how == "model_copy_deep")


def canonical(value: Any) -> Any:
    """``value`` as canonical extended JSON (int32, int64, double and bool apart, ``-0.0``
    kept), parsed back so that key order does not count."""
    return json.loads(json_util.dumps(value, json_options=json_util.CANONICAL_JSON_OPTIONS))


async def check_save(doc: PropDoc) -> None:
    await doc.save()
    stored = await executor.find_one(PropDoc, {"_id": doc.id})
    assert canonical(stored) == canonical(doc.to_bson())


@server_property(max_examples=40)
@given(first=st.lists(MUTATIONS, max_size=3), steps=STEPS)
async def test_after_save_the_stored_document_is_the_saved_object(
    monitored: MonitoredDatabase, first: list[tuple[Any, ...]], steps: list[tuple[Any, ...]]
) -> None:
    doc = PropDoc()
    for step in first:
        mutate(doc, step)
    await doc.insert()
    handles = [doc]
    for kind, *args in steps:
        if kind == "mutate":
            mutate(handles[args[0] % len(handles)], args[1])
        elif kind == "copy":
            handles.append(duplicate(handles[args[0] % len(handles)], args[1]))
        elif kind == "pickle":
            handles = pickle.loads(pickle.dumps(handles))
        else:
            await check_save(handles[args[0] % len(handles)])
    for handle in handles:
        await check_save(handle)
