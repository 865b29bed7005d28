"""Entry point for ``python -m tools.lambda_sandbox``."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
