"""References whose target is declared later, named as a string, or the class itself.

``RefOrder`` below names ``RefCustomer`` before it exists (``from __future__ import
annotations``); :mod:`docrefs_support` writes ``Reference["StrCustomer"]`` strings. Both resolve
once the target is declared: ``select_related``, ``prefetch_related``, ``fetch()`` and
``customer__age__gte`` lookups work, against the real server.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from docrefs_support import StrCustomer, StrNode, StrOrder

import odm
from odm import F
from odm.document import Document
from odm.models.fields import Indexed, Reference, reference_target


class RefOrder(Document):
    customer: Annotated[Reference[RefCustomer], Indexed()]
    backup: Reference[RefCustomer] | None = None
    watchers: list[Reference["RefCustomer"]] = []  # noqa: UP037 - a string inside one
    total: float = 0

    class Meta:
        collection = "docrefs_orders"


class RefCustomer(Document):
    name: str
    age: int = 0

    class Meta:
        collection = "docrefs_customers"


class RefCategory(Document):
    name: str
    parent: Reference[RefCategory] | None = None

    class Meta:
        collection = "docrefs_categories"


FAMILIES = {
    "future-annotations": (RefOrder, RefCustomer, RefCategory),
    "strings": (StrOrder, StrCustomer, StrNode),
}
family = pytest.mark.parametrize("models", list(FAMILIES.values()), ids=list(FAMILIES))


@family
def test_targets_are_known_before_first_use(models: tuple[type[Any], ...]) -> None:
    order, customer, node = models
    # Completed when the target was declared, not at first validation.
    assert order.__pydantic_complete__ and node.__pydantic_complete__
    assert reference_target(order.model_fields["customer"].annotation) is customer
    assert reference_target(order.model_fields["watchers"].annotation) is customer
    assert reference_target(node.model_fields["parent"].annotation) is node


def test_index_declared_on_a_forward_reference_field() -> None:
    # The Indexed marker sat in an annotation that could not be evaluated at class creation.
    assert [list(index.fields) for index in RefOrder._meta.indexes] == [["customer"]]


async def seed(models: tuple[type[Any], ...]) -> dict[str, Any]:
    order, customer, _ = models
    ann = await customer(name="Ann", age=34).insert()
    bob = await customer(name="Bob", age=17).insert()
    await order(customer=ann, watchers=[bob], total=10).insert()
    await order(customer=bob.id, watchers=[ann, bob], total=20).insert()
    await order(customer=str(ann.id), total=5).insert()
    return {"ann": ann, "bob": bob}


@family
async def test_select_related_and_lookups_across(
    odm_database: Any, models: tuple[type[Any], ...]
) -> None:
    order, customer, _ = models
    await seed(models)
    orders = await order.objects.select_related("customer").order_by("total")
    assert [o.customer.document.name for o in orders] == ["Ann", "Ann", "Bob"]
    assert all(isinstance(o.customer.document, customer) for o in orders)
    adults = await order.objects.filter(customer__age__gte=18).order_by("total")
    assert [o.total for o in adults] == [5, 10]
    named = await order.objects.filter(customer__name="Bob").values_list("total", flat=True)
    assert named == [20]


@family
async def test_prefetch_related_and_fetch(
    odm_database: Any, models: tuple[type[Any], ...]
) -> None:
    order, customer, _ = models
    people = await seed(models)
    orders = await order.objects.prefetch_related("customer", "watchers").order_by("total")
    assert [o.customer.document.name for o in orders] == ["Ann", "Ann", "Bob"]
    assert [[w.document.name for w in o.watchers] for o in orders] == [
        [], ["Bob"], ["Ann", "Bob"]
    ]
    plain = await order.objects.get(total=20)
    assert plain.customer.document is None and plain.customer.model is customer
    fetched = await plain.customer.fetch()
    assert isinstance(fetched, customer) and fetched.id == people["bob"].id
    assert await plain.watchers[0].fetch() == people["ann"]


@family
async def test_self_reference(odm_database: Any, models: tuple[type[Any], ...]) -> None:
    _, _, node = models
    root = await node(name="root").insert()
    child = await node(name="child", parent=root).insert()
    await node(name="grandchild", parent=child).insert()

    loaded = await node.objects.get(name="grandchild")
    assert loaded.parent.model is node
    parent = await loaded.parent.fetch()
    assert parent.name == "child" and (await parent.parent.fetch()).name == "root"

    under_root = await node.objects.filter(parent__name="root").values_list("name", flat=True)
    assert under_root == ["child"]
    joined = await node.objects.select_related("parent").filter(parent__isnull=False).order_by(
        "name"
    )
    assert [(n.name, n.parent.document.name) for n in joined] == [
        ("child", "root"), ("grandchild", "child")
    ]
    roots = await node.objects.filter(parent=None).values_list("name", flat=True)
    assert roots == ["root"]


async def test_nested_dump_of_loaded_references(odm_database: Any) -> None:
    """Issue #21, item 7: ``context={"references": "nested"}`` dumps what was loaded."""
    people = await seed(FAMILIES["future-annotations"])
    ann, bob = people["ann"], people["bob"]
    order = await RefOrder.objects.prefetch_related("customer", "watchers").get(total=10)
    assert order.model_dump(mode="json")["customer"] == str(ann.id)  # the id, as before
    nested = order.model_dump(mode="json", context={"references": "nested"})
    assert nested["customer"] == {"id": str(ann.id), "name": "Ann", "age": 34}
    assert nested["watchers"] == [{"id": str(bob.id), "name": "Bob", "age": 17}]
    assert nested["backup"] is None
    assert odm.to_jsonable([order], references="nested") == [nested]
    assert json.loads(order.model_dump_json(context={"references": "nested"})) == nested
    # Python mode nests too; a reference that was not loaded stays an id.
    plain = await RefOrder.objects.get(total=20)
    dumped = plain.model_dump(context={"references": "nested"})
    assert dumped["customer"] == bob.id
    await plain.customer.fetch()
    assert plain.model_dump(context={"references": "nested"})["customer"]["name"] == "Bob"
    # A cycle of loaded references ends with the id of the document already being dumped.
    root = await RefCategory(name="root").insert()
    root.parent = Reference(root.id, root)
    dumped = root.model_dump(mode="json", context={"references": "nested"})
    assert dumped["parent"]["parent"] == str(root.id)


async def test_a_reference_to_an_unsaved_document_is_refused(odm_database: Any) -> None:
    ann = await RefCustomer(name="Ann").insert()
    ghost = RefCustomer(name="Ghost")  # never inserted: its id exists nowhere
    with pytest.raises(odm.UnsavedReference, match=r"RefOrder\.customer .*RefCustomer") as exc:
        await RefOrder(customer=ghost).insert()
    assert exc.value.field == "customer" and isinstance(exc.value, odm.QueryError)
    with pytest.raises(odm.UnsavedReference, match=r"watchers\[1\]"):
        await RefOrder(customer=ann, watchers=[ann, ghost]).insert()
    with pytest.raises(odm.UnsavedReference, match="backup"):
        await RefOrder.objects.bulk_create([RefOrder(customer=ann, backup=ghost)])
    order = await RefOrder(customer=ann).insert()
    order.backup = Reference(ghost.id, ghost)
    with pytest.raises(odm.UnsavedReference, match="backup"):
        await order.save()
    with pytest.raises(odm.UnsavedReference, match="customer"):
        await RefOrder.objects.filter(id=order.id).update(customer=ghost)
    with pytest.raises(odm.UnsavedReference, match="watchers"):
        await RefOrder.objects.filter(id=order.id).update(watchers=F("watchers").push(ghost))
    with pytest.raises(odm.UnsavedReference, match=r"watchers\[1\]") as exc:
        await RefOrder.objects.filter(id=order.id).update(watchers=[ann, ghost])
    assert exc.value.field == "watchers[1]"
    assert (await RefOrder.objects.get(id=order.id)).watchers == []  # nothing was written
    assert await RefOrder.objects.count() == 1
    # Once stored, the same document is accepted; an id alone is written as given.
    await ghost.insert()
    await RefOrder(customer=ghost, backup=ann.id).insert()
    assert await RefOrder.objects.filter(customer=ghost).count() == 1
