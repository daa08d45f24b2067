"""What a run records about itself: the ablation factors as tags, and the resolved config as params.

Tags make runs comparable in the MLflow UI and in ``search_runs`` (``tags.`factor.gan_mode` = 'lsgan'``) without
parsing params; each ablation factor of the study is one tag, set only for the family the factor belongs to.
The engine adds ``device`` and ``data.manifest_sha256`` itself.
"""

from __future__ import annotations

import socket
import subprocess
from functools import lru_cache
from pathlib import Path

from aircolor import __version__
from aircolor.config import RunConfig, flatten
from aircolor.tracking.uri import redact_uri

_SECRET_KEYS = ("tracking.tracking_uri",)


def params_from_config(cfg: RunConfig) -> dict[str, str]:
    """The flattened resolved config (``model.ngf`` -> ``"64"``) as MLflow params; URIs lose their passwords."""
    out: dict[str, str] = {}
    for key, value in flatten(cfg).items():
        text = str(value)
        out[key] = redact_uri(text) if key in _SECRET_KEYS and value is not None else text
    return out


def factor_tags(cfg: RunConfig) -> dict[str, str]:
    """One tag per ablation factor that applies to the run's family (factors 1-6 of the study)."""
    m, t = cfg.model, cfg.train
    tags = {"family": m.family,
            "factor.g_d_balance": f"ngf={m.ngf},ndf={m.ndf},lr_G={t.lr_G:g},lr_D={t.lr_D:g}"}
    if m.family == "pix2pix":
        tags["factor.generator"] = str(m.netG)
        tags["factor.color_space"] = cfg.data.color_space
    elif m.family == "cut":
        tags["factor.gan_mode"] = str(m.gan_mode)
        tags["factor.identity"] = m.cut_mode
    elif m.family == "bicyclegan":
        tags["factor.z_injection"] = m.z_injection
    return tags


def run_tags(cfg: RunConfig) -> dict[str, str]:
    """Factor tags plus where the run comes from: ``aircolor.version``, ``git.commit`` (from a checkout), ``host``."""
    tags = factor_tags(cfg)
    tags["aircolor.version"] = __version__
    tags.update(git_info())
    tags["host"] = socket.gethostname()
    return tags


@lru_cache(maxsize=1)
def git_info() -> dict[str, str]:
    """``{"git.commit": sha, "git.dirty": "true"|"false"}`` when aircolor runs from a git checkout, else ``{}``.

    Only the checkout that holds this package counts: an installed aircolor inside some other repository (a venv in
    a project folder) must not be tagged with that repository's commit.
    """
    source_root = Path(__file__).resolve().parents[2]
    if not (source_root / ".git").exists():
        return {}

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(source_root), *args], capture_output=True, text=True, timeout=10,
                              check=True)
        return done.stdout.strip()

    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != source_root:
            return {}
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git.commit": commit, "git.dirty": "true" if dirty else "false"}
