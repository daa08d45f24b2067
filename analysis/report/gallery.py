"""The sample grid: the same photos colorized by the best seed of each of the top configurations."""

from __future__ import annotations

from pathlib import Path

from analysis import figures
from analysis.render import Section
from analysis.report.common import Context


def samples_section(ctx: Context) -> Section:
    from analysis.runs import client_for
    from analysis.samples import load_samples, sample_rows

    sec = Section("Colorized samples", "samples")
    study, opts, primary = ctx.study, ctx.opts, ctx.primary
    rank = ctx.picks()
    if not opts.samples:
        sec.text("Sample grid skipped (--no-samples).")
        return sec
    if rank is None or rank.empty:
        sec.text("No ranked configuration: no sample grid.")
        return sec
    picks = []
    for config in rank["config"].head(opts.top_k):
        best = ctx.best_run(config)
        if best is not None:
            picks.append((f"#{len(picks) + 1} {config}", str(best["run_id"]), best.get("param.data.root")))
    if not picks:
        sec.text("No completed trial of the top configurations has a value to pick its best seed by: no sample grid.")
        return sec
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
    figures.image_grid(rows, out_dir=ctx.figs, stem="samples",
                       title=f"Top {len(picks)} configurations by validation {ctx.label(primary)}")
    names = "; ".join(f"{kind} {i + 1}: {s.name}" for kind in ("validation", "historical")
                      for i, s in enumerate(x for x in samples if x.kind == kind))
    sec.text(f"The same {sum(s.kind == 'validation' for s in samples)} validation tiles (gray copy in, ground truth "
             f"right) and {sum(s.kind == 'historical' for s in samples)} historical photos (no ground truth) from "
             f"{root}, colorized by the best seed of each of the top configurations ({names}).")
    sec.figure("figures/samples.png", "Gray input, the top configurations' colorizations, ground truth")
    return sec
