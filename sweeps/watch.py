"""Where to watch a sweep: a link straight to its runs table in the MLflow UI, sorted by the sweep's metric.

MLflow 3's UI opens an experiment on its GenAI overview, where a sweep shows nothing; the link goes to
``#/experiments/<id>/runs`` instead, with the UI's own URL parameters ``orderByKey`` (``metrics.`<key>```) and
``orderByAsc`` (best first). Which columns the table shows is the UI's per-browser state, not part of the URL:
the README says where to click to add the factor columns.
"""

from __future__ import annotations

import urllib.parse

from sweeps.state import SweepState

LOCAL_UI = "http://127.0.0.1:5000"


def runs_table_url(ui: str, experiment_id: str, metric_key: str, mode: str) -> str:
    """The runs table of one experiment, best trial first."""
    query = urllib.parse.urlencode({"orderByKey": f"metrics.`{metric_key}`", "orderByAsc": str(mode == "min")
                                    .lower()}, quote_via=urllib.parse.quote)
    return f"{ui.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"


def _experiment_id(state: SweepState) -> str | None:
    try:
        from mlflow import MlflowClient

        experiment = MlflowClient(state.tracking_uri).get_experiment_by_name(state.experiment)
    except Exception:  # the server is down: the sweep goes on, the hint has no id
        return None
    return None if experiment is None else experiment.experiment_id


def watch_lines(state: SweepState) -> list[str]:
    """``watch it:`` lines for the sweep's tracking store: the command that serves a local store, and the link."""
    uri = state.tracking_uri
    experiment_id = _experiment_id(state)
    local = not uri.startswith(("http://", "https://"))
    ui = LOCAL_UI if local else uri
    lines = [f"  watch it: mlflow ui --backend-store-uri {uri}"] if local else []
    if experiment_id is None:
        return lines + [f"  watch it: {ui} -> experiment '{state.experiment}' -> Runs"]
    url = runs_table_url(ui, experiment_id, state.options.metric_key, state.options.mode)
    return lines + [f"  watch it: {url}"]
