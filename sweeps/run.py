"""``python -m sweeps.run SPACE.yaml [KEY=VALUE ...] [options]``: the same as ``aircolor sweep run``.

This is the entry point for ``ray job submit --working-dir . -- python -m sweeps.run search_spaces/x.yaml ...``.
"""

from __future__ import annotations

import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from aircolor.cli import main as aircolor_main

    return aircolor_main(["sweep", "run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
