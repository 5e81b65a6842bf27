"""Query building without I/O: ``Q`` trees, ``F`` expressions, lookups, the ``Query`` state and
its compiler to ``find`` arguments or aggregation pipelines."""

from .expressions import F, Greatest, Least, Now
from .q import Q
from .query import Query

__all__ = ["F", "Greatest", "Least", "Now", "Q", "Query"]
