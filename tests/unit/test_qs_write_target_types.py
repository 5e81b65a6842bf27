"""``QuerySet._write_target`` returns the unit of work to flush typed as such, not ``Any``."""

from __future__ import annotations

import typing

from odm.query.compiler import CompiledWrite
from odm.queryset import QuerySet
from odm.uow import UnitOfWork


def test_write_target_types_its_unit_of_work() -> None:
    names = {"UnitOfWork": UnitOfWork}  # imported by queryset for type checking only
    target = typing.get_type_hints(QuerySet._write_target, localns=names)
    assert target["return"] == tuple[CompiledWrite, UnitOfWork | None]
    write_filter = typing.get_type_hints(QuerySet._write_filter, localns=names)
    assert write_filter["flush"] == UnitOfWork | None
