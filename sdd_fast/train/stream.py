"""A resumable, deterministic stream of augmented training samples.

Sample `p` of the run (p = step * global_batch + rank * batch + i) is image
`perm_e[p mod n]` of epoch e = p // n, augmented with a generator seeded by (seed, p). So
the images and augmentations of step t depend only on (seed, t), whatever the number of
worker processes, and a resumed run sees exactly what the uninterrupted run would have seen.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def _mix(seed: int, value: int) -> int:
    """A 63-bit seed from two ints (splitmix64 finaliser)."""
    x = (seed * 0x9E3779B97F4A7C15 + value + 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return (x ^ (x >> 31)) & 0x7FFFFFFFFFFFFFFF


class AugmentedStream(Dataset):
    """Map-style dataset indexed by sample position p -> the views of one augmented image.

    Args:
        images (Dataset): item -> uint8 image [3, H, W].
        transform (callable): uint8 image -> list of float views [3, h, w].
        seed (int): run seed.
    """

    def __init__(self, images: Dataset, transform, seed: int):
        if len(images) == 0:
            raise ValueError("the training data holds no images")
        self.images, self.transform, self.seed = images, transform, seed
        self._epoch, self._perm = -1, None

    def image_index(self, position: int) -> int:
        """Which image sample `position` shows (a fresh permutation every epoch)."""
        n = len(self.images)
        epoch = position // n
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(_mix(self.seed, epoch))
            self._epoch, self._perm = epoch, torch.randperm(n, generator=g)
        return int(self._perm[position % n])

    def __len__(self) -> int:
        return 2**62  # positions are unbounded; the sampler decides which are drawn

    def __getitem__(self, position: int):
        image = self.images[self.image_index(position)]
        # torchvision's transforms draw from torch's global RNG: seed it per sample, and restore
        # the caller's state afterwards, so training randomness (dropout, ...) is untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix(self.seed ^ 0x5DEECE66D, position))
            return self.transform(image)


class StepPositions(Sampler):
    """Positions of this process's samples for steps [start, stop)."""

    def __init__(self, start: int, stop: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.start, self.stop, self.batch, self.rank, self.world = start, stop, batch_size, rank, world_size

    def __iter__(self):
        global_batch = self.batch * self.world
        for step in range(self.start, self.stop):
            first = step * global_batch + self.rank * self.batch
            yield from range(first, first + self.batch)

    def __len__(self) -> int:
        return max(0, self.stop - self.start) * self.batch


def step_loader(stream: AugmentedStream, start: int, stop: int, batch_size: int, rank: int = 0,
                world_size: int = 1, workers: int = 0, pin_memory: bool = False) -> DataLoader:
    """Batches (lists of view tensors [batch, 3, h, w]) of steps start..stop-1, in order."""
    return DataLoader(stream, batch_size=batch_size, sampler=StepPositions(start, stop, batch_size, rank, world_size),
                      num_workers=workers, pin_memory=pin_memory, drop_last=False,
                      persistent_workers=False)
