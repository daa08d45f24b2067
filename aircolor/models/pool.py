"""The image pool of Shrivastava et al. 2017, as CycleGAN uses it: D sees a history of generated images.

``query(images)``: while the pool holds fewer than ``size`` images, each new image is stored and returned;
once full, each image is, with probability 1/2, swapped for a random stored one (which is returned), or
returned as is. ``size == 0`` passes images through. Draws use the pool's own generator, so a resumed run
continues the same sequence; its state is part of :meth:`state_dict`.
"""

from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator).item() > 0.5:
                idx = int(torch.randint(0, self.size, (), generator=self.generator).item())
                out.append(self.images[idx].clone())
                self.images[idx] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, dim=0)

    def state_dict(self) -> dict[str, object]:
        return {"size": self.size, "images": [t.cpu() for t in self.images],
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, object], device: torch.device | str = "cpu") -> None:
        self.size = int(state["size"])  # type: ignore[arg-type]
        self.images = [t.to(device) for t in state["images"]]  # type: ignore[union-attr]
        self.generator.set_state(state["generator"])  # type: ignore[arg-type]
