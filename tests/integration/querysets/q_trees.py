"""Drawn ``Q`` trees of one ``filter()`` call on a list of references, and Django's reading of
them over a book's authors: the oracle of the properties that check odm's one-target rule.

A tree is a leaf's name, ``("not", tree)``, ``("and", [trees])`` or ``("or", [trees])``. A leaf
is a lookup (its keywords) and its meaning on one joined row: an author, or ``None``, the null
row that Django's LEFT JOIN gives a book without authors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from odm import Q

#: Each leaf's lookup keywords and its meaning on one joined row (``None``: the null row).
Leaves = Mapping[str, tuple[dict[str, Any], Callable[[Any], bool]]]


def trees(leaves: Leaves) -> st.SearchStrategy[Any]:
    """Trees of up to five of ``leaves`` under ``~``, ``&`` and ``|``."""
    return st.recursive(
        st.sampled_from(sorted(leaves)),
        lambda inner: st.one_of(
            st.tuples(st.just("not"), inner),
            st.tuples(st.sampled_from(["and", "or"]), st.lists(inner, min_size=2, max_size=3)),
        ),
        max_leaves=5,
    )


def q_of(tree: Any, leaves: Leaves) -> Q:
    """The ``Q`` that ``tree`` stands for."""
    if isinstance(tree, str):
        return Q(**leaves[tree][0])
    if tree[0] == "not":
        return ~q_of(tree[1], leaves)
    combined = q_of(tree[1][0], leaves)
    for branch in tree[1][1:]:
        other = q_of(branch, leaves)
        combined = combined & other if tree[0] == "and" else combined | other
    return combined


def kept(tree: Any, leaves: Leaves, authors: Sequence[Any]) -> bool:
    """Tell whether Django's ``filter(q_of(tree))`` keeps a book with ``authors``: one of its
    joined rows (the null row when it has none) meets the tree."""
    rows: list[Any] = list(authors) or [None]
    return any(_on(tree, leaves, row, authors) for row in rows)


def _on(tree: Any, leaves: Leaves, author: Any, authors: Sequence[Any]) -> bool:
    """Django's reading of ``tree`` on one joined row: a negation is a subquery over every
    author, and so is each branch of an ``|`` beside one (odm's documented exception,
    docs/querysets.md)."""
    if isinstance(tree, str):
        return leaves[tree][1](author)
    if tree[0] == "not":
        return not kept(tree[1], leaves, authors)
    if tree[0] == "or" and any(map(_negates, tree[1])):
        return any(kept(branch, leaves, authors) for branch in tree[1])
    results = [_on(branch, leaves, author, authors) for branch in tree[1]]
    return all(results) if tree[0] == "and" else any(results)


def _negates(tree: Any) -> bool:
    return not isinstance(tree, str) and (tree[0] == "not" or any(map(_negates, tree[1])))
