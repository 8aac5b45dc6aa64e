"""The per-class view: is any class left out of automation?

Overall precision can hide a class: a 2% class that the model never predicts is
auto-labeled as the majority class, and precision still reads 97%. :class:`ClassView`
tallies, from the answers the learner absorbs, how often each true class occurs (audits
stand for ``1 / audit_rate`` accepted records, so the tally estimates the stream's own
mix), how often it was auto-accepted *as itself* (audits of accepted records whose
prediction was right), and how often the model in use predicted it. It flags:

* ``never predicted``: reviewers labeled it at least ``min_support`` times, and none of
  the model's last ``recent`` predictions was it;
* ``under auto labeled``: its share of correct auto-labels is less than ``factor`` times
  the automation of the stream as a whole.

>>> view = ClassView(min_support=5)
>>> for _ in range(50):
...     view.observe("big", "big", weight=20.0, audit=True)  # accepted, audited, right
...     view.observe("small", "big", weight=1.0, audit=False)  # reviewed: always missed
>>> view.flags()
{'small': ('never predicted', 'under auto labeled')}
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field

MAX_CLASSES = 200


@dataclass(slots=True)
class ClassView:
    min_support: float = 20.0
    factor: float = 1 / 3
    recent: int = 500
    _weight: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    _auto: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    _predicted: deque[str] = field(default_factory=deque)
    _audited: float = 0.0  # estimated accepted records (all audits, weighted)
    _total: float = 0.0

    def observe(self, truth: str, predicted: str | None, *, weight: float, audit: bool) -> None:
        """One answer: its true label, the model's prediction, its weight, whether audit."""
        # _weight: estimated records per true class; _auto: of them auto-labeled as themselves
        if truth not in self._weight and len(self._weight) >= MAX_CLASSES:
            return
        self._weight[truth] += weight
        self._total += weight
        if audit:
            self._audited += weight
            if predicted == truth:
                self._auto[truth] += weight
        if predicted is not None:
            self._predicted.append(predicted)
            if len(self._predicted) > self.recent:
                self._predicted.popleft()

    def reset(self) -> None:
        self._weight.clear()
        self._auto.clear()
        self._predicted.clear()
        self._audited = self._total = 0.0

    def flags(self) -> dict[str, tuple[str, ...]]:
        """Flagged classes and why (empty when nothing looks left out)."""
        if not self._total:
            return {}
        automation = self._audited / self._total
        predicted = set(self._predicted)
        out: dict[str, tuple[str, ...]] = {}
        for label, weight in self._weight.items():
            if weight < self.min_support:
                continue
            why = []
            if len(self._predicted) >= self.recent // 5 and label not in predicted:
                why.append("never predicted")
            if automation > 0 and self._auto[label] / weight < self.factor * automation:
                why.append("under auto labeled")
            if why:
                out[label] = tuple(why)
        return out

    def share(self, label: str) -> tuple[float, float]:
        """A class's estimated share of the stream, and of it, the share auto-labeled."""
        weight = self._weight[label]
        return (
            weight / self._total if self._total else 0.0,
            self._auto[label] / weight if weight else 0.0,
        )
