"""The example shop: customers with a balance, orders paid from it, transfers between balances.

An aiohttp application on odm, served by ``odm demo`` and documented in ``docs/tutorial.md``;
``examples/shop`` in the repository runs the same code with ``python -m examples.shop``.
Its migrations (``migrations/``, applied by ``odm demo`` or ``odm migrate apply --dir``) create
the indexes the models declare.
"""

from pathlib import Path

from .app import create_app, seed
from .models import MODELS, Customer, Order

MIGRATIONS = Path(__file__).with_name("migrations")
"""The directory of the shop's migration files."""

__all__ = ["MIGRATIONS", "MODELS", "Customer", "Order", "create_app", "seed"]
