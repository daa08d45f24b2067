"""Shared pytest fixtures.

Keep each fixture self-contained (its own imports, its own docstring) so that new ones can be added below
without touching the others.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The real sample imagery shipped in ``aircolor/sample_data`` (read-only: copy files before changing them)."""
    import aircolor

    return Path(aircolor.__file__).resolve().parent / "sample_data"


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """OUT_DIR of ``aircolor data prepare`` over the whole sample (color + historical), ``--size 32``, seed 0.

    Built once per session and shared: tests must only read it.
    """
    from aircolor.data.prepare import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("prepared_sample") / "out"
    prepare(sample_data / "color", out, historical_dir=sample_data / "historical",
            options=PrepareOptions(size=32), workers=1)
    return out
