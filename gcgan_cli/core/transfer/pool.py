"""A history of generated images for the discriminator, so D also sees older fakes.

Two rules. "standard" is CycleGAN's, per image: while the pool is not full, store the image and
return it; once full, with probability 1/2 return a random stored image and store the new one
in its place, else return the new one. It works at any batch size, 1 included. "legacy" is the
FP-GAN reference's, per batch: while fewer than `size` are stored, store the whole batch (the
pool can grow past `size`, to 56 at size 50 and batch 8) and return a batch drawn without
replacement from everything stored; once full, return B // 2 stored images plus B - B // 2 of the
new ones, then overwrite B // 2 random slots with B // 2 new images drawn independently. At B = 1
a full legacy pool returns only the current image and is never refreshed.

Random draws come only from the generator passed to `query`, a fixed number per call, so a run
resumed with the pool's and the generator's states repeats the same draws.
"""

from __future__ import annotations

import torch

from gcgan_cli.errors import UsageError

MODES = ("standard", "legacy")
SWAP_PROBABILITY = 0.5


class ImagePool:
    def __init__(self, size: int = 50, mode: str = "standard"):
        if size < 0:
            raise UsageError(f"pool size must be 0 or more, got {size}")
        if mode not in MODES:
            raise UsageError(f"pool mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.size, self.mode = size, mode
        self.images: list[torch.Tensor] = []  # detached clones, one [...] tensor per image

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A batch [B, ...] for D: the new images [B, ...] mixed with stored ones; updates the pool."""
        if self.size == 0:
            return images
        if self.mode == "standard":
            return self._standard(images, generator)
        return self._legacy(images, generator)

    def _standard(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        count = images.shape[0]
        swap = (torch.rand(count, generator=generator, device=generator.device) < SWAP_PROBABILITY).tolist()
        slot = torch.randint(0, self.size, (count,), generator=generator, device=generator.device).tolist()
        out = []
        for image, swapped, index in zip(images, swap, slot):
            kept = image.detach().clone()
            if len(self.images) < self.size:
                self.images.append(kept)
                out.append(image)
            elif swapped:
                out.append(self.images[index].to(image.device))
                self.images[index] = kept
            else:
                out.append(image)
        return torch.stack(out)

    def _legacy(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        count = images.shape[0]
        if len(self.images) < self.size:
            self.images.extend(image.detach().clone() for image in images)
            picked = self._permutation(len(self.images), generator)[:count]
            return torch.stack([self.images[i].to(images.device) for i in picked])
        half = count // 2
        from_pool = self._permutation(len(self.images), generator)[:half]
        from_new = self._permutation(count, generator)[: count - half]
        out = [self.images[i].to(images.device) for i in from_pool] + [images[i] for i in from_new]
        slots = self._permutation(len(self.images), generator)[:half]
        for slot, i in zip(slots, self._permutation(count, generator)[:half]):
            self.images[slot] = images[i].detach().clone()
        return torch.stack(out)

    @staticmethod
    def _permutation(n: int, generator: torch.Generator) -> list[int]:
        return torch.randperm(n, generator=generator, device=generator.device).tolist()

    def state_dict(self) -> dict:
        """Plain data for a checkpoint: the rule, the size and the stored images [N, ...]."""
        stored = torch.stack(self.images) if self.images else torch.empty(0)
        return {"size": self.size, "mode": self.mode, "images": stored}

    def load_state_dict(self, state: dict) -> None:
        """Restore a pool saved by `state_dict`; its size and rule must match this pool's."""
        if (state["size"], state["mode"]) != (self.size, self.mode):
            raise UsageError(
                f"the checkpoint's image pool is {state['mode']} of size {state['size']}; this run asks for "
                f"{self.mode} of size {self.size}"
            )
        self.images = [image.clone() for image in state["images"]]
