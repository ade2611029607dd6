"""Label-free checkpoint selection (SPEC "Model selection"), on series computed by hand."""

import math

import numpy as np
import pytest

from sdd_fast.selection.checkpoints import kendall_tau, recombined_scores, select_checkpoints, window_candidates


def rows(steps=None, **columns):
    length = len(next(iter(columns.values())))
    steps = steps if steps is not None else [10 * i for i in range(length)]
    return [{"step": steps[i], **{k: v[i] for k, v in columns.items()}} for i in range(length)]


# intra = (intra_image + intra_batch) / 2 = [1, 1, 0, 0, 1, 1, 0, 0]; inter - intra = [0, 0, 2, 2, 0, 0, 2, 2]
# (std 1); dim std 0.5, so lambda = 2 and P = [0, 2, 4, 2, 0, 2, 4, 2].
CASE_A = dict(inter=[1, 1, 2, 2, 1, 1, 2, 2], intra_image=[0, 2, 0, 0, 2, 0, 0, 0],
              intra_batch=[2, 0, 0, 0, 0, 2, 0, 0], dim=[0, 1, 1, 0, 0, 1, 1, 0])


def test_recombined_scores_by_hand():
    scores, lam = recombined_scores(*(CASE_A[k] for k in ("inter", "intra_image", "intra_batch", "dim")))
    assert lam == pytest.approx(2.0)
    np.testing.assert_allclose(scores, [0, 2, 4, 2, 0, 2, 4, 2], atol=1e-12)


def test_select_recombined_ties_earlier_first():
    chosen = select_checkpoints(rows(**CASE_A))
    # Candidates: 2 (window P[0:5] max 4) and 6 (window P[4:8]); equal scores: earlier first.
    assert chosen.indices == [2, 6]
    assert chosen.steps == [20, 60]
    assert chosen.lambda_ == pytest.approx(2.0)
    assert chosen.scores == pytest.approx([0, 2, 4, 2, 0, 2, 4, 2])


def test_columns_form_equals_rows_form():
    by_rows = select_checkpoints(rows(**CASE_A))
    by_columns = select_checkpoints({"step": [10 * i for i in range(8)], **CASE_A})
    assert by_rows == by_columns
    assert select_checkpoints(CASE_A).steps == [2, 6]  # no step column: steps are 0..T-1


def test_window_edges_and_ranking_plain_dse():
    dse = [5, 1, 2, 7, 9, 0, 4, 1, 6]
    # i=0: P[0:3] = [5, 1, 2] (7 at distance 3 is outside); i=4: global max; i=8: P[6:9] = [4, 1, 6].
    assert window_candidates(dse) == [0, 4, 8]
    chosen = select_checkpoints(rows(dse=dse), recombine=False)
    assert chosen.indices == [4, 8, 0]
    assert chosen.lambda_ == 1.0
    assert select_checkpoints(rows(dse=dse), top=2, recombine=False).indices == [4, 8]
    assert select_checkpoints(rows(dse=dse), top=1, recombine=False).steps == [40]


def test_adjacent_ties_are_both_candidates():
    chosen = select_checkpoints(rows(dse=[1, 3, 3, 1, 0, 0, 0, 0]), recombine=False)
    # 1 and 2 tie at 3; 6 and 7 see only zeros (P[4:8]); 5 sees the 1 at index 3.
    assert window_candidates([1, 3, 3, 1, 0, 0, 0, 0]) == [1, 2, 6, 7]
    assert chosen.indices == [1, 2, 6]
    assert select_checkpoints(rows(dse=[1, 3, 3, 1, 0, 0, 0, 0]), top=2, recombine=False).indices == [1, 2]


def test_lambda_zero_when_dim_constant():
    inter = [0.5, 0.9, 0.7, 0.8, 0.1]
    scores, lam = recombined_scores(inter, [0.0] * 5, [0.2] * 5, [0.1] * 5)  # np.std([0.1]*5) is 1.4e-17
    assert lam == 0.0
    np.testing.assert_allclose(scores, np.array(inter) - 0.1)
    chosen = select_checkpoints(rows(inter=inter, intra_image=[0.0] * 5, intra_batch=[0.2] * 5,
                                     dim=[0.1] * 5))
    assert chosen.indices == [1] and chosen.lambda_ == 0.0  # 1 blocks 2 and 3 (windows [0:5], [1:6])


def test_fewer_than_three_checkpoints_argmax():
    # inter - intra = [2, 0] (std 1), dim = [0, 1] (std 0.5): lambda 2, P = [2, 2]: tie -> the earlier.
    two = rows(inter=[2, 0], intra_image=[0, 0], intra_batch=[0, 0], dim=[0, 1])
    chosen = select_checkpoints(two)
    assert chosen.lambda_ == pytest.approx(2.0) and chosen.indices == [0]
    assert select_checkpoints(rows(dse=[1.0, 2.0]), recombine=False).indices == [1]
    one = select_checkpoints(rows(steps=[7], inter=[1], intra_image=[0], intra_batch=[0], dim=[0.5]))
    assert one.steps == [7] and one.lambda_ == 0.0


def test_non_finite_scores_never_chosen_nor_blocking():
    dse = [1.0, None, 2.0, float("nan"), 0.5]
    chosen = select_checkpoints(rows(dse=dse), recombine=False)
    assert chosen.indices == [2]
    assert math.isnan(chosen.scores[1]) and chosen.to_dict()["scores"][1] is None
    # A NaN component: that row's P is NaN; lambda comes from the finite rows only.
    series = rows(inter=[2, 0, 5, 1], intra_image=[0, 0, 0, 0], intra_batch=[0, 0, 0, 0], dim=[0, 1, None, 0])
    chosen = select_checkpoints(series)
    _, lam = recombined_scores([2, 0, 1], [0, 0, 0], [0, 0, 0], [0, 1, 0])
    assert chosen.lambda_ == pytest.approx(lam) and chosen.indices == [0]
    assert select_checkpoints(rows(dse=[None, None, None]), recombine=False).indices == []


def test_bad_series():
    with pytest.raises(ValueError, match="top"):
        select_checkpoints(rows(dse=[1, 2, 3]), top=0, recombine=False)
    with pytest.raises(ValueError, match="increasing step"):
        select_checkpoints(rows(steps=[0, 20, 10], dse=[1, 2, 3]), recombine=False)
    with pytest.raises(ValueError, match="empty"):
        select_checkpoints([], recombine=False)
    with pytest.raises(KeyError, match="dse"):
        select_checkpoints(rows(inter=[1, 2, 3]), recombine=False)


def test_kendall_tau():
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)  # 5 concordant, 1 discordant
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))  # tau-b with a tie
    assert kendall_tau([1, 2, float("nan"), 3], [3, 2, 0, None]) == pytest.approx(-1.0)  # NaN / None dropped
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))  # constant
    assert math.isnan(kendall_tau([1], [2]))
    with pytest.raises(ValueError):
        kendall_tau([1, 2], [1, 2, 3])
