"""``python -m examples.shop``: serve the example shop."""

from .app import main

main()
