"""The learner's thinning under a backlog: the other candidates' extra work stays within
its share of the time, with the fewest answers skipped that achieve it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolabel.worker.thinning import FIRST_THIN, MAX_THIN, MIN_SAMPLES, MIN_THIN, SAMPLES, Thinning

seconds = st.floats(min_value=1e-6, max_value=1.0)


def measured(full: float, alone: float, share: float) -> Thinning:
    t = Thinning(backlog=200, share=share)
    for _ in range(SAMPLES):
        t.observe(full, thinned=False)
        t.observe(alone, thinned=True)
    return t


@given(full=seconds, alone=seconds, share=st.floats(min_value=0.01, max_value=0.99))
def test_the_others_take_at_most_their_share_and_no_fewer_answers_are_skipped(
    full: float, alone: float, share: float
) -> None:
    thin = measured(full, alone, share).thin(10_000)
    extra = full - alone
    assert MIN_THIN <= thin <= MAX_THIN
    if extra <= 0:
        assert thin == MIN_THIN
        return

    def within(k: int) -> bool:  # the other candidates' share of the time at 1 in k
        return extra / k <= share * (extra / k + alone) * (1 + 1e-9)

    if thin < MAX_THIN:
        assert within(thin)
    if thin > MIN_THIN:
        assert not within(thin - 1)


def test_before_both_kinds_of_answers_were_timed_it_thins_by_a_fixed_share() -> None:
    t = Thinning(backlog=200, share=0.2)
    assert t.thin(200) == FIRST_THIN
    for _ in range(4 * MIN_SAMPLES):
        t.observe(1e-3, thinned=False)
    assert t.thin(200) == FIRST_THIN  # the labeling model alone was not timed yet
    for _ in range(2 * MIN_SAMPLES):
        t.observe(1e-4, thinned=True)
    assert MIN_THIN < t.thin(200) < FIRST_THIN * 4
    assert t.thin(199) == 1  # keeping up: every candidate learns every answer


def test_it_follows_the_recent_cost_and_not_the_odd_slow_answer() -> None:
    t = measured(2e-3, 1e-3, 0.5)
    assert t.thin(500) == MIN_THIN  # 1 ms extra may take half the time: as often as can be
    for slow in (0.5, 2.0, 9.0):  # a few answers a certification test or a pause slowed
        t.observe(slow, thinned=True)
    for bad in (math.nan, math.inf, -1.0):
        t.observe(bad, thinned=False)
    for _ in range(16):
        t.observe(2e-3, thinned=False)
    assert t.thin(500) == MIN_THIN
    for _ in range(SAMPLES):  # the other candidates got 10x slower
        t.observe(11e-3, thinned=False)
    assert t.thin(500) == 10


def test_cheap_others_never_stop_the_labeling_model_alone_from_being_timed() -> None:
    t = measured(1e-4, 2e-4, 0.2)  # noise: the full answers looked cheaper
    assert t.thin(500) == MIN_THIN  # not 1: thinned answers keep coming, and keep being timed


@pytest.mark.parametrize("share", [0.0, 1.0, -0.1, 2.0])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        Thinning(backlog=200, share=share)
