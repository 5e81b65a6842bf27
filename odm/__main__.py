"""``python -m odm``: the same as the ``odm`` console command."""

import sys

from .cli import main

sys.exit(main())
