"""autolabel.trust.sequential and .spending: tests that may be checked after every value."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from autolabel.trust.sequential import BettingDetector, BettingTest, ChangeDetector
from autolabel.trust.spending import SpendingSchedule


def rate_rejected(true_rate: float, bound: float, n: int, runs: int, alpha: float) -> float:
    rejected = 0
    for seed in range(runs):
        rng = random.Random(seed)
        test = BettingTest(bound=bound, alpha=alpha)
        rejected += any(test.update(rng.random() < true_rate) for _ in range(n))
    return rejected / runs


def test_looking_after_every_audit_keeps_the_false_alarm_rate_under_alpha() -> None:
    # At the boundary of the null (error exactly at the bound), checked 2,000 times a run.
    assert rate_rejected(0.05, 0.05, 2000, 200, alpha=0.05) <= 0.05
    assert rate_rejected(0.02, 0.05, 2000, 100, alpha=0.05) == 0.0


@pytest.mark.parametrize(("true_rate", "within"), [(0.5, 12), (0.3, 30), (0.2, 80)])
def test_a_broken_certificate_is_refuted_within_a_few_audits(true_rate: float, within: int) -> None:
    delays = []
    for seed in range(50):
        rng = random.Random(seed)
        test = BettingTest(bound=0.05, alpha=0.05)
        delays.append(next(i for i in range(1, 10**5) if test.update(rng.random() < true_rate)))
    assert sorted(delays)[25] <= within  # the median


def test_the_betting_test_rejects_for_good_once_rejected() -> None:
    test = BettingTest(bound=0.05, alpha=0.05)
    while not test.update(1.0):
        pass
    assert all(test.update(0.0) for _ in range(100)) and test.rejected
    test.reset()
    assert not test.rejected and test.e_value == 1.0


def wrong_until_alarm(test: BettingTest, right_before: int) -> int:
    for _ in range(right_before):
        test.update(0.0)
    return next(n for n in range(1, 10**4) if test.update(1.0))


def test_a_detector_sees_a_change_as_fast_after_a_long_right_run_as_from_a_fresh_start() -> None:
    alpha = 0.05 / 150  # the controller's level per predicted class
    fresh = wrong_until_alarm(BettingDetector(bound=0.1, alpha=alpha), 0)
    late = [wrong_until_alarm(BettingDetector(bound=0.1, alpha=alpha), n) for n in (50, 1000)]
    assert late == [fresh, fresh] and fresh <= 5
    # the test supermartingale first pays back the debt of the right run
    debts = [wrong_until_alarm(BettingTest(bound=0.1, alpha=alpha), n) for n in (0, 50, 1000)]
    assert debts[0] == fresh and debts[1] > 3 * fresh and debts[2] > 30 * fresh


def test_a_detector_below_its_bound_raises_no_alarm() -> None:
    alarms = 0
    for seed in range(40):  # a class wrong half as often as its bound, 5,000 audits each
        rng = random.Random(seed)
        detector = BettingDetector(bound=0.1, alpha=0.05 / 150)
        alarms += any(detector.update(rng.random() < 0.05) for _ in range(5000))
    assert alarms == 0


def test_bets_never_bankrupt_the_bettor() -> None:
    test = BettingTest(bound=0.3, alpha=0.05, lo=-1.0, hi=1.0)
    for x in (-1.0, -1.0, 1.0) * 100:
        test.update(x)
    assert math.isfinite(test.e_value) and test.e_value > 0


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_a_stationary_stream_raises_no_alarm(rate: float) -> None:
    alarms = 0
    for seed in range(40):
        rng = random.Random(seed)
        detector = ChangeDetector(margin=0.1, alpha=1e-4)
        alarms += any(detector.update(rng.random() < rate) for _ in range(5000))
    assert alarms <= 1


def test_a_slowly_improving_stream_raises_no_alarm() -> None:
    rng = random.Random(3)
    detector = ChangeDetector(margin=0.1, alpha=1e-4)
    assert not any(detector.update(rng.random() < 0.4 - 0.3 * i / 5000) for i in range(5000))


@pytest.mark.parametrize(("after", "within"), [(0.5, 80), (0.8, 25)])
def test_a_jump_is_seen_within_a_few_dozen_values(after: float, within: int) -> None:
    delays = []
    for seed in range(40):
        rng = random.Random(seed)
        detector = ChangeDetector(margin=0.1, alpha=1e-4)
        for _ in range(500):
            detector.update(rng.random() < 0.1)
        delays.append(next(i for i in range(1, 10**4) if detector.update(rng.random() < after)))
    assert sorted(delays)[20] <= within


def test_values_building_up_to_an_alarm_do_not_move_the_reference() -> None:
    detector = ChangeDetector(margin=0.1, alpha=1e-6, min_reference=10)
    for _ in range(100):
        detector.update(0.1)
    for _ in range(5):
        detector.update(0.9)
    assert detector.reference == pytest.approx(0.1)


def test_spending_never_exceeds_delta_over_any_number_of_tests_and_epochs() -> None:
    schedule = SpendingSchedule(delta=0.05, first=10, growth=1.2, min_gap=1)
    for _ in range(30):
        for examples in range(10, 10**6, 7):
            if schedule.due(examples):
                schedule.take()
        schedule.new_epoch()
    assert schedule.spent < 0.05
    assert schedule.spent > 0.04  # and most of it is used


def test_tests_become_rarer_as_evidence_grows() -> None:
    schedule = SpendingSchedule(delta=0.05, first=40, growth=1.5, min_gap=16)
    points = []
    for examples in range(1, 5000):
        if schedule.due(examples):
            schedule.take()
            points.append(examples)
    gaps = [b - a for a, b in itertools.pairwise(points)]
    assert points[0] == 40 and gaps == sorted(gaps) and len(points) < 15
