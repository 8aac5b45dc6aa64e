"""autolabel.trust.classes: a class that automation leaves out is flagged."""

from __future__ import annotations

import random

from autolabel.trust.classes import ClassView


def stream(view: ClassView, n: int, rng: random.Random, *, rare_predicted: bool) -> None:
    for _ in range(n):
        truth = "rare" if rng.random() < 0.03 else rng.choice("ab")
        if rng.random() < 0.8 and truth != "rare":  # accepted: audited 1 in 20
            if rng.random() < 0.05:
                view.observe(truth, truth, weight=20.0, audit=True)
        else:
            predicted = truth if (truth != "rare" or rare_predicted) else "a"
            view.observe(truth, predicted, weight=1.0, audit=False)


def test_a_healthy_stream_flags_nothing() -> None:
    view = ClassView()
    for _ in range(2000):
        truth = random.Random(_).choice("abc")
        view.observe(truth, truth, weight=20.0, audit=True)
        view.observe(truth, truth, weight=1.0, audit=False)
    assert view.flags() == {}


def test_a_rare_class_never_predicted_is_flagged_twice_over() -> None:
    view = ClassView()
    stream(view, 20_000, random.Random(1), rare_predicted=False)
    assert view.flags() == {"rare": ("never predicted", "under auto labeled")}
    share, auto = view.share("rare")
    assert 0.02 < share < 0.04 and auto == 0.0


def test_a_class_predicted_but_never_auto_labeled_is_under_auto_labeled() -> None:
    view = ClassView()
    stream(view, 20_000, random.Random(2), rare_predicted=True)
    assert view.flags() == {"rare": ("under auto labeled",)}


def test_too_little_support_flags_nothing() -> None:
    view = ClassView(min_support=20)
    for _ in range(10):
        view.observe("x", "y", weight=1.0, audit=False)
    assert view.flags() == {}
