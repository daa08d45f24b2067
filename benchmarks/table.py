"""Render one benchmark run's records as Markdown (the README's Performance section copies it)."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.env import device_label


def _num(x: Any, digits: int = 3) -> str:
    if not isinstance(x, (int, float)) or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}g}"


def _ms(x: Any) -> str:
    return "-" if not isinstance(x, (int, float)) else f"{x * 1000:.0f}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    def cell(text: str) -> str:
        return str(text).replace("|", "\\|")

    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
            *("| " + " | ".join(cell(c) for c in r) + " |" for r in rows), ""]


def _paths(config: dict[str, Any]) -> str:
    fp = config.get("fast_paths") or {}
    on = [name for name, flag in (("bf16", fp.get("amp")), ("channels_last", fp.get("channels_last")),
                                  ("fused Adam", fp.get("fused_adam")), ("data on device", fp.get("on_device")))
          if flag]
    if fp.get("compile") not in (None, "off"):
        on.append(f"compile {fp['compile']}")
    return ", ".join(on) or "fp32"


def render(records: list[dict[str, Any]], *, env: dict[str, Any], quick: bool, run_id: str, seconds: float) -> str:
    lines = [f"Benchmark run `{run_id}` on **{device_label(env)}**, torch {env.get('torch')}, "
             f"{env.get('torch_threads')} threads{', --quick' if quick else ''} ({seconds / 60:.1f} min).", ""]
    comp = [r for r in records if r["section"] == "comparison"]
    if comp:
        lines += ["**aircolor vs the reference-style loop** (256 px, ngf/ndf 64, same networks and weights):", ""]
        lines += _table(["family", "aircolor img/s", "reference img/s", "speedup",
                         "first-iteration losses (max rel. diff)"],
                        [[r["config"]["family"], _num(r["metrics"]["ours_images_per_s"]),
                          _num(r["metrics"]["reference_images_per_s"]), f"**{r['metrics']['speedup']:.2f}x**",
                          _num(r["metrics"]["first_losses_max_relative_difference"], 2)] for r in comp])
    train = [r for r in records if r["section"] == "training" and not r["case"].endswith("first-losses")]
    if train:
        rows = []
        for r in train:
            c, m = r.get("config", {}), r.get("metrics", {})
            if "error" in r:
                rows.append([str(c.get("family")), str(c.get("loop")), str(c.get("size")), str(c.get("ngf")),
                             str(c.get("batch")), "-", f"error: {r['error'][:80]}", "-", "-", "-", "-", "-"])
                continue
            mem = _num(m.get("peak_rss_mib"), 4) + (f" / {_num(m['peak_gpu_mib'], 4)}" if "peak_gpu_mib" in m else "")
            rows.append([c["family"], c["loop"], str(c["size"]), str(c["ngf"]), str(c["batch"]), _paths(c),
                         _num(m.get("images_per_s")), _ms(m.get("data_s")), _ms(m.get("forward_s")),
                         _ms(m.get("backward_s")), _ms(m.get("optimizer_s")), mem])
        lines += ["**Training** (images/s after warm-up; time per iteration split in ms; peak memory MiB, RSS / GPU):",
                  ""]
        lines += _table(["family", "loop", "px", "ngf", "batch", "fast paths", "img/s", "data", "forward", "backward",
                         "optimizer", "peak MiB"], rows)
    lines += _tracking(records)
    lines += _colorize(records)
    lines += _colorspace(records)
    for section in ("evaluation", "data", "colorize", "sweep", "packing"):
        part = [r for r in records if r["section"] == section and (section != "colorize" or "error" in r)]
        if not part:
            continue
        rows = []
        for r in part:
            config = ", ".join(f"{k}={v}" for k, v in r.get("config", {}).items() if not isinstance(v, (dict, list)))
            metrics = r.get("error") or ", ".join(f"{k} {_num(v)}" for k, v in r.get("metrics", {}).items())
            rows.append([r["case"], config[:120], metrics])
        lines += [f"**{section.capitalize()}**:", ""] + _table(["case", "config", "result"], rows)
    return "\n".join(lines).rstrip() + "\n"


def _tracking(records: list[dict[str, Any]]) -> list[str]:
    """The tracking load table: one row per backend and writer count."""
    part = [r for r in records if r["section"] == "tracking"]
    if not part:
        return []
    rows = []
    for r in part:
        c, m = r.get("config", {}), r.get("metrics", {})
        if "error" in r:
            rows.append([r["case"], "", "", "", "", "", "", r["error"][:100]])
            continue
        rows.append([c.get("backend", ""), str(c.get("writers", "")), f"{int(m['values_in_mlflow'])}",
                     _num(m.get("values_per_s")), _num(m.get("log_p50_ms")), _num(m.get("log_p99_ms")),
                     _num(m.get("outage_s")), f"{int(m['values_lost'])} lost, {int(m.get('duplicate_runs', 0))} "
                     f"duplicate runs, {int(m['records_left_in_spools'])} records replayed from spools"])
    head = ["store", "writers", "values", "values/s", "log p50 ms", "log p99 ms", "outage s", "at the end"]
    return ["**Tracking under load** (trial-like writers through a real `mlflow server`, killed with SIGKILL and "
            "restarted once mid-run):", ""] + _table(head, rows)


def _colorize(records: list[dict[str, Any]]) -> list[str]:
    """The colorize cases as four small tables (speed, agreement, accuracy, Ray)."""
    def of(case: str) -> list[dict[str, Any]]:
        return [r for r in records if r["section"] == "colorize" and r["case"] == case and "error" not in r]

    lines: list[str] = []
    if of("speed"):
        lines += ["**Colorize, one process** (megapixels/s end to end; the pre-change loop side by side):", ""]
        lines += _table(["model", "photo", "setting", "tile px", "MP/s", "vs before"],
                        [[r["config"]["model"], r["config"]["image_px"], r["config"]["variant"],
                          str(r["config"]["tile_px"]), _num(r["metrics"]["megapixels_per_s"]),
                          f"{r['metrics']['speedup']:.2f}x"] for r in of("speed")])
    if of("threads"):
        lines += ["**Colorize, threads vs streams** (the generators alone, tiles/s on all cores):", ""]
        lines += _table(["model", "batch", "one stream, all threads per op", "one stream per core, 1 thread per op",
                         "ratio"],
                        [[r["config"]["model"], str(r["config"]["batch"]),
                          _num(r["metrics"]["one_stream_tiles_per_s"]), _num(r["metrics"]["streams_tiles_per_s"]),
                          f"{r['metrics']['ratio']:.2f}x"] for r in of("threads")])
    if of("agreement"):
        lines += ["**Colorize, how far a setting moves the colours** (Delta E 2000 between the two outputs, real "
                  "historical photos):", ""]
        lines += _table(["model", "comparison", "mean", "p99", "max 8-bit diff"],
                        [[r["config"]["model"], r["config"]["variant"], _num(r["metrics"]["delta_e_mean"], 2),
                          _num(r["metrics"]["delta_e_p99"], 2), f"{r['metrics']['max_level_diff']:.0f}"]
                         for r in of("agreement")])
    if of("accuracy"):
        lines += ["**Colorize, accuracy by setting** (Delta E 2000 against the real colours of 1024 px mosaics of "
                  "regions the default model never saw; lower is better):", ""]
        lines += _table(["region", "mosaics", "setting", "Delta E", "gray copy"],
                        [[r["config"]["region"], str(r["config"]["mosaics"]), r["config"]["variant"],
                          _num(r["metrics"]["delta_e_vs_truth"]), _num(r["metrics"]["gray_copy_delta_e"])]
                         for r in of("accuracy")])
    if of("ray"):
        lines += ["**Colorize on Ray** (an archive of real 1024 px photos, the demo's model; each run its own "
                  "command):", ""]
        lines += _table(["setting", "photos", "MP/s colorizing", "scaling", "whole command s"],
                        [[r["config"]["variant"], str(r["config"]["photos"]), _num(r["metrics"]["megapixels_per_s"]),
                          f"{r['metrics']['scaling']:.2f}x", _num(r["metrics"]["wall_s"])] for r in of("ray")])
    return lines


def _colorspace(records: list[dict[str, Any]]) -> list[str]:
    """The sRGB <-> L*a*b* cases as one table: per implementation, ms per call by shape and the skimage gaps."""
    part = [r for r in records if r["section"] == "colorspace"]
    if not part:
        return []
    errors = [[r["case"], r["error"][:100]] for r in part if "error" in r]
    speed = [r for r in part if r["case"] == "speed" and "error" not in r]
    exact = {r["config"]["implementation"]: r["metrics"] for r in part if r["case"] == "exactness" and "error" not in r}
    shapes = list(dict.fromkeys(r["config"]["shape"] for r in speed))
    rows = []
    for name in dict.fromkeys([r["config"]["implementation"] for r in speed] + list(exact)):
        cells = [name]
        for shape in shapes:
            m = next((r["metrics"] for r in speed if r["config"]["implementation"] == name
                      and r["config"]["shape"] == shape), {})
            cells += [f"{_num(m.get('rgb_to_lab_ms'))} / {_num(m.get('lab_to_rgb_ms'))}"]
        e = exact.get(name, {})
        cells += [_num(e.get("rgb_to_lab_max"), 2), _num(e.get("rgb_to_lab_float64_max"), 2),
                  _num(e.get("lab_to_rgb_max_levels"), 2), _num(e.get("gamut_grid_max_levels"), 2),
                  _num(e.get("host_tensors_per_round_trip"))]
        rows.append(cells)
    head = ["implementation", *(f"ms rgb->lab / lab->rgb, {s}" for s in shapes), "max dLab real tiles",
            "same, float64", "max lab->rgb 8-bit levels", "max levels, whole Lab grid", "host tensors per round trip"]
    lines = ["**sRGB <-> L\\*a\\*b\\*** (float32 unless said; differences from skimage.color, D65):", ""]
    lines += _table(head, rows)
    return lines + (["**Colorspace errors**:", ""] + _table(["case", "error"], errors) if errors else [])
