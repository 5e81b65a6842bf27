"""A small shop on aiohttp and odm: customers with a balance, orders, transfers between balances.

The code lives in :mod:`odm.demo.shop` (``odm/demo/shop/``: ``app.py``, ``models.py`` and its
``migrations/``) so that an installed ``odm`` can serve it with ``odm demo``; this package is
the repository's entry point to it. Run it with ``python -m examples.shop`` (``$MONGODB_URI``
names the server and database, default ``mongodb://localhost:27017/shop``; transactions need a
replica set, e.g. ``odm server``), or run ``odm demo``, which also starts a server, applies the
migrations and seeds a few documents.
"""

from odm.demo.shop import MIGRATIONS, MODELS, Customer, Order, create_app, seed

__all__ = ["MIGRATIONS", "MODELS", "Customer", "Order", "create_app", "seed"]
