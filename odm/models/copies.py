"""What the copies of one stored document know of it in common.

A copy of a stored document (``copy.copy``, ``copy.deepcopy``, ``model_copy``) is the same
stored document with a snapshot of its own. When one of them is saved, the others' snapshots
no longer say what the database holds: a shallow copy sharing a list with its original then
pushed again what the original had pushed (issue #19 item 3). So the copies of a document form
a :class:`Family` that remembers the stored form last written through any of them, and
``save()`` diffs against it (:func:`known_state`): after ``save()`` of any of them, the stored
document is that object's fields. Each keeps its own snapshot for the write filter, so under
``Meta.optimistic_lock`` a copy saved after another still raises ``StaleDocument``.

A write of one of them cut off without telling whether it ran (:mod:`odm.outcomes`) makes
the family's ``latest`` that document's unsure snapshot; what its next ``save()`` learns from
the stored document is then the family's too (:func:`learnt`), so that neither it nor a copy
of it made since sends again what that write already did.

Objects pickled together (one ``pickle.dumps`` of a list of them) stay one family; a lone
pickled copy starts its own, like a document loaded again (it may be loaded elsewhere).
"""

from __future__ import annotations

from typing import Any

from .diffing import same
from .tracking import Unsure, family_of, raw_snapshot, set_family

__all__ = ["Family", "join", "known_state", "learnt", "rejoin", "written"]

# Reading an unset slot costs an AttributeError on every save: until a copy of a document
# exists, no document has a family and save() does not look.
_copies_made = False


class Family:
    """The copies of one stored document: ``latest`` is its stored form last written (or
    loaded) through any of them, ``None`` before that."""

    __slots__ = ("latest",)

    def __init__(self, latest: dict[str, Any] | None = None) -> None:
        self.latest = latest

    def __reduce__(self) -> tuple[type[Family], tuple[dict[str, Any] | None]]:
        return Family, (self.latest,)


def join(source: Any, copied: Any) -> None:
    """Make ``copied`` (a copy of ``source``) a member of ``source``'s family."""
    global _copies_made
    _copies_made = True
    family = family_of(source)
    if family is None:
        family = Family(raw_snapshot(source))
        set_family(source, family)
    set_family(copied, family)


def rejoin(document: Any, family: Family | None) -> None:
    """Give an unpickled ``document`` the family it was pickled with."""
    global _copies_made
    if family is not None:
        _copies_made = True
    set_family(document, family)


def known_state(document: Any, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Return what the database holds for ``document`` as far as this process knows: the
    stored form last written through a copy of it when there is a later one than its own
    ``snapshot``, else ``snapshot``."""
    if not _copies_made:
        return snapshot
    family: Family | None = family_of(document)
    if family is None:
        return snapshot
    latest = family.latest
    if latest is None or latest is snapshot or not same(latest.get("_id"), snapshot.get("_id")):
        return snapshot  # a copy given another id is another document
    return latest


def written(document: Any, stored: dict[str, Any]) -> None:
    """Record that ``stored`` is what the database now holds for ``document``."""
    if not _copies_made:
        return
    family: Family | None = family_of(document)
    if family is not None:
        family.latest = stored


def learnt(document: Any, snapshot: dict[str, Any] | None, *, stored: bool) -> None:
    """Record what :func:`odm.outcomes.learn_outcome` learnt for ``document`` after a write of
    it was cut off: ``snapshot``, its new snapshot (``None``: the document is not stored);
    ``stored``: that snapshot is the stored form just read. A snapshot pieced together from
    the one before the write replaces the family's ``latest`` only while that is still unsure
    (a copy written since knows better)."""
    if not _copies_made:
        return
    family: Family | None = family_of(document)
    if family is None:
        return
    latest = family.latest
    if snapshot is None or stored or latest is None or isinstance(latest, Unsure):
        family.latest = snapshot
