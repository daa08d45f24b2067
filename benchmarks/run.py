"""``python -m benchmarks.run [--quick] [--device cpu|cuda] [--out FILE] [--table FILE] [--sections ...]``

Measures training (aircolor's loop and the reference-style loop side by side, per model family), evaluation
(Inception features, real-image statistics with and without the cache), data loading (files vs the decoded
cache), sweep overhead (trial start to first iteration, trials per hour at 1/2/4 concurrent trials) and
colorize (tiles/s on a large photo), packed trials (images/s of one device shared by 1, 2 or 4 training
processes, as fractional-GPU sweeps run them) and the sRGB <-> L*a*b* conversion (aircolor's and kornia's: speed and
difference from scikit-image). Results are appended as JSON lines to ``--out`` (with the device,
CPU/GPU model, torch/CUDA versions and each case's config; medians over repeats) and rendered as a Markdown table to
``--table`` and stdout. Nothing here asserts a speed: the numbers are the product.

``--quick`` (about 5-8 minutes on 2 CPU cores): the side-by-side comparison at the study's size (256 px,
ngf/ndf 64, batch 1) for pix2pix and CycleGAN, every family at the small CPU size (64 px, ngf/ndf 16), and the
quick variants of the other sections. Without it: every family at 256 px with batch 1 and a larger batch,
pix2pix and CycleGAN with each switch against the defaults (``data.on_device=off``, ``train.compile``, on CUDA also
compile with CUDA graphs), more iterations and repeats.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("pix2pix", "cyclegan", "cut", "fastcut", "bicyclegan")
SIDE_BY_SIDE = ("pix2pix", "cyclegan")
SECTIONS = ("training", "evaluation", "data", "colorize", "sweep", "packing", "colorspace", "tracking")
# The tracking load (a real mlflow server on SQLite and PostgreSQL, killed mid-run) does not depend on the device:
# it runs when asked for (--sections tracking), not in every device's run.
DEFAULT_SECTIONS = SECTIONS[:-1]


STUDY_SIZE = 256  # the side-by-side comparison's image size (the study's; its ngf is 64)


def training_cases(*, quick: bool, device: str, data: dict[int, Path],
                   families: tuple[str, ...] = FAMILIES) -> list[dict[str, Any]]:
    """The training cases: side by side at the study's size, then each family at the small and large sizes."""
    study = {"size": STUDY_SIZE, "ngf": 64, "batch": 1, "data": str(data[STUDY_SIZE]), "device": device}
    small = {"size": 64, "ngf": 16, "batch": 1, "data": str(data[64]), "device": device}
    n = {"iters": 3, "repeats": 1, "warmup": 1} if quick else {"iters": 10, "repeats": 3, "warmup": 2}
    n_small = {"iters": 8, "repeats": 2, "warmup": 2} if quick else {"iters": 30, "repeats": 3, "warmup": 3}
    cases: list[dict[str, Any]] = []
    for family in (f for f in SIDE_BY_SIDE if f in families):
        # pix2pix steps are short: in --quick it affords more iterations, which steadies the ratio
        nf = {**n, "iters": 6, "repeats": 2} if quick and family == "pix2pix" else n
        cases.append({**study, **nf, "family": family, "loop": "ours"})
        cases.append({**study, **nf, "family": family, "loop": "reference"})
        cases.append({**study, **n, "family": family, "loop": "ours", "check": True})
    for family in families:  # U-Nets at 64 px: as deep as the size allows (unet_256 needs 256 px)
        unet = ["model.netG=unet_auto"] if family in ("pix2pix", "bicyclegan") else []
        cases.append({**small, **n_small, "family": family, "loop": "ours", "overrides": unet})
    if not quick:
        cuda = device.startswith("cuda")
        big_batch = 16 if cuda else 4
        for family in families:
            if family not in SIDE_BY_SIDE:
                cases.append({**study, **n, "family": family, "loop": "ours"})
            cases.append({**study, **n, "family": family, "loop": "ours", "batch": big_batch})
        # Each switch against the defaults above: the DataLoader instead of the data on the device (auto puts it
        # there wherever it fits), torch.compile, and on CUDA compile with CUDA graphs.
        variants = [["data.on_device=off"], ["train.compile=default"]]
        if cuda:
            variants.append(["train.compile=reduce-overhead"])
        for family in (f for f in SIDE_BY_SIDE if f in families):
            for overrides in variants:
                cases.append({**study, **n, "family": family, "loop": "ours", "overrides": overrides,
                              "warmup": n["warmup"] + 3})  # compiling happens in the first steps
    return cases


def run_training_case(case: dict[str, Any], *, timeout: int) -> dict[str, Any]:
    """One case in its own process (clean peak memory, no shared caches); a failure becomes an error record."""
    from benchmarks.training import read_record, start

    proc = start(case)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return _error(case, f"timed out after {timeout} s")
    record, why = read_record(out, err)
    return record if record is not None else _error(case, why)


def _error(case: dict[str, Any], why: str) -> dict[str, Any]:
    return {"section": "training", "case": f"{case['family']}-{case['loop']}", "config": case, "metrics": {},
            "error": why}


def comparisons(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ours / reference images/s at the side-by-side configuration, with the first-iteration loss check."""
    out = []
    for family in SIDE_BY_SIDE:
        def find(loop: str) -> dict[str, Any] | None:
            return next((r for r in records if r.get("config", {}).get("family") == family
                         and r.get("config", {}).get("loop") == loop and r["config"].get("size") == STUDY_SIZE
                         and r["config"].get("batch") in (1, 2) and r.get("metrics")), None)

        ours, ref = find("ours"), find("reference")
        check = next((r for r in records if r["case"] == f"{family}-first-losses" and r.get("metrics")), None)
        if ours and ref:
            out.append({"section": "comparison", "case": f"{family}-vs-reference",
                        "config": {k: ours["config"][k] for k in ("family", "size", "ngf", "batch")},
                        "metrics": {"ours_images_per_s": ours["metrics"]["images_per_s"],
                                    "reference_images_per_s": ref["metrics"]["images_per_s"],
                                    "speedup": ours["metrics"]["images_per_s"] / ref["metrics"]["images_per_s"],
                                    "first_losses_max_relative_difference":
                                        check["metrics"]["max_relative_difference"] if check else float("nan")}})
    return out


def prepared_data(work: Path) -> dict[int, Path]:
    from benchmarks.cases_data import prepared

    return {size: prepared(work, size) for size in (256, 64, 32)}


def other_cases(section: str) -> dict[str, Any]:
    module = {"evaluation": "benchmarks.cases_eval", "data": "benchmarks.cases_data",
              "colorize": "benchmarks.cases_colorize", "sweep": "benchmarks.cases_sweep",
              "packing": "benchmarks.cases_packing", "colorspace": "benchmarks.cases_colorspace",
              "tracking": "benchmarks.cases_tracking"}[section]
    import importlib

    return importlib.import_module(module).CASES


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="the short version (minutes on 2 CPU cores)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--out", type=Path, help="JSON-lines file to append to (default benchmarks/results/<device>.jsonl)")
    p.add_argument("--table", type=Path, help="Markdown table of this run (default benchmarks/results/<device>.md)")
    p.add_argument("--sections", default=",".join(DEFAULT_SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)} (default: all but tracking)")
    p.add_argument("--families", default=",".join(FAMILIES), help="comma-separated model families to train")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "bench", help="scratch folder (default runs/bench)")
    p.add_argument("--timeout", type=int, default=1800, help="seconds per training case (default 1800)")
    args = p.parse_args(argv)
    import torch

    from benchmarks.env import environment
    from benchmarks.table import render

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("benchmarks: error: --device cuda but no CUDA device is visible", file=sys.stderr)
        return 2
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        print(f"benchmarks: error: unknown section(s) {', '.join(unknown)}; use {', '.join(SECTIONS)}",
              file=sys.stderr)
        return 2
    families = tuple(f.strip() for f in args.families.split(",") if f.strip())
    if not families or set(families) - set(FAMILIES):
        print(f"benchmarks: error: --families takes some of {', '.join(FAMILIES)}", file=sys.stderr)
        return 2
    kind = "cuda" if device.startswith("cuda") else "cpu"
    out = args.out or REPO / "benchmarks" / "results" / f"{kind}.jsonl"
    table = args.table or REPO / "benchmarks" / "results" / f"{kind}.md"
    env = environment(torch.device(device))
    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{env['host']}"
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    if "training" in sections:
        data = prepared_data(args.work)
        for case in training_cases(quick=args.quick, device=device, data=data, families=families):
            record = run_training_case(case, timeout=args.timeout)
            records.append(record)
            _progress(record)
        records += comparisons(records)
    for section in sections:
        if section == "training":
            continue
        for name, fn in other_cases(section).items():
            t = time.perf_counter()
            try:
                got = fn(quick=args.quick, device=torch.device(device), work=args.work,
                         repeats=3 if args.quick else 5)
            except Exception as exc:  # one broken case must not lose the others' numbers
                got = [{"section": section, "case": name, "config": {}, "metrics": {},
                        "error": f"{exc.__class__.__name__}: {str(exc)[:300]}"}]
            for record in got:
                record.setdefault("seconds", time.perf_counter() - t)
                records.append(record)
                _progress(record)
    stamp = {"run": run_id, "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "quick": args.quick,
             "env": env}
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as fh:
        for record in records:
            fh.write(json.dumps({**stamp, **record}) + "\n")
    text = render(records, env=env, quick=args.quick, run_id=run_id, seconds=time.perf_counter() - started)
    from aircolor.utils import atomic_write_text

    atomic_write_text(table, text)
    print(text)
    print(f"benchmarks: {len(records)} records appended to {out}; table in {table}")
    return 1 if any("error" in r for r in records) else 0


def _progress(record: dict[str, Any]) -> None:
    what = record.get("error") or ", ".join(f"{k}={v:.4g}" for k, v in list(record.get("metrics", {}).items())[:3]
                                            if isinstance(v, (int, float)))
    print(f"[{record['section']}] {record['case']}: {what}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
