"""The shop's indexes: unique customer emails, and each customer's orders by date.

Written by ``odm migrate make --models odm.demo.shop.models`` on an empty database, then
tidied; ``make`` against a database where it is applied finds nothing to do.
"""

from odm.migrations import create_index, drop_index, step

steps = [
    step(
        create_index("customers", [("email", 1)], name="email_1", unique=True),
        drop_index("customers", "email_1"),
    ),
    step(
        create_index("orders", [("customer", 1), ("created", 1)], name="customer_1_created_1"),
        drop_index("orders", "customer_1_created_1"),
    ),
]
