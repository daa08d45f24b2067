"""``aircolor sweep run | resume | status | list`` (also ``python -m sweeps.run SPACE.yaml ...``)."""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from typing import Any

from aircolor.cli import ray_address
from sweeps.state import METRICS

_STORAGE_HELP = ("folder (shared storage on a multi-node cluster: NFS path or s3://...) that holds every sweep's "
                 "Tune state, trial folders and checkpoints (default: runs/sweeps, or $AIRCOLOR_SWEEP_STORAGE)")


def _storage_default() -> str:
    return os.environ.get("AIRCOLOR_SWEEP_STORAGE", "runs/sweeps")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("space", metavar="SPACE.yaml", help="search space (search_spaces/*.yaml)")
    p.add_argument("overrides", metavar="KEY=VALUE", nargs="*",
                   help="run-config overrides for every trial, e.g. data.root=data/prepared")
    p.add_argument("--address", type=ray_address,
                   help="Ray cluster: auto, ray://HOST:10001 (default: $RAY_ADDRESS or a local Ray)")
    p.add_argument("--name", help="sweep name (default: <space>-<date>); also the MLflow experiment")
    p.add_argument("--num-samples", type=int, default=20, help="Optuna trials for continuous spaces (default 20)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: what the cluster fits)")
    p.add_argument("--gpus-per-trial", type=float, help="GPUs per trial, fractions share a GPU (default: 1 if the "
                                                        "cluster has GPUs, else 0)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (per worker) (default 1)")
    p.add_argument("--workers-per-trial", type=int, default=1, help="Ray Train workers per trial, DDP when > 1")
    p.add_argument("--scheduler", choices=["asha", "none"], default="asha", help="early stopping (default asha)")
    p.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before a trial can be stopped")
    p.add_argument("--reduction-factor", type=int, default=2, help="ASHA reduction factor (default 2)")
    p.add_argument("--metric", choices=sorted(METRICS),
                   help="what the search and early stopping optimise (default: the space's metric, else fid)")
    p.add_argument("--max-failures", type=int, default=1, help="retries of a failing trial from its checkpoint")
    p.add_argument("--max-trials", type=int, default=10_000,
                   help="refuse a sweep of more trials than this (a grid's combinations x seeds, or --num-samples), "
                        "counted before anything is built (default 10000)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes (32-64 px, ngf/ndf 8, 2 epochs) for a quick run")
    p.add_argument("--storage", default=_storage_default(), help=_STORAGE_HELP)
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else "
                                          "sqlite:///mlruns.db)")


def options_from_args(args: argparse.Namespace) -> Any:
    from sweeps.state import SweepOptions

    metric = args.metric
    if metric is None:
        from sweeps.space import load_space

        metric = load_space(args.space).metric or "fid"
    return SweepOptions(metric=metric, num_samples=args.num_samples, max_concurrent=args.max_concurrent,
                        gpus_per_trial=args.gpus_per_trial, cpus_per_trial=args.cpus_per_trial,
                        workers_per_trial=args.workers_per_trial, scheduler=args.scheduler,
                        grace_period=args.grace_period, reduction_factor=args.reduction_factor,
                        max_failures=args.max_failures, smoke=args.smoke, overrides=list(args.overrides),
                        max_trials=args.max_trials)


def print_result(result: Any) -> None:
    state = result.state
    counts = ", ".join(f"{v} {k.lower()}" for k, v in sorted(result.counts.items()))
    print(f"sweep {state.name}: {state.status}; {len(result.trials)} trials ({counts})")
    print(f"  MLflow experiment '{state.experiment}' at {state.tracking_uri}")
    from sweeps.watch import watch_lines

    for line in watch_lines(state):
        print(line)
    print(f"  status:   aircolor sweep status {state.name} --storage {state.storage}")


def _cmd_run(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from sweeps.driver import run_sweep

    result = run_sweep(args.space, options_from_args(args), name=args.name, address=args.address,
                       storage=args.storage, tracking_uri=args.tracking_uri)
    print_result(result)
    return 0 if result.state.status == "FINISHED" else 1


def _cmd_resume(args: argparse.Namespace) -> int:
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from sweeps.driver import resume_sweep

    result = resume_sweep(args.name, address=args.address, storage=args.storage)
    print_result(result)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from sweeps.status import sweep_status

    status = sweep_status(args.name, storage=args.storage)
    if args.json:
        print(json.dumps(status, default=str))
        return 0
    key = status["metric"]
    print(f"sweep {status['name']}: {status['status']} (metric {key}, {status['mode']}); "
          f"MLflow experiment '{status['experiment']}'")
    print(f"  {'trial':40s} {'state':12s} {'epoch':>5s} {key:>14s}")
    for row in status["trials"]:
        value = row.get(key)
        shown = f"{value:14.4f}" if isinstance(value, (int, float)) else f"{'-':>14s}"
        print(f"  {str(row['trial'])[:40]:40s} {row['status']:12s} {str(row.get('epoch') or '-'):>5s} {shown}")
    if status["best"]:
        print(f"  best so far: {status['best']['trial']} ({key} = {status['best'][key]:.4f})")
    unsent = status["unsent"]
    if unsent["spools"]:
        print(f"  tracking: {unsent['records']} record(s) not yet in MLflow, in {len(unsent['spools'])} spool "
              f"file(s) under {status['folder']}; 'aircolor sweep resume {status['name']}' or "
              f"'aircolor tracking replay {status['folder']}' sends them")
    else:
        print("  tracking: every record is in MLflow (no spool left)")
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from sweeps.state import load_all, state_summary

    states = load_all(args.storage)
    if args.json:
        print(json.dumps([state_summary(s) for s in states]))
        return 0
    if not states:
        print(f"no sweeps under {args.storage}")
    for s in states:
        print(f"{s.name:40s} {s.status:10s} {s.options.metric:12s} {s.space_path}")
    return 0


def _cmd_promote(args: argparse.Namespace) -> int:
    from aircolor.tracking.uri import resolve_tracking_uri
    from sweeps.promote import promote
    from sweeps.state import STATE_FILE, SweepState

    from aircolor.tracking.reach import open_for_reading

    experiment, uri, metric = args.name, args.tracking_uri, args.metric
    from pathlib import Path

    if (Path(args.storage) / args.name / STATE_FILE).is_file():
        state = SweepState.load(args.storage, args.name)
        experiment, uri = state.experiment, uri or state.tracking_uri
        metric = metric or state.options.metric
    uri = open_for_reading(resolve_tracking_uri(None, uri), what="tracking store")  # never creates one
    result = promote(args.name, tracking_uri=uri, experiment=experiment, metric=metric or "fid",
                     model_name=args.model_name)
    verb = "registered" if result.created else "already registered as"
    print(f"{verb} {result.uri} (alias @best): trial {result.trial}, {result.metric_key} = {result.value:.6g}")
    if result.nonstandard_weights and result.metric_key.split(".")[-1].startswith(("fid", "kid", "is")):
        print("warning: that metric was computed with non-standard Inception weights")
    print(f"colorize with: aircolor colorize --model {result.uri} INPUT... --out DIR")
    return 0


def _examples(text: str) -> dict[str, Any]:
    return {"epilog": "example:\n" + textwrap.indent(textwrap.dedent(text).strip(), "  "),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    sweep = subparsers.add_parser(
        "sweep", help="ablation sweeps on Ray Tune (run, resume, status, list, promote)",
        description="Run the study's ablation sweeps (search_spaces/*.yaml) on a local Ray or a Ray cluster, every "
                    "trial tracked in MLflow; resume a stopped sweep, watch it, and promote its best generator.",
        **_examples("""
            aircolor sweep run search_spaces/pix2pix_generator.yaml data.root=data/prepared --smoke
            aircolor sweep status pix2pix_generator-20261124-101500
            aircolor sweep promote pix2pix_generator-20261124-101500
        """))
    sub = sweep.add_subparsers(dest="sweep_command", metavar="COMMAND", parser_class=type(sweep), required=True)
    run = sub.add_parser("run", help="start a sweep of a search space",
                         description="Validate the search space, the options and every trial's config (nothing is "
                                     "written before that passes), then run the trials on Ray Tune: a grid for "
                                     "all-choice spaces, Optuna TPE otherwise, ASHA early stopping by default.",
                         **_examples("""
        aircolor sweep run search_spaces/cut_identity.yaml data.root=data/prepared --smoke
        aircolor sweep run search_spaces/full.yaml data.root=/shared/data --address auto --gpus-per-trial 0.5
    """))
    add_run_arguments(run)
    run.set_defaults(func=_cmd_run)
    resume = sub.add_parser("resume", help="continue a sweep whose driver stopped",
                            description="Continue a sweep whose driver stopped: finished trials are kept, unfinished "
                                        "ones resume from their last checkpoint, each in its own MLflow run.",
                            **_examples("aircolor sweep resume cut_identity-20261124-101500"))
    resume.add_argument("name", metavar="NAME")
    resume.add_argument("--address", help="Ray cluster address")
    resume.add_argument("--storage", default=_storage_default(), help=_STORAGE_HELP)
    resume.set_defaults(func=_cmd_resume)
    status = sub.add_parser("status", help="each trial's config, state, latest metric and the best so far",
                            description="Each trial's name, state, epoch and latest value of the sweep's metric, and "
                                        "the best so far, read from the sweep's Tune state in --storage.",
                            **_examples("aircolor sweep status cut_identity-20261124-101500"))
    status.add_argument("name", metavar="NAME")
    status.add_argument("--storage", default=_storage_default(), help=_STORAGE_HELP)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_cmd_status)
    lst = sub.add_parser("list", help="list the sweeps in the storage folder",
                         description="Every sweep under --storage: its name, status, metric and search space.",
                         **_examples("aircolor sweep list --storage /mnt/shared/sweeps"))
    lst.add_argument("--storage", default=_storage_default(), help=_STORAGE_HELP)
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(func=_cmd_list)
    prom = sub.add_parser("promote", help="register the best trial's generator in the MLflow model registry",
                          description="Register the generator of the sweep's best trial (by the sweep's own metric "
                                      "on validation, as the report ranks) in the MLflow model registry, alias "
                                      "@best, for `aircolor colorize --model models:/...`.",
                          **_examples("""
        aircolor sweep promote cut_identity-20261124-101500
        aircolor colorize --model models:/aircolor-cut_identity-20261124-101500/1 scans/ --out colorized/
    """))
    prom.add_argument("name", metavar="NAME", help="the sweep (also its MLflow experiment)")
    prom.add_argument("--metric", choices=sorted(METRICS), help="what 'best' means (default: the sweep's metric)")
    prom.add_argument("--model-name", help="registered model name (default aircolor-NAME)")
    prom.add_argument("--storage", default=_storage_default(), help=_STORAGE_HELP)
    prom.add_argument("--tracking-uri", help="MLflow tracking URI (default: the sweep's)")
    prom.set_defaults(func=_cmd_promote)
    return sweep
