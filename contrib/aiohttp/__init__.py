"""aiohttp integration: ``setup_odm`` and the unit-of-work and error middlewares.

.. code-block:: python

    app = web.Application(middlewares=[odm_errors_middleware, unit_of_work_middleware])
    setup_odm(app, uri="mongodb://localhost:27017/shop", models=[Customer, Order])

``setup_odm`` connects on startup (with retry, through ``app.cleanup_ctx``) and disconnects on
shutdown; ``unit_of_work_middleware`` runs each unsafe request in one transaction, committed only
when the response status is below 400; ``odm_errors_middleware`` answers ODM errors with JSON;
``json_body(request)`` reads a JSON body, one that cannot be decoded (not JSON, nested too
deep to parse, not valid in its charset, NaN, a key twice) being a 400, one sent as a form, as
text or without a ``Content-Type`` a 415 (cross-site request forgery);
``json_response(data)`` answers with documents, ``values()`` rows or aggregates as JSON
(ObjectIds, decimals and datetimes as strings, NaN as ``null``).
Keep the errors middleware first (outermost) so that it also maps errors of the commit.
"""

from .bodies import json_body
from .errors import error_response, odm_errors_middleware, response_for
from .middlewares import (
    UNSAFE_METHODS,
    unit_of_work_middleware,
    unit_of_work_middleware_factory,
)
from .responses import json_dumps, json_response
from .setup import ODM_CONNECTION, ODM_CONNECTIONS, setup_odm

__all__ = [
    "ODM_CONNECTION",
    "ODM_CONNECTIONS",
    "UNSAFE_METHODS",
    "error_response",
    "json_body",
    "json_dumps",
    "json_response",
    "odm_errors_middleware",
    "response_for",
    "setup_odm",
    "unit_of_work_middleware",
    "unit_of_work_middleware_factory",
]
