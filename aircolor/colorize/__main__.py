"""``python -m aircolor.colorize ...``: the same as ``aircolor colorize ...``, for ``ray job submit``::

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python -m aircolor.colorize --ray --model MODEL /mnt/shared/scans --out /mnt/shared/colorized
"""

import sys

from aircolor.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    head = [a for a in argv if a == "--debug"]  # a global option of `aircolor`, given before the subcommand
    sys.exit(main([*head, "colorize", *[a for a in argv if a != "--debug"]]))
