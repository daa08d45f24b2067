"""What ``aircolor train`` shows while it trains: per-epoch lines and evaluation lines on stderr, bars on a
terminal, nothing with ``--quiet``; stdout keeps only the final summary."""

from __future__ import annotations

import io

import pytest

from aircolor.training.progress import ConsoleProgress, evaluation_line


def _tiny_train(tmp_path, prepared_sample, *extra: str) -> list[str]:
    return ["train", "aircolor/configs/demo_cpu.yaml", f"data.root={prepared_sample}", "data.size=32",
            f"train.output_dir={tmp_path}", "train.n_epochs=2", "train.n_epochs_decay=0", "data.max_images=4",
            "train.batch_size=2", "metrics.max_images=4", "metrics.fid=false", "metrics.isc=false",
            "metrics.kid=false", "tracking.enabled=false", *extra]


def test_bars_show_rate_losses_and_eta():
    stream = io.StringIO()
    progress = ConsoleProgress(stream, bars=True)
    progress.start_epoch(0, 3, batches=4)
    for _ in range(4):
        progress.step()
    progress.losses({"G_GAN": 0.75, "D_real": 0.5})
    progress.end_epoch(1, 3)
    progress.close()
    text = stream.getvalue()
    assert "epoch 1/3:" in text and "/4 [" in text  # the tqdm bar (redraws are throttled), then the line
    line = [row for row in text.replace("\r", "\n").splitlines() if row.startswith("epoch 1/3  ")][-1]
    assert "D_real 0.5" in line and "G_GAN 0.75" in line and "ETA " in line


def test_evaluation_line_puts_each_metric_beside_the_baselines():
    line = evaluation_line(4, {"val.delta_e2000": 9.81, "val.psnr": 20.5},
                           {"baseline.val.delta_e2000": 12.1, "prior_tint.val.delta_e2000": 10.3,
                            "prior_lightness.val.delta_e2000": 10.0})
    assert line == ("eval epoch 4: val.delta_e2000 9.81 (gray 12.1, tint 10.3, lightness 10)  val.psnr 20.5")


@pytest.mark.parametrize("quiet", [False, True])
def test_train_progress_on_stderr_and_quiet(tmp_path, prepared_sample, capsys, quiet):
    from aircolor.cli import main

    code = main(_tiny_train(tmp_path, prepared_sample, *(["--quiet"] if quiet else [])))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("FINISHED: 2 epochs")
    if quiet:
        assert err.strip() == ""
        return
    lines = err.splitlines()  # not a terminal here: no bars, only the per-epoch and evaluation lines
    assert any(row.startswith("epoch 1/2  ") and "it/s" in row for row in lines), err
    assert any(row.startswith("epoch 2/2  ") and "ETA 0m00s" in row for row in lines), err
    evals = [row for row in lines if row.startswith("eval epoch")]
    assert evals and all("val.delta_e2000" in row and "gray" in row and "lightness" in row for row in evals), err
    assert "\r" not in err  # no bar redraws in a log file
