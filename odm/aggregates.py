"""Aggregate functions for ``aggregate()`` and ``values(...).annotate(...)``: the public name.

They live in :mod:`odm.query.aggregates`, beside the expressions they are built on; this module
keeps ``from odm.aggregates import Sum`` working.
"""

from .query.aggregates import Aggregate, Avg, Count, Max, Min, StdDev, Sum

__all__ = ["Aggregate", "Avg", "Count", "Max", "Min", "StdDev", "Sum"]
