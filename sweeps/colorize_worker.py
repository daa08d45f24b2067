"""The worker of ``aircolor colorize --ray``: one Ray actor, one model copy, four kinds of work.

The driver (:mod:`sweeps.colorize`) creates these actors with ``ray.remote(ColorizeWorker)``; this module does not
import Ray itself. Every method is a stage of :class:`aircolor.colorize.engine.Colorizer` run on data that comes
and goes through Ray's object store, so the bytes written are the ones the single-process path writes:

* :meth:`read`: decode a photo (any node that sees the shared storage) into the photo and the model's input;
* :meth:`block`: one block of tiles through the generator: a partial sum over the block's footprint;
* :meth:`finish`: bands of output rows from the partial sums of the blocks that cover them;
* :meth:`write`: the bands as one output file, written atomically, with its sidecars.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np


class ColorizeWorker:
    """Holds one copy of the generator (rebuilt from the driver's payload) on its device.

    The driver starts it with ``max_concurrency`` = its CPUs: that many calls run at once, each on one thread per
    op (:func:`aircolor.colorize.engine.single_threaded_ops`, as the single-process path runs them), so a worker
    with 4 CPUs works on 4 blocks at a time and its bytes do not depend on its CPU count.
    """

    def __init__(self, payload: dict[str, Any], options: dict[str, Any], *, device: str,
                 output_format: str = "same") -> None:
        import torch

        from aircolor.colorize.engine import ColorizeOptions, Colorizer
        from aircolor.models.exported import generator_from_payload

        # Objects from the store are read-only views; they are only ever read here.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        torch.set_num_threads(1)
        model, cfg = generator_from_payload(payload, device)
        self.colorizer = Colorizer(model, cfg, torch.device(device), ColorizeOptions(**options))
        self._plans: dict[tuple[int, int], Any] = {}
        self.output_format = output_format  # --format: a COG or not is decided per photo, as in one process

    def ready(self, inputs: list[str], out_dir: str) -> dict[str, Any]:
        """Where the worker runs, and whether it sees the inputs and can write to ``out_dir`` (the driver waits for
        this before handing out work): with --ray, every path must mean the same file on every node."""
        import os
        import socket
        import tempfile

        problem = None
        missing = [p for p in inputs if not os.path.isfile(p)]
        if missing:
            problem = f"cannot see the input {missing[0]}"
        else:
            try:
                fd, name = tempfile.mkstemp(prefix=".aircolor-check-", suffix=".tmp", dir=out_dir)
                os.close(fd)
                os.unlink(name)
            except OSError as exc:
                problem = f"cannot write to --out {out_dir} ({exc.strerror})"
        return {"host": socket.gethostname(), "ip": _node_ip(), "pid": os.getpid(),
                "device": str(self.colorizer.device), "problem": problem}

    def _plan(self, width: int, height: int) -> Any:
        if (width, height) not in self._plans:
            self._plans = {(width, height): self.colorizer.plan(width, height)}  # files come one after another
        return self._plans[(width, height)]

    def read(self, src: str, target: str, max_pixels: int) -> tuple[dict[str, Any], Any, Any]:
        """(meta, photo, model input): meta says the size and depth, or the error that fails this file."""
        from aircolor.colorize.archive import FILE_ERRORS, check_output_format, failure_reason
        from aircolor.colorize.imageio import read_photo

        started = time.time()
        try:
            photo = read_photo(Path(src), max_pixels=max_pixels)
            check_output_format(photo, Path(target))
        except FILE_ERRORS as exc:
            return {"error": failure_reason(exc), "started": started}, None, None
        height, width = photo.gray.shape
        image = self.colorizer.model_input(photo.gray).numpy()
        return {"width": width, "height": height, "bits": photo.bits, "started": started}, photo, image

    def block(self, image: np.ndarray, width: int, height: int, index: int) -> tuple[int, np.ndarray]:
        """(its tile count, the block's partial sum)."""
        import torch

        plan = self._plan(width, height)
        block = plan.blocks[index]
        return len(block.origins), self.colorizer.run_block(torch.from_numpy(image), plan, block).numpy()

    def finish(self, photo: Any, width: int, height: int, bands: list[tuple[int, int]], indices: list[int],
               *partials: np.ndarray) -> tuple[int, np.ndarray]:
        """(row count, output rows of ``bands``, consecutive), from the partial sums of blocks ``indices``."""
        import torch

        from aircolor.colorize.tiling import assemble

        plan = self._plan(width, height)
        by_index = {i: torch.from_numpy(p) for i, p in zip(indices, partials)}
        rows = []
        for y0, y1 in bands:
            r0, r1 = self.colorizer.model_rows(y0, y1, width, height)
            chroma = assemble(plan, r0, r1, by_index)
            rows.append(self.colorizer.finish(photo.gray[y0:y1], chroma, y0=y0, r0=r0, width=width, height=height,
                                              bits=photo.bits))
        out = np.concatenate(rows) if len(rows) > 1 else rows[0]
        return len(out), out

    def write(self, photo: Any, src: str, target: str, *bands: np.ndarray) -> None:
        from aircolor.colorize.geo import for_output
        from aircolor.colorize.imageio import copy_sidecars, write_photo

        samples = np.concatenate(bands) if len(bands) > 1 else np.array(bands[0])
        write_photo(samples, for_output(photo, Path(src), Path(target), self.output_format), Path(target))
        copy_sidecars(Path(src), Path(target))


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # outside Ray (tests of the worker on its own)
        return "127.0.0.1"
