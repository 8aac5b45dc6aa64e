"""The drift suite's streams: deterministic, and their changes are where they say."""

from __future__ import annotations

import statistics
from collections import Counter

import pytest
from sklearn.linear_model import LogisticRegression

from autolabel.tools.suite_streams import NAMES, SuiteStream, build, flip_share

SCALE = 0.2  # every stream at a fifth of its length; change points scale with it


@pytest.mark.parametrize("name", NAMES)
def test_every_stream_is_fixed_by_its_seed_and_varies_with_the_variant(name: str) -> None:
    stream = build(name, scale=SCALE)
    assert stream.rows == build(name, scale=SCALE).rows
    assert stream.rows, name
    assert all(isinstance(label, str) for _, label in stream.rows)
    assert all(0 < c < len(stream.rows) for c in stream.change_points)
    assert list(stream.change_points) == sorted(set(stream.change_points))
    other = build(name, variant=1, scale=SCALE)
    assert other.rows != stream.rows  # another order, other seeds or other changes
    assert other.kind == stream.kind and len(other.change_points) == len(stream.change_points)
    assert stream.describe()["rows"] == len(stream.rows)


def test_the_suite_lengths_and_change_points_at_full_scale() -> None:
    stagger = build("stagger_changes")
    assert (len(stagger.rows), stagger.change_points) == (9000, (3000, 6000))
    # the existing drift streams stay as they were: 10,000 rows, change at 5,000
    assert build("hyperplane_drift").change_points == (5000,)
    assert len(build("image_segments").rows) == 2310
    assert build("stagger_changes", variant=2).change_points != stagger.change_points


def test_kinds_say_how_orders_may_be_shuffled() -> None:
    assert build("minority_2pct", scale=SCALE).shuffle_segments == ()
    swap = build("segments_swap", scale=SCALE)
    assert swap.kind == "abrupt" and swap.swap
    assert swap.shuffle_segments == swap.change_points
    assert build("rbf_gradual", scale=SCALE).shuffle_segments is None
    assert build("covariate_shift", scale=SCALE).kind == "covariate_shift"


def _rule_holds(stream: SuiteStream, start: int, stop: int, rule: object) -> bool:
    return all(rule(x) == y for x, y in stream.rows[start:stop])  # type: ignore[operator]


def test_sea_flips_and_changes_threshold_exactly_at_the_change_points() -> None:
    flip = build("sea_flip_drift", scale=SCALE)
    (at,) = flip.change_points
    assert _rule_holds(flip, 0, at, lambda x: str(x["x0"] + x["x1"] > 8))
    assert _rule_holds(flip, at, len(flip.rows), lambda x: str(not x["x0"] + x["x1"] > 8))
    sea = build("sea_variants", scale=SCALE)
    a, b = sea.change_points
    thresholds = [{0: 8, 1: 9, 2: 7, 3: 9.5}[v] for v in sea.details["sea_variants"]]
    for (start, stop), t in zip([(0, a), (a, b), (b, len(sea.rows))], thresholds, strict=True):
        assert _rule_holds(sea, start, stop, lambda x, t=t: str(x["x0"] + x["x1"] > t))
        # and not the previous concept: some rows in the segment disagree with it
    assert not _rule_holds(sea, a, b, lambda x: str(x["x0"] + x["x1"] > thresholds[0]))


def test_stagger_changes_concept_twice_where_it_says() -> None:
    stream = build("stagger_changes", scale=SCALE)
    rules = {
        0: lambda x: str(int(x["size"] == "small" and x["color"] == "red")),
        1: lambda x: str(int(x["color"] == "green" or x["shape"] == "circle")),
        2: lambda x: str(int(x["size"] in ("medium", "large"))),
    }
    a, b = stream.change_points
    bounds = [(0, a), (a, b), (b, len(stream.rows))]
    for (start, stop), function in zip(bounds, stream.details["functions"], strict=True):
        assert _rule_holds(stream, start, stop, rules[function])
        assert start == 0 or not _rule_holds(stream, start - 50, start + 50, rules[function])


def test_two_confident_classes_swap_labels_at_the_change_point() -> None:
    stream = build("segments_swap", scale=0.5)
    (at,) = stream.change_points
    a, b = stream.details["swapped"]
    assert (a, b) == ("sky", "grass")  # variant 0

    def mean(rows: list[tuple[dict[str, float], str]], label: str) -> float:
        return statistics.fmean(x["intensity-mean"] for x, y in rows if y == label)

    before, after = stream.rows[:at], stream.rows[at:]
    # what was called sky (bright) is called grass after the change, and the reverse
    assert mean(after, b) == pytest.approx(mean(before, a), rel=0.1)
    assert mean(after, a) == pytest.approx(mean(before, b), rel=0.1)
    assert abs(mean(before, a) - mean(before, b)) > 50


def test_the_late_class_is_absent_before_the_change_and_present_after() -> None:
    stream = build("late_class", scale=SCALE)
    (at,) = stream.change_points
    late = stream.details["late_class"]
    assert all(y != late for _, y in stream.rows[:at])
    after = Counter(y for _, y in stream.rows[at:])
    assert after[late] / (len(stream.rows) - at) == pytest.approx(1 / 7, abs=0.05)


def test_the_minority_class_is_two_percent() -> None:
    stream = build("minority_2pct", scale=SCALE)
    counts = Counter(y for _, y in stream.rows)
    assert counts[stream.details["minority_class"]] == round(0.02 * len(stream.rows))
    assert len(counts) == 10


def test_label_noise_flips_ten_percent_of_labels_to_another_class() -> None:
    stream = build("label_noise_10pct", scale=SCALE)
    assert stream.clean_labels is not None
    assert flip_share(stream) == pytest.approx(0.10, abs=0.001)
    classes = {y for _, y in stream.rows}
    assert len(classes) == 3 and set(stream.clean_labels) == classes


def _linear_fit_then_score(stream: SuiteStream) -> float:
    """Accuracy on the second part of a linear model fitted on the first part."""
    (at,) = stream.change_points
    names = sorted(stream.rows[0][0])
    xs = [[x[k] for k in names] for x, _ in stream.rows]
    ys = [y for _, y in stream.rows]
    model = LogisticRegression(C=1e4, max_iter=2000).fit(xs[:at], ys[:at])
    return float(model.score(xs[at:], ys[at:]))


def test_covariate_shift_moves_the_inputs_and_keeps_the_labeling_rule() -> None:
    stream = build("covariate_shift", scale=SCALE)
    (at,) = stream.change_points
    feature = stream.details["shifted_feature"]
    assert all(x[feature] < 0.5 for x, _ in stream.rows[:at])
    assert all(x[feature] >= 0.5 for x, _ in stream.rows[at:])
    # the rule learned on the first region still labels the second one
    assert _linear_fit_then_score(stream) > 0.97
    # where the concept does change, the same check fails
    assert _linear_fit_then_score(build("hyperplane_drift", scale=SCALE)) < 0.9


def test_gradual_drift_starts_at_its_change_point() -> None:
    stream = build("hyperplane_gradual", scale=0.5)
    (at,) = stream.change_points
    names = sorted(stream.rows[0][0])
    xs = [[x[k] for k in names] for x, _ in stream.rows]
    ys = [y for _, y in stream.rows]
    model = LogisticRegression(C=1e4, max_iter=2000).fit(xs[:at], ys[:at])
    assert model.score(xs[:at], ys[:at]) > 0.98  # one concept before the start
    assert model.score(xs[-500:], ys[-500:]) < 0.95  # the end has drifted away


def test_unknown_names_and_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown stream"):
        build("nope")
    with pytest.raises(ValueError, match="variant"):
        build("phishing", variant=-1)
    with pytest.raises(ValueError, match="scale"):
        build("phishing", scale=0)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("segments_swap", "swapped"),
        ("led_swap", "swapped"),
        ("late_class", "late_class"),
        ("minority_2pct", "minority_class"),
        ("agrawal_switch", "functions"),
        ("stagger_changes", "functions"),
    ],
)
def test_other_variants_choose_other_classes_and_functions(name: str, key: str) -> None:
    suite = build(name, scale=0.05).details[key]
    for variant in (1, 2, 3):
        other = build(name, variant=variant, scale=0.05).details[key]
        assert other != suite and (key != "swapped" or set(other) != set(suite))
