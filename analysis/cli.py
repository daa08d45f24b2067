"""``aircolor report``: the ranked comparison report of one or more sweeps (MLflow experiments)."""

from __future__ import annotations

import argparse
import os
import textwrap
from pathlib import Path
from typing import Any


def _cmd_report(args: argparse.Namespace) -> int:
    from aircolor.errors import UsageError
    from aircolor.tracking.uri import resolve_tracking_uri
    from analysis.report import ReportOptions, build_report

    if args.top_k < 1 or args.bootstrap < 100:
        raise UsageError("--top-k must be >= 1 and --bootstrap >= 100")
    if args.data is not None and not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data}: no such folder; pass the folder made by `aircolor data prepare`")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars per generator download
    from aircolor.tracking.reach import open_for_reading
    from aircolor.utils import check_output_folder

    check_output_folder(Path(args.out), "--out")
    uri = open_for_reading(resolve_tracking_uri(None, args.tracking_uri), what="tracking store")
    opts = ReportOptions(metric=args.metric, top_k=args.top_k, n_boot=args.bootstrap, seed=args.seed,
                         data_root=Path(args.data) if args.data else None, samples=not args.no_samples,
                         device=args.device)
    report = build_report(args.experiment, uri, Path(args.out), opts)
    print(f"report: {report.index}")
    print(f"        {report.markdown}")
    return 0


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    from analysis.stats import METRICS

    example = """
        aircolor report --experiment cut_identity-20261124-101500 --out reports/cut_identity
        aircolor report --experiment sweep-a --experiment sweep-b --tracking-uri http://head:5000 --out reports/ab
    """
    p = subparsers.add_parser(
        "report", help="ranked comparison report (HTML + Markdown) of sweeps from MLflow",
        description="Rank a sweep's configurations (grouped over seeds, bootstrap CIs, factor effects, diagnostics, "
                    "figures, sample grid) on the held-out test split, the best one chosen on validation, against "
                    "the gray copy and two colour priors, and write a self-contained report folder.",
        epilog="example:\n" + textwrap.indent(textwrap.dedent(example).strip(), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", action="append", required=True, metavar="NAME",
                   help="MLflow experiment (a sweep's name); repeat to compare several")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                                          "sqlite:///mlruns.db)")
    p.add_argument("--out", required=True, metavar="DIR", help="report folder (replaced if it holds an older report)")
    p.add_argument("--metric", choices=list(METRICS),
                   help="primary ranking metric, and the headline's gain over the strongest prior (default: the "
                        "metric the sweep optimised, as `sweep promote` uses, else fid; every metric is ranked too)")
    p.add_argument("--top-k", type=int, default=3, help="configurations in the sample grid (default 3)")
    p.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap resamples for the CIs (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--data", metavar="ROOT", help="prepared dataset for the sample grid (default: the runs' "
                                                   "data.root)")
    p.add_argument("--no-samples", action="store_true", help="skip the sample grid (no generator downloads)")
    p.add_argument("--device", default="cpu", help="device for the sample grid's colorizations (default cpu)")
    p.set_defaults(func=_cmd_report)
    return p
