"""``aircolor sweep status`` and the sweep's tracking leftovers.

A trial that ends while the tracking server is down waits ``tracking.end_wait_s`` for it, then leaves its records
in a spool file under its trial folder (``<sweep>/trials/<id>/mlflow-spool``). The driver replays every such spool
when the sweep ends and when it is resumed (:func:`replay_leftovers`); ``sweep status`` counts what is still unsent
and says where (:func:`unsent_records`), and ``aircolor tracking replay <sweep folder>`` sends it by hand.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sweeps.driver import DEFAULT_STORAGE
from sweeps.state import SweepState


def unsent_records(folder: Path) -> dict[str, Any]:
    """``{"records": N, "spools": [paths]}``: the records left in the spool files under a sweep's folder."""
    from aircolor.tracking.spool import SpoolError, find_spools, parse_spool

    records, spools = 0, []
    if folder.is_dir():
        for path in find_spools(folder):
            try:
                records += len(parse_spool(path, path.read_bytes()).pending)
            except (OSError, SpoolError):  # sent and deleted meanwhile, or not ours: still worth naming
                pass
            spools.append(str(path))
    return {"records": records, "spools": spools}


def replay_leftovers(state: SweepState) -> Any:
    """Send every spool a trial left under the sweep's folder to the sweep's server; one line says what happened.

    A spool whose tracker is still running is skipped (it sends its own records); one the server still refuses or
    cannot take is kept, and the line says how to send it later.
    """
    from aircolor.tracking import redact_uri, replay

    if not unsent_records(state.folder)["spools"]:
        return None
    try:
        result = replay(state.folder, state.tracking_uri)
    except Exception as exc:  # the sweep's own result matters more than its leftovers: say so and go on
        result = None
        print(f"aircolor sweep {state.name}: warning: could not replay the trials' tracking spools: {exc}", flush=True)
    left = unsent_records(state.folder)
    if result is not None and result.sent:
        print(f"aircolor sweep {state.name}: replayed {result.sent} tracking record(s) that trials could not send "
              f"to {redact_uri(state.tracking_uri)} while it was down", flush=True)
    if left["records"]:
        note = (f"{left['records']} tracking record(s) still unsent in {len(left['spools'])} spool file(s) under "
                f"{state.folder}; they are replayed by 'aircolor sweep resume {state.name}' or "
                f"'aircolor tracking replay {state.folder}'")
        print(f"aircolor sweep {state.name}: warning: {note}", flush=True)
        state.notes.append(note)
        state.save()
    return result


def sweep_status(name: str, *, storage: str = DEFAULT_STORAGE) -> dict[str, Any]:
    """Each trial's name, state, latest metric, the best so far (from the Tune experiment state) and the tracking
    records still unsent."""
    from ray.tune import ExperimentAnalysis

    from aircolor.tracking import redact_uri

    state = SweepState.load(Path(storage).expanduser().resolve(), name)
    rows: list[dict[str, Any]] = []
    best: tuple[float, str] | None = None
    key, mode = state.options.metric_key, state.options.mode
    tune_dir = state.folder / "tune"
    if tune_dir.is_dir():
        try:
            analysis = ExperimentAnalysis(str(tune_dir))
            trials = analysis.trials
        except Exception:  # nothing reported yet
            trials = []
        for trial in trials:
            last = trial.last_result or {}
            value = last.get(key)
            name_ = (trial.config or {}).get("trial_name") or _trial_label(state, trial.config or {})
            rows.append({"trial_id": trial.trial_id, "trial": name_, "status": trial.status,
                         "epoch": last.get("epoch"), key: value})
            if value is not None and math.isfinite(float(value)):
                if best is None or (value < best[0] if mode == "min" else value > best[0]):
                    best = (float(value), name_)
    return {"name": state.name, "status": state.status, "metric": key, "mode": mode, "trials": rows,
            "best": {"trial": best[1], key: best[0]} if best else None, "experiment": state.experiment,
            "tracking_uri": redact_uri(state.tracking_uri), "unsent": unsent_records(state.folder), "folder": str(state.folder)}


def _trial_label(state: SweepState, config: dict[str, Any]) -> str:
    try:
        from sweeps.space import load_space

        space = load_space(state.folder / "search_space.yaml")
        return space.trial_name(space.from_tune(config))
    except Exception:
        return "?"

