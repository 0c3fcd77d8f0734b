#!/usr/bin/env python3
"""Build the site: ``python build.py [command] [options]`` (see ``python build.py --help``)."""

import sys

from modelreg.cli import main

if __name__ == "__main__":
    sys.exit(main())
