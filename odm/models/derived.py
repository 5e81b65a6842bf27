"""State derived from a model class: one home for every per-model cache, and its expiry.

Compiling a filter, resolving a path, dumping or loading a batch each work out something
from a model class once (its field types, its filter-key plans, its dump and load plans, the
readers of its aggregates...) and keep it for the next call. All of it lives here, in one dict
per model class (a class attribute, read in one lookup on the hot paths), whichever layer
computes it; each owning module names its entries.

A model's declaration can change after first use: a forward reference is resolved when its
target class is declared, pydantic rebuilds a class (``model_rebuild()``), a lookup is
registered. Every entry of every model is then forgotten (:func:`expire_all`, called by the
metaclass and by the models' completion hook) and computed again on next use, as Django's
``Options._expire_cache()`` does; nothing computed from a half-declared model outlives it.
"""

from __future__ import annotations

import weakref
from typing import Any, Final

__all__ = ["derived", "expire_all", "table"]

_SLOT: Final = "__odm_derived__"
#: The classes holding derived state (weak: a test's throwaway models can be collected).
_HOLDERS: weakref.WeakSet[type[Any]] = weakref.WeakSet()


def derived(model: type[Any]) -> dict[str, Any]:
    """Return the dict of state derived from ``model`` (created empty on first use).

    The dict is the class's own, never a base class's: a subclass derives its own state.
    """
    state: dict[str, Any] | None = model.__dict__.get(_SLOT)
    if state is None:
        state = {}
        # Past pydantic's metaclass: this is not a field or a class variable of the model.
        type.__setattr__(model, _SLOT, state)
        _HOLDERS.add(model)
    return state


def table(model: type[Any], name: str) -> dict[Any, Any]:
    """Return the dict named ``name`` in ``model``'s derived state (created empty on first
    use): a cache of many entries, such as the resolution of each filter key."""
    # derived(model), inline when the state exists: every cached plan is read through here.
    state: dict[str, Any] | None = model.__dict__.get(_SLOT)
    if state is None:
        state = derived(model)
    found: dict[Any, Any] | None = state.get(name)
    if found is None:
        found = state[name] = {}
    return found


def expire_all() -> None:
    """Forget the derived state of every model: the next use computes it from the
    declarations as they are now."""
    for model in list(_HOLDERS):
        state = model.__dict__.get(_SLOT)
        if state:
            state.clear()
