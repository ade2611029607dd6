"""Invariants (hypothesis): permutations of patches / images, positive scaling."""

import torch
from helpers import call_dse, dse_labels, rel_err
from hypothesis import given, settings
from hypothesis import strategies as st

OPTS = dict(local_k=2, global_k=3, group=3)
SETTINGS = settings(max_examples=15, deadline=None)


def make(seed, B, N, d):
    return torch.randn(B, N, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@SETTINGS
@given(seed=st.integers(0, 10_000), B=st.integers(3, 7), N=st.integers(6, 12), d=st.integers(2, 9))
def test_permuting_patches_of_an_image_keeps_label_given_components(seed, B, N, d):
    feats = make(seed, B, N, d)
    local, glob, _ = dse_labels(feats, **OPTS)
    g = torch.Generator().manual_seed(seed + 1)
    b = int(torch.randint(B, (1,), generator=g))
    order = torch.randperm(N, generator=g)
    moved, moved_local, moved_glob = feats.clone(), local.clone(), glob.clone()
    moved[b], moved_local[b] = feats[b, order], local[b, order]
    grp, pos = divmod(b, OPTS["group"])
    moved_glob[grp, pos * N:(pos + 1) * N] = glob[grp, pos * N:(pos + 1) * N][order]
    a = call_dse(feats, local_labels=local, global_labels=glob, **OPTS)
    m = call_dse(moved, local_labels=moved_local, global_labels=moved_glob, **OPTS)
    assert rel_err(m[1:4], a[1:4]) <= 1e-9  # inter, intra_image, intra_batch


@SETTINGS
@given(seed=st.integers(0, 10_000), N=st.integers(6, 12), d=st.integers(2, 9))
def test_permuting_images_of_a_group_keeps_label_given_components(seed, N, d):
    B = 6
    feats = make(seed, B, N, d)
    local, glob, _ = dse_labels(feats, **OPTS)
    order = torch.randperm(3, generator=torch.Generator().manual_seed(seed))  # images of group 0
    full = torch.cat([order, torch.arange(3, B)])
    moved_glob = glob.clone()
    moved_glob[0] = glob[0].view(3, N)[order].reshape(-1)
    a = call_dse(feats, local_labels=local, global_labels=glob, **OPTS)
    m = call_dse(feats[full], local_labels=local[full], global_labels=moved_glob, **OPTS)
    assert rel_err(m[1:4], a[1:4]) <= 1e-9


@SETTINGS
@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3), B=st.integers(3, 7), d=st.integers(2, 9))
def test_scaling_without_normalisation_keeps_every_component(seed, scale, B, d):
    feats = make(seed, B, 8, d)
    local, glob, _ = dse_labels(feats, normalize=False, **OPTS)
    a = call_dse(feats, normalize=False, local_labels=local, global_labels=glob, **OPTS)
    s = call_dse(feats * scale, normalize=False, local_labels=local, global_labels=glob, **OPTS)
    assert rel_err(s, a) <= 1e-7
