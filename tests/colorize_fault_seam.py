"""Run ``aircolor colorize --ray`` with workers that die while writing chosen outputs: the fault tests' seam.

    python tests/colorize_fault_seam.py MARKERS "frame.png:once,big.png:always" colorize --ray ...

A worker about to rename the finished temporary file of a named output onto its final name kills its own process
(``os._exit``, as the kernel's OOM killer or a lost node would: no Python clean-up runs), so the temporary file
is left behind, complete but never renamed. ``once``: only the first worker to get there dies (a marker file in
MARKERS says it happened), so the retry succeeds; ``always``: every attempt dies.

The subclass is defined in this ``__main__`` script, so Ray pickles it by value and the workers need not import
this file; it replaces :class:`sweeps.colorize_worker.ColorizeWorker` where the driver looks it up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import sweeps.colorize_worker
from sweeps.colorize_worker import ColorizeWorker

MARKERS = Path(sys.argv[1])
FAULTS = dict(item.split(":") for item in sys.argv[2].split(",") if item)


class DyingWorker(ColorizeWorker):
    def write(self, photo, src, target, *bands):  # noqa: ANN001, ANN201 - the worker's own signature
        mode = FAULTS.get(Path(target).name)
        marker = MARKERS / f"{Path(target).name}.died"
        if mode == "always" or (mode == "once" and not marker.exists()):
            real_replace = os.replace

            def die_instead(tmp, dst):  # noqa: ANN001, ANN202
                if Path(dst).name == Path(target).name:
                    marker.touch()
                    os._exit(1)
                return real_replace(tmp, dst)

            os.replace = die_instead
        return super().write(photo, src, target, *bands)


sweeps.colorize_worker.ColorizeWorker = DyingWorker

if __name__ == "__main__":
    from aircolor.cli import main

    sys.exit(main(sys.argv[3:]))
