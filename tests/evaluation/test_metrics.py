"""ISC 2021 matching-track metrics on hand-computed cases, cross-checked by brute force.

Notation in comments: M = a prediction that is a ground-truth pair, N = one that is not;
P_i, R_i = precision and recall after the i-th ranked prediction.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from d2lv.errors import D2lvError
from d2lv.evaluation.metrics import (
    Metrics,
    detector_recall,
    evaluate,
    family_recall,
    micro_average_precision,
    missed_copies,
    missing_queries,
    missing_references,
    precision_recall,
    recall_at_one,
    recall_at_precision,
    top_false_positives,
    true_reference_rank,
)

# ---------------------------------------------------------------- helpers


def predictions(*rows: tuple[str, str, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["query_id", "reference_id", "score"])


def ground_truth(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["query_id", "reference_id"], dtype=str)


def uap(scores, is_match, n_positives) -> float:
    return micro_average_precision(precision_recall(np.array(scores, float), np.array(is_match, bool), n_positives))


def r_at_p90(scores, is_match, n_positives) -> tuple[float, float | None]:
    return recall_at_precision(precision_recall(np.array(scores, float), np.array(is_match, bool), n_positives), 0.9)


# ---------------------------------------------------------------- precision / recall curve


def test_curve_is_ranked_by_descending_score():
    curve = precision_recall(np.array([0.2, 0.9, 0.5]), np.array([False, True, True]), 2)
    # ranked: M .9, M .5, N .2 -> P = 1, 1, 2/3; R = 1/2, 1, 1
    np.testing.assert_array_equal(curve.scores, [0.9, 0.5, 0.2])
    np.testing.assert_allclose(curve.precision, [1, 1, 2 / 3])
    np.testing.assert_allclose(curve.recall, [0.5, 1, 1])


def test_curve_puts_non_matches_first_on_equal_scores():
    curve = precision_recall(np.array([0.5, 0.5, 0.5]), np.array([True, False, True]), 2)
    # ranked: N, M, M -> P = 0, 1/2, 2/3
    np.testing.assert_allclose(curve.precision, [0, 1 / 2, 2 / 3])
    np.testing.assert_allclose(curve.recall, [0, 1 / 2, 1])


# ---------------------------------------------------------------- micro-AP and recall@P90, by hand


def test_perfect_ranking():
    # M .9, M .8, M .7 with 3 positives: P = 1,1,1; R = 1/3, 2/3, 1 -> uAP = 1
    assert uap([0.9, 0.8, 0.7], [1, 1, 1], 3) == pytest.approx(1.0)
    # all three at precision 1 -> recall 1, threshold at the last one, .7
    assert r_at_p90([0.9, 0.8, 0.7], [1, 1, 1], 3) == (pytest.approx(1.0), pytest.approx(0.7))


def test_one_negative_interleaved():
    # M .9, N .8, M .7, M .6, 3 positives
    # P = 1, 1/2, 2/3, 3/4;  R = 1/3, 1/3, 2/3, 1
    # uAP = 1*(1/3) + 1/2*0 + 2/3*(1/3) + 3/4*(1/3) = 12/36 + 8/36 + 9/36 = 29/36
    assert uap([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 1], 3) == pytest.approx(29 / 36)
    # precision >= .9 only at rank 1 -> recall 1/3 at threshold .9
    assert r_at_p90([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 1], 3) == (pytest.approx(1 / 3), pytest.approx(0.9))


def test_input_order_does_not_matter():
    scores, matches = [0.9, 0.8, 0.7, 0.6], [1, 0, 1, 1]
    order = [2, 0, 3, 1]
    shuffled = uap([scores[i] for i in order], [matches[i] for i in order], 3)
    assert shuffled == pytest.approx(29 / 36)


def test_tie_between_match_and_non_match_hurts():
    # Untied: M .9, M .51, N .5, M .3, 3 positives
    #   P = 1, 1, 2/3, 3/4; R = 1/3, 2/3, 2/3, 1
    #   uAP = 1/3 + 1/3 + 0 + 3/4 * 1/3 = 2/3 + 1/4 = 11/12
    untied = uap([0.9, 0.51, 0.5, 0.3], [1, 1, 0, 1], 3)
    assert untied == pytest.approx(11 / 12)
    # Tied at .5: the N ranks first -> M .9, N .5, M .5, M .3: the 29/36 case above,
    # whichever of the tied rows comes first in the input.
    assert uap([0.9, 0.5, 0.5, 0.3], [1, 1, 0, 1], 3) == pytest.approx(29 / 36)
    assert uap([0.9, 0.5, 0.5, 0.3], [1, 0, 1, 1], 3) == pytest.approx(29 / 36)
    assert 29 / 36 < 11 / 12
    # recall@P90: untied reaches 2/3 at threshold .51; tied only 1/3 at .9
    assert r_at_p90([0.9, 0.51, 0.5, 0.3], [1, 1, 0, 1], 3) == (pytest.approx(2 / 3), pytest.approx(0.51))
    assert r_at_p90([0.9, 0.5, 0.5, 0.3], [1, 1, 0, 1], 3) == (pytest.approx(1 / 3), pytest.approx(0.9))


def test_all_scores_equal_gives_worst_ranking():
    # 2 M and 2 N all at .5 -> N, N, M, M: P = 0, 0, 1/3, 1/2; R = 0, 0, 1/2, 1
    # uAP = 1/3 * 1/2 + 1/2 * 1/2 = 1/6 + 1/4 = 5/12
    assert uap([0.5] * 4, [1, 0, 1, 0], 2) == pytest.approx(5 / 12)


def test_missed_ground_truth_pairs_cap_recall():
    # M .9, M .8 but 4 positives: P = 1, 1; R = 1/4, 1/2 -> uAP = 1/4 + 1/4 = 1/2
    assert uap([0.9, 0.8], [1, 1], 4) == pytest.approx(0.5)
    assert r_at_p90([0.9, 0.8], [1, 1], 4) == (pytest.approx(0.5), pytest.approx(0.8))


def test_recall_at_p90_is_the_best_rank_not_the_first_drop():
    # 9 M, then 2 N, then 11 M (scores strictly decreasing); 20 positives
    # ranks 1-9:  P = 1, R up to 9/20
    # rank 11:    P = 9/11 = .82 (precision dips below .9 ...)
    # rank 20:    P = 18/20 = .90, rank 21: P = 19/21 = .905
    # rank 22:    P = 20/22 = .909 (... and recovers), R = 20/20 = 1  <- best
    scores = list(np.linspace(1.0, 0.1, 22))
    matches = [1] * 9 + [0, 0] + [1] * 11
    assert r_at_p90(scores, matches, 20) == (pytest.approx(1.0), pytest.approx(scores[21]))


def test_precision_exactly_090_counts():
    # N, then 9 M (scores decreasing); 9 positives
    # P = 0, 1/2, 2/3, ..., 8/9 = .889 (all below .9), then 9/10 = .9 exactly at rank 10, R = 1
    scores = list(np.linspace(1.0, 0.1, 10))
    matches = [0] + [1] * 9
    assert r_at_p90(scores, matches, 9) == (pytest.approx(1.0), pytest.approx(scores[9]))
    # uAP = sum over k = 1..9 of k/(k+1) * 1/9
    assert uap(scores, matches, 9) == pytest.approx(sum(k / (k + 1) for k in range(1, 10)) / 9)


def test_recall_at_p90_threshold_is_first_rank_reaching_best_recall():
    # 9 M then N, 10 positives: ranks 1..9 at P = 1 reach R = .9; rank 10 (P = .9) adds no recall
    # -> recall .9 at the threshold of rank 9; uAP = 9 * (1 * 1/10) = .9
    scores = [1.0 - 0.05 * i for i in range(10)]
    matches = [1] * 9 + [0]
    assert r_at_p90(scores, matches, 10) == (pytest.approx(0.9), pytest.approx(scores[8]))
    assert uap(scores, matches, 10) == pytest.approx(0.9)


def test_no_precision_reaching_090_gives_no_recall_and_no_threshold():
    # N .9, M .8: P = 0, 1/2 -> never >= .9
    assert r_at_p90([0.9, 0.8], [0, 1], 1) == (None, None)  # as the official code
    # uAP = 0 * 0 + 1/2 * 1 = 1/2
    assert uap([0.9, 0.8], [0, 1], 1) == pytest.approx(0.5)


def test_no_predictions_scores_zero():
    assert uap([], [], 3) == 0.0
    assert r_at_p90([], [], 3) == (None, None)


def test_no_ground_truth_positives_is_an_error():
    with pytest.raises(ValueError, match="no positive"):
        precision_recall(np.array([0.5]), np.array([False]), 0)


# ---------------------------------------------------------------- brute-force cross-check


def brute_force_uap(scores: list[float], is_match: list[bool], n_positives: int) -> float:
    """Worst micro-AP over every order of the tied predictions, from the plain definition."""

    def ap_of(labels: list[bool]) -> float:
        total, hits = 0.0, 0
        for rank, match in enumerate(labels, start=1):
            if match:
                hits += 1
                total += (hits / rank) * (1 / n_positives)  # P_i * (R_i - R_{i-1})
        return total

    groups = []  # one list of labels per distinct score, best score first
    for score in sorted(set(scores), reverse=True):
        groups.append([m for s, m in zip(scores, is_match) if s == score])
    worst = float("inf")
    for arrangement in itertools.product(*(set(itertools.permutations(g)) for g in groups)):
        worst = min(worst, ap_of([m for group in arrangement for m in group]))
    return worst


@pytest.mark.parametrize("seed", range(6))
def test_micro_ap_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = 11
    scores = [float(s) for s in rng.choice([0.2, 0.4, 0.6, 0.8, 1.0], size=n)]  # many ties
    is_match = [bool(m) for m in rng.random(n) < 0.5]
    assert any(is_match)
    n_positives = sum(is_match) + int(rng.integers(0, 3))  # some positives never predicted
    expected = brute_force_uap(scores, is_match, n_positives)
    assert uap(scores, is_match, n_positives) == pytest.approx(expected)
    # ... and through evaluate(), from DataFrames
    preds = predictions(*((f"Q{i}", "R" if m else "X", s) for i, (s, m) in enumerate(zip(scores, is_match))))
    truth = ground_truth(*((f"Q{i}", "R") for i, m in enumerate(is_match) if m),
                         *((f"missed{j}", "R") for j in range(n_positives - sum(is_match))))
    assert evaluate(preds, truth).micro_ap == pytest.approx(expected)


def test_micro_ap_without_ties_matches_sorted_definition():
    rng = np.random.default_rng(42)
    scores = rng.random(300)
    is_match = rng.random(300) < scores  # better scores are more often matches
    n_positives = int(is_match.sum()) + 20
    ranked = is_match[np.argsort(-scores)]
    precision = np.cumsum(ranked) / np.arange(1, 301)
    expected = float(np.sum(precision[ranked]) / n_positives)
    assert uap(scores, is_match, n_positives) == pytest.approx(expected)
    assert 0.3 < expected < 1


# ---------------------------------------------------------------- recall@1


def test_recall_at_one_counts_copy_queries_by_their_top_prediction():
    truth = ground_truth(("q1", "r1"), ("q2", "r2"), ("q3", ""), ("q4", "r4"))
    preds = predictions(
        ("q1", "r9", 0.5), ("q1", "r1", 0.9),  # top is r1: correct
        ("q2", "r7", 0.8), ("q2", "r2", 0.7),  # top is r7: wrong
        ("q3", "r3", 0.99),  # not a copy query: ignored
    )  # q4 has no prediction: missed
    # copy queries q1, q2, q4 -> 1/3
    assert recall_at_one(preds, truth) == pytest.approx(1 / 3)


@pytest.mark.parametrize("match_first", [True, False])
def test_recall_at_one_tie_at_the_top_does_not_count(match_first):
    truth = ground_truth(("q1", "r1"), ("q2", "r2"))
    rows = [("q1", "r1", 0.5), ("q1", "r9", 0.5)]
    preds = predictions(*(rows if match_first else rows[::-1]), ("q2", "r2", 0.3))
    # q1: its true reference ties with a wrong one -> the wrong one ranks first; q2 correct -> 1/2
    assert recall_at_one(preds, truth) == pytest.approx(0.5)


def test_recall_at_one_accepts_any_of_several_true_references():
    truth = ground_truth(("q1", "r1"), ("q1", "r2"))
    assert recall_at_one(predictions(("q1", "r2", 0.9), ("q1", "r1", 0.1)), truth) == 1.0


def test_recall_at_one_without_copy_queries_is_zero():
    assert recall_at_one(predictions(("q1", "r1", 0.9)), ground_truth(("q1", ""))) == 0.0


def test_true_reference_rank_puts_a_tied_non_match_first():
    truth = ground_truth(("q1", "r1"), ("q2", "r2"), ("q3", "r3"), ("q4", ""), ("q5", "r5"), ("q5", "r6"))
    preds = predictions(
        ("q1", "r8", 0.9), ("q1", "r1", 0.5), ("q1", "r9", 0.5),  # r9 ties r1 and goes first: rank 3
        ("q2", "r2", 0.7), ("q2", "r2", 0.1),  # a pair predicted twice counts once, at its best: rank 1
        ("q3", "r7", 0.4),  # its true reference is not predicted
        ("q4", "r4", 0.9),  # not a copy query
        ("q5", "r9", 0.8), ("q5", "r6", 0.6), ("q5", "r5", 0.3),  # the better of two true references: rank 2
    )
    ranks = true_reference_rank(preds, truth)
    assert ranks.index.tolist() == ["q1", "q2", "q3", "q5"]
    assert ranks.tolist()[:2] == [3.0, 1.0] and np.isnan(ranks["q3"]) and ranks["q5"] == 2.0


def test_missed_copies_show_where_every_system_ranks_the_true_reference():
    truth = ground_truth(("q1", "r1"), ("q2", "r2"), ("q3", "r3"), ("q4", ""))
    branch = predictions(("q1", "r1", 0.9), ("q2", "r2", 0.8), ("q3", "r9", 0.7), ("q3", "r3", 0.2))
    merged = predictions(("q1", "r1", 0.9), ("q2", "r5", 0.6), ("q2", "r2", 0.4), ("q4", "r4", 0.99))
    categories = pd.DataFrame({"query_id": ["q1", "q2", "q3", "q4"], "recipe": ["mild", "paste", "combo", "none"]})
    missed = missed_copies({"branch": branch, "merged": merged}, truth, categories)
    # q1 ranks first in the last system; q2 ranks second there but first in the branch; q3 is in the branch only
    assert missed.query_id.tolist() == ["q2", "q3"]
    assert missed.reference_id.tolist() == ["r2", "r3"] and missed.recipe.tolist() == ["paste", "combo"]
    assert missed.top_reference_id.tolist() == ["r5", ""] and missed.top_score.iloc[0] == 0.6
    assert missed.branch.tolist() == [1.0, 2.0]
    assert missed.merged.iloc[0] == 2.0 and np.isnan(missed.merged.iloc[1])


def test_recall_at_one_is_the_share_of_copies_not_missed():
    truth = ground_truth(("q1", "r1"), ("q2", "r2"), ("q3", "r3"))
    preds = predictions(("q1", "r1", 0.9), ("q2", "r5", 0.6), ("q2", "r2", 0.4))
    assert recall_at_one(preds, truth) == pytest.approx(1 - len(missed_copies({"s": preds}, truth, None)) / 3)


# ---------------------------------------------------------------- evaluate


def test_evaluate_with_non_copy_queries_whose_predictions_are_negatives():
    truth = ground_truth(("q1", "r1"), ("q2", "r2"), ("q3", ""), ("q4", ""))
    preds = predictions(("q3", "r1", 0.95), ("q1", "r1", 0.9), ("q4", "r4", 0.85), ("q2", "r2", 0.8))
    # ranked: N .95, M .9, N .85, M .8 with 2 positives
    # P = 0, 1/2, 1/3, 1/2; R = 0, 1/2, 1/2, 1
    # uAP = 1/2 * 1/2 + 1/2 * 1/2 = 1/2; precision never >= .9
    result = evaluate(preds, truth)
    assert result == Metrics(
        micro_ap=pytest.approx(0.5),
        recall_at_p90=None,
        threshold_at_p90=None,
        recall_at_1=1.0,  # q1 and q2 both have their true reference on top
        n_predictions=4,
        n_positives=2,
        n_copy_queries=2,
        n_queries=4,
    )


def test_evaluate_end_to_end():
    truth = ground_truth(("Q1", "R1"), ("Q2", "R2"), ("Q2", "R3"), ("Q3", "R4"), ("Q4", ""), ("Q5", ""))
    preds = predictions(
        ("Q1", "R1", 0.95),  # M
        ("Q2", "R2", 0.90),  # M
        ("Q4", "R9", 0.80),  # N (non-copy query)
        ("Q2", "R3", 0.70),  # M
        ("Q3", "R8", 0.60),  # N
        ("Q3", "R4", 0.50),  # M
    )
    # 4 positives. P = 1, 1, 2/3, 3/4, 3/5, 4/6; R = 1/4, 2/4, 2/4, 3/4, 3/4, 1
    # uAP = 1/4 + 1/4 + 0 + 3/4 * 1/4 + 0 + 2/3 * 1/4 = 1/2 + 3/16 + 1/6 = (24 + 9 + 8)/48 = 41/48
    # recall@P90: ranks 1-2 at P = 1 -> R = 1/2, threshold .90
    # recall@1: Q1 (R1) yes, Q2 (R2) yes, Q3 (top R8) no -> 2/3
    result = evaluate(preds, truth)
    assert result.micro_ap == pytest.approx(41 / 48)
    assert result.recall_at_p90 == pytest.approx(0.5)
    assert result.threshold_at_p90 == pytest.approx(0.90)
    assert result.recall_at_1 == pytest.approx(2 / 3)
    assert (result.n_predictions, result.n_positives, result.n_copy_queries, result.n_queries) == (6, 4, 3, 5)
    as_dict = result.to_dict()
    assert as_dict["micro_ap"] == pytest.approx(41 / 48) and as_dict["threshold_at_p90"] == pytest.approx(0.9)
    assert set(as_dict) == {
        "micro_ap", "recall_at_p90", "threshold_at_p90", "recall_at_1",
        "n_predictions", "n_positives", "n_copy_queries", "n_queries", "n_ground_truth_queries_missing",
        "n_ground_truth_references_missing",
    }


def test_evaluate_counts_duplicate_prediction_rows_once():
    truth = ground_truth(("q1", "r1"), ("q2", "r5"))
    preds = predictions(("q1", "r1", 0.9), ("q1", "r1", 0.9), ("q1", "r2", 0.8))
    # de-duplicated: M .9, N .8 with 2 positives: P = 1, 1/2; R = 1/2, 1/2 -> uAP = 1/2
    # (counting the copy twice would claim R = 1 and uAP = 1)
    result = evaluate(preds, truth)
    assert result.micro_ap == pytest.approx(0.5)
    assert result.n_predictions == 2
    assert result.recall_at_p90 == pytest.approx(0.5)


@pytest.mark.parametrize("high_first", [True, False])
def test_evaluate_keeps_the_best_score_of_a_repeated_pair(high_first):
    truth = ground_truth(("q1", "r1"), ("q2", "r5"))
    repeated = [("q1", "r1", 0.9), ("q1", "r1", 0.7)]
    preds = predictions(*(repeated if high_first else repeated[::-1]), ("q1", "r2", 0.8))
    # keeping .9: M .9, N .8 -> uAP = 1/2, whatever the row order
    # (keeping .7 would give N .8, M .7 -> P = 0, 1/2; uAP = 1/4)
    assert evaluate(preds, truth).micro_ap == pytest.approx(0.5)


def test_evaluate_counts_duplicate_ground_truth_rows_once():
    truth = ground_truth(("q1", "r1"), ("q1", "r1"), ("q2", "r2"))
    # M .9 with 2 distinct positives -> uAP = 1/2
    result = evaluate(predictions(("q1", "r1", 0.9)), truth)
    assert result.n_positives == 2
    assert result.micro_ap == pytest.approx(0.5)


def test_evaluate_without_ground_truth_positives_raises():
    with pytest.raises(ValueError, match="no positive"):
        evaluate(predictions(("q1", "r1", 0.9)), ground_truth(("q1", ""), ("q2", "")))


def test_ground_truth_queries_not_in_the_query_set_are_left_out_and_counted():
    truth = ground_truth(("q1", "r1"), ("q2", "r2"), ("q3", ""), ("ghost", "r3"), ("ghost", "r4"), ("gone", ""))
    preds = predictions(("q1", "r1", 0.9), ("q3", "r1", 0.8), ("q2", "r9", 0.5))
    # over q1-q3 (the query set): M .9, N .8, N .5 with 2 positives -> P = 1, 1/2, 1/3; R = 1/2, 1/2, 1/2
    # uAP = 1/2; recall@1: q1 yes, q2 no -> 1/2. Scored as misses, ghost's 2 pairs would halve both.
    result = evaluate(preds, truth, query_ids={"q1", "q2", "q3", "q4"})
    assert (result.micro_ap, result.recall_at_p90, result.recall_at_1) == pytest.approx((0.5, 0.5, 0.5))
    assert (result.n_positives, result.n_copy_queries, result.n_queries) == (2, 2, 3)
    assert result.n_ground_truth_queries_missing == 2
    assert missing_queries(truth, {"q1", "q2", "q3"}) == ["ghost", "gone"]
    everyone = evaluate(preds, truth)  # no query set given: every ground-truth query counts
    assert everyone.n_ground_truth_queries_missing == 0 and everyone.n_positives == 4
    assert (everyone.micro_ap, everyone.recall_at_1) == pytest.approx((0.25, 1 / 3))


def test_ground_truth_pairs_whose_reference_is_not_in_the_reference_set_are_left_out_and_counted():
    truth = ground_truth(("q1", "r1"), ("q2", "r2"), ("q2", "gone"), ("q3", "gone"), ("q4", ""))
    preds = predictions(("q1", "r1", 0.9), ("q2", "r2", 0.8), ("q3", "r1", 0.5))
    # over r1, r2 (the reference set): 2 positives, both ranked first -> uAP 1, recall@1 1; q3 (its only
    # source gone) stays as a query that copies nothing here, so its prediction is a false positive.
    result = evaluate(preds, truth, reference_ids={"r1", "r2"})
    assert (result.micro_ap, result.recall_at_1) == pytest.approx((1.0, 1.0))
    assert (result.n_positives, result.n_copy_queries, result.n_queries) == (2, 2, 4)
    assert result.n_ground_truth_references_missing == 1
    assert missing_references(truth, {"r1"}) == ["gone", "r2"]
    assert evaluate(preds, truth).n_positives == 4  # no reference set given: every pair counts
    with pytest.raises(D2lvError, match="none of the 3 references"):
        evaluate(preds, truth, reference_ids={"other"})


def test_a_ground_truth_of_none_of_the_queries_stops_the_evaluation():
    with pytest.raises(D2lvError, match="none of the 2 ground-truth queries is in the query set"):
        evaluate(predictions(("q1", "r1", 0.9)), ground_truth(("x1", "r1"), ("x2", "")), query_ids={"q1"})


# ---------------------------------------------------------------- recall@1 per family


def test_family_recall_counts_only_copy_queries_of_each_family():
    gt = pd.DataFrame({"query_id": ["a", "b", "c", "d"], "reference_id": ["R1", "R2", "R3", ""]})
    categories = pd.DataFrame({"query_id": ["a", "b", "c", "d"], "kind": ["copy", "copy", "copy", "noncopy"],
                               "recipe": ["crop", "crop", "text", "crop"]})
    predictions = pd.DataFrame({"query_id": ["a", "b", "c", "d"], "reference_id": ["R1", "R9", "R3", "R1"],
                                "score": [5.0, 4.0, 3.0, 9.0]})
    recall = family_recall(predictions, gt, categories)
    assert recall["crop"] == 0.5 and recall["text"] == 1.0


def test_detector_recall_counts_found_boxes_and_mistaken_crops():
    categories = pd.DataFrame({
        "query_id": ["p1", "p2", "p3", "f1", "f2"], "recipe": ["paste"] * 3 + ["mild"] * 2,
        "box_x0": ["0", "0", "0", "", ""], "box_y0": ["0", "0", "0", "", ""],
        "box_x1": ["100", "100", "100", "", ""], "box_y1": ["100", "100", "100", "", ""]})
    boxes = pd.DataFrame({"query_id": ["p1", "p2", "p3", "p3", "f1", "f2"], "cropped": [True] * 5 + [False],
                          "rank": [1, 1, 1, 2, 1, None],
                          "x0": [5, 60, 200, 0, 0, None], "y0": [5, 60, 0, 0, 0, None],
                          "x1": [100, 160, 300, 98, 50, None], "y1": [100, 160, 100, 100, 50, None],
                          "confidence": [0.9, 0.8, 0.7, 0.3, 0.5, None]})
    table = detector_recall(boxes, categories).set_index("family")
    assert table.loc["paste", "placed"] == 3
    assert table.loc["paste", "box_recall"] == pytest.approx(1 / 3)  # the first box of p1 only
    assert table.loc["paste", "crop_recall"] == pytest.approx(2 / 3)  # and p3's second box
    assert table.loc["mild", "full_frame"] == 2 and table.loc["mild", "cropped_by_mistake"] == 1


def test_top_false_positives_are_the_best_scored_non_copies_with_their_kind():
    predictions = pd.DataFrame({"query_id": ["q1", "q1", "q2", "q3"], "reference_id": ["r1", "r2", "r5", "r9"],
                                "score": [0.9, 0.8, 0.95, 0.1]})
    ground_truth = pd.DataFrame({"query_id": ["q1", "q2", "q3"], "reference_id": ["r1", "", ""]})
    categories = pd.DataFrame({"query_id": ["q1", "q2", "q3"], "kind": ["copy", "hard_negative", "noncopy"],
                               "recipe": ["mild", "none", "text"], "similar_reference_id": ["", "r5", ""]})
    wrong = top_false_positives(predictions, ground_truth, categories, n=2)
    assert wrong[["query_id", "reference_id"]].values.tolist() == [["q2", "r5"], ["q1", "r2"]]
    assert wrong.kind.tolist() == ["hard_negative", "copy"] and wrong.same_object.tolist() == [True, False]
    assert "kind" not in top_false_positives(predictions, ground_truth, None)
