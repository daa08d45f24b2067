"""``python -m aircolor`` is the same as the ``aircolor`` command."""

import sys

from aircolor.cli import main

sys.exit(main())
