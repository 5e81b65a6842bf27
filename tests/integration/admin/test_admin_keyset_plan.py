"""A deep list page costs an index range and a limit: no skip, no sort in memory."""

from __future__ import annotations

import json
from typing import Any

from odm import Document, Index
from odm.contrib.admin import ModelAdmin
from odm.contrib.admin.listing import encode_cursor, list_query


class Ledger(Document):
    """A collection whose list is ordered by an indexed column."""

    amount: int
    memo: str = ""

    class Meta:
        collection = "admin_ledger"
        indexes = [Index("amount", "_id")]


def stages(plan: Any) -> list[str]:
    """Every stage name in a winning plan, outermost first."""
    text = json.dumps(plan, default=str)
    return [part.split('"')[0] for part in text.split('"stage": "')[1:]]


async def test_a_deep_page_is_an_index_range(odm_database: Any) -> None:
    await odm_database["admin_ledger"].create_index([("amount", 1), ("_id", 1)])
    docs = [Ledger(amount=i % 100) for i in range(3000)]
    await Ledger.objects.bulk_create(docs)
    admin = ModelAdmin(Ledger, list_display=("id", "amount"), per_page=50)
    deep = sorted(docs, key=lambda d: (d.amount, d.id))[2500]
    for query in (
        {"after": encode_cursor(deep.id, deep.id)},
        {"o": "amount", "after": encode_cursor(deep.amount, deep.id)},
        {"o": "-amount", "before": encode_cursor(deep.amount, deep.id)},
    ):
        planned = list_query(admin, query)
        plan = (await planned.queryset.explain())["queryPlanner"]["winningPlan"]
        found = stages(plan)
        assert "IXSCAN" in found, (query, found)
        assert "SKIP" not in found and "SORT" not in found and "COLLSCAN" not in found, (
            query,
            found,
        )
        rows = await planned.queryset
        assert len(rows) == admin.per_page + 1  # one more: tells that another page follows
