"""``Q``: a tree of filter conditions combined with ``&``, ``|`` and ``~``; pure data, no I/O.

Nothing is validated here: a ``Q`` only records what was asked. The model-aware checks (field
names, lookups, value types) run when a ``Q`` is added to a :class:`~odm.query.query.Query`.

``Q(**body)`` must mean "these lookups" whatever the keys of ``body`` are: every keyword of
``Q()`` is a lookup, and the connector and negation of a node are set only by ``&``, ``|``,
``~`` and the private :meth:`Q._make` (a ``_connector=`` keyword bound by a request body once
turned an AND into an OR, as in Django's CVE-2025-64459).
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["Q"]


class Q:
    """Hold filter conditions (``Q(age__gte=18) | Q(name__startswith="A")``) as a tree."""

    AND: Final = "AND"
    OR: Final = "OR"

    __slots__ = ("children", "connector", "negated")

    children: tuple[Q | tuple[str, Any], ...]
    connector: str
    negated: bool

    def __init__(self, *args: Q, **kwargs: Any) -> None:
        for arg in args:
            # A raw dict here would be an unvalidated MongoDB filter; aggregate_pipeline() is the
            # explicit door for those, so refuse it rather than let it through by accident.
            if not isinstance(arg, Q):
                raise TypeError(
                    f"Q() takes Q objects and keyword lookups, not {type(arg).__name__}"
                )
        self.children = (*args, *kwargs.items())
        self.connector = self.AND
        self.negated = False

    @classmethod
    def _make(cls, children: tuple[Q | tuple[str, Any], ...], connector: str, negated: bool) -> Q:
        """Build a node with its connector and negation: the only way to set them."""
        q: Q = cls.__new__(cls)
        q.children = children
        q.connector = connector
        q.negated = negated
        return q

    def _combine(self, other: Q, connector: str) -> Q:
        if not isinstance(other, Q):
            raise TypeError(f"cannot combine Q with {type(other).__name__}")
        # As in Django, an empty Q is neutral in both & and |: Q() | Q(a=1) is Q(a=1).
        if not other:
            return self._make(self.children, self.connector, self.negated)
        if not self:
            return self._make(other.children, other.connector, other.negated)
        return self._make((self, other), connector, False)

    def __and__(self, other: Q) -> Q:
        return self._combine(other, self.AND)

    def __or__(self, other: Q) -> Q:
        return self._combine(other, self.OR)

    def __invert__(self) -> Q:
        # As in Django, ~Q() is empty: an empty Q is neutral wherever it goes, so its
        # negation must not become a node that compiles to "match everything" inside an OR.
        if not self:
            return self._make((), self.AND, False)
        return self._make((self,), self.AND, True)

    def __bool__(self) -> bool:
        return bool(self.children)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Q):
            return NotImplemented
        return (self.connector, self.negated, self.children) == (
            other.connector,
            other.negated,
            other.children,
        )

    # Values may be unhashable (lists), so a Q is not usable as a dict key.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = [repr(c) if isinstance(c, Q) else f"{c[0]}={c[1]!r}" for c in self.children]
        body = f" {self.connector} ".join(parts) if len(parts) > 1 else "".join(parts)
        return f"<Q: {'NOT ' if self.negated else ''}({body})>"
