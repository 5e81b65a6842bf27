"""Which function holds an ``async with`` block open: refusing a block held by an async generator.

A block that binds context variables (``odm.transaction()``) must not stay open across a
``yield`` of an async generator. An async generator's steps run in its consumer's context, so
while it is suspended at that ``yield`` the consumer's own code runs inside the block; and a
consumer that stops iterating (``break``) leaves the block open until the event loop closes
the generator, in another task and context, where the block can no longer be left cleanly.
(PEP 789 describes the same hazard for cancel scopes.)

:func:`async_generator_holding` tells, from the frame that entered the block, whether an async
generator holds it. An async generator that ``contextlib.asynccontextmanager`` drives is not
one: its ``yield`` hands control to the ``async with`` body of whoever entered it, which is
the holder looked at next (as is the caller of ``AsyncExitStack.enter_async_context``).
"""

from __future__ import annotations

import contextlib
import inspect
from types import FrameType

__all__ = ["async_generator_holding"]

# The code objects of contextlib's frames that enter a context manager for their caller.
_ASYNCCONTEXTMANAGER_ENTER = contextlib._AsyncGeneratorContextManager.__aenter__.__code__
_EXIT_STACK_ENTER = contextlib.AsyncExitStack.enter_async_context.__code__


def async_generator_holding(entered_from: FrameType | None) -> str | None:
    """Return the qualified name of the async generator that holds open a block entered from
    ``entered_from`` (the frame that awaited its ``__aenter__``), or ``None`` when a coroutine
    holds it (or an async generator driven by ``contextlib.asynccontextmanager``)."""
    frame = entered_from
    while frame is not None:
        code = frame.f_code
        if code is _EXIT_STACK_ENTER:  # the holder is whoever keeps the stack
            frame = frame.f_back
            continue
        if not code.co_flags & inspect.CO_ASYNC_GENERATOR:
            return None
        driver = frame.f_back
        if driver is None or driver.f_code is not _ASYNCCONTEXTMANAGER_ENTER:
            return code.co_qualname
        frame = driver.f_back  # whoever entered the asynccontextmanager holds the block
    return None
