"""`odm migrate make` sees an index's collation (issue #21, item 9): a declared collation is
created, the same declaration again is no change (the server fills in defaults), a changed
one is an index change, and its rollback restores the server's collation."""

from __future__ import annotations

import textwrap
from typing import Any as Project

MODELS = '''
from odm.document import Document
from odm.models.indexes import Index


class ColCustomer(Document):
    name: str
    city: str = ""

    class Meta:
        collection = "col_customers"
        indexes = [
            Index("name", collation={COLLATION}, name="name_ci"),
            Index("city"),
        ]
'''


def models(project: Project, collation: str) -> None:
    source = textwrap.dedent(MODELS).replace("{COLLATION}", collation)
    (project.root / "colmodels.py").write_text(source)


def collation_of(project: Project, name: str) -> dict[str, object] | None:
    info = next(i for i in project.db.col_customers.list_indexes() if i["name"] == name)
    found = info.get("collation")
    return dict(found) if found is not None else None


def test_a_collation_change_is_an_index_change(project: Project) -> None:
    models(project, '{"locale": "en", "strength": 2}')
    project.ok("make", "--models", "colmodels", "--name", "initial")
    source = (project.migrations / "0001_initial.py").read_text()
    assert "collation={'locale': 'en', 'strength': 2}" in source
    project.ok("apply")
    assert collation_of(project, "name_ci")["strength"] == 2  # type: ignore[index]
    # The server reports every field (caseLevel, alternate...): still the same declaration.
    assert "no changes detected" in project.ok("make", "--models", "colmodels")

    models(project, '{"locale": "en", "strength": 1}')
    project.ok("make", "--models", "colmodels", "--name", "accents")
    source = (project.migrations / "0002_accents.py").read_text()
    assert "drop_index('col_customers', 'name_ci')" in source and "'strength': 1" in source
    assert "city" not in source  # only the changed index
    project.ok("apply")
    assert collation_of(project, "name_ci")["strength"] == 1  # type: ignore[index]
    assert "no changes detected" in project.ok("make", "--models", "colmodels")

    project.ok("rollback", "--to", "0001_initial")
    assert collation_of(project, "name_ci")["strength"] == 2  # type: ignore[index]
