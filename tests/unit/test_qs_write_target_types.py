"""``filtered_writes.write_target`` (a queryset's ``update()`` / ``delete()``) returns the unit
of work to flush typed as such, not ``Any``."""

from __future__ import annotations

import typing

from odm.filtered_writes import write_filter, write_target
from odm.query.compiler import CompiledWrite
from odm.uow import UnitOfWork


def test_write_target_types_its_unit_of_work() -> None:
    names = {"UnitOfWork": UnitOfWork}  # imported by filtered_writes for type checking only
    target = typing.get_type_hints(write_target, localns=names)
    assert target["return"] == tuple[CompiledWrite, UnitOfWork | None]
    hints = typing.get_type_hints(write_filter, localns=names)
    assert hints["flush"] == UnitOfWork | None
