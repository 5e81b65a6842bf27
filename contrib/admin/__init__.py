"""``odm.contrib.admin``: an admin for odm's Documents, server-rendered on aiohttp.

.. code-block:: python

    app = web.Application(middlewares=[odm_errors_middleware])
    setup_odm(app, uri, models=[Customer, Order])
    setup_admin(app, [Customer, ModelAdmin(Order, list_display=("id", "total"))],
                authorize=is_staff)

``setup_admin`` mounts a sub-app under ``/admin``: an index of the models with their counts,
a list per model (ordering, filters through the queryset API, search, keyset pages), pages to
create, edit and delete documents generated from the model, and the migrations' state. Nothing
is served unless ``authorize(request)`` allows it; every form carries a CSRF token; every POST
runs in one unit of work. See docs/admin.md.
"""

from .options import ModelAdmin
from .security import CSRF_COOKIE, CSRF_FIELD, CSRF_HOST_COOKIE, local_only
from .setup import setup_admin
from .site import ADMIN_SITE, AdminSite

__all__ = [
    "ADMIN_SITE",
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "CSRF_HOST_COOKIE",
    "AdminSite",
    "ModelAdmin",
    "local_only",
    "setup_admin",
]
