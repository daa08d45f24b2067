"""PatchNCE (Park et al. 2020, "Contrastive Learning for Unpaired Image-to-Image Translation", eq. 2-3).

For each query patch feature ``q_i`` of the output image, the positive is the feature ``k_i`` of the input
patch at the same location and the negatives are the other sampled patches ``k_j`` of the *same* image.
The loss is the cross-entropy of picking the positive among ``[pos, negs] / tau``. ``k`` is detached, as in
the reference. Features are expected L2-normalised (the projection head does it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def patch_nce(q: torch.Tensor, k: torch.Tensor, *, batch_size: int, tau: float = 0.07) -> torch.Tensor:
    """Per-patch PatchNCE losses, shape ``(batch_size * num_patches,)``.

    ``q`` and ``k`` are ``(batch_size * num_patches, C)`` with the patches of one image contiguous.
    """
    if q.shape != k.shape:
        raise ValueError(f"q and k must have the same shape, got {tuple(q.shape)} and {tuple(k.shape)}")
    k = k.detach()
    n, dim = q.shape
    l_pos = (q * k).sum(dim=1, keepdim=True)                        # (N, 1)
    qb = q.view(batch_size, -1, dim)
    kb = k.view(batch_size, -1, dim)
    l_neg = torch.bmm(qb, kb.transpose(1, 2))                       # (B, P, P)
    eye = torch.eye(l_neg.size(1), dtype=torch.bool, device=q.device)[None]
    l_neg = l_neg.masked_fill(eye, -10.0).view(n, -1)               # a patch is not its own negative
    logits = torch.cat([l_pos, l_neg], dim=1) / tau
    target = torch.zeros(n, dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, target, reduction="none")
