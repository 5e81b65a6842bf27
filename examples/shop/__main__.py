"""``python -m examples.shop``: serve the example shop."""

from odm.demo.shop.app import main

main()
