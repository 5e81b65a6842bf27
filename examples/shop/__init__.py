"""A small shop on aiohttp and odm: customers with a balance, orders, transfers between balances.

Run it with ``python -m examples.shop`` (``$MONGODB_URI`` names the server and database, default
``mongodb://localhost:27017/shop``; transactions need a replica set, e.g. ``odm server``).
"""

from .app import create_app, seed
from .models import Customer, Order

__all__ = ["Customer", "Order", "create_app", "seed"]
