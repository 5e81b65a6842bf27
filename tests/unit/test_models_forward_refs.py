"""References and fields whose class is declared later, or in a module that does not import it.

The metaclass completes a pending model as soon as the Document class it waits for is declared
(the registry supplies the name), then redoes its indexes and checks; no I/O.
"""

from __future__ import annotations

import sys
import textwrap
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import odm
from odm.document import Document
from odm.models.fields import Reference, reference_target
from odm.registry import registry


@pytest.fixture
def make_module() -> Iterator[Any]:
    """Run source as a fresh module (registered in sys.modules); forget its models after."""
    made: list[str] = []

    def make(source: str) -> types.ModuleType:
        name = f"fwdref_{uuid.uuid4().hex[:8]}"
        module = types.ModuleType(name)
        sys.modules[name] = module
        made.append(name)
        exec(compile(textwrap.dedent(source), name, "exec"), module.__dict__)
        return module

    yield make
    for model in list(registry):
        if model.__module__ in made:
            registry.unregister(model)
    for name in made:
        sys.modules.pop(name, None)


def test_target_in_a_module_that_is_not_imported(make_module: Any) -> None:
    orders = make_module(
        """
        from __future__ import annotations
        from odm.document import Document
        from odm.models.fields import Reference

        class XmOrder(Document):
            customer: Reference[XmCustomer]          # never imported here
            backup: Reference["XmCustomer"] | None = None

            class Meta:
                collection = "fwd_xm_orders"
        """
    )
    assert not orders.XmOrder.__pydantic_complete__
    customers = make_module(
        """
        from odm.document import Document

        class XmCustomer(Document):
            name: str

            class Meta:
                collection = "fwd_xm_customers"
        """
    )
    order_model, customer_model = orders.XmOrder, customers.XmCustomer
    assert order_model.__pydantic_complete__
    assert reference_target(order_model.model_fields["customer"].annotation) is customer_model
    dotted = f"{customers.__name__}.XmCustomer"
    assert reference_target(Reference[dotted]) is customer_model
    order = order_model(customer=customer_model(name="Ann"))
    assert order.customer.model is customer_model and order.backup is None
    assert order_model.model_json_schema()["properties"]["customer"]["format"] == "objectid"


def test_indexes_and_checks_are_redone_once_resolved(make_module: Any) -> None:
    module = make_module(
        """
        from __future__ import annotations
        from odm.document import Document, Embedded
        from odm.models.fields import Field
        from odm.models.indexes import Index

        class FwShop(Document):
            address: FwAddress | None = None

            class Meta:
                collection = "fwd_shops"
                indexes = [Index("address.zip_code")]

        class FwAddress(Embedded):
            zip_code: str = Field(alias="zip")

        class FwTrigger(Document):
            class Meta:
                collection = "fwd_triggers"
        """
    )
    assert module.FwShop.__pydantic_complete__
    # The alias inside the embedded model applies once its class is known.
    assert [index.keys for index in module.FwShop._meta.indexes] == [[("address.zip", 1)]]


def test_a_ttl_index_on_a_late_non_datetime_field_still_fails(make_module: Any) -> None:
    with pytest.raises(odm.DeclarationError, match=r"FwTtl: TTL index 'when_1'.*'when'"):
        make_module(
            """
            from __future__ import annotations
            from odm.document import Document, Embedded
            from odm.models.indexes import Index

            class FwTtl(Document):
                when: FwLater

                class Meta:
                    collection = "fwd_ttl"
                    indexes = [Index("when", expire_after=60)]

            class FwLater(Embedded):
                x: int = 0

            class FwTtlTrigger(Document):
                class Meta:
                    collection = "fwd_ttl_triggers"
            """
        )


def test_reference_target_of_strings() -> None:
    class FwTarget(Document):
        class Meta:
            collection = "fwd_targets"

    try:
        assert reference_target(Reference["FwTarget"]) is FwTarget
        assert reference_target(Reference["FwTarget"] | None) is FwTarget
        assert reference_target(list[Reference["FwTarget"]]) is FwTarget
        assert reference_target(Reference["FwNeverDeclared"]) is None
        assert reference_target(int) is None
    finally:
        registry.unregister(FwTarget)


def test_targets_declared_later_in_a_function() -> None:
    class FwEarly(Document):
        other: Reference[FwLate] | None = None

        class Meta:
            collection = "fwd_early"

    assert not FwEarly.__pydantic_complete__

    class FwLate(Document):
        class Meta:
            collection = "fwd_late"

    try:
        assert FwEarly.__pydantic_complete__
        late = FwLate()
        assert FwEarly(other=late).other.model is FwLate  # type: ignore[union-attr]
        assert FwEarly(other=late.id).other.model is FwLate  # type: ignore[union-attr]
    finally:
        registry.unregister(FwEarly)
        registry.unregister(FwLate)


def test_a_filter_tried_before_the_target_is_declared_works_once_it_is(make_module: Any) -> None:
    """Nothing derived from a model while its target was unknown outlives the declaration of
    the target: the key plan, the resolved path and the field type are worked out again."""
    module = make_module(
        """
        from __future__ import annotations
        import odm

        class FwOrder(odm.Document):
            customer: odm.Reference[FwCustomer]

            class Meta:
                collection = "fwd_early_orders"
        """
    )
    with pytest.raises(odm.QueryError, match="customer"):
        module.FwOrder.objects.filter(customer__name="Ada")
    exec(
        textwrap.dedent(
            """
            class FwCustomer(odm.Document):
                name: str

                class Meta:
                    collection = "fwd_early_customers"
            """
        ),
        module.__dict__,
    )
    query = module.FwOrder.objects.filter(customer__name="Ada").query
    assert [join.target for join in query.where[0].joins] == [module.FwCustomer]


def test_derived_state_is_forgotten_when_a_model_is_rebuilt() -> None:
    from odm.models.derived import derived
    from odm.query.paths import resolve

    class FwRebuilt(odm.Document):
        name: str

        class Meta:
            collection = "fwd_rebuilt"

    first = resolve(FwRebuilt, "name")
    assert resolve(FwRebuilt, "name") is first  # cached
    assert derived(FwRebuilt)
    FwRebuilt.model_rebuild(force=True)
    assert resolve(FwRebuilt, "name") is not first
    registry.unregister(FwRebuilt)


def test_registering_a_lookup_forgets_the_key_plans() -> None:
    from odm.query.lookups import LOOKUPS, Lookup, register_lookup
    from odm.query.where import key_plan

    class FwPlans(odm.Document):
        name: str

        class Meta:
            collection = "fwd_plans"

    assert key_plan(FwPlans, "name__exact") is key_plan(FwPlans, "name__exact")
    before = key_plan(FwPlans, "name__exact")

    class Shout(Lookup):
        lookup_name = "fwdshout"

    try:
        register_lookup(Shout)
        assert key_plan(FwPlans, "name__exact") is not before
    finally:
        LOOKUPS.pop("fwdshout", None)
        registry.unregister(FwPlans)
