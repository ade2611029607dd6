"""CausalSelector: the recombined score one evaluation at a time equals the offline one at the
end, is invariant as the offline one is, warms up on the plain DSE, and resumes exactly."""

import copy
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sdd_fast.selection import CausalSelector, select_checkpoints

SETTINGS = settings(max_examples=40, deadline=None)
KEYS = ("inter", "intra_image", "intra_batch", "dim")


def make_rows(seed, count, nan_every=0):
    """`count` rows of random components (dim in (0, 1]); every `nan_every`-th has a NaN."""
    rng = np.random.default_rng(seed)
    rows = []
    for step in range(count):
        row = {"step": 10 * step, "inter": rng.normal(1, 0.5), "intra_image": rng.normal(0.5, 0.2),
               "intra_batch": rng.normal(0.6, 0.2), "dim": rng.uniform(0.05, 1)}
        if nan_every and step % nan_every == nan_every - 1:
            row[KEYS[step % 4]] = math.nan
        rows.append(row)
    return rows


def feed(rows, **options):
    selector = CausalSelector(**options)
    for row in rows:
        selector.update(row)
    return selector


def relevance(row):
    return row["inter"] - (row["intra_image"] + row["intra_batch"]) / 2


@SETTINGS
@given(seed=st.integers(0, 10_000), count=st.integers(1, 40), nan_every=st.sampled_from([0, 3, 7]))
def test_final_lambda_and_scores_equal_the_offline_selection(seed, count, nan_every):
    rows = make_rows(seed, count, nan_every)
    selector = feed(rows, warmup=0)
    offline = select_checkpoints(rows)
    assert selector.lambda_ == pytest.approx(offline.lambda_, rel=1e-9, abs=1e-12)
    finite = [i for i, s in enumerate(offline.scores) if math.isfinite(s)]
    assert selector.steps == [rows[i]["step"] for i in finite]
    assert selector.skipped == count - len(finite)
    np.testing.assert_allclose(selector.scores(), [offline.scores[i] for i in finite], rtol=1e-9, atol=1e-12)
    if finite:
        assert selector.spread == pytest.approx(float(np.std(selector.scores())), rel=1e-7, abs=1e-12)


def test_constant_dim_gives_lambda_zero_as_offline():
    rows = [{"step": i, "inter": float(i), "intra_image": 0.1, "intra_batch": 0.2, "dim": 0.3} for i in range(6)]
    assert feed(rows).lambda_ == 0.0 == select_checkpoints(rows).lambda_
    assert CausalSelector().lambda_ == 0.0 and math.isnan(CausalSelector().score)


def transformed(rows, shift=(0.0, 0.0, 0.0, 0.0), rel_scale=1.0, dim_scale=1.0):
    """Components shifted by constants, relevance's three scaled by rel_scale, dim by dim_scale."""
    out = []
    for row in rows:
        new = dict(row)
        for key, c in zip(KEYS, shift):
            new[key] = (row[key] + c) * (dim_scale if key == "dim" else rel_scale)
        out.append(new)
    return out


@SETTINGS
@given(seed=st.integers(0, 10_000), count=st.integers(3, 30),
       shift=st.tuples(*[st.floats(-5, 5)] * 4), rel_scale=st.floats(0.1, 10), dim_scale=st.floats(0.1, 10))
def test_lambda_is_invariant_to_shifts_and_scales_as_its_definition_says(seed, count, shift, rel_scale, dim_scale):
    rows = make_rows(seed, count)
    base = feed(rows, warmup=0, smoothing=3)
    moved = feed(transformed(rows, shift, rel_scale, dim_scale), warmup=0, smoothing=3)
    # lambda = std(relevance) / std(dim): shifts change neither std, scales scale them.
    assert moved.lambda_ == pytest.approx(base.lambda_ * rel_scale / dim_scale, rel=1e-7)
    # Scores: rel_scale * P + a constant; so the smoothed scores, the spread and the best alike.
    offset = moved.scores()[0] - rel_scale * base.scores()[0]
    np.testing.assert_allclose(moved.scores(), rel_scale * base.scores() + offset, rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(moved.smoothed_scores(), rel_scale * base.smoothed_scores() + offset, rtol=1e-7,
                               atol=1e-6)
    assert moved.spread == pytest.approx(rel_scale * base.spread, rel=1e-6)
    top = np.sort(base.smoothed_scores())[::-1]
    assume(len(top) < 2 or top[0] - top[1] > 1e-6)  # no near-tie that rounding could flip
    assert moved.best_step == base.best_step


def test_warmup_scores_by_the_plain_dse_then_by_the_recombined_score():
    rows = make_rows(3, 8)
    selector = CausalSelector(warmup=3, smoothing=1)
    for i, row in enumerate(rows):
        selector.update(row)
        if i < 3:  # the first 3 evaluations: the warm-up
            assert selector.in_warmup and selector.weight == 1.0
            assert selector.score == pytest.approx(relevance(row) + row["dim"])
        else:
            assert not selector.in_warmup and selector.weight == selector.lambda_
            assert selector.score == pytest.approx(relevance(row) + selector.lambda_ * row["dim"])
        assert selector.smoothed == selector.score  # smoothing=1: the score itself
    # lambda is accumulated during the warm-up too: it equals the offline one at the end.
    assert selector.lambda_ == pytest.approx(select_checkpoints(rows).lambda_, rel=1e-9)
    assert feed(rows[:1], warmup=0).in_warmup is False and feed(rows[:1], warmup=1).in_warmup is True


def test_smoothed_score_is_the_median_of_the_last_window_and_restarts():
    values = [1.0, 5.0, 2.0, 8.0, 3.0]
    selector = CausalSelector(warmup=0, smoothing=3)
    for step, v in enumerate(values):  # constant dim: lambda 0, score = relevance = inter
        selector.update({"step": step, "inter": v, "intra_image": 0.0, "intra_batch": 0.0, "dim": 0.5})
    np.testing.assert_allclose(selector.smoothed_scores(), [1.0, 3.0, 2.0, 5.0, 3.0])
    assert selector.best_step == 3 and selector.best == 5.0
    selector.restart_window()
    selector.update({"step": 5, "inter": 0.0, "intra_image": 0.0, "intra_batch": 0.0, "dim": 0.5})
    assert selector.smoothed == 0.0  # the window does not reach back past the restart
    assert selector.smoothed_scores()[3] == 5.0  # earlier windows are unchanged


def test_best_is_among_eligible_evaluations_and_ties_go_to_the_earlier():
    selector = CausalSelector(warmup=0, smoothing=1)
    for step, (v, ok) in enumerate([(1.0, True), (9.0, False), (4.0, True), (4.0, True)]):
        selector.update({"step": step, "inter": v, "intra_image": 0.0, "intra_batch": 0.0, "dim": 0.5}, eligible=ok)
    assert selector.best_step == 2 and selector.best == 4.0
    assert CausalSelector().best_step is None and math.isnan(CausalSelector().best)


def test_non_finite_evaluations_are_skipped_and_change_nothing():
    rows = make_rows(1, 5)
    selector = feed(rows)
    before = copy.deepcopy(selector.state_dict())
    for bad in (math.nan, math.inf, None):
        assert selector.update({**rows[0], "step": 99, "dim": bad}) is False
    after = selector.state_dict()
    assert after.pop("skipped") == 3 and before.pop("skipped") == 0
    assert after == before


@SETTINGS
@given(seed=st.integers(0, 10_000), count=st.integers(2, 30), cut=st.integers(0, 30), warmup=st.integers(0, 5),
       smoothing=st.integers(1, 4))
def test_state_dict_round_trip_continues_identically(seed, count, cut, warmup, smoothing):
    rows = make_rows(seed, count, nan_every=5)
    cut = min(cut, count)
    whole = CausalSelector(warmup=warmup, smoothing=smoothing)
    first = CausalSelector(warmup=warmup, smoothing=smoothing)
    for i, row in enumerate(rows):
        whole.update(row, eligible=i % 2 == 0)
        if i < cut:
            first.update(row, eligible=i % 2 == 0)
        if i == cut // 2:
            whole.restart_window()
            if i < cut:
                first.restart_window()
    resumed = CausalSelector(warmup=warmup, smoothing=smoothing)
    resumed.load_state_dict(copy.deepcopy(first.state_dict()))
    for i, row in enumerate(rows[cut:], cut):
        resumed.update(row, eligible=i % 2 == 0)
        if i == cut // 2:
            resumed.restart_window()
    assert resumed.state_dict() == whole.state_dict()
    for name in ("lambda_", "spread", "best_step", "n"):
        assert getattr(resumed, name) == getattr(whole, name)
    np.testing.assert_array_equal(resumed.smoothed_scores(), whole.smoothed_scores())


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="warmup"):
        CausalSelector(warmup=-1)
    with pytest.raises(ValueError, match="smoothing"):
        CausalSelector(smoothing=0)
