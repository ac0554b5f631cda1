"""`python -m relay` runs the same command line as the `relay` script."""

from __future__ import annotations

import sys

from relay.cli import main

sys.exit(main())
