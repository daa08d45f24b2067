"""The training engine end to end: tiny runs of every family, logged to a real MLflow server; exact resume; the
NaN guard; Ray Train with two DDP workers over gloo; the loss-curve figure and the exported generator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from aircolor.config import load_config
from aircolor.training import run, run_dir_for
from aircolor.training.checkpoint import load_checkpoint
from aircolor.training.loop import Trainer

TINY = ["data.max_images=8", "data.num_workers=0", "model.ngf=8", "model.ndf=8", "model.nef=8",
        "model.num_patches=16", "model.netF_nc=16", "train.n_epochs=1", "train.n_epochs_decay=1", "train.device=cpu",
        "metrics.eval_every=1", "metrics.max_images=8", "metrics.kid_subset_size=4", "metrics.batch_size=8",
        "tracking.log_every=2", "tracking.sample_images=2", "train.checkpoint_every=1"]

FAMILIES = {
    "pix2pix": (32, ["model.netG=unet_auto"]),
    "pix2pix-lab": (32, ["model.netG=unet_auto", "data.color_space=lab"]),
    "cyclegan": (32, ["model.family=cyclegan", "model.netG=resnet_6blocks"]),
    "cut": (32, ["model.family=cut", "model.netG=resnet_6blocks", "model.gan_mode=wgangp"]),
    "fastcut": (32, ["model.family=cut", "model.cut_mode=fastcut", "model.netG=resnet_6blocks"]),
    "bicyclegan": (64, ["model.family=bicyclegan", "model.netG=unet_auto", "model.z_injection=middle"]),
}


def config(root: Path, out: Path, size: int, *extra: str, experiment: str = "tests", uri: str | None = None):
    overrides = [f"data.root={root}", f"data.size={size}", f"train.output_dir={out}",
                 f"tracking.experiment={experiment}", *TINY, *extra]
    if uri:
        overrides.append(f"tracking.tracking_uri={uri}")
    return load_config(None, overrides)


def root_for(size: int, prepared_sample: Path, prepared_64: Path) -> Path:
    return prepared_sample if size == 32 else prepared_64


@pytest.mark.parametrize("name", list(FAMILIES))
def test_tiny_run_of_every_family_is_tracked(name, tmp_path, prepared_sample, prepared_64, mlflow_uri):
    size, extra = FAMILIES[name]
    cfg = config(root_for(size, prepared_sample, prepared_64), tmp_path, size, *extra, experiment=f"family-{name}",
                 uri=mlflow_uri)
    result = run(cfg)
    assert result.ok, result.reason
    assert result.epochs == 2 and result.iterations > 0
    client = MlflowClient(mlflow_uri)
    mlrun = client.get_run(result.run_id)
    assert mlrun.info.status == "FINISHED"
    params, tags, metrics = mlrun.data.params, mlrun.data.tags, mlrun.data.metrics
    assert params["model.family"] == cfg.model.family and params["model.ngf"] == "8"
    assert params["data.size"] == str(size) and len(params) == len(json.loads(json.dumps(params)))
    assert tags["family"] == cfg.model.family and tags["device"] == "cpu"
    assert tags["nonstandard_weights"] == "true" and len(tags["inception.weights_sha256"]) == 64
    assert tags["data.manifest_sha256"]
    for key in ("val.fid", "val.kid_mean", "val.is_mean", "val.psnr", "val.ssim", "val.delta_e2000",
                "val.colorfulness", "hist.fid", "hist.colorfulness", "baseline.val.psnr", "baseline.val.fid"):
        assert key in metrics and math.isfinite(metrics[key]), key
    assert metrics["val.n_fake"] == 8
    assert 0 < metrics["startup_s"] < 600  # set-up time to the first iteration, logged once
    assert [m.step for m in client.get_metric_history(result.run_id, "startup_s")] == [1]
    fid_history = client.get_metric_history(result.run_id, "val.fid")
    assert sorted(m.step for m in fid_history) == [1, 2]  # one evaluation per epoch, step = epoch
    loss_keys = [k for k in metrics if k.startswith("loss.")]
    assert loss_keys, "no loss was logged"
    if name == "cyclegan":
        assert "val.fid_BA" in metrics and metrics["val.fid_mean"] == pytest.approx(
            (metrics["val.fid"] + metrics["val.fid_BA"]) / 2)
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"config.yaml", "loss_curves.png", "samples", "model"} <= artifacts
    images = [a.path for a in client.list_artifacts(result.run_id, "images")]
    for step in (1, 2):  # the UI's image panel: one val grid per evaluation, with its compressed preview
        assert any(f"samples~val+step+{step}+" in p and p.endswith(".png") for p in images), images
        assert any(f"samples~val+step+{step}+" in p and p.endswith("+compressed.webp") for p in images), images
    assert mlrun.data.tags["mlflow.loggedImages"] == "True"
    model_files = {a.path for a in client.list_artifacts(result.run_id, "model")}
    assert {"model/generator.pt", "model/config.yaml"} <= model_files
    exported = torch.load(result.generator, weights_only=True)
    assert exported["family"] == cfg.model.family and exported["nets"]
    # the exported generator alone reproduces the last evaluation: same colorizations, same PSNR
    from aircolor.metrics.paired import paired_metrics
    from aircolor.models.exported import load_generator
    from aircolor.training.evaluation import Evaluator

    from aircolor.training.loop import fast_paths

    model, loaded = load_generator(result.generator)
    assert loaded == cfg
    model.prepare(torch.device("cpu"), amp=fast_paths(cfg, torch.device("cpu"))["amp"])  # as the run evaluated
    ev = Evaluator(cfg, torch.device("cpu"), tmp_path / "reeval")
    fake = ev.outputs(model, ev.val_gray)[0]  # the delivered images
    hwc = [im.permute(1, 2, 0).numpy() for im in fake], [im.permute(1, 2, 0).numpy() for im in ev.val_real]
    assert paired_metrics(*hwc)["psnr"] == pytest.approx(metrics["val.psnr"], rel=1e-5)


@pytest.mark.parametrize("on_device", ["off", "on"])
def test_resume_ends_with_the_same_weights(tmp_path, prepared_sample, monkeypatch, on_device):
    """A run interrupted after epoch 1 and resumed ends exactly where the uninterrupted run does (batches from the
    DataLoader, or made on the device from the epoch's seed)."""
    extra = ["model.netG=unet_auto", "tracking.enabled=false", "train.n_epochs=1", "train.n_epochs_decay=2",
             "metrics.fid=false", "metrics.isc=false", "metrics.kid=false", f"data.on_device={on_device}"]
    straight = run(config(prepared_sample, tmp_path / "a", 32, *extra))

    calls = {"n": 0}
    original = Trainer.run_epoch

    def interrupt_after_first_epoch(self):
        if calls["n"] == 1:
            raise KeyboardInterrupt
        calls["n"] += 1
        original(self)

    cfg_b = config(prepared_sample, tmp_path / "b", 32, *extra)
    monkeypatch.setattr(Trainer, "run_epoch", interrupt_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        run(cfg_b)
    monkeypatch.setattr(Trainer, "run_epoch", original)
    saved = load_checkpoint(run_dir_for(cfg_b) / "checkpoints" / "last.pt")
    assert saved["epoch"] == 1
    resumed = run(cfg_b)
    assert resumed.ok and resumed.epochs == 3 and resumed.iterations == straight.iterations
    a = torch.load(straight.checkpoint, weights_only=True)["model"]["nets"]
    b = torch.load(resumed.checkpoint, weights_only=True)["model"]["nets"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_nan_guard_stops_cleanly_and_keeps_the_last_good_checkpoint(tmp_path, prepared_sample, monkeypatch,
                                                                     mlflow_uri):
    from aircolor.models.pix2pix import Pix2Pix

    cfg = config(prepared_sample, tmp_path, 32, "model.netG=unet_auto", "train.n_epochs=3",
                 "train.n_epochs_decay=0", "metrics.fid=false", "metrics.isc=false", "metrics.kid=false",
                 experiment="nan-guard", uri=mlflow_uri)
    steps_per_epoch = 8
    original = Pix2Pix._step
    state = {"n": 0}

    def poisoned(self, batch):
        state["n"] += 1
        losses = original(self, batch)
        if state["n"] > steps_per_epoch + 3:  # the second epoch diverges
            losses["G_L1"] = losses["G_L1"] * float("nan")
        return losses

    monkeypatch.setattr(Pix2Pix, "_step", poisoned)
    result = run(cfg)
    assert result.status == "FAILED" and "non-finite loss (G_L1)" in result.reason
    assert result.epochs == 1 and result.generator is None
    good = load_checkpoint(Path(result.checkpoint))
    assert good["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in good["model"]["nets"].values() if v.is_floating_point())
    mlrun = MlflowClient(mlflow_uri).get_run(result.run_id)
    assert mlrun.info.status == "FAILED" and "non-finite" in mlrun.data.tags["failure_reason"]


def test_ray_train_with_two_ddp_workers(tmp_path, prepared_sample, mlflow_uri, ray_cluster):
    cfg = config(prepared_sample, tmp_path, 32, "model.netG=unet_auto", "train.backend=ray", "train.workers=2",
                 "train.cpus_per_worker=0.5", experiment="ray-train", uri=mlflow_uri)
    result = run(cfg)
    assert result.ok, result.reason
    # 8 images, 2 workers, batch 1: 4 steps per epoch on each worker.
    assert result.epochs == 2 and result.iterations == 8
    mlrun = MlflowClient(mlflow_uri).get_run(result.run_id)
    assert mlrun.info.status == "FINISHED" and mlrun.data.tags["workers"] == "2"
    assert "val.fid" in mlrun.data.metrics
    ray_dir = tmp_path / "ray"
    assert any(ray_dir.rglob("last.pt")), "no Ray Train checkpoint was persisted"


def test_train_cli_end_to_end(tmp_path, prepared_sample, mlflow_uri, capsys):
    from aircolor.cli import main

    code = main(["train", "aircolor/configs/demo_cpu.yaml", f"data.root={prepared_sample}", "data.size=32",
                 f"train.output_dir={tmp_path}", "train.n_epochs=1", "train.n_epochs_decay=0", "data.max_images=4",
                 "train.batch_size=2", "metrics.max_images=4", "metrics.kid_subset_size=2", "metrics.fid=true",
                 "--tracking-uri", mlflow_uri])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("FINISHED: 1 epochs") and "val.fid" in out and "MLflow run" in out
    # the scores stand beside all three baselines, test first, with a verdict on Delta E
    assert "gray copy" in out and "const tint" in out and "by lightness" in out and "test.delta_e2000" in out
    assert "Delta E 2000 on test (lower is better): model" in out
    assert "val.fid *" in out and "NON-STANDARD Inception weights" in out  # the row is marked, baselines included


def test_train_cli_bad_input_is_one_line(tmp_path, capsys):
    from aircolor.cli import main

    code = main(["train", "aircolor/configs/demo_cpu.yaml", f"data.root={tmp_path / 'nope'}",
                 f"train.output_dir={tmp_path}", "tracking.enabled=false"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "aircolor data prepare" in err


def test_mlflow_server_restarted_mid_run_loses_no_metric(tmp_path, prepared_sample, mlflow_server, mlflow_uri):
    """The server goes down after epoch 1 and comes back before epoch 3: every metric of every epoch arrives."""
    cfg = config(prepared_sample, tmp_path, 32, "model.netG=unet_auto", "train.n_epochs=3", "train.n_epochs_decay=0",
                 "metrics.isc=false", "metrics.kid=false", experiment="restart", uri=mlflow_uri)
    original = Trainer.run_epoch
    calls = {"n": 0}

    def with_outage(self):
        calls["n"] += 1
        if calls["n"] == 2:
            mlflow_server.stop()            # epoch 2 trains and evaluates while the server is down
        if calls["n"] == 3:
            mlflow_server.start()
        original(self)

    Trainer.run_epoch = with_outage
    try:
        result = run(cfg)
    finally:
        Trainer.run_epoch = original
        if not mlflow_server.healthy():
            mlflow_server.start()
    assert result.ok and calls["n"] == 3
    client = MlflowClient(mlflow_uri)
    assert sorted(m.step for m in client.get_metric_history(result.run_id, "val.fid")) == [1, 2, 3]
    assert sorted(m.step for m in client.get_metric_history(result.run_id, "epoch")) == [1, 2, 3]
    losses = client.get_metric_history(result.run_id, "loss.G_L1")
    assert sorted(m.step for m in losses) == list(range(2, 25, 2))  # every log step of the 24 iterations, once
    assert client.get_run(result.run_id).info.status == "FINISHED"
    assert not list((Path(result.run_dir) / "mlflow-spool").glob("*.jsonl")), "records left in the spool"


def test_real_statistics_warmed_once_are_what_evaluations_use(tmp_path, prepared_sample, monkeypatch):
    """What a sweep driver does before its trials: afterwards every evaluation finds the real features cached, and
    the gray-copy baseline finds its own features too."""
    from aircolor.training.evaluation import Evaluator

    monkeypatch.setenv("AIRCOLOR_CACHE_DIR", str(tmp_path / "cache"))
    cfg = config(prepared_sample, tmp_path, 32, "model.family=cyclegan", "model.netG=resnet_6blocks")
    assert Evaluator(cfg, torch.device("cpu"), tmp_path / "a").warm_real_statistics() == {
        "val": False, "train": False, "val-gray": False, "val-tint": False, "val-lightness": False}
    assert set(Evaluator(cfg, torch.device("cpu"), tmp_path / "b").warm_real_statistics().values()) == {True}
    ev = Evaluator(cfg, torch.device("cpu"), tmp_path / "c")
    _, info = ev._metrics(ev.val_real, ev.val_real, "val")
    assert info["real_cache_hit"] is True
    # the gray-copy baseline of every trial: no Inception pass at all, and the metrics of an uncached computation
    import aircolor.metrics.evaluation as evaluation
    from aircolor.training.engine import NullTracker

    calls = []
    original = evaluation.extract_features
    monkeypatch.setattr(evaluation, "extract_features", lambda *a, **k: calls.append(1) or original(*a, **k))
    cached = ev.baseline(NullTracker())
    assert calls == [] and {"baseline.val.fid", "baseline.val.is_mean", "baseline.val.kid_mean",
                            "prior_tint.val.fid", "prior_lightness.val.delta_e2000"} <= set(cached)
    monkeypatch.setenv("AIRCOLOR_CACHE_DIR", str(tmp_path / "cold"))
    cold = Evaluator(cfg, torch.device("cpu"), tmp_path / "d").baseline(NullTracker())
    assert len(calls) == 4  # the gray copies, both priors and the real set, computed
    assert cold.keys() == cached.keys()
    for key in cold:  # the cache stores float32 features: equal to float32 precision
        assert cached[key] == pytest.approx(cold[key], rel=1e-4, abs=1e-6), key
