"""`odm migrate make`: models -> migration file -> apply -> a second make finds nothing."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any as Project

import pytest
from bson import ObjectId
from pymongo.errors import WriteError

MODELS = '''
from datetime import datetime
from typing import Annotated

from odm.document import Document, Embedded
from odm.models.fields import Field, Indexed, utcnow
from odm.models.indexes import Index


class MkAddress(Embedded):
    city: str


class MkCustomer(Document):
    email: Annotated[str, Indexed(unique=True)]
    name: str
    age: int = 0
    address: MkAddress | None = None
    created: datetime = Field(default_factory=utcnow)

    class Meta:
        collection = "mk_customers"
        validate_on_server = True
        indexes = [
            Index("name", "-created"),
            Index("created", expire_after=3600),
            Index("address.city", partial={"age": {"$gte": 18}}),
            Index(text=["name", "address.city"]),
            {extra}
        ]


class MkOrder(Document):
    total: float

    class Meta:
        collection = "mk_orders"
'''


def models(project: Project, extra: str = "") -> None:
    (project.root / "mkmodels.py").write_text(textwrap.dedent(MODELS).replace("{extra}", extra))


def files(project: Project) -> list[str]:
    return sorted(p.name for p in project.migrations.glob("*.py"))


def indexes(project: Project, collection: str) -> set[str]:
    return {ix["name"] for ix in project.db[collection].list_indexes()}


def test_make_round_trips(project: Project) -> None:
    models(project)
    project.db.mk_orders.create_index("legacy")  # on a model's collection, declared nowhere

    out = project.ok("make", "--models", "mkmodels", "--name", "initial")
    assert "created" in out and files(project) == ["0001_initial.py"]
    source = (project.migrations / "0001_initial.py").read_text()
    assert "drop_index('mk_orders', 'legacy_1')" in source
    assert "set_validator('mk_customers'" in source

    project.ok("apply")
    assert indexes(project, "mk_customers") >= {
        "_id_", "email_1", "name_1_created_-1", "created_1", "address.city_1",
        "name_text_address.city_text",
    }
    assert "legacy_1" not in indexes(project, "mk_orders")
    again = project.ok("make", "--models", "mkmodels")
    assert "no changes detected" in again and files(project) == ["0001_initial.py"]

    # The validator accepts what the model stores and refuses what it would refuse.
    project.db.mk_customers.insert_one({
        "_id": ObjectId(), "email": "a@example.com", "name": "Ann", "age": 30,
        "address": {"city": "Oslo"}, "created": datetime.now(UTC),
    })
    project.db.mk_customers.insert_one({
        "_id": ObjectId(), "email": "b@example.com", "name": "Bob", "age": 3,
        "address": None, "created": datetime.now(UTC),
    })
    with pytest.raises(WriteError):
        project.db.mk_customers.insert_one({"email": 42, "name": "Eve"})

    # A changed declaration: a new index, an index whose options changed.
    models(project, 'Index("age", name="age_idx"),')
    (project.root / "mkmodels.py").write_text(
        (project.root / "mkmodels.py").read_text().replace("expire_after=3600", "expire_after=60")
    )
    project.ok("make", "--models", "mkmodels", "--name", "age")
    assert files(project) == ["0001_initial.py", "0002_age.py"]
    assert "__depends__ = {'0001_initial'}" in (project.migrations / "0002_age.py").read_text()
    project.ok("apply")
    ttl = next(i for i in project.db.mk_customers.list_indexes() if i["name"] == "created_1")
    assert ttl["expireAfterSeconds"] == 60 and "age_idx" in indexes(project, "mk_customers")
    assert "no changes detected" in project.ok("make", "--models", "mkmodels")

    # Rolling back restores what the server had, exactly.
    project.ok("rollback", "--to", "0001_initial")
    ttl = next(i for i in project.db.mk_customers.list_indexes() if i["name"] == "created_1")
    assert ttl["expireAfterSeconds"] == 3600 and "age_idx" not in indexes(project, "mk_customers")
    project.ok("rollback")
    assert "legacy_1" in indexes(project, "mk_orders")
    assert "email_1" not in indexes(project, "mk_customers")
    info = project.db.command("listCollections", filter={"name": "mk_customers"})
    assert not info["cursor"]["firstBatch"][0]["options"].get("validator")


def test_make_refuses_with_pending_migrations(project: Project) -> None:
    models(project)
    project.write("0001_a.py", "steps = []\n")
    result = project.run("make", "--models", "mkmodels")
    assert result.returncode == 1 and "pending migrations: 0001_a" in result.stderr


def test_make_needs_models(project: Project) -> None:
    result = project.run("make")
    assert result.returncode == 1 and "--models" in result.stderr
