"""``too_deep`` walks a level at a time, sorting large levels by type in C; it must say what
the plain definition says: the value nests more containers deep than ``levels``.

The oracle is that definition written recursively. Hypothesis draws values of every
container kind the encoder nests (``dict``, ``list``, ``tuple``, ``set``, ``frozenset`` and
subclasses of them), mappings that are not containers to the encoder, levels both small and
large (past the one-by-one threshold), and ``levels`` around the value's depth.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import bson
from hypothesis import given
from hypothesis import strategies as st

from odm.nesting import CONTAINERS, too_deep


class MyList(list[Any]):
    pass


class MyDict(dict[str, Any]):
    pass


class NotAContainer(Mapping[str, Any]):
    """A mapping the encoder would not nest as a container of ours (walked as a scalar)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getitem__(self, key: str) -> Any:
        return self.inner

    def __iter__(self) -> Any:
        return iter(["k"])

    def __len__(self) -> int:
        return 1

    def __hash__(self) -> int:
        return id(self)


def depth(value: Any) -> int:
    """The oracle: how many containers deep ``value`` nests (a scalar: 0)."""
    if not isinstance(value, CONTAINERS):
        return 0
    subs = value.values() if isinstance(value, Mapping) else value
    return 1 + max((depth(sub) for sub in subs), default=0)


SCALARS = st.one_of(
    st.integers(), st.text(max_size=3), st.none(), st.booleans(), st.floats(allow_nan=False),
    st.builds(bson.ObjectId), st.binary(max_size=2),
)
HASHABLE = st.recursive(
    SCALARS, lambda inner: st.frozensets(inner, max_size=3) | st.tuples(inner, inner),
    max_leaves=8,
)


def _among(scalars: list[Any], inner: Any, at: int) -> list[Any]:
    """``scalars`` with ``inner`` put at position ``at``: a wide level hiding one value."""
    at %= len(scalars) + 1
    return [*scalars[:at], inner, *scalars[at:]]


def containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # Wide levels (past the one-by-one threshold of 16 values) with one drawn value among
    # many scalars: the value may be the deepest, anywhere in the level.
    wide = st.builds(
        _among, st.lists(SCALARS, min_size=17, max_size=40), inner, st.integers(0, 40)
    )
    return st.one_of(
        st.lists(inner, max_size=5),
        wide,
        wide.map(lambda items: {f"k{i}": item for i, item in enumerate(items)}),
        wide.map(MyList),
        wide.map(tuple),
        st.lists(inner, min_size=2, max_size=20),
        st.dictionaries(st.text(max_size=2), inner, max_size=5),
        st.lists(inner, max_size=4).map(tuple),
        st.lists(inner, max_size=4).map(MyList),
        st.dictionaries(st.text(max_size=2), inner, max_size=4).map(MyDict),
        st.dictionaries(st.text(max_size=2), inner, max_size=4).map(OrderedDict),
        st.sets(HASHABLE, max_size=20),
    )


#: Leaves: scalars, and mappings the walk must not go into (holding a list: not counted).
LEAVES = SCALARS | st.lists(st.integers(), max_size=2).map(NotAContainer)
#: A container at the top (a drawn scalar says nothing about the walk), holding any value.
VALUES = containers(containers(st.recursive(LEAVES, containers, max_leaves=30)))


@given(value=VALUES, offset=st.integers(-3, 3))
def test_too_deep_says_what_the_recursive_definition_says(value: Any, offset: int) -> None:
    levels = depth(value) + offset
    assert too_deep(value, levels) == (levels < 0 or depth(value) > levels)


def chain_of(n: int, wide: int) -> Any:
    """A list nesting ``n`` deep, each level holding ``wide`` scalars beside the next one."""
    value: Any = list(range(wide))
    for _ in range(n - 1):
        value = [*range(wide), {"k": value, **{f"s{i}": i for i in range(wide)}}]
    return value


def test_a_deep_value_in_a_wide_level_is_found_at_its_depth() -> None:
    for wide in (0, 3, 100):
        value = chain_of(60, wide)
        found = depth(value)
        assert found == 119  # a list and a dict a level, but the innermost list
        assert too_deep(value, found - 1) and not too_deep(value, found)
