"""``own_unit_of_work_middleware``: the admin's requests run apart from the application's
transaction.

An application may run its own POSTs in a unit of work (``unit_of_work_middleware`` in its
middlewares, as the demo shop does); aiohttp runs it around the admin's requests too, outside
the admin's sub-app. The admin's own ``odm.transaction()`` would then join the application's,
and a write the admin refuses (a duplicate key, a value BSON cannot store) would fail that
joined transaction for good: the form shown again with the error (its reference pickers read)
could not run, and the user got a bare 500. So an admin request that starts inside a
transaction runs in a task of its own, in a copy of the request's context that has left the
transaction: none of its bindings follow (odm's session and unit of work, the driver's own
binding of that session), the admin's unit of work is a transaction of its own, committed or
aborted by the admin's answer, and the application's transaction holds none of the admin's
writes. Everything else the application set in the context stays (the acting user that its
``before_save`` hooks stamp, a request id its log lines carry, a ``pymongo.timeout()``), as for
an admin request made outside a transaction.
"""

from __future__ import annotations

from functools import partial

from aiohttp import web
from aiohttp.typedefs import Handler

from odm.session import current_unit_of_work, outside_blocks

from ..aiohttp.middlewares import new_style


@new_style
async def own_unit_of_work_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """Run the admin's ``handler`` (its error pages and unit of work) outside the transaction
    of the application, when there is one; a cancelled request cancels it too."""
    if current_unit_of_work() is None:
        return await handler(request)
    # The transaction is left in a copy of this context only; a cancelled request cancels it.
    return await outside_blocks(partial(handler, request))

