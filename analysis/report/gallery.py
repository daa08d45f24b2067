"""The sample grid: the same photos colorized by the best seed of each of the top configurations."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from analysis import figures, stats
from analysis.render import Section
from analysis.report.common import ReportOptions, metric_label
from analysis.runs import Study


def samples_section(study: Study, opts: ReportOptions, primary: str, rankings: dict[str, pd.DataFrame],
                    figs: Path) -> Section:
    from analysis.runs import client_for
    from analysis.samples import load_samples, sample_rows

    sec = Section("Colorized samples", "samples")
    rank = rankings.get(primary)
    if not opts.samples:
        sec.text("Sample grid skipped (--no-samples).")
        return sec
    if rank is None or rank.empty:
        sec.text("No ranked configuration: no sample grid.")
        return sec
    t = study.trials
    key, mode = stats.METRICS[primary].key, stats.METRICS[primary].mode
    picks = []
    for config in rank["config"].head(opts.top_k):
        g = t[(t["config"] == config) & (t["outcome"] == "completed") & t[key].notna()]
        best = g.sort_values(key, ascending=mode == "min").iloc[0]
        picks.append((f"#{len(picks) + 1} {config}", str(best["run_id"]), best.get("param.data.root")))
    root = opts.data_root or (Path(picks[0][2]) if picks[0][2] else None)
    if root is None or not Path(root).is_dir():
        sec.text(f"Sample grid skipped: the prepared dataset {root} is not on this machine; pass --data ROOT "
                 f"(the folder made by `aircolor data prepare`).")
        return sec
    samples = load_samples(Path(root), n_val=opts.n_val_samples, n_hist=opts.n_hist_samples)
    if not samples:
        sec.text(f"Sample grid skipped: no validation tiles or historical photos under {root}.")
        return sec
    rows, notes = sample_rows(client_for(study.tracking_uri), [(label, rid) for label, rid, _ in picks], samples,
                              device=opts.device)
    for note in notes:
        sec.text(note)
    figures.image_grid(rows, out_dir=figs, stem="samples", title=f"Top {len(picks)} configurations by "
                                                               f"{metric_label(primary, study.nonstandard_weights)}")
    names = "; ".join(f"{kind} {i + 1}: {s.name}" for kind in ("validation", "historical")
                      for i, s in enumerate(x for x in samples if x.kind == kind))
    sec.text(f"The same {sum(s.kind == 'validation' for s in samples)} validation tiles (gray copy in, ground truth "
             f"right) and {sum(s.kind == 'historical' for s in samples)} historical photos (no ground truth) from "
             f"{root}, colorized by the best seed of each of the top configurations ({names}).")
    sec.figure("figures/samples.png", "Gray input, the top configurations' colorizations, ground truth")
    return sec
