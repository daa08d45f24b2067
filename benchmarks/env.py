"""What a benchmark ran on: host, CPU model and features, GPU, library versions, threads."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

import torch

from aircolor.training.loop import cpu_has_bf16


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "host": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "cpu_bf16": cpu_has_bf16(), "torch_threads": torch.get_num_threads(), "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), gpu_count=torch.cuda.device_count())
    return env


def device_label(env: dict[str, Any]) -> str:
    if str(env.get("device", "cpu")).startswith("cuda"):
        return f"{env.get('gpu')} (CUDA {env.get('cuda')})"
    return f"{env.get('cpu')} x{env.get('cpu_count')} ({'bf16' if env.get('cpu_bf16') else 'no bf16'})"
