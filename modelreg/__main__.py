"""``python -m modelreg``: the same program as the ``modelreg`` console script."""

import sys

from modelreg.cli import main

sys.exit(main())
