"""The ``aircolor`` command line: a thin layer over importable functions.

Every subcommand's handler takes the parsed arguments and returns an exit code. Bad input raises
:class:`~aircolor.errors.UsageError`, which becomes one line on stderr and exit code 2 (with the traceback
only under ``--debug``). Heavy imports (torch, Ray, MLflow) happen inside handlers, so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Sequence

from aircolor import __version__
from aircolor.errors import UsageError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: what is wrong and where to look, instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _examples(text: str) -> dict:
    return {"epilog": "example:\n" + textwrap.indent(textwrap.dedent(text).strip(), "  "),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


def _split_arg(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not three comma-separated numbers, e.g. 0.7,0.15,0.15")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} has {len(parts)} parts; give train,val,test, e.g. 0.7,0.15,0.15")
    return parts  # type: ignore[return-value]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1, e.g. 4")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds, e.g. 60")
    return value


def ray_address(text: str) -> str:
    """What Ray accepts as a cluster address: auto, local, HOST:PORT or ray://HOST:PORT."""
    host_port = text[len("ray://"):] if text.startswith("ray://") else text
    host, _, port = host_port.rpartition(":")
    if text in ("auto", "local") or (host and port.isdigit() and 0 < int(port) < 65536):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a Ray address; give auto, HOST:6379 or ray://HOST:10001")


# --------------------------------------------------------------------------------------------- data prepare
def _cmd_prepare(args: argparse.Namespace) -> int:
    from aircolor.data.prepare import PrepareOptions, prepare

    options = PrepareOptions(size=args.size, split=args.split, seed=args.seed, group_by=args.group_by,
                             holdout=args.holdout)
    result = prepare(Path(args.src), Path(args.out), historical_dir=Path(args.historical) if args.historical else None,
                     options=options, force=args.force, workers=args.workers)
    print(result.format())
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="fetch tiles and prepare datasets",
                          description="Fetch modern color orthophoto tiles (fetch-tiles) and prepare the study's "
                                      "datasets from them (prepare). 'aircolor data COMMAND --help' for each.",
                          **_examples("""
                              aircolor data fetch-tiles --url 'https://host/{z}/{x}/{y}.jpg' --bbox 135.50,34.59,135.53,34.61 \\
                                  --zoom 15-16 --out tiles/
                              aircolor data prepare tiles/ data/prepared --historical scans/
                          """))
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND", parser_class=_Parser, required=True)
    from aircolor.data import tiles

    tiles.register_cli(data_sub)
    p = data_sub.add_parser(
        "prepare", help="vet, split and lay out color tiles (and historical photos)",
        description="Vet every image (rejects are listed with their reason), split reproducibly, and write the "
                    "aligned (pix2pix, BicycleGAN), unaligned (CycleGAN, CUT) and historical layouts plus "
                    "manifest.parquet. OUT_DIR is built in a staging folder and renamed into place.",
        **_examples("""
            aircolor data prepare tiles/ data/prepared --historical scans/ --size 256 \\
                --split 0.7,0.15,0.15 --seed 0 --group-by '(\\d+)_15_'
        """))
    p.add_argument("src", metavar="SRC_COLOR_DIR", help="folder of color tiles (searched recursively)")
    p.add_argument("out", metavar="OUT_DIR", help="output folder (must not exist, unless --force)")
    p.add_argument("--historical", metavar="DIR", help="folder of real historical grayscale photos (test only)")
    p.add_argument("--size", type=int, default=256, help="tile size in pixels (default 256)")
    p.add_argument("--split", type=_split_arg, default=(0.7, 0.15, 0.15), metavar="TRAIN,VAL,TEST",
                   help="split fractions (default 0.7,0.15,0.15)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.add_argument("--group-by", metavar="REGEX",
                   help="regex searched in each tile's path relative to SRC_COLOR_DIR; its first group (or the "
                        "whole match) names a group whose tiles all land in the same split")
    p.add_argument("--holdout", metavar="REGEX",
                   help="tiles whose path matches go to the test split whole, e.g. 'oam_zanzibar/' for a region "
                        "never seen in training; the others are split by --split (its test share included)")
    p.add_argument("--force", action="store_true",
                   help="replace a dataset that aircolor prepared in OUT_DIR from other inputs or options (never a "
                        "file, nor a folder holding anything else)")
    p.add_argument("--workers", type=_positive_int, default=min(8, os.cpu_count() or 1),
                   help="decoding processes (default: CPU count, at most 8)")
    p.set_defaults(func=_cmd_prepare)


# --------------------------------------------------------------------------------------------- config
def _cmd_config_show(args: argparse.Namespace) -> int:
    from aircolor.config import dump_yaml, load_config

    from aircolor.utils import atomic_write_text, check_output_file

    out = check_output_file(Path(args.out), "--out") if args.out else None
    cfg = load_config(args.config, args.overrides)
    text = dump_yaml(cfg)
    if out is not None:
        atomic_write_text(out, text)
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _cmd_config_keys(args: argparse.Namespace) -> int:
    from aircolor.config import describe_keys

    for key, kind, default, help_text in describe_keys():
        print(f"{key:28s} {kind:40s} default {default!r:24s} {help_text}")
    return 0


def _add_config(sub: argparse._SubParsersAction) -> None:
    cfg = sub.add_parser("config", help="validate and show run configurations",
                         description="Validate a run config (YAML + dotted key=value overrides) and print it "
                                     "fully resolved, family defaults filled in (show), or list every key (keys).",
                         **_examples("""
                             aircolor config show aircolor/configs/demo_cpu.yaml model.ngf=32
                             aircolor config keys
                         """))
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="COMMAND", parser_class=_Parser, required=True)
    show = cfg_sub.add_parser("show", help="print the fully resolved config as YAML",
                              description="Read CONFIG.yaml (a key given twice is an error), apply the overrides, "
                                          "check every key, type and range, fill in the family's defaults and print "
                                          "the result (or write it atomically to --out).",
                              **_examples("aircolor config show run.yaml model.ngf=32 data.size=64"))
    show.add_argument("config", metavar="CONFIG.yaml", nargs="?", help="YAML config (default: all defaults)")
    show.add_argument("overrides", metavar="KEY=VALUE", nargs="*", help="dotted overrides, e.g. model.ngf=32")
    show.add_argument("--out", metavar="FILE", help="write the YAML to FILE instead of stdout")
    show.set_defaults(func=_cmd_config_show)
    keys = cfg_sub.add_parser("keys", help="list every config key with its type, default and meaning",
                              description="Every config key: SECTION.KEY, type, default and meaning.",
                              **_examples("aircolor config keys | grep model."))
    keys.set_defaults(func=_cmd_config_keys)


# --------------------------------------------------------------------------------------------- train
def _cmd_train(args: argparse.Namespace) -> int:
    from aircolor.config import load_config

    overrides = list(args.overrides)
    if args.ray or args.address:
        overrides.append("train.backend=ray")
    if args.workers is not None:
        overrides.append(f"train.workers={args.workers}")
    cfg = load_config(args.config, overrides)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # we print one summary below
    from aircolor.tracking import resolve_tracking_uri
    from aircolor.training import run

    from aircolor.training.progress import ConsoleProgress

    uri = resolve_tracking_uri(cfg.tracking.tracking_uri, args.tracking_uri)
    result = run(cfg, tracking_uri=uri, address=args.address, progress=None if args.quiet else ConsoleProgress())
    print(f"{result.status}: {result.epochs} epochs, {result.iterations} iterations; run folder {result.run_dir}")
    if result.reason:
        print(f"reason: {result.reason}")
    _print_scores(result)
    if result.run_id:
        where = uri if uri.startswith("http") else f"mlflow ui --backend-store-uri {uri}"
        print(f"MLflow run {result.run_id} in experiment '{cfg.tracking.experiment}' ({where})")
    return 0 if result.ok else 1


_INCEPTION = ("fid", "is_mean", "is_std", "kid_mean", "kid_std", "fid_BA", "fid_mean")
_BASELINES = (("baseline", "gray copy"), ("prior_tint", "const tint"), ("prior_lightness", "by lightness"))


def _print_scores(result: Any) -> None:
    """The last validation scores and the test scores (delivered image) beside the gray copy and both priors."""
    flag = bool(result.metrics_info.get("nonstandard_weights"))
    shown = lambda k: not k.startswith("raw.") and not k.endswith((".n_fake", ".n_real")) and ".fid_n" not in k  # noqa
    scores = {**{k: v for k, v in result.metrics.items() if shown(k)},
              **{k: v for k, v in result.test.items() if k.startswith("test.") and shown(k)}}
    if scores:
        print(f"  {'metric':28s} {'model':>10s}" + "".join(f" {label:>12s}" for _, label in _BASELINES))
    for key in sorted(scores, key=lambda k: (not k.startswith("test."), k)):
        label = key + (" *" if flag and key.split(".", 1)[-1] in _INCEPTION else "")  # the whole row: baselines too
        split, _, name = key.partition(".")
        cells = [result.test.get(f"{p}.{split}.{name}", result.baseline.get(f"{p}.{split}.{name}"))
                 for p, _ in _BASELINES]
        print(f"  {label:28s} {scores[key]:10.4f} " + "".join(f" {c:12.4f}" if c is not None else " " * 13
                                                             for c in cells))
    for split in ("test", "val"):
        de = scores.get(f"{split}.delta_e2000")
        if de is None:
            continue
        base = {label: result.test.get(f"{p}.{split}.delta_e2000", result.baseline.get(f"{p}.{split}.delta_e2000"))
                for p, label in _BASELINES}
        known = {k: v for k, v in base.items() if v is not None}
        if known:
            best = min(known, key=known.__getitem__)
            verdict = "beats every baseline" if de < known[best] else f"does NOT beat the {best} ({known[best]:.2f})"
            print(f"  Delta E 2000 on {split} (lower is better): model {de:.2f}; "
                  + ", ".join(f"{k} {v:.2f}" for k, v in known.items()) + f": {verdict}")
        break
    if flag:
        print("  * computed with NON-STANDARD Inception weights (sha256 "
              f"{str(result.metrics_info.get('weights_sha256'))[:12]}...): not comparable with published values")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train one model (in-process, or as a Ray Train job)",
        description="Train one run of CONFIG (YAML) with dotted KEY=VALUE overrides. Checkpoints, samples and the "
                    "exported generator go to <train.output_dir>/<run name>; everything is logged to MLflow. "
                    "Running the same config again resumes from its last checkpoint.",
        **_examples("""
            aircolor train aircolor/configs/demo_cpu.yaml model.ngf=32 data.size=64
            aircolor train run.yaml --ray --workers 2                     # Ray Train, DDP over 2 workers
            aircolor train run.yaml --address ray://head:10001 train.use_gpu=true
        """))
    p.add_argument("config", metavar="CONFIG.yaml", help="run configuration")
    p.add_argument("overrides", metavar="KEY=VALUE", nargs="*", help="dotted overrides, e.g. model.ngf=32")
    p.add_argument("--ray", action="store_true", help="run as a Ray Train job (same as train.backend=ray)")
    p.add_argument("--address", type=ray_address, help="Ray cluster address (auto, ray://HOST:10001); implies --ray")
    p.add_argument("--workers", type=int, help="Ray Train workers (DDP when > 1)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: tracking.tracking_uri, "
                                          "$MLFLOW_TRACKING_URI, else sqlite:///mlruns.db)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress on stderr (by default: a bar per epoch on a terminal, and one line per epoch "
                        "and per evaluation, the metrics beside the baselines)")
    p.set_defaults(func=_cmd_train)


# --------------------------------------------------------------------------------------------- models
def _cmd_models_summary(args: argparse.Namespace) -> int:
    import json

    from aircolor.models.zoo import MODEL_NAMES, build_named

    if args.model not in MODEL_NAMES:
        raise UsageError(f"unknown model {args.model!r}; valid: {', '.join(MODEL_NAMES)}")
    counts = build_named(args.model, args.overrides).parameter_counts()
    if args.json:
        print(json.dumps(counts))
        return 0
    for name, n in counts.items():
        print(f"{name:6s} {n:>14,d}")
    print(f"{'total':6s} {sum(counts.values()):>14,d}")
    return 0


def _add_models(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="inspect the model zoo",
                            description="Inspect the model zoo: pix2pix, cyclegan, cut, fastcut, bicyclegan.",
                            **_examples("aircolor models summary cut model.ngf=32"))
    models_sub = models.add_subparsers(dest="models_command", metavar="COMMAND", parser_class=_Parser, required=True)
    summary = models_sub.add_parser(
        "summary", help="trainable parameters of every network of a model",
        description="Build MODEL at its family defaults plus overrides and print each network's trainable "
                    "parameter count (compare with the reference implementations).",
        **_examples("aircolor models summary pix2pix --json\naircolor models summary bicyclegan model.z_injection=middle"))
    summary.add_argument("model", metavar="MODEL", help="pix2pix, cyclegan, cut, fastcut or bicyclegan")
    summary.add_argument("overrides", metavar="KEY=VALUE", nargs="*", help="config overrides, e.g. model.ngf=32")
    summary.add_argument("--json", action="store_true", help='print {"G": ..., "D": ...} as JSON')
    summary.set_defaults(func=_cmd_models_summary)


# --------------------------------------------------------------------------------------------- main
def _colorize_on_ray(args: argparse.Namespace) -> Any:
    """``aircolor colorize --ray``: the Ray driver lives with the other Ray drivers, above the library."""
    from sweeps.colorize import colorize_on_ray

    return colorize_on_ray(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aircolor",
                     description="Colorize grayscale historical aerial photographs with GANs, and run the "
                                 "ablation study that picks the best design.",
                     **_examples("""
                         aircolor data prepare tiles/ data/prepared --historical scans/
                         aircolor config show run.yaml model.ngf=32
                     """))
    parser.add_argument("--version", action="version", version=f"aircolor {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument("--tracking-timeout", type=_positive_seconds, metavar="SECONDS",
                        help="how long a command that reads a tracking store waits for it to answer "
                             "(default $AIRCOLOR_TRACKING_TIMEOUT, else 15)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)
    _add_data(sub)
    _add_config(sub)
    _add_models(sub)
    _add_train(sub)
    from aircolor.metrics.cli import register_cli as add_metrics
    from aircolor.tracking.cli import register_cli as add_tracking

    add_metrics(sub)
    add_tracking(sub)
    from sweeps.cli import register_cli as add_sweep

    add_sweep(sub)
    from analysis.cli import register_cli as add_report

    add_report(sub)
    from aircolor.colorize.cli import register_cli as add_colorize

    add_colorize(sub, run_on_ray=_colorize_on_ray)
    from aircolor.compare.cli import register_cli as add_compare

    add_compare(sub)
    from aircolor.adapt.cli import register_cli as add_adapt

    add_adapt(sub)
    return parser


def _fix_config_overrides(args: argparse.Namespace) -> None:
    """``aircolor config show model.ngf=3`` (no file): argparse takes the override as the config path."""
    config = getattr(args, "config", None)
    sections = ("data.", "model.", "train.", "metrics.", "tracking.")
    if config is not None and ("=" in config or config.startswith(sections)) and not Path(config).exists():
        args.overrides = [config, *args.overrides]
        args.config = None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may come after options (argparse stops a positional list at the first option).
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    _fix_config_overrides(args)
    if args.tracking_timeout is not None:
        from aircolor.tracking.reach import TIMEOUT_ENV

        os.environ[TIMEOUT_ENV] = f"{args.tracking_timeout:g}"
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        if args.debug:
            raise
        print(f"aircolor: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("aircolor: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
