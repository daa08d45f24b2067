"""``python -m aircolor.data.tiles ...`` runs ``aircolor data fetch-tiles ...``."""

import sys

from aircolor.data.tiles.cli import main

sys.exit(main())
