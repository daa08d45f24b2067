"""`python -m benchmarks.run --quick` runs and writes valid results (no timing is asserted, ever).

The suite runs the quick benchmark for pix2pix only (the side-by-side comparison with the reference-style
loop, the small size) plus the data section; the other sections are exercised case by case in
test_benchmark_cases.py. The whole `--quick` run takes several minutes on 2 cores, too long for the suite, and so
do its study-size (256 px, ngf 64) training cases: here they run at the small size (64 px, ngf 16), each still in
a process of its own, through the runner's own code in this process.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_quick_benchmark_writes_json_lines_and_a_table(tmp_path, capsys, monkeypatch):
    from benchmarks import run as runner

    every_case = runner.training_cases

    def small_cases(**kwargs):  # the side-by-side cases (ngf 64) at 64 px, ngf 16 (their records come first)
        small = {"ngf": 16, "overrides": ["model.netG=unet_auto"]}
        return [{**case, **small} if case["ngf"] == 64 else case for case in every_case(**kwargs)]

    monkeypatch.setattr(runner, "STUDY_SIZE", 64)
    monkeypatch.setattr(runner, "training_cases", small_cases)
    out, table = tmp_path / "bench.jsonl", tmp_path / "bench.md"
    code = runner.main(["--quick", "--device", "cpu", "--families", "pix2pix", "--sections", "training,data",
                        "--out", str(out), "--table", str(table), "--work", str(tmp_path / "work")])
    res = capsys.readouterr()
    assert code == 0, res.out[-3000:] + res.err[-3000:]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["run"] for r in records} == {records[0]["run"]} and all(r["quick"] for r in records)
    env = records[0]["env"]
    assert env["torch"] and env["cpu"] and env["device"] == "cpu"
    cases = {r["case"] for r in records}
    assert {"pix2pix-ours", "pix2pix-reference", "pix2pix-first-losses", "pix2pix-vs-reference", "decode"} <= cases
    for r in records:
        assert "error" not in r, r
        assert r["metrics"] and all(isinstance(v, (int, float)) for v in r["metrics"].values())
    train = [r for r in records if r["section"] == "training" and not r["case"].endswith("first-losses")]
    for r in train:
        m = r["metrics"]
        assert m["images_per_s"] > 0 and m["peak_rss_mib"] > 0
        assert all(m[k] >= 0 for k in ("data_s", "forward_s", "backward_s", "optimizer_s"))
    comparison = next(r for r in records if r["case"] == "pix2pix-vs-reference")["metrics"]
    assert math.isclose(comparison["speedup"],
                        comparison["ours_images_per_s"] / comparison["reference_images_per_s"])
    # the same computation: first-iteration losses agree within bf16 vs fp32 tolerance
    assert comparison["first_losses_max_relative_difference"] < 0.05
    text = table.read_text()
    assert "aircolor vs the reference-style loop" in text and "| pix2pix |" in text and env["cpu"] in text
    assert text in res.out


def test_full_plan_measures_each_switch_against_the_defaults():
    """Full mode: every family at batch 1 and a larger batch; the side-by-side families also with each opt-in
    switch (data off the device, compile, on CUDA compile with CUDA graphs); --quick leaves the switches out."""
    from benchmarks.run import FAMILIES, training_cases

    data = {256: Path("d256"), 64: Path("d64"), 32: Path("d32")}
    cuda = training_cases(quick=False, device="cuda", data=data)
    switched = {(c["family"], tuple(c["overrides"])) for c in cuda if c["size"] == 256 and c.get("overrides")}
    assert switched == {(f, (o,)) for f in ("pix2pix", "cyclegan") for o in (
        "data.on_device=off", "train.compile=default", "train.compile=reduce-overhead")}
    assert {c["family"] for c in cuda if c["size"] == 256 and c["batch"] == 16} == set(FAMILIES)
    cpu = training_cases(quick=False, device="cpu", data=data)
    assert {o for c in cpu if c["size"] == 256 for o in c.get("overrides", [])} == {
        "data.on_device=off", "train.compile=default"}
    quick = training_cases(quick=True, device="cuda", data=data)
    assert not any(c.get("overrides") and c["size"] == 256 for c in quick)
