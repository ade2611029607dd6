"""The augmented training stream: deterministic per position, however it is batched or grouped."""

import pytest
import torch

from sdd_fast.train.augment import MultiCrop, OneView, TwoViews
from sdd_fast.train.stream import AugmentedStream, step_loader


class Images(torch.utils.data.Dataset):
    """n random uint8 images [3, size, size] (or of varying sizes when `sizes` is given)."""

    def __init__(self, n=12, size=32, sizes=None):
        g = torch.Generator().manual_seed(0)
        self.sizes = sizes or [size] * n
        self.images = [torch.randint(0, 256, (3, s, s), dtype=torch.uint8, generator=g) for s in self.sizes]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def same(views_a, views_b):
    return len(views_a) == len(views_b) and all(torch.equal(a, b) for a, b in zip(views_a, views_b))


@pytest.mark.parametrize("transform", [MultiCrop(32, 2), TwoViews(32), OneView(32)], ids=type)
@pytest.mark.parametrize("group", [1, 4])
def test_a_sample_is_the_same_alone_or_in_any_batch(transform, group):
    stream = AugmentedStream(Images(), transform, seed=3, group=group)
    batched = stream.__getitems__(list(range(5, 15)))  # groups cut at both ends when group=4
    alone = [stream[p] for p in range(5, 15)]
    assert all(same(a, b) for a, b in zip(batched, alone))
    assert all(v.dtype == torch.float32 and v.shape[0] == 3 for sample in batched for v in sample)


def test_a_group_shares_its_draw_and_an_image_never_shares_it_between_views():
    stream = AugmentedStream(Images(n=8), TwoViews(32), seed=0, group=4)
    first, second = stream[0], stream[1]
    # One image at every position shows the parameters: equal views <=> equal draws.
    probe = AugmentedStream(Images(n=8), TwoViews(32), seed=0, group=4)
    probe.images = [probe.images[0]] * 8
    for view in range(2):
        assert torch.equal(probe[0][view], probe[1][view])  # a group: one draw per view
        assert not torch.equal(first[view], second[view])  # but different images
    assert not torch.equal(probe[0][0], probe[0][1])  # the two views of an image: separate draws
    assert not torch.equal(probe[0][0], probe[4][0])  # the next group: another draw


def test_images_of_different_sizes_still_share_the_group_draw():
    stream = AugmentedStream(Images(sizes=[32, 40, 32, 48]), OneView(16), seed=1, group=4)
    batched = stream.__getitems__([0, 1, 2, 3])
    assert all(same(a, stream[p]) for p, a in enumerate(batched))
    assert all(sample[0].shape == (3, 16, 16) for sample in batched)


def test_the_loader_gives_the_same_steps_however_many_workers():
    stream = AugmentedStream(Images(), TwoViews(32), seed=2, group=4)
    inline = list(step_loader(stream, 3, 6, batch_size=6))
    workers = list(step_loader(stream, 3, 6, batch_size=6, workers=2))
    assert len(inline) == len(workers) == 3
    assert all(same(a, b) for a, b in zip(inline, workers))
    assert inline[0][0].shape == (6, 3, 32, 32)


def test_the_caller_random_state_is_untouched():
    stream = AugmentedStream(Images(), MultiCrop(32, 1), seed=0, group=4)
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    stream.__getitems__(list(range(8)))
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("group", [0, -2])
def test_a_bad_group_is_refused(group):
    with pytest.raises(ValueError, match="group"):
        AugmentedStream(Images(), OneView(32), seed=0, group=group)
