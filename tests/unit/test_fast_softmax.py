"""The numpy batch path predicts what River predicts, for the default tabular model."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolabel.core.messages import Record
from autolabel.model.classifier import OnlineClassifier
from autolabel.model.fast_softmax import compile_softmax
from autolabel.settings import ModelSettings


def random_record(rng: random.Random, i: int) -> Record:
    features: dict[str, float | int | str | bool] = {}
    for name in ("a", "b", "c", "d"):
        if rng.random() < 0.85:  # some features missing
            features[name] = rng.gauss(0, 3)
    if rng.random() < 0.7:
        features["colour"] = rng.choice(("red", "green", "blue", "never-seen"))
    if rng.random() < 0.05:  # a number-like string where a number was learned
        features["a"] = rng.choice(("3", "-1.5", "x"))
    features["flag"] = rng.random() < 0.5
    features["const"] = 1.0  # zero variance: River scales it to 0
    return Record(id=f"r{i}", features=features)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_learn=st.integers(1, 200), n_classes=st.integers(1, 5))
def test_batch_path_equals_river(seed: int, n_learn: int, n_classes: int) -> None:
    rng = random.Random(seed)
    clf = OnlineClassifier(ModelSettings())
    for i in range(n_learn):
        clf.learn(random_record(rng, i), f"k{rng.randrange(n_classes)}")
    batch = [random_record(rng, 10_000 + i) for i in range(50)]
    fast = clf.predict(batch)
    slow = [clf.predict_one(r) for r in batch]
    assert compile_softmax(clf._models["features"]) is not None  # the fast path ran
    assert clf.predict_batch(batch) == fast  # what the learner scores a chunk with
    for f, s in zip(fast, slow, strict=True):
        assert f is not None and s is not None
        assert f.confidence == pytest.approx(s.confidence, abs=1e-9)
        assert f.margin == pytest.approx(s.margin, abs=1e-9)
        if s.margin > 1e-9:  # ties may order either way
            assert f.label == s.label
            assert [k for k, _ in f.top] == [k for k, _ in s.top]


def test_other_models_and_kinds_fall_back_to_river() -> None:
    clf = OnlineClassifier(ModelSettings(tabular="naive_bayes"))
    clf.learn(Record(id="1", features={"x": 1.0}), "a")
    clf.learn(Record(id="2", features={"x": -1.0}), "b")
    assert compile_softmax(clf._models["features"]) is None
    mixed = [Record(id="3", features={"x": 0.9}), Record(id="4", text="hello")]
    out = clf.predict(mixed)
    assert out[0] is not None and out[0].label == "a"
    assert out[1] is None  # no text model yet


def test_a_number_like_string_is_not_read_as_a_number() -> None:
    """River one-hot encodes strings; the batch path must not coerce "3" to 3."""
    clf = OnlineClassifier(ModelSettings())
    for i in range(50):
        clf.learn(Record(id=str(i), features={"a": 3.0 * (i % 2), "b": "x"}), f"k{i % 2}")
    record = Record(id="q", features={"a": "3", "b": "x"})
    fast, slow = clf.predict([record])[0], clf.predict_one(record)
    assert fast is not None and slow is not None
    assert fast.confidence == pytest.approx(slow.confidence, abs=1e-9)


def test_predict_batch_declines_what_it_cannot_do_in_one_product() -> None:
    """None (predict one at a time) for an empty batch, a record of another kind, or a
    model that is not the default softmax pipeline."""
    clf = OnlineClassifier(ModelSettings())
    record = Record(id="1", features={"x": 1.0})
    assert clf.predict_batch([record]) is None  # nothing learned yet
    clf.learn(record, "a")
    clf.learn(Record(id="2", features={"x": -1.0}), "b")
    assert clf.predict_batch([]) is None
    assert clf.predict_batch([record, Record(id="3", text="hi")]) is None
    assert clf.predict_batch([record]) == clf.predict([record])
    nb = OnlineClassifier(ModelSettings(tabular="naive_bayes"))
    nb.learn(record, "a")
    assert nb.predict_batch([record]) is None


def test_a_category_is_matched_by_its_string_only() -> None:
    """A learned category adds its weights; a number (even one equal to nothing), a
    missing value or a value never seen adds none, as River's one-hot encoder."""
    clf = OnlineClassifier(ModelSettings())
    for i in range(60):
        colour = ("red", "green", "blue")[i % 3]
        clf.learn(Record(id=str(i), features={"a": float(i % 3), "c": colour}), f"k{i % 3}")
    compiled = compile_softmax(clf._models["features"])
    assert compiled is not None
    rows = [{"a": 1.0, "c": c} for c in ("red", "green", "blue", "never", 1.0, True)]
    rows.append({"a": 1.0})
    batch = compiled.predict_proba(rows)
    for row, proba in zip(rows, batch, strict=True):
        slow = clf.predict_one(Record(id="q", features=row))  # type: ignore[arg-type]
        assert slow is not None
        expected = dict(slow.top)
        for label, p in zip(compiled.classes, proba, strict=True):
            assert p == pytest.approx(expected[label], abs=1e-6)
    unhashable = compiled.predict_proba([{"a": 1.0, "c": ["red"]}])  # not a valid record
    assert unhashable.tolist() == compiled.predict_proba([{"a": 1.0}]).tolist()
