"""Which Inception weights the metrics use, how they are identified, and a random stand-in for offline work.

FID, IS and KID are only comparable with published numbers when they are computed with the standard
Inception-v3 weights (the TensorFlow ``inception-2015-12-05`` graph, converted to PyTorch). Every result
therefore records the sha256 of the weights it was computed with, and values from any other weights are
flagged as non-standard wherever they are shown.

Resolution order of the weights file: the config key ``metrics.inception_weights``, else the environment
variable ``AIRCOLOR_INCEPTION_WEIGHTS``, else ``None`` (torch-fidelity downloads the standard weights itself,
for users with internet).

:func:`make_random_weights` writes a randomly initialised file in exactly the format torch-fidelity 0.4.0's
``FeatureExtractorInceptionV3`` loads through ``feature_extractor_weights_path``: a plain ``dict`` of 472
float32 tensors (94 convolutions with their batch norms, and the 1008-way ``fc`` layer), saved with
``torch.save``. Tests and offline machines use it, since nothing can be downloaded there; the numbers it gives
are only good for checking code, never for the study.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from pathlib import Path
from typing import Any

from aircolor.errors import UsageError
from aircolor.utils import atomic_write_bytes

CONFIG_KEY = "metrics.inception_weights"
ENV_VAR = "AIRCOLOR_INCEPTION_WEIGHTS"
STANDARD_ID = "standard"  # weights_id() of None: torch-fidelity's own download of the standard weights

# sha256 of torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (95,628,359 bytes), byte-identical to
# pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``. torch-fidelity's source holds only the first 8 hex digits
# (torch.hub's file-name convention, see URL_INCEPTION_V3); the full digest is the one that several public projects
# pin for either file (e.g. the ``tf_inception_v3`` entry of FID ports), and it starts with that prefix.
STANDARD_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
N_TENSORS = 472

_SHA_MEMO: dict[tuple[str, int, int, int], str] = {}
_VETTED: dict[tuple[str, int, int, int], dict[str, Any]] = {}


def resolve_weights(config_value: str | None, *, key: str = CONFIG_KEY) -> Path | None:
    """The Inception weights file to use, or ``None`` for torch-fidelity's download of the standard weights.

    ``key`` names the source of ``config_value`` in error messages (the CLI passes ``--weights``). An empty
    string counts as unset, so ``AIRCOLOR_INCEPTION_WEIGHTS=`` does not point at the current folder.
    """
    if config_value:
        value, source = config_value, key
    elif os.environ.get(ENV_VAR):
        value, source = os.environ[ENV_VAR], f"${ENV_VAR}"
    else:
        return None
    path = Path(value).expanduser()
    if not path.is_file():
        raise UsageError(f"{source}: Inception weights file {value!r} does not exist; point it at a local "
                         f"weights file, or unset it so that torch-fidelity downloads the standard weights")
    vetted_state_dict(path, source=source)
    return path


def vetted_state_dict(path: Path, *, source: str = CONFIG_KEY) -> dict[str, Any]:
    """The tensors of an Inception weights file, read without running any code from it.

    ``torch.load(weights_only=True)`` unpickles tensors and plain containers only (a crafted pickle fails
    instead of running), then every name and shape is checked against torch-fidelity's network and every value
    must be finite. torch-fidelity itself loads its file with ``weights_only=False``: it is only ever handed
    these vetted tensors, re-serialised (:func:`vetted_file`), never the user's file. Checked once per file
    version (path, inode, size, mtime) and process.
    """
    import torch

    path = Path(path)
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if memo_key in _VETTED:
        return _VETTED[memo_key]
    hint = "pass torch-fidelity's weights-inception-2015-12-05-6726825d.pth or a file from make_random_weights"
    from aircolor.training.checkpoint import load_tensors

    try:
        state = load_tensors(path)
    except (ValueError, OSError) as exc:  # not a weights file, or a crafted one
        raise UsageError(f"{source}: {path} is not an Inception weights file (the file {exc}); {hint}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{source}: {path} is not an Inception weights file (not a dict of tensors); {hint}")
    expected = _skeleton_shapes()
    state = {k: v for k, v in state.items() if not str(k).endswith("num_batches_tracked")}
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
    for label, names in (("lacks", missing), ("has unknown tensors", unexpected), ("has wrong shapes for", wrong)):
        if names:
            raise UsageError(f"{source}: {path} is not an Inception weights file: it {label} {len(names)} "
                             f"of torch-fidelity's names (e.g. {names[0]}); {hint}")
    bad = [k for k, v in state.items() if not bool(torch.isfinite(v).all())]
    if bad:
        raise UsageError(f"{source}: {path} has non-finite values (NaN or Inf) in {len(bad)} tensor(s), e.g. "
                         f"{bad[0]}; the file is damaged, copy it again")
    _VETTED.clear()  # keep one file's tensors (about 95 MB) at most
    _VETTED[memo_key] = state
    return state


def vetted_file(path: Path) -> io.BytesIO:
    """The vetted tensors of ``path`` re-serialised in memory: what torch-fidelity is given to load."""
    import torch

    buffer = io.BytesIO()
    torch.save(vetted_state_dict(path), buffer)
    buffer.seek(0)
    return buffer


def sha256_of(path: Path) -> str:
    """sha256 of a file, remembered per (path, inode, size, mtime) so a 95 MB file is hashed once per process."""
    st = Path(path).stat()
    memo_key = (str(Path(path).resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if memo_key not in _SHA_MEMO:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        _SHA_MEMO[memo_key] = digest.hexdigest()
    return _SHA_MEMO[memo_key]


def weights_id(path: Path | None) -> str:
    """The sha256 of the weights file, or ``"standard"`` for torch-fidelity's own download."""
    return STANDARD_ID if path is None else sha256_of(path)


def weights_token(path: Path | None) -> str:
    """Like :func:`weights_id`, but the download and a local copy of the standard file give the same token.

    Used in cache keys, so real-image features computed with either are shared.
    """
    return STANDARD_SHA256 if path is None else sha256_of(path)


def is_standard(path: Path | None) -> bool:
    """True for the download (``None``) and for a local file whose sha256 is :data:`STANDARD_SHA256`."""
    return path is None or sha256_of(path) == STANDARD_SHA256


def _skeleton_shapes() -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors torch-fidelity's loader expects, read off the module itself.

    ``FeatureExtractorInceptionV3`` always loads weights in its constructor (from a path, or by downloading),
    so it is built on the meta device (no memory, no use of the global RNG) from an in-memory empty dict, with
    ``load_state_dict`` skipping that empty dict. The BatchNorm ``num_batches_tracked`` counters are left out,
    as in torch-fidelity's converted file (BatchNorm fills them in on load).
    """
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            return None if not state_dict else super().load_state_dict(state_dict, *args, **kwargs)

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.device("meta"):
        module = _Skeleton("inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)
    return {name: tuple(t.shape) for name, t in module.state_dict().items()
            if not name.endswith("num_batches_tracked")}


def random_state_dict(seed: int = 0) -> dict[str, Any]:
    """A plain dict of 472 float32 tensors with torch-fidelity's Inception names and shapes, random but seeded.

    Convolutions get He-normal weights (std sqrt(2 / fan_in), He et al. 2015) so activations neither vanish
    nor explode through the ~45 layers; batch norms are the identity (gamma 1, beta 0, mean 0, var 1); ``fc``
    gets N(0, 1/2048) weights and a zero bias. The global RNG is left untouched.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    out: dict[str, Any] = {}
    for name, shape in _skeleton_shapes().items():
        if name.endswith("conv.weight") or name == "fc.weight":
            fan_in = math.prod(shape[1:])
            std = (2.0 / fan_in) ** 0.5 if name != "fc.weight" else (1.0 / fan_in) ** 0.5
            out[name] = torch.randn(shape, generator=gen, dtype=torch.float32) * std
        elif name.endswith(("running_var", "bn.weight")):
            out[name] = torch.ones(shape, dtype=torch.float32)
        else:  # bn.bias, bn.running_mean, fc.bias
            out[name] = torch.zeros(shape, dtype=torch.float32)
    if len(out) != N_TENSORS:
        raise RuntimeError(f"torch-fidelity's Inception has {len(out)} tensors, expected {N_TENSORS}; "
                           f"its architecture changed, so make_random_weights needs updating")
    return out


def make_random_weights(path: str | Path, seed: int = 0) -> Path:
    """Write a randomly initialised Inception weights file in torch-fidelity's format, atomically.

    The same seed gives the same bytes (hence the same sha256). Such weights are never the standard ones, so
    every value computed with them is flagged as non-standard.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(random_state_dict(seed), buffer)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path
