"""A sweep's own record: what was asked for, where it lives, and its MLflow parent run.

``<storage>/<name>/aircolor-sweep.json`` is written when a sweep starts and updated when it ends. It is what
``aircolor sweep resume NAME`` and ``aircolor sweep status NAME`` read: the search space (a copy of the file, so a
resumed sweep cannot silently pick up an edited one), the options, the MLflow experiment and parent run id.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aircolor.errors import UsageError
from aircolor.metrics.names import METRICS as NAMES
from aircolor.utils import atomic_write_text

STATE_FILE = "aircolor-sweep.json"
METRICS = NAMES  # --metric -> MetricSpec(key, label, mode): the study's one vocabulary (aircolor.metrics.names)


@dataclass
class SweepOptions:
    metric: str = "fid"
    num_samples: int = 20
    max_concurrent: int | None = None
    gpus_per_trial: float | None = None
    cpus_per_trial: float = 1.0
    workers_per_trial: int = 1
    scheduler: str = "asha"
    grace_period: int = 1
    reduction_factor: int = 2
    max_failures: int = 1
    smoke: bool = False
    overrides: list[str] = field(default_factory=list)
    max_trials: int = 10_000

    @property
    def metric_key(self) -> str:
        return METRICS[self.metric].key

    @property
    def mode(self) -> str:
        return METRICS[self.metric].mode


@dataclass
class SweepState:
    name: str
    storage: str
    space_path: str
    space_sha256: str
    space_text: str
    options: SweepOptions
    experiment: str
    tracking_uri: str
    parent_run_id: str | None = None
    status: str = "RUNNING"
    created: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        return Path(self.storage) / self.name

    def save(self) -> None:
        data = asdict(self)
        atomic_write_text(self.folder / STATE_FILE, json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, storage: str | Path, name: str) -> "SweepState":
        path = Path(storage) / name / STATE_FILE
        if not path.is_file():
            known = ", ".join(list_sweeps(storage)) or "none"
            raise UsageError(f"no sweep named {name!r} under {storage} (known: {known}); check the name or --storage")
        data = json.loads(path.read_text())
        data["options"] = SweepOptions(**data["options"])
        return cls(**data)


def list_sweeps(storage: str | Path) -> list[str]:
    root = Path(storage)
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{STATE_FILE}"))


def load_all(storage: str | Path) -> list[SweepState]:
    return [SweepState.load(storage, name) for name in list_sweeps(storage)]


def state_summary(state: SweepState) -> dict[str, Any]:
    return {"name": state.name, "status": state.status, "space": state.space_path, "metric": state.options.metric,
            "experiment": state.experiment, "parent_run_id": state.parent_run_id}
