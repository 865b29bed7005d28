"""Run one saved fuzz input again: ``python -m tests.fuzz.replay .cache/fuzz-failures/FILE``.

The file's name starts with the target's name (see ``test_fuzz.TARGETS``); the input is run
through that target's ``fuzz_one_input``, so the failure shows with its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.fuzz.test_fuzz import SIGV4, TARGETS, target_named


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    path = Path(argv[1])
    name = path.name.split("-", 1)[0]
    if name not in TARGETS and name != SIGV4:
        print(f"no fuzz target named {name!r}", file=sys.stderr)
        return 2
    target = target_named(name)
    if target is None:
        print(f"{name} needs botocore (pip install -r requirements-dev.txt)", file=sys.stderr)
        return 2
    target(path.read_bytes())
    print(f"{name}: the input passes now")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
