"""The example shop: customers with a balance, orders paid from it, transfers between balances.

An aiohttp application on odm, served by ``odm demo`` and documented in ``docs/tutorial.md``;
``examples/shop`` in the repository runs the same code with ``python -m examples.shop``.
Its migrations (``migrations/``, applied by ``odm demo`` or ``odm migrate apply --dir``) create
the indexes the models declare.
"""

from .app import MIGRATIONS, create_app, seed
from .models import MODELS, Customer, Order

__all__ = ["MIGRATIONS", "MODELS", "Customer", "Order", "create_app", "seed"]
