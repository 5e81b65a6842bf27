"""``Meta.optimistic_lock`` in a polymorphic family: one collection, one lock.

A class of the family without the lock (or with its counter under another key) writes the
family's documents without checking or raising the version the others hold: an update through
it, or a delete and an insert of an id with the version a locked object holds, went unseen by
that object, whose save then passed the check and wrote over it. Such a class is refused at
its declaration, naming it and its base; the lock declared on the root alone covers the family.
"""

from __future__ import annotations

from typing import Any

import pytest

import odm
from odm.exceptions import DeclarationError


class VerFamilyRoot(odm.Document):
    n: int = 0

    class Meta:
        collection = "ver_family_items"
        polymorphic = True
        optimistic_lock = True


class VerFamilyChild(VerFamilyRoot):
    """Inherits the root's lock."""


class VerPlainRoot(odm.Document):
    n: int = 0

    class Meta:
        collection = "ver_plain_items"
        polymorphic = True


def test_a_child_without_the_familys_lock_is_refused() -> None:
    with pytest.raises(DeclarationError, match=r"VerUnlocked: .*VerFamilyRoot has Meta\.opt"):

        class VerUnlocked(VerFamilyRoot):
            class Meta:
                optimistic_lock = False

    assert set(VerFamilyRoot._meta.family) == {"VerFamilyRoot", "VerFamilyChild"}


def test_a_child_locking_an_unlocked_family_is_refused() -> None:
    with pytest.raises(DeclarationError, match=r"VerLocked: .*VerPlainRoot has no Meta\.opt"):

        class VerLocked(VerPlainRoot):
            class Meta:
                optimistic_lock = True

    assert set(VerPlainRoot._meta.family) == {"VerPlainRoot"}


@pytest.mark.parametrize("how", ["version_field", "alias"])
def test_a_child_counting_under_another_key_is_refused(how: str) -> None:
    with pytest.raises(DeclarationError, match=r"VerRenamed: .*'version'.*'rev'"):
        if how == "version_field":

            class VerRenamed(VerFamilyRoot):
                rev: int = 0

                class Meta:
                    version_field = "rev"

        else:

            class VerRenamed(VerFamilyRoot):  # type: ignore[no-redef]
                version: int = odm.Field(default=0, alias="rev")


async def test_the_roots_lock_covers_the_family(odm_database: Any) -> None:
    """Locked through the root alone: the child's stale object is refused after an update
    through the root, and after a delete and an insert of its id."""
    child = await VerFamilyChild(n=1).insert()
    held = await VerFamilyChild.objects.get(id=child.id)
    assert await VerFamilyRoot.objects.filter(id=child.id).update(n=5) == 1
    held.n = 2
    with pytest.raises(odm.StaleDocument, match="VerFamilyChild"):
        await held.save()
    await held.refresh()
    await held.delete()
    again = await VerFamilyChild(id=child.id, n=7, version=held.version).insert()
    assert again.version != held.version
    child.n = 3
    with pytest.raises(odm.StaleDocument):
        await child.save()
    stored = await odm_database.ver_family_items.find_one({"_id": child.id})
    assert (stored["n"], stored["version"]) == (7, again.version)
