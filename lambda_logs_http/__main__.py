"""Entry point: ``bin/lambda-logs-http`` runs ``main()``, as does ``python -m lambda_logs_http``."""

from __future__ import annotations

import sys


def main() -> int:
    """Run the extension; never let an exception print a traceback into the function's logs."""
    from .app import run

    try:
        return run()
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from . import log

        log.error(f"unexpected error, exiting: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
