"""The two places that state the metric's contract agree: the C++ input checks (which every
torch.ops.sdd op runs) and the Python checks (which the reference backend and meta tensors
run), and the defaults in the `dse` schema and `sdd_fast.DEFAULTS`."""

import dataclasses

import pytest
import torch

import sdd_fast
from sdd_fast.core.options import DEFAULTS

pytestmark = pytest.mark.skipif(not sdd_fast.has_ops(), reason="needs the compiled library")

B, N, D = 4, 16, 8


def feats():
    return torch.randn(B, N, D)


# (what is wrong, feats, options): each must be refused by both checks with the same message.
BAD = [
    ("too few patches for local_k", torch.randn(B, 5, D), {"local_k": 3}),
    ("too few patches in a group", torch.randn(B, N, D), {"global_k": 40}),
    ("a smaller last group too small", torch.randn(9, 4, D), {"global_k": 3, "group": 8}),
    ("no image", torch.randn(0, N, D), {}),
    ("no channel", torch.randn(B, N, 0), {}),
    ("local_k 0", feats(), {"local_k": 0}),
    ("global_k 0", feats(), {"global_k": 0}),
    ("group 0", feats(), {"group": 0}),
    ("negative iters", feats(), {"iters": -1}),
    ("negative tol", feats(), {"tol": -1.0}),
    ("n_init 0", feats(), {"n_init": 0}),
    ("unknown seeding", feats(), {"seeding": "random"}),
    ("2-D feats", torch.randn(B, N), {}),
    ("local labels of another shape", feats(), {"local_labels": torch.zeros(B, N + 1, dtype=torch.int64)}),
    ("local labels out of range", feats(), {"local_labels": torch.full((B, N), 7, dtype=torch.int64)}),
    ("global labels of another shape", feats(), {"global_labels": torch.zeros(1, 3, dtype=torch.int64)}),
]


def call_op(x, options):
    merged = {**dataclasses.asdict(DEFAULTS), "local_labels": None, "global_labels": None, **options}
    return torch.ops.sdd.dse(x, merged["local_k"], merged["global_k"], merged["group"], merged["normalize"],
                             merged["iters"], float(merged["tol"]), merged["n_init"], merged["seeding"],
                             merged["seed"], merged["local_labels"], merged["global_labels"])


@pytest.mark.parametrize("what,x,options", BAD, ids=[case[0] for case in BAD])
def test_python_and_cpp_checks_refuse_the_same_inputs_with_the_same_message(what, x, options):
    with pytest.raises(ValueError) as from_cpp:
        call_op(x, options)
    with pytest.raises(ValueError) as from_python:
        sdd_fast.dse(x, backend="reference", **options)
    cpp = str(from_cpp.value).splitlines()[0]
    python = str(from_python.value).splitlines()[0]
    # C++ prints shapes as [4, 5, 8], Python as (4, 5, 8): compare with brackets unified.
    assert cpp.replace("[", "(").replace("]", ")") == python.replace("[", "(").replace("]", ")"), what


def test_good_input_passes_both_checks():
    x = feats()
    call_op(x, {})
    sdd_fast.dse(x, backend="reference")


def test_the_dse_schema_states_the_python_defaults():
    schema = torch.ops.sdd.dse.default._schema
    defaults = {arg.name: arg.default_value for arg in schema.arguments if arg.has_default_value()}
    expected = {**dataclasses.asdict(DEFAULTS), "local_labels": None, "global_labels": None}
    assert defaults.keys() == expected.keys()
    for name, value in expected.items():
        assert defaults[name] == value, name
