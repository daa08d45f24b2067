"""Run the ``aircolor`` CLI with one sweep trial made to fail: the fault-tolerance tests' seam, kept out of sweeps/.

    python tests/fault_seam.py "<trial name>:once"   sweep run ...   # fails once, right after its first checkpoint
    python tests/fault_seam.py "<trial name>:always" sweep run ...   # fails at every start

It wraps :func:`sweeps.trial.make_trainable` in this (driver) process. Functions defined in a ``__main__`` script
are pickled by value, so the wrapped trainable travels to the Ray workers without this file being importable there.
A trial that failed once leaves ``<trial folder>/.injected-failure``, so its retry, which resumes from the
checkpoint, runs normally.
"""

from __future__ import annotations

import sys
from pathlib import Path

SPEC = sys.argv[1] if len(sys.argv) > 1 else ""


def _fail_after_first_checkpoint(marker: Path, trial_id: str) -> None:
    """Make ``ray.tune.report`` raise once for trial ``trial_id``, right after the first report with a checkpoint."""
    import ray.tune

    real_report = ray.tune.report

    def report(metrics, checkpoint=None, **kwargs):  # noqa: ANN001 - Ray's own signature
        real_report(metrics, checkpoint=checkpoint, **kwargs)
        if checkpoint is not None and ray.tune.get_context().get_trial_id() == trial_id and not marker.exists():
            marker.touch()
            raise RuntimeError(f"injected failure in trial {marker.parent.name} after its first checkpoint")

    ray.tune.report = report


def faulty(make_trainable):  # noqa: ANN001, ANN201
    def make(**kwargs):  # noqa: ANN003, ANN202
        inner = make_trainable(**kwargs)
        target, _, mode = SPEC.rpartition(":")

        def trainable(config: dict) -> None:
            import ray.tune

            from sweeps.space import load_space

            space = load_space(kwargs["space_path"])
            name = space.trial_name(space.from_tune(config))
            if name == target and mode == "always":
                raise RuntimeError(f"injected failure in trial {name} (always)")
            if name == target and mode == "once":
                trial_id = ray.tune.get_context().get_trial_id()
                folder = Path(kwargs["sweep_dir"]) / "trials" / trial_id
                folder.mkdir(parents=True, exist_ok=True)
                _fail_after_first_checkpoint(folder / ".injected-failure", trial_id)
            inner(config)

        return trainable

    return make


if __name__ == "__main__":
    if SPEC.rpartition(":")[2] not in ("once", "always"):
        sys.exit("usage: python tests/fault_seam.py '<trial name>:once|always' <aircolor arguments>")
    import sweeps.trial

    sweeps.trial.make_trainable = faulty(sweeps.trial.make_trainable)
    from aircolor.cli import main

    sys.exit(main(sys.argv[2:]))
