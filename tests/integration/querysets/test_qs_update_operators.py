"""update() operators of issue #21, item 2: Decimal arithmetic on odm.Decimal fields,
Least/Greatest ($min/$max), Now() ($currentDate), each checked against the field's type."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import pytest

import odm
from odm import F, Greatest, Least, Now


class OpAccount(odm.Document):
    name: str
    amount: odm.Decimal = Decimal("0")
    low: int = 0
    high: float = 0.0
    first: str = ""
    seen: datetime.datetime | None = None
    day: datetime.date | None = None
    tags: list[str] = []

    class Meta:
        collection = "qs_op_accounts"


async def test_decimal_arithmetic_on_a_decimal_field(odm_database: Any) -> None:
    acc = await OpAccount(name="a", amount=Decimal("1.10")).insert()
    assert await OpAccount.objects.filter(id=acc.id).update(amount=F("amount") + Decimal("0.1"))
    assert (await OpAccount.objects.get(id=acc.id)).amount == Decimal("1.20")
    await OpAccount.objects.filter(id=acc.id).update(amount=F("amount") * Decimal("1.5"))
    await OpAccount.objects.filter(id=acc.id).update(amount=F("amount") - 1)
    assert (await OpAccount.objects.get(id=acc.id)).amount == Decimal("0.800")
    # In a filter, a Decimal operand is compared as Decimal128.
    assert await OpAccount.objects.filter(amount__lt=F("low") + Decimal("0.9")).count() == 1
    assert await OpAccount.objects.filter(amount__gt=F("low") + Decimal("0.8")).count() == 0


async def test_arithmetic_is_checked_against_the_field(odm_database: Any) -> None:
    qs = OpAccount.objects.all()
    with pytest.raises(odm.QueryError, match="'low'"):
        await qs.update(low=F("low") + Decimal("0.1"))  # an int field
    with pytest.raises(odm.QueryError, match="mixes float and Decimal"):
        await qs.update(amount=F("amount") + Decimal("0.1") + 0.5)
    with pytest.raises(odm.QueryError, match="not str"):
        F("amount") + "1"


async def test_least_and_greatest_are_min_and_max(odm_database: Any) -> None:
    acc = await OpAccount(name="a", low=200, high=1.5, first="m").insert()
    one = OpAccount.objects.filter(id=acc.id)
    await one.update(low=F("low").least(150), high=Greatest(F("high"), 2.5))
    await one.update(low=Least(F("low"), 170), high=F("high").greatest(0.5))
    await one.update(first=F("first").least("b"), amount=Greatest(F("amount"), Decimal("9.99")))
    got = await OpAccount.objects.get(id=acc.id)
    assert (got.low, got.high, got.first, got.amount) == (150, 2.5, "b", Decimal("9.99"))
    # In a filter, Greatest/Least are the aggregation $max/$min.
    assert await OpAccount.objects.filter(high__lt=Greatest(F("low"), 10)).count() == 1
    assert await OpAccount.objects.filter(high__gt=Least(F("low"), 1)).count() == 1


async def test_least_and_greatest_are_checked(odm_database: Any) -> None:
    qs = OpAccount.objects.all()
    with pytest.raises(odm.QueryError, match="'low'"):
        await qs.update(low=F("low").least("many"))
    with pytest.raises(odm.QueryError, match=r"Least\(F\('low'\), value\)"):
        await qs.update(low=Least(F("high"), 1))
    with pytest.raises(odm.QueryError, match=r"Least\(F\('low'\), value\)"):
        await qs.update(low=Least(F("low"), F("high")))
    with pytest.raises(odm.QueryError, match="'tags'"):
        await qs.update(tags=F("tags").greatest(["a"]))
    with pytest.raises(odm.QueryError, match="at least two"):
        Least(F("low"))
    with pytest.raises(odm.QueryError, match="numbers or F"):
        OpAccount.objects.filter(low__gt=Greatest(F("low"), "x")).explain_query()


async def test_now_is_current_date(odm_database: Any) -> None:
    acc = await OpAccount(name="a").insert()
    before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=5)
    await OpAccount.objects.filter(id=acc.id).update(seen=Now())
    seen = (await OpAccount.objects.get(id=acc.id)).seen
    assert seen is not None and seen >= before
    assert await OpAccount.objects.filter(seen__lte=Now()).count() == 1
    with pytest.raises(odm.QueryError, match=r"'day'.*datetime field"):
        await OpAccount.objects.update(day=Now())
    with pytest.raises(odm.QueryError, match=r"'first'.*datetime field"):
        await OpAccount.objects.update(first=Now())
