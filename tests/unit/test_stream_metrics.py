"""Stream measures on small hand-made runs: windows, changes, per class, orders, bars."""

from __future__ import annotations

import pytest

from autolabel.settings import Settings
from autolabel.tools.evaluation import ReviewerModel, StreamRun, evaluate, shuffled
from autolabel.tools.parallel import map_jobs
from autolabel.tools.stream_metrics import (
    bars,
    binomial_interval,
    change_response,
    distribution,
    measure,
    per_class,
    worst_window,
)
from autolabel.tools.suite_streams import build


def make_run(
    truth: list[str],
    predicted: list[str],
    accepted: list[bool],
    accepting: list[bool] | None = None,
    drift_at: list[int] | None = None,
) -> StreamRun:
    n = len(truth)
    return StreamRun(
        truth=truth,
        accepted=accepted,
        reason=["certified" if a else "uncertain" for a in accepted],
        predicted=list(predicted),
        confidence=[0.9] * n,
        final_label=[None if a else t for a, t in zip(accepted, truth, strict=True)],
        drift_at=drift_at or [],
        accepting=accepting if accepting is not None else [True] * n,
        threshold=[0.5] * n,
        model_version=[1] * n,
        ids=[f"r{i}" for i in range(n)],
    )


def test_worst_window_slides_over_windows_with_enough_auto_labels() -> None:
    # 100 records: all accepted; 10 wrong in a row at 40..49
    truth = ["a"] * 100
    predicted = ["a"] * 40 + ["b"] * 10 + ["a"] * 50
    run = make_run(truth, predicted, [True] * 100)
    worst = worst_window(run, window=20, min_accepted=5)
    assert worst is not None
    assert worst["precision"] == 0.5 and worst["accepted"] == 20
    assert 30 <= worst["start"] <= 40
    # windows with fewer auto-labels than the minimum are left out
    sparse = make_run(truth, predicted, [i % 10 == 0 for i in range(100)])
    assert worst_window(sparse, window=20, min_accepted=5) is None
    # a run shorter than the window is one window
    short = worst_window(make_run(["a"] * 30, ["a"] * 30, [True] * 30), window=500)
    assert short is not None and short["accepted"] == 30


def test_wrong_labels_after_a_change_until_acceptance_stops_and_comes_back() -> None:
    # change at 10; wrong auto-labels at 10..14; acceptance stops at 15 (not accepting
    # 15..24), a drift event at 17, accepted again from 25 on
    n = 40
    truth = ["a"] * n
    predicted = ["a"] * 10 + ["b"] * 5 + ["a"] * 25
    accepting = [True] * 15 + [False] * 10 + [True] * 15
    accepted = [accepting[i] for i in range(n)]
    run = make_run(truth, predicted, accepted, accepting, drift_at=[17])
    change = change_response(run, 10)
    assert change["wrong_before_stop"] == 5 and change["accepted_before_stop"] == 5
    assert change["stop_at"] == 15 and change["stopped_after"] == 5
    assert change["first_drift_event"] == 17 and change["wrong_before_drift_event"] == 5
    assert change["back_at"] == 25
    assert change["back_after_records"] == 10 and change["back_after_reviews"] == 10
    assert change["segment"]["auto_errors"] == 5
    # the segment ends at the next change point: a stop after it does not count
    bounded = change_response(run, 10, until=13)
    assert bounded["stop_at"] is None and bounded["wrong_before_stop"] == 3
    assert bounded["first_drift_event"] is None  # the event at 17 belongs to a later change
    # never stopped: all the segment's wrong labels count; never back when it never resumes
    never = make_run(truth, predicted, [i < 15 for i in range(n)], [i < 15 for i in range(n)])
    assert change_response(never, 10)["back_at"] is None


def test_per_class_flags_a_class_never_predicted_and_one_auto_labeled_too_rarely() -> None:
    # 200 records: "rare" (10%) is always predicted "common"; "c" (30%) is predicted
    # right but only 1 of its 60 records is auto-labeled; "common" auto-labeled freely
    truth = ["rare"] * 20 + ["c"] * 60 + ["common"] * 120
    predicted = ["common"] * 20 + ["c"] * 60 + ["common"] * 120
    accepted = [i % 2 == 0 for i in range(20)] + [i == 0 for i in range(60)] + [True] * 120
    run = make_run(truth, predicted, accepted)
    view = per_class(run)
    flagged = {(f["class"], f["flag"]) for f in view["flags"]}
    assert ("rare", "never_predicted") in flagged
    assert ("c", "under_auto_labeled") in flagged
    assert not any(cls == "common" for cls, _ in flagged)
    rows = {r["class"]: r for r in view["classes"]}
    assert rows["common"]["precision"] == pytest.approx(120 / 130)
    assert rows["c"]["recall"] == pytest.approx(1 / 60)
    assert rows["rare"]["auto_labeled"] == pytest.approx(0.5)
    assert rows["rare"]["share"] == pytest.approx(0.1)


def test_distribution_counts_orders_below_target_with_an_interval() -> None:
    runs = [
        {
            "auto_precision": p,
            "automation_rate": 0.5,
            "oracle_ratio": 0.8,
            "worst_window": None,
            "drift_events": 0,
            "changes": [],
        }
        for p in (0.96, 0.94, 0.97, None, 0.99)
    ]
    d = distribution(runs, 0.95)
    assert d["orders"] == 5 and d["below_target"] == 1 and d["no_acceptance"] == 1
    assert d["below_target_share"] == pytest.approx(0.2)
    lo, hi = d["below_target_interval"]
    assert lo < 0.2 < hi
    assert d["auto_precision"]["min"] == 0.94 and d["auto_precision"]["median"] == 0.965
    assert binomial_interval(0, 0) == (0.0, 1.0)


def test_bars_apply_where_the_issue_says() -> None:
    truth = ["a"] * 3000
    run = make_run(truth, ["a"] * 3000, [True] * 3000)
    run.drift_at = [100, 2000]
    measured = measure(run, 0.95, [1500])
    assert measured["drift_events"] == 2 and measured["drift_events_before_change"] == 1
    entry = {"kind": "abrupt", "swap": True, "rows": 3000, "run": measured, "orders": None}
    got = bars(entry, 0.95, 0.05)
    assert got["precision"] and got["worst_window"] and got["wrong_before_stop"]
    assert got["back_within_reviews"]  # acceptance never stopped
    assert got["no_false_alarm"] is None and got["orders_below_target"] is None
    stationary = {**entry, "kind": "stationary", "swap": False}
    stationary["run"] = {**measured, "drift_events": 2}  # no change point: both are false
    got = bars(stationary, 0.95, 0.05)
    assert got["no_false_alarm"] is False and got["wrong_before_stop"] is None


def test_shuffled_orders_keep_every_change_in_place() -> None:
    items = list(range(100))
    order = shuffled(items, seed=3, segments=[30, 70])
    assert order != items
    assert sorted(order[:30]) == items[:30] and sorted(order[30:70]) == items[30:70]
    assert shuffled(items, seed=3, segments=[30, 70]) == order
    assert sorted(shuffled(items, seed=4)) == items


def test_evaluate_reports_stream_measures_and_per_class() -> None:
    stream = build("late_class", scale=0.1)
    report, run = evaluate(
        stream.examples(), Settings(), ReviewerModel(), change_points=stream.change_points
    )
    measured = report["stream"]
    assert report["change_points"] == list(stream.change_points)
    assert [c["at"] for c in measured["changes"]] == list(stream.change_points)
    assert {r["class"] for r in measured["per_class"]["classes"]} >= set(run.truth)
    assert len(run.ids) == len(run.threshold) == len(run.model_version) == len(run.truth)


def test_map_jobs_gives_results_in_input_order_from_worker_processes() -> None:
    seen: list[int] = []
    got = map_jobs(abs, [-3, 1, -2], workers=2, on_done=lambda item, _: seen.append(item))
    assert got == [3, 1, 2] and sorted(seen) == [-3, -2, 1]
    assert map_jobs(abs, [-1], workers=1) == [1]
