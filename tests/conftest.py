"""Shared pytest fixtures.

Keep each fixture self-contained (its own imports, its own docstring) so that new ones can be added below
without touching the others.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# timeouts: per-test limits that fail as readable reports (see tests/timeouts.py); pytester: its own tests
pytest_plugins = ["timeouts", "pytester"]


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The real sample imagery shipped in ``aircolor/sample_data`` (read-only: copy files before changing them)."""
    import aircolor

    return Path(aircolor.__file__).resolve().parent / "sample_data"


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """OUT_DIR of ``aircolor data prepare`` over the whole sample (color + historical), ``--size 32``, seed 0.

    Built once per session and shared: tests must only read it.
    """
    from aircolor.data.prepare import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("prepared_sample") / "out"
    prepare(sample_data / "color", out, historical_dir=sample_data / "historical",
            options=PrepareOptions(size=32), workers=1)
    return out


@pytest.fixture(scope="session")
def prepared_64(tmp_path_factory: pytest.TempPathFactory, sample_data: Path) -> Path:
    """The whole sample prepared at ``--size 64`` (for models whose multi-scale D needs 64 px). Read-only."""
    from aircolor.data.prepare import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("prepared_64") / "out"
    prepare(sample_data / "color", out, historical_dir=sample_data / "historical",
            options=PrepareOptions(size=64, group_by=r"(\d+)_15_"), workers=2)
    return out


def train_tiny_colorizer(root: Path, out: Path, *overrides: str) -> Path:
    """A tiny pix2pix (32 px, ngf 8, four epochs) trained on ``root``; returns its exported ``generator.pt``."""
    from aircolor.config import load_config
    from aircolor.training import run

    cfg = load_config(None, ["model.family=pix2pix", "model.netG=unet_auto", "model.ngf=8", "model.ndf=8",
                             f"data.root={root}", "data.size=32", "train.n_epochs=4", "train.n_epochs_decay=0",
                             "train.batch_size=4", "train.lr_G=1e-3", f"train.output_dir={out}",
                             "tracking.enabled=false",
                             "metrics.fid=false", "metrics.isc=false", "metrics.kid=false", "train.device=cpu",
                             # The seam z-scores of tests/test_colorize.py were calibrated on the models trained from
                             # the DataLoader's crops; a model's own texture moves them (one trained from the
                             # on-device crops, whose random stream differs: default overlap 1.8, hard edges 2.5
                             # instead of 1.3 and 5.5).
                             "data.on_device=off", *overrides])
    result = run(cfg)
    assert result.ok, result.reason
    return Path(result.generator)


@pytest.fixture(scope="session")
def lab_generator(tmp_path_factory: pytest.TempPathFactory, prepared_sample: Path) -> Path:
    """The tiny L*a*b* pix2pix of :func:`train_tiny_colorizer`: BatchNorm and dropout in the reference mode, so
    its colours depend on per-tile statistics and seeds (what a photo split across workers must reproduce)."""
    return train_tiny_colorizer(prepared_sample, tmp_path_factory.mktemp("lab"), "data.color_space=lab")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """One real ``mlflow server`` on 127.0.0.1 for the session (tests may stop/start it; it is restarted here)."""
    from mlflow_server import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("mlflow-session"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mlflow_uri(mlflow_server) -> str:
    """The session server's URL, with the server running (a test before may have stopped it)."""
    if not mlflow_server.healthy():
        mlflow_server.start()
    return mlflow_server.url


@pytest.fixture(scope="session")
def ray_cluster(inception_weights):
    """One real local Ray cluster for the session: ``ray start --head`` bound to 127.0.0.1 with 2 CPUs, its own
    temp dir and the job server (dashboard) on; this process connects to it; stopped at the end.

    Yields ``{"address": "127.0.0.1:PORT", "dashboard": "http://127.0.0.1:PORT", "env": {...}}``. The cluster's
    processes inherit the test environment (random Inception weights, private caches, fast health checks).
    """
    import os
    import tempfile

    from mlflow_server import free_port
    from ray_local import RayNode, port_answers, serves

    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths must stay under 107 chars
    port, dash = free_port(), free_port()
    # RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0: a node stops at once on SIGTERM (by default it first drains for up to
    # 30 s, for Ray Serve's proxies, which the tests do not run)
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_TRAIN_HEALTH_CHECK_INTERVAL_S="0.25",
               RAY_DEDUP_LOGS="0", RAY_USAGE_STATS_ENABLED="0", RAY_ADDRESS="", RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
    # Only this cluster's processes are stopped at the end (never 'ray stop --force': see tests/ray_local.py).
    jobs = f"http://127.0.0.1:{dash}/api/version"  # the job server answers: 'ray job submit' works
    head = RayNode.head(temp, port, dash, env).start(lambda: port_answers(port) and serves(jobs))
    address = head.address
    os.environ["RAY_AUTH_MODE"] = "disabled"
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.25"
    import ray

    ray.init(address=address, log_to_driver=False)
    try:
        yield {"address": address, "dashboard": f"http://127.0.0.1:{dash}", "env": env, "ray": ray, "temp": temp}
    finally:
        ray.shutdown()
        head.stop()


@pytest.fixture(scope="session", autouse=True)
def inception_weights(tmp_path_factory: pytest.TempPathFactory):
    """A randomly initialised Inception weights file in torch-fidelity's format (nothing can be downloaded here),
    exported as ``AIRCOLOR_INCEPTION_WEIGHTS`` for the whole session, and a private real-features cache."""

    from aircolor.metrics.weights import make_random_weights

    folder = tmp_path_factory.mktemp("inception")
    path = make_random_weights(folder / "pt_inception-random.pth", seed=0)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRCOLOR_INCEPTION_WEIGHTS", str(path))
        mp.setenv("AIRCOLOR_CACHE_DIR", str(folder / "cache"))
        yield path


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib3 and urllib honour *_proxy variables; requests to a server on 127.0.0.1 must not go through one."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def _tile_server_session():
    """One tile/WMTS server on 127.0.0.1 (tests/tile_server.py) serving real aerial tiles, for the session."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tile_server import TileServer, real_tiles

    with TileServer(real_tiles()) as srv:
        yield srv


@pytest.fixture
def tile_server(_tile_server_session, no_proxy):
    """The session's tile server with its behaviours and counters cleared, and no proxy in the environment."""
    _tile_server_session.reset()
    return _tile_server_session


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory: pytest.TempPathFactory, prepared_sample: Path, ray_cluster, mlflow_server):
    """One real smoke sweep with every metric (FID, IS and KID too), run once for the session and shared read-only:
    factor 5 (CUT vs FastCUT), one seed each, evaluated once at the end, on the session's Ray cluster and logged to
    the session's MLflow server. The sweep tests check it; the MLflow UI and report tests look at the same sweep.

    Returns ``{"name", "storage", "uri", "result"}`` (``result``: the finished ``sweep run`` process)."""
    from sweep_cli import cli, one_seed, sweep_args

    if not mlflow_server.healthy():
        mlflow_server.start()
    storage, name = tmp_path_factory.mktemp("smoke-sweep"), "cut-identity"
    space = one_seed("cut_identity.yaml", storage / "space")
    result = cli(["sweep", "run", str(space), *sweep_args(name, prepared_sample, storage, "metrics.eval_every=2",
                                                          inception=True), "--scheduler", "none"],
                 ray_cluster, mlflow_server.url)
    return {"name": name, "storage": storage, "uri": mlflow_server.url, "result": result}
