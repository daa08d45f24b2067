"""The training engine: ``run(config) -> Result``, in-process or on Ray Train, with checkpoints and MLflow."""

from aircolor.training.engine import run, run_dir_for, run_name_for
from aircolor.training.loop import Result

__all__ = ["Result", "run", "run_dir_for", "run_name_for"]
