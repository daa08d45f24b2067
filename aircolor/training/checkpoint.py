"""Checkpoints: written atomically, read back with ``torch.load(weights_only=True)``.

A checkpoint holds everything a run needs to continue exactly where it stopped: the model's training state
(networks, optimizers, schedulers, image pools), the epoch and iteration counters, the loss history for the
curves, the MLflow run id, and the RNG states. It is written to a temporary file in the same folder, flushed
to disk and renamed over the previous one, so a crash during a save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from aircolor.utils import atomic_write

FORMAT = 1


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(),
                             "python": _python_state_to_list(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_python_state_from_list(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state_to_list(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_state_from_list(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically (temp file, fsync, rename)."""
    return atomic_write(Path(path), lambda fh: torch.save({"format": FORMAT, **state}, fh))


def load_tensors(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, so a crafted pickle fails
    instead of running its code. Every failure is a ``ValueError`` saying in a few words what the file is."""
    import zipfile

    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler's own errors are long and vary with the torch version
        with open(path, "rb") as fh:
            head = fh.read(2)
        if zipfile.is_zipfile(path) or head[:1] == b"\x80":
            reason = ("is a pickle that holds Python objects besides tensors, which aircolor never unpickles "
                      "(they could run code)" if "Weights only load failed" in str(exc) else
                      f"is a damaged PyTorch file ({exc.__class__.__name__})")
        else:
            reason = "is not a PyTorch file at all"
        raise ValueError(reason) from None


def load_checkpoint(path: Path) -> dict[str, Any]:
    state = load_tensors(path)
    if not isinstance(state, dict) or "format" not in state:
        kind = f"a {type(state).__name__}" + (f" of {len(state)} entries" if hasattr(state, "__len__") else "")
        raise ValueError(f"holds {kind} without aircolor's 'format' entry, so aircolor did not write it")
    if state["format"] != FORMAT:
        raise ValueError(f"was written in checkpoint format {state['format']!r}; this aircolor reads {FORMAT!r}")
    return state
