"""Signals: ``pre_save``, ``post_save``, ``pre_delete``, ``post_delete``.

``odm.signals.post_save.connect(fn, sender=Customer)`` calls ``fn(sender, document=doc,
created=...)`` after each save of a ``Customer`` (or of a subclass: a receiver for a
polymorphic base hears the whole family); without ``sender=`` it hears every model. Receivers
may be plain functions or coroutine functions (awaited in turn, in connection order). An
exception in a receiver propagates: a ``pre_*`` receiver can veto the write.

Order around one write: the model's ``before_*`` hook, ``pre_*`` receivers, the write,
``post_*`` receivers, the model's ``after_*`` hook.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["Signal", "post_delete", "post_save", "pre_delete", "pre_save"]

Receiver = Callable[..., Any]


class Signal:
    """A list of receivers, each optionally restricted to one sender class."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._receivers: list[tuple[Receiver, type[Any] | None]] = []

    def connect(self, receiver: Receiver, sender: type[Any] | None = None) -> Receiver:
        """Call ``receiver`` on each send (for ``sender`` and its subclasses only, if given).

        Connecting the same pair twice keeps one. Returns ``receiver``.
        """
        if (receiver, sender) not in self._receivers:
            self._receivers.append((receiver, sender))
        return receiver

    def disconnect(self, receiver: Receiver, sender: type[Any] | None = None) -> bool:
        """Stop calling ``receiver`` for ``sender``; return whether it was connected."""
        try:
            self._receivers.remove((receiver, sender))
        except ValueError:
            return False
        return True

    def has_receivers(self) -> bool:
        """Tell whether anything is connected (lets senders skip the work when not)."""
        return bool(self._receivers)

    async def send(self, sender: type[Any], **kwargs: Any) -> None:
        """Call every receiver interested in ``sender`` with ``sender`` and ``kwargs``."""
        for receiver, wanted in list(self._receivers):
            if wanted is None or issubclass(sender, wanted):
                result = receiver(sender, **kwargs)
                if inspect.isawaitable(result):
                    await result

    def __repr__(self) -> str:
        return f"<Signal {self.name} ({len(self._receivers)} receivers)>"


#: Sent before a document is inserted or updated: ``fn(sender, document=, created=)``.
pre_save = Signal("pre_save")
#: Sent after a document was inserted or updated: ``fn(sender, document=, created=)``.
post_save = Signal("post_save")
#: Sent before a document is deleted: ``fn(sender, document=)``.
pre_delete = Signal("pre_delete")
#: Sent after a document was deleted: ``fn(sender, document=)``.
post_delete = Signal("post_delete")
