"""Data parallelism without Ray: gradient averaging over a real gloo process group (2 processes)."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from aircolor.models import build_named
from aircolor.training.context import average_gradients


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = build_named("pix2pix", ["model.ngf=8", "model.ndf=8", "data.size=32", "model.netG=unet_auto"])
        model.prepare("cpu", grad_sync=average_gradients)
        g = torch.Generator().manual_seed(100 + rank)  # every worker sees different data
        for _ in range(2):
            batch = {"A": torch.rand(1, 1, 32, 32, generator=g) * 2 - 1, "B": torch.rand(1, 3, 32, 32, generator=g) * 2 - 1}
            torch.manual_seed(rank)
            model.train_step(batch)
        out[rank] = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
        grads = [torch.full((3,), float(rank + 1)), torch.full((2,), float(rank + 1), dtype=torch.float64)]
        average_gradients(grads)
        out[f"mean{rank}"] = grads
    finally:
        dist.destroy_process_group()


def test_averaged_gradients_keep_workers_identical():
    world, port = 2, _free_port()
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(world, port, out), nprocs=world, join=True)
        states = [dict(out[r]) for r in range(world)]
        means = [out[f"mean{r}"] for r in range(world)]
    for grads in means:  # (1 + 2) / 2 on both workers, for every dtype
        assert all(torch.allclose(g, torch.full_like(g, 1.5)) for g in grads)
    # Different data on each worker, yet the same averaged steps: the parameters stay equal.
    params = [k for k in states[0] if "running_" not in k]
    assert params
    for key in params:
        assert torch.allclose(states[0][key], states[1][key], atol=1e-6), key


def test_average_gradients_over_one_worker_changes_nothing():
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        grads = [torch.arange(6.0).view(2, 3), torch.ones(4, dtype=torch.float64)]
        before = [g.clone() for g in grads]
        average_gradients(grads)
        assert all(torch.equal(a, b) for a, b in zip(grads, before))
    finally:
        dist.destroy_process_group()
