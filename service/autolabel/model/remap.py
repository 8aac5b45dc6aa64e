"""A frozen model whose labels are renamed to what reviewers say they are now.

When two confidently predicted classes swap (or a binary label flips), the model in use
is not wrong about *which records belong together*, only about their names: every record
it calls ``sky`` is now ``grass``. A model that keeps learning unlearns that slowly, and a
fresh one starts from nothing; both need thousands of post-change answers before their
confident region is certified again. :class:`RemappedClassifier` is the third way: a
frozen copy of the model taken when acceptance stopped, plus a table, learned from the
post-change answers, of the label reviewers give to the records it calls ``l``. Once one
label clearly dominates (``min_count`` answers, a majority), predictions of ``l`` are
renamed to it. Its confident region is then as right as it was before the change.

It is one more candidate of the recovery path (see ``TrustController``): its evidence is
certified like any other's and it labels only if it certifies the most automation. Its
evidence restarts whenever its table renames a label (:meth:`RemappedClassifier.learn`
says so), so a certificate rests on answers scored by one fixed predictor: the frozen
model and one renaming.

>>> from autolabel.core.messages import Record
>>> from autolabel.settings import ModelSettings
>>> from autolabel.model.classifier import OnlineClassifier
>>> base = OnlineClassifier(ModelSettings(tabular="softmax"))
>>> for i in range(200):
...     base.learn(Record(id=f"r{i}", features={"x": float(i % 2)}), "ab"[i % 2])
>>> swapped = RemappedClassifier(base, min_count=3)
>>> one = Record(id="q", features={"x": 1.0})
>>> swapped.predict_one(one).label
'b'
>>> [swapped.learn(one, "a") for _ in range(3)]  # reviewers now call these "a"
[False, False, True]
>>> swapped.predict_one(one).label, swapped.mapping
('a', {'b': 'a'})
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from autolabel.core.messages import RecordKind, RecordLike
from autolabel.model.classifier import Classifier, Prediction


class RemappedClassifier:
    """``base`` (never taught again) with its predicted labels renamed (see the module).

    Offers what the labeler and the learner use of an :class:`OnlineClassifier`.
    """

    def __init__(self, base: Classifier, *, min_count: int = 8) -> None:
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        self.base = base
        self.min_count = min_count
        self.counts: dict[str, Counter[str]] = {}  # base's label -> reviewers' labels
        self.mapping: dict[str, str] = {}  # only the labels renamed
        self.version = base.version
        self._last: tuple[RecordLike, Prediction | None] | None = None  # (record, base's)

    def __getstate__(self) -> dict[str, object]:
        state = self.__dict__.copy()
        state["_last"] = None  # a cache of the last prediction: not part of a snapshot
        return state

    # -- predicting ----------------------------------------------------------------------

    def learned(self, kind: RecordKind | None = None) -> int:
        return self.base.learned(kind)

    def kinds(self) -> Sequence[RecordKind]:
        return self.base.kinds()

    def predict_one(self, record: RecordLike) -> Prediction | None:
        prediction = self.base.predict_one(record)
        self._last = (record, prediction)
        return self._rename(prediction)

    def predict(self, records: Sequence[RecordLike]) -> list[Prediction | None]:
        return [self._rename(p) for p in self.base.predict(records)]

    def predict_batch(self, records: Sequence[RecordLike]) -> list[Prediction] | None:
        predictions = self.base.predict_batch(records)
        if predictions is None or not self.mapping:
            return predictions
        return [self._renamed(p) for p in predictions]

    def _rename(self, prediction: Prediction | None) -> Prediction | None:
        if prediction is None or not self.mapping:
            return prediction
        return self._renamed(prediction)

    def _renamed(self, p: Prediction) -> Prediction:
        mapping = self.mapping
        if p.label not in mapping and not any(label in mapping for label, _ in p.top):
            return p
        top: list[tuple[str, float]] = []
        seen: set[str] = set()
        for label, share in p.top:
            name = mapping.get(label, label)
            if name not in seen:
                seen.add(name)
                top.append((name, share))
        label = mapping.get(p.label, p.label)
        confidence = p.confidence
        if label != p.label:  # as sure as the base, times how often reviewers said so
            counts = self.counts[p.label]
            confidence *= counts[label] / sum(counts.values())
        second = top[1][1] if len(top) > 1 else 0.0
        return Prediction(label, confidence, max(confidence - second, 0.0), tuple(top))

    # -- learning ------------------------------------------------------------------------

    def learn(self, record: RecordLike, label: str) -> bool:
        """Count what reviewers call the base's prediction for ``record``; True when that
        renamed a label (the predictor changed: evidence about it starts again)."""
        last = self._last
        prediction = last[1] if last is not None and last[0] is record else None
        if prediction is None:
            prediction = self.base.predict_one(record)
        self._last = None
        if prediction is None:
            return False
        said = prediction.label
        counts = self.counts.setdefault(said, Counter())
        counts[label] += 1
        total = sum(counts.values())
        if total < self.min_count:
            return False
        top, n = counts.most_common(1)[0]
        name = top if 2 * n > total else said
        if self.mapping.get(said, said) == name:
            return False
        if name == said:
            del self.mapping[said]
        else:
            self.mapping[said] = name
        self.version += 1
        return True
