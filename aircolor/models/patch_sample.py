"""CUT's patch sampler and projection head ``F`` (``PatchSampleF`` with ``mlp_sample`` in the reference).

For each PatchNCE layer, ``num_patches`` locations are drawn (the same ones for every image of the batch, and
the same ones for the query and the key features); each sampled feature goes through a 2-layer MLP
(``Linear(C -> nc) -> ReLU -> Linear(nc -> nc)``) and is L2-normalised. The reference creates the MLPs lazily on
the first forward, so an optimizer or parameter count taken before that misses them; we build them at
construction time from the feature channel counts, so ``F`` is complete as soon as the model exists.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchSampleF(nn.Module):
    def __init__(self, channels: list[int], nc: int = 256) -> None:
        super().__init__()
        self.mlps = nn.ModuleList(nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc)) for c in channels)

    def forward(self, feats: list[torch.Tensor], num_patches: int,
                patch_ids: list[torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        out, ids_out = [], []
        for i, (feat, mlp) in enumerate(zip(feats, self.mlps)):
            b, c, h, w = feat.shape
            flat = feat.permute(0, 2, 3, 1).reshape(b, h * w, c)
            if patch_ids is not None:
                ids = patch_ids[i]
            else:
                ids = torch.randperm(h * w, generator=generator)[: min(num_patches, h * w)]
                ids = ids.to(feat.device, non_blocking=True)  # drawn on the host; a blocking copy would sync
            sample = flat[:, ids, :].reshape(-1, c)
            x = mlp(sample)
            out.append(x / (x.norm(p=2, dim=1, keepdim=True) + 1e-7))
            ids_out.append(ids)
        return out, ids_out
