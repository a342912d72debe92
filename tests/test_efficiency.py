"""Data efficiency: AUC of hand-made curves computed by hand, the x^p curve and the labels-needed
formula invert each other, the line fit and its leave-one-out error by hand, the planner
against brute force, the predicted_efficiency selector."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from labelbudget.efficiency import data_efficiency_auc
from labelbudget.efficiency.curves import cleaned_curve, labels_needed, predicted_performance
from labelbudget.efficiency.planner import mean_predicted_performance, plan_budget
from labelbudget.efficiency.predicted_auc import PredictedAUC
from labelbudget.efficiency.predictor import (
    LinearFit,
    correlations,
    fit_line,
    leave_one_out_errors,
    rank,
)
from labelbudget.errors import ConfigError, DataError
from labelbudget.selection.base import PREDICTED_AUC, Candidates
from labelbudget.selection.predicted_efficiency import PredictedEfficiencySelector

LOG = math.log2(5000)
X50, X100, X2500 = math.log2(50) / LOG, math.log2(100) / LOG, math.log2(2500) / LOG


def test_flat_curve_has_no_area():
    assert data_efficiency_auc([0, 50, 100], [0.4, 0.4, 0.4]) == 0.0


def test_step_at_the_first_budget():
    # 0 -> 1 between x=0 and x(50), then 1 to the end (forward fill): 1 - x50/2
    assert data_efficiency_auc([0, 50], [0.0, 1.0]) == pytest.approx(1 - X50 / 2)


def test_only_the_last_budget_rises():
    # unmeasured grid budgets up to 2500 take the zero-shot value: the rise is the last segment
    assert data_efficiency_auc([0, 5000], [0.1, 0.9]) == pytest.approx((1 - X2500) / 2)


def test_non_monotone_curve_is_made_non_decreasing():
    assert data_efficiency_auc([0, 50, 100], [0.2, 0.6, 0.4]) == pytest.approx(1 - X50 / 2)
    assert [a for _, a in cleaned_curve([0, 50, 100], [0.2, 0.6, 0.4])] == [
        0.2,
        0.6,
        0.6,
        0.6,
        0.6,
        0.6,
        0.6,
        0.6,
    ]


def test_human_score_above_the_best_lowers_the_ceiling_below_does_not():
    assert data_efficiency_auc([0, 50], [0.0, 0.5], human=1.0) == pytest.approx(0.5 * (1 - X50 / 2))
    assert data_efficiency_auc([0, 50], [0.0, 0.5], human=0.3) == pytest.approx(1 - X50 / 2)


def test_missing_zero_shot_starts_the_curve_at_its_first_budget():
    expected = (X100 - X50) * 0.5 + (1 - X100) * 1.0
    assert data_efficiency_auc([50, 100], [0.2, 0.6]) == pytest.approx(expected)


def test_missing_budgets_in_the_middle_are_forward_filled():
    # measured 0, 50, 1000: 100, 200, 500 copy 50's value; 2500, 5000 copy 1000's
    assert dict(cleaned_curve([0, 50, 1000], [0.0, 0.5, 1.0])) == {
        0: 0.0,
        50: 0.5,
        100: 0.5,
        200: 0.5,
        500: 0.5,
        1000: 1.0,
        2500: 1.0,
        5000: 1.0,
    }


def test_linear_curve_in_log_budget_has_area_one_half():
    budgets = [0, 50, 100, 200, 500, 1000, 2500, 5000]
    xs = [math.log2(max(b, 1)) / LOG for b in budgets]
    assert data_efficiency_auc(budgets, xs) == pytest.approx(0.5)


def test_bad_curves_are_config_errors():
    with pytest.raises(ConfigError, match="as many accuracies as budgets"):
        data_efficiency_auc([0, 50], [0.1])
    with pytest.raises(ConfigError, match="distinct and within"):
        data_efficiency_auc([0, 6000], [0.1, 0.2])


@pytest.mark.parametrize(
    "auc, n, expected",
    [
        # x(n) = log2(n) / log2(5000): x(50) = 5.643856 / 12.287712 = 0.459309, x(100) = 0.540691
        (0.5, 50, 0.459309),  # p = (1 - 0.5) / 0.5 = 1: y = x
        (0.25, 100, 0.158069),  # p = 3: 0.540691^3
        (0.75, 100, 0.814673),  # p = 1/3: 0.540691^(1/3)
        (0.25, 1, 0.0),  # one label: x(1) = 0
        (0.25, 9000, 1.0),  # beyond n_max: capped at 1
    ],
)
def test_predicted_curve_by_hand(auc, n, expected):
    assert predicted_performance(n, auc) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "target, auc, expected",
    [
        (0.5, 0.5, 70.7107),  # x* = 0.5^(0.5/0.5) = 0.5: n* = 5000^0.5
        (0.5, 0.25, 862.729),  # x* = 0.5^(1/3) = 0.793701: n* = 5000^0.793701
        (0.5, 0.75, 2.89982),  # x* = 0.5^3 = 0.125: n* = 5000^0.125
        (1.0, 0.3, 5000.0),  # full performance at n_max
    ],
)
def test_labels_needed_by_hand(target, auc, expected):
    assert labels_needed(target, auc) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("auc", [0.1, 0.3, 0.5, 0.8])
def test_predicted_curve_has_the_auc_as_its_area(auc):
    xs = np.linspace(0, 1, 2001)
    ys = [predicted_performance(5000**x, auc) for x in xs]  # the curve read on the log-budget axis
    assert np.trapezoid(ys, xs) == pytest.approx(auc, abs=1e-4)


def test_line_fit_and_leave_one_out_by_hand():
    signal, auc = np.array([0.0, 1.0, 2.0]), np.array([0.1, 0.3, 0.5])
    assert fit_line(signal, auc) == pytest.approx((0.2, 0.1))
    errors = leave_one_out_errors(signal, auc)
    assert errors["loto_mae"] == pytest.approx(
        0.0, abs=1e-12
    )  # collinear: every held-out task is predicted exactly
    # the mean baseline: |0.4 - 0.1|, |0.3 - 0.3|, |0.2 - 0.5| -> 0.2
    assert errors["mean_baseline_mae"] == pytest.approx(0.2)
    noisy = leave_one_out_errors(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.1, 0.4, 0.3, 0.6]))
    held = []  # by hand: refit on the other three each time
    for i in range(4):
        rest = [j for j in range(4) if j != i]
        slope, intercept = np.polyfit(
            [float(j) for j in rest], [[0.1, 0.4, 0.3, 0.6][j] for j in rest], 1
        )
        held.append(abs(slope * i + intercept - [0.1, 0.4, 0.3, 0.6][i]))
    assert noisy["loto_mae"] == pytest.approx(np.mean(held))


def test_correlations_and_tied_ranks():
    assert rank(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]
    result = correlations(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 4.0, 9.0, 16.0]))
    # by hand: dx = -1.5, -0.5, 0.5, 1.5; dy = -6.5, -3.5, 1.5, 8.5; r = 25 / sqrt(5 * 129) = 0.984374
    assert result["spearman"] == pytest.approx(1.0) and result["pearson"] == pytest.approx(
        0.984374, abs=1e-6
    )


def test_saved_fit_round_trips_and_clips(tmp_path):
    fit = LinearFit(2.0, -0.5, "coslow", "smollm2_135m", 12, 5000)
    fit.save(tmp_path / "fit.json")
    assert LinearFit.load(tmp_path / "fit.json") == fit
    assert fit.predict(0.5) == pytest.approx(0.5) and fit.predict(5.0) == pytest.approx(0.999)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(DataError, match="bad.json.*not a saved CoS-Low fit"):
        LinearFit.load(tmp_path / "bad.json")


def brute_force_plan(auc, sizes, budget, n_max, start=None):
    """The best mean predicted performance over every split of exactly min(budget, pool) labels
    that gives each task at least its `start`."""
    tasks = sorted(sizes)
    start = start or {}
    budget = min(budget, sum(sizes.values()))
    return max(
        mean_predicted_performance(dict(zip(tasks, counts)), auc, n_max)
        for counts in itertools.product(*[range(start.get(t, 0), sizes[t] + 1) for t in tasks])
        if sum(counts) == budget
    )


@pytest.mark.parametrize("from_probe", [False, True], ids=["from nothing", "from a probe"])
def test_planner_is_optimal_on_random_cases(from_probe):
    rng = np.random.default_rng(int(from_probe))
    for _ in range(300 if from_probe else 400):
        n_tasks = int(rng.integers(2, 5))
        auc = {f"t{i}": float(rng.uniform(0.05, 0.95)) for i in range(n_tasks)}
        sizes = {f"t{i}": int(rng.integers(int(from_probe), 9)) for i in range(n_tasks)}
        start = (
            {t: int(rng.integers(0, min(3, n) + 1)) for t, n in sizes.items()} if from_probe else {}
        )
        budget = int(rng.integers(sum(start.values()), sum(sizes.values()) + 3))
        counts = plan_budget(auc, sizes, budget, n_max=50, start=start)
        assert sum(counts.values()) == min(budget, sum(sizes.values()))
        assert all(start.get(t, 0) <= counts[t] <= sizes[t] for t in sizes)
        assert mean_predicted_performance(counts, auc, 50) == pytest.approx(
            brute_force_plan(auc, sizes, budget, 50, start), abs=1e-12
        )


def test_planner_starts_each_task_from_the_labels_it_holds():
    # by hand, n_max = 16, both AUC 0.5 (p = 1): y(n) = log2(n) / 4. Budget 8, 10 prompts each.
    # From nothing the best split is 4 + 4: 2/4 + 2/4 = 1.0 (5 + 3: 0.977; 6 + 2: 0.896).
    # When "a" holds 6 probe labels already, "a" >= 6: 6 + 2 = 0.896 beats 7 + 1 = 0.702 and
    # 8 + 0 = 0.75, so the planner gives "b" the 2 labels left, not 4.
    auc, sizes = {"a": 0.5, "b": 0.5}, {"a": 10, "b": 10}
    assert plan_budget(auc, sizes, 8, n_max=16) == {"a": 4, "b": 4}
    assert plan_budget(auc, sizes, 8, n_max=16, start={"a": 6}) == {"a": 6, "b": 2}
    assert plan_budget(auc, sizes, 8, n_max=16, start={"a": 6, "b": 2}) == {"a": 6, "b": 2}
    with pytest.raises(ConfigError, match="the budget 7 is below the 8 labels the tasks start"):
        plan_budget(auc, sizes, 7, n_max=16, start={"a": 6, "b": 2})
    with pytest.raises(ConfigError, match="more labels than its pool holds"):
        plan_budget(auc, sizes, 20, n_max=16, start={"a": 11})


def test_planner_beats_the_greedy_where_one_label_gains_nothing():
    # by hand, n_max = 4, so x(n) = log2(n) / 2: "fast" (AUC 0.5, p = 1) has y(1) = 0, y(2) = 0.5;
    # "slow" (AUC 0.2, p = 4) has y(2) = 0.5^4 = 0.0625, y(4) = 1. Budget 4, fast holds 2 prompts.
    # A greedy on one-label gains ties at 0, takes fast, then fast's 0.5, then slow 2: 0.5625 in
    # all. The optimum spends all 4 on slow: 1.0, a mean of 0.5.
    auc, sizes = {"fast": 0.5, "slow": 0.2}, {"fast": 2, "slow": 4}
    counts = plan_budget(auc, sizes, 4, n_max=4)
    assert counts == {"fast": 0, "slow": 4}
    assert mean_predicted_performance(counts, auc, 4) == pytest.approx(0.5)
    # equal plans: fast 4 + slow 0 and fast 0 + slow 4 both give 1.0; the later task gets fewer
    assert plan_budget(auc, {"fast": 4, "slow": 4}, 4, n_max=4) == {"fast": 4, "slow": 0}


def test_planner_respects_pool_sizes_and_spends_at_most_the_pool():
    counts = plan_budget({"a": 0.9, "b": 0.1}, {"a": 15, "b": 100}, 1000)
    assert counts == {"a": 15, "b": 100}
    assert plan_budget({"a": 0.5}, {"a": 100}, 0) == {"a": 0}
    with pytest.raises(ConfigError, match="no predicted AUC"):
        plan_budget({"a": 0.5}, {"a": 10, "b": 10}, 5)


def test_predicted_efficiency_selector_follows_the_plan(tmp_path):
    path = tmp_path / "predicted_auc.json"
    path.write_text(json.dumps({"n_max": 5000, "tasks": {"fast": 0.7, "slow": 0.2}}))
    selector = PredictedEfficiencySelector(str(path))
    assert selector.signals() == {PREDICTED_AUC: str(path)}  # the file is read by its provider
    tasks = ["fast"] * 40 + ["slow"] * 40
    predicted = PredictedAUC.read(path)
    candidates = Candidates([f"p{i}" for i in range(80)], tasks, {PREDICTED_AUC: predicted})
    selection = selector.select(candidates, 40, np.random.default_rng(0))
    expected = plan_budget({"fast": 0.7, "slow": 0.2}, {"fast": 40, "slow": 40}, 40)
    picked = [tasks[int(i[1:])] for i in selection.ids]
    assert {t: picked.count(t) for t in expected} == expected and len(set(selection.ids)) == 40
    with pytest.raises(DataError, match="no predicted AUC for the pool's task"):
        predicted.check_covers(["fast", "other"])
    other = Candidates(["a", "b"], ["fast", "other"], {PREDICTED_AUC: predicted})
    with pytest.raises(DataError, match=r"predicted_auc.json: has no predicted AUC .*'other'"):
        selector.select(other, 1, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"n_max": 5000, "tasks": {"fast": 1.5}}, "fast"),
        ({"fast": 0.5}, "tasks"),  # the tasks without their budget axis
        ({"n_max": 1, "tasks": {"fast": 0.5}}, "n_max"),
    ],
)
def test_a_bad_predicted_auc_file_is_refused_by_field(tmp_path, content, field):
    path = tmp_path / "predicted_auc.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DataError, match=f"field '{field}'"):
        PredictedAUC.read(path)


def test_predicted_auc_written_reads_back(tmp_path):
    PredictedAUC({"b": 0.25, "a": 0.5}, 300).write(tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text()) == {
        "n_max": 300,
        "tasks": {"a": 0.5, "b": 0.25},
    }
    assert PredictedAUC.read(tmp_path / "p.json").tasks == {"a": 0.5, "b": 0.25}


@pytest.mark.parametrize("share", [0, 1.5, True, "a tenth"])
def test_a_probe_fraction_outside_a_share_is_refused_when_built(share):
    from labelbudget.selection.predicted_efficiency import PredictedEfficiencySelector

    with pytest.raises(ConfigError, match="probe_fraction must be a share in"):
        PredictedEfficiencySelector(probe=4, probe_fraction=share)
