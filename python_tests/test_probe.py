"""Dense linear probe: confusion / mIoU by hand, a separable problem, random tokens, determinism."""

import math

import pytest
import torch
from torch import nn

from sdd_fast.eval.probe import (
    IGNORE_INDEX,
    ProbeOptions,
    confusion_matrix,
    iou_from_confusion,
    linear_probe,
    token_grid,
)

CLASSES, SIZE, PATCH = 4, 32, 8


pytestmark = pytest.mark.usefixtures("one_thread")


class QuadrantSet(torch.utils.data.Dataset):
    """32 x 32 images whose quadrants each show one of 4 classes; channel 0 encodes the class,
    a border row of the mask is ignored."""

    def __init__(self, count, seed):
        g = torch.Generator().manual_seed(seed)
        self.classes = torch.randint(0, CLASSES, (count, 2, 2), generator=g)

    def __len__(self):
        return len(self.classes)

    def __getitem__(self, i):
        mask = self.classes[i].repeat_interleave(SIZE // 2, 0).repeat_interleave(SIZE // 2, 1)  # [S, S]
        image = torch.zeros(3, SIZE, SIZE)
        image[0] = mask.float() / CLASSES
        mask = mask.clone()
        mask[0] = IGNORE_INDEX
        return image, mask


class ClassTokens(nn.Module):
    """Tokens = a fixed linear function of each patch's class (+ small noise): separable."""

    def __init__(self, dim=16):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.register_buffer("embed", torch.randn(CLASSES, dim, generator=g))
        self.noise = torch.Generator().manual_seed(2)

    def forward(self, images):
        cls = (nn.functional.avg_pool2d(images[:, :1], PATCH) * CLASSES).round().long().flatten(1)  # [B, N]
        tokens = self.embed[cls]
        return tokens + 0.1 * torch.randn(tokens.shape, generator=self.noise)


class RandomTokens(nn.Module):
    """Tokens that ignore the image: a probe can only reach chance."""

    def __init__(self, dim=16):
        super().__init__()
        self.dim = dim
        self.g = torch.Generator().manual_seed(3)

    def forward(self, images):
        return torch.randn(images.shape[0], (SIZE // PATCH) ** 2, self.dim, generator=self.g)


FAST = ProbeOptions(epochs=5, batch_size=32, lr=0.05)


def test_confusion_and_miou_by_hand():
    pred = torch.tensor([[0, 1], [2, 2]])
    target = torch.tensor([[0, 1], [1, IGNORE_INDEX]])
    conf = confusion_matrix(pred, target, 4)
    expected = torch.zeros(4, 4, dtype=torch.int64)
    expected[0, 0] = expected[1, 1] = expected[1, 2] = 1
    assert torch.equal(conf, expected)
    miou, iou, acc = iou_from_confusion(conf)
    # class 0: 1/1; class 1: 1/(2+1-1); class 2: 0/(0+1-0); class 3 absent (union 0): excluded.
    assert iou[:3].tolist() == [1.0, 0.5, 0.0] and math.isnan(iou[3])
    assert miou == pytest.approx(0.5)
    assert acc == pytest.approx(2 / 3)


def test_confusion_rejects_bad_labels():
    with pytest.raises(ValueError, match="target"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 7]), 4)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([[0, 1]]), 4)
    miou, _, acc = iou_from_confusion(torch.zeros(3, 3, dtype=torch.int64))
    assert math.isnan(miou) and math.isnan(acc)


def test_token_grid():
    assert token_grid(64, (64, 64)) == (8, 8)
    assert token_grid(8, (32, 64)) == (2, 4)
    with pytest.raises(ValueError, match="grid"):
        token_grid(7, (64, 64))


def test_separable_tokens_reach_miou_one():
    result = linear_probe(ClassTokens(), QuadrantSet(128, 0), QuadrantSet(64, 1), CLASSES, FAST)
    assert result.miou > 0.97 and result.pixel_acc > 0.98
    assert len(result.per_class_iou) == CLASSES
    assert result.train_images == 128 and result.val_images == 64
    assert int(result.confusion.sum()) == 64 * (SIZE - 1) * SIZE  # the ignored row is not counted


def test_random_tokens_near_chance():
    result = linear_probe(RandomTokens(), QuadrantSet(128, 0), QuadrantSet(64, 1), CLASSES, FAST)
    # Independent prediction and truth, 4 balanced classes: IoU about 1/7 per class.
    assert result.miou < 0.3 and result.pixel_acc < 0.45


def test_deterministic_without_touching_global_rng():
    state = torch.get_rng_state()
    options = ProbeOptions(epochs=2, batch_size=16, max_train_images=48)
    runs = [linear_probe(ClassTokens(), QuadrantSet(64, 0), QuadrantSet(16, 1), CLASSES, options, seed=5)
            for _ in range(2)]
    assert torch.equal(torch.get_rng_state(), state)
    assert runs[0].train_loss == runs[1].train_loss
    assert torch.equal(runs[0].confusion, runs[1].confusion)
    assert runs[0].train_images == 48


def test_restores_training_mode_and_validates_options():
    backbone = ClassTokens().train()
    linear_probe(backbone, QuadrantSet(16, 0), QuadrantSet(8, 1), CLASSES, ProbeOptions(epochs=1))
    assert backbone.training
    with pytest.raises(ValueError, match="epochs"):
        linear_probe(backbone, QuadrantSet(16, 0), QuadrantSet(8, 1), CLASSES, ProbeOptions(epochs=0))


def test_separable_upsampling_matches_interpolate():
    from sdd_fast.eval.probe import LinearHead

    g = torch.Generator().manual_seed(0)
    head = LinearHead(torch.zeros(16), torch.ones(16), 3)
    with torch.no_grad():
        head.weight.copy_(torch.randn(3, 16, generator=g))
    tokens = torch.randn(2, 4 * 8, 16, generator=g)
    logits = head(tokens, (4, 8), (32, 64))
    grid_logits = nn.functional.linear(tokens, head.weight).transpose(1, 2).reshape(2, 3, 4, 8)
    expected = nn.functional.interpolate(grid_logits, size=(32, 64), mode="bilinear", align_corners=False)
    torch.testing.assert_close(logits, expected)
    torch.testing.assert_close(head(tokens, (4, 8), (32, 64), stride=4), expected[:, :, 2::4, 2::4])


def test_train_stride_still_separates():
    result = linear_probe(ClassTokens(), QuadrantSet(128, 0), QuadrantSet(64, 1), CLASSES,
                          ProbeOptions(epochs=5, batch_size=32, lr=0.05, train_stride=4))
    assert result.miou > 0.97


def test_ignore_index_matches_data():
    from sdd_fast.data import IGNORE_INDEX as DATA_IGNORE

    assert IGNORE_INDEX == DATA_IGNORE == 255
