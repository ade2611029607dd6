"""Registered backbones: the convolutional stem and the token helpers on timm ViTs."""

import pytest
import torch

from sdd_fast.models import DEFAULT_ARCH, build_backbone, grid_size, patch_tokens
from sdd_fast.models.conv_stem import ConvStemPatchEmbed


@pytest.mark.parametrize("arch, width", [("sdd_vit_nano_conv_patch8", 64), ("sdd_vit_micro_patch8", 128)])
def test_registered_backbones_give_patch_tokens_at_any_multiple_of_the_patch(arch, width):
    torch.manual_seed(0)
    model = build_backbone(arch, 64).eval()
    for size in (64, 32, 48):  # global views, local crops, another resolution
        tokens = patch_tokens(model, torch.rand(2, 3, size, size))
        assert tokens.shape == (2, (size // 8) ** 2, width)
        assert grid_size(model, (size, size)) == (size // 8, size // 8)
        assert bool(torch.isfinite(tokens).all())


def test_default_backbone_has_the_conv_stem():
    model = build_backbone(DEFAULT_ARCH, 64)
    assert isinstance(model.patch_embed, ConvStemPatchEmbed)
    convs = [m for m in model.patch_embed.proj if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 3 + [(1, 1)]  # three stride-2 3x3, one 1x1
    assert 1e5 < sum(p.numel() for p in model.parameters()) < 5e5


def test_conv_stem_is_local_to_its_patch_grid():
    # A pixel change moves the embedding of its own patch and of neighbours through the 3x3
    # receptive fields, never of patches far away (the stem is convolutional, not global),
    # except through GroupNorm's per-image statistics, which shift every patch slightly.
    torch.manual_seed(0)
    stem = ConvStemPatchEmbed(img_size=64, patch_size=8, embed_dim=32, strict_img_size=False).eval()
    x = torch.rand(1, 3, 64, 64)
    y = x.clone()
    y[:, :, 3, 3] += 1.0  # a pixel in patch (0, 0)
    with torch.no_grad():
        change = (stem(y) - stem(x)).reshape(8, 8, 32).norm(dim=-1)  # [8, 8] per patch
    assert float(change[0, 0]) > 20 * float(change[4:, 4:].max())


def test_conv_stem_rejects_patch_sizes_that_are_not_powers_of_two():
    with pytest.raises(ValueError, match="power-of-two patch size"):
        ConvStemPatchEmbed(img_size=60, patch_size=6, embed_dim=32)
