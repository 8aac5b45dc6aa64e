"""autolabel.model.remap: a frozen model with its labels renamed after a swap."""

from __future__ import annotations

import pickle
import random

import pytest

from autolabel.core.messages import Record
from autolabel.model.classifier import OnlineClassifier
from autolabel.model.remap import RemappedClassifier
from autolabel.settings import ModelSettings

SWAP = {"a": "b", "b": "a"}


def rec(i: int, x: float) -> Record:
    """A record near class ``round(x)``: one feature per class."""
    return Record(id=f"r{i}", features={f"f{k}": max(0.0, 1.0 - abs(x - k)) for k in range(3)})


def trained(classes: str = "abc", n: int = 600, seed: int = 0) -> OnlineClassifier:
    """A softmax model that tells ``classes`` apart by x (class k near x = k)."""
    rng = random.Random(seed)
    model = OnlineClassifier(ModelSettings(tabular="softmax"))
    for i in range(n):
        k = rng.randrange(len(classes))
        model.learn(rec(i, k + rng.gauss(0, 0.1)), classes[k])
    return model


def test_a_swap_is_renamed_once_reviewers_agree_and_confidence_follows_them() -> None:
    base = trained()
    remapped = RemappedClassifier(base, min_count=5)
    probes = [rec(10_000 + k, float(k)) for k in range(3)]
    before = [base.predict_one(r) for r in probes]
    assert [p.label for p in before if p] == ["a", "b", "c"]
    changed = []
    for i in range(40):  # reviewers now call a "b" and b "a"; c is unchanged
        r = rec(i, float(i % 3))
        truth = SWAP.get("abc"[i % 3], "abc"[i % 3])
        remapped.predict_one(r)  # scored first, as the learner does
        changed.append(remapped.learn(r, truth))
    assert remapped.mapping == SWAP
    assert sum(changed) == 2  # one rename per swapped label, each reported once
    after = [remapped.predict_one(r) for r in probes]
    assert [p.label for p in after if p] == ["b", "a", "c"]
    for b, a in zip(before, after, strict=True):
        assert a is not None and b is not None
        assert a.confidence == pytest.approx(b.confidence)  # reviewers agreed every time
        assert a.top[0][0] == a.label and len({label for label, _ in a.top}) == len(a.top)
    # a label nobody renamed keeps its confidence; only its runners-up are renamed
    assert after[2].label == "c" and after[2].confidence == before[2].confidence
    assert [SWAP.get(label, label) for label, _ in before[2].top] == [
        name for name, _ in after[2].top
    ]
    assert remapped.learned() == base.learned()  # the base was never taught again


def test_nothing_is_renamed_below_min_count_or_without_a_majority() -> None:
    remapped = RemappedClassifier(trained(), min_count=6)
    r = rec(1, 0.0)
    for truth in ["b", "b", "b", "b", "b"]:  # five answers: fewer than min_count
        assert remapped.learn(r, truth) is False
    assert remapped.mapping == {}
    remapped = RemappedClassifier(trained(), min_count=4)
    for truth in ["b", "a", "b", "a", "c", "a"]:  # no label said more than half the time
        remapped.learn(r, truth)
    assert remapped.mapping == {}


def test_a_rename_is_taken_back_when_reviewers_change_their_minds() -> None:
    remapped = RemappedClassifier(trained(), min_count=3)
    r = rec(1, 0.0)
    assert [remapped.learn(r, "b") for _ in range(3)] == [False, False, True]
    version = remapped.version
    results = [remapped.learn(r, "a") for _ in range(4)]
    assert results.count(True) == 1 and remapped.mapping == {}
    assert remapped.version == version + 1


def test_confidence_is_scaled_by_how_often_reviewers_gave_the_new_name() -> None:
    base = trained()
    remapped = RemappedClassifier(base, min_count=4)
    r = rec(1, 0.0)
    for truth in ["b", "b", "b", "c"]:
        remapped.learn(r, truth)
    p, q = base.predict_one(r), remapped.predict_one(r)
    assert p is not None and q is not None and q.label == "b"
    assert q.confidence == pytest.approx(0.75 * p.confidence)


def test_batch_predictions_equal_one_at_a_time_and_it_pickles() -> None:
    remapped = RemappedClassifier(trained(), min_count=3)
    for i in range(9):
        remapped.learn(rec(i, 0.0), "b")
    records = [rec(100 + i, (i % 3) + 0.05) for i in range(12)]
    one = [remapped.predict_one(r) for r in records]
    assert {p.label for p in one if p} == {"b", "c"}  # a is called b now

    def rounded(predictions: list) -> list:  # the batch path rounds differently
        return [(p.label, round(p.confidence, 9)) for p in predictions]

    assert rounded(remapped.predict(records)) == rounded(one)
    batch = remapped.predict_batch(records)
    assert batch is not None and rounded(batch) == rounded(one)
    remapped.predict_one(records[0])  # leaves its cached prediction behind
    copy = pickle.loads(pickle.dumps(remapped))
    assert copy._last is None  # a cache, not state: never in a snapshot
    assert copy.mapping == remapped.mapping and rounded(copy.predict(records)) == rounded(one)


def test_min_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="min_count"):
        RemappedClassifier(trained(n=10), min_count=0)


def test_a_label_not_renamed_keeps_its_confidence_when_its_runners_up_are() -> None:
    base = trained()
    remapped = RemappedClassifier(base, min_count=3)
    near_a, near_c = rec(1, 0.0), rec(2, 2.0)
    for truth in ["b", "b", "b"]:  # a is called b now
        remapped.learn(near_a, truth)
    for truth in ["c", "c", "a"]:  # c stays c, though reviewers disagreed once
        remapped.learn(near_c, truth)
    probe = rec(3, 1.6)  # c first, a or b behind it
    p, q = base.predict_one(probe), remapped.predict_one(probe)
    assert p is not None and q is not None and p.label == q.label == "c"
    assert q.confidence == p.confidence
