"""The demo's bookkeeping, pure: what came out for what went in, checked against the truth,
and the words and tables that report it. :mod:`autolabel.tools.demo` does the I/O.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client.parser import text_string_to_metric_families
from rich import box
from rich.table import Table

from autolabel.trust.risk import clopper_pearson_lower

RECENT_WINDOW = 500  # records behind the "recent share auto-accepted" figure

# The worker's metrics the demo reads (see autolabel.worker.metrics).
ABSORBED = "autolabel_feedback_learned_total"
LEARNED = "autolabel_model_examples_learned"
ACCURACY = "autolabel_prequential_accuracy"
TARGET = "autolabel_target_precision"
BOUND = "autolabel_certified_precision_lower_bound"
DRIFTS = "autolabel_drift_events_total"
PROMOTIONS = "autolabel_model_promotions_total"

Outcome = Literal["labels", "review", "dead-letter"]


# --- the bookkeeping (pure) ----------------------------------------------------------------


@dataclass
class DemoTally:
    """What came out of the service for what went in, checked against the truth.

    Keys are the record ids (the Kafka keys; a dead letter without a readable id
    is keyed by its input's key). The first output per key counts; any later
    one is a duplicate (at-least-once delivery), a *conflicting* one when it
    landed on a different topic.

    >>> t = DemoTally(truth={"a": "cat", "b": "dog", "c": "cat"},
    ...               malformed={"bad": "invalid_json"})
    >>> t.sent = 4
    >>> t.ingest_label("a", "cat", "certified")
    >>> t.ingest_label("b", "cat", "certified")   # wrong
    >>> t.ingest_review("c", "uncertain")
    >>> t.ingest_dead("bad", "invalid_json")
    >>> t.ingest_label("a", "cat", "certified")   # a redelivery
    >>> t.accepted, t.precision, t.wrong, t.auto_share, t.duplicates
    (2, 0.5, 1, 0.6666666666666666, 1)
    >>> t.complete, sorted(t.unanswered)
    (False, ['c'])
    >>> t.ingest_answer("c", "review"); t.sending_done = True
    >>> t.complete, t.problems()
    (True, [])
    >>> t.ingest_review("a", "uncertain")   # a redelivery that was routed differently
    >>> t.duplicates, t.conflicting, t.accepted
    (2, 1, 2)
    """

    truth: Mapping[str, str]  # valid record id -> true label
    malformed: Mapping[str, str]  # malformed key -> expected dead-letter reason
    sent: int = 0
    sending_done: bool = False
    outcome: dict[str, Outcome] = field(default_factory=dict)
    duplicates: int = 0
    conflicting: int = 0
    unknown_keys: int = 0  # outputs for keys this run never sent
    unreadable: int = 0  # outputs that did not parse as their topic's message
    accepted: int = 0
    correct: int = 0
    accepted_by_reason: Counter[str] = field(default_factory=Counter)
    review_by_reason: Counter[str] = field(default_factory=Counter)
    dead_by_reason: Counter[str] = field(default_factory=Counter)
    malformed_caught: int = 0
    misrouted_malformed: list[str] = field(default_factory=list)
    valid_dead: list[str] = field(default_factory=list)
    review_ids: set[str] = field(default_factory=set)
    answered: dict[str, str] = field(default_factory=dict)  # id -> feedback source
    human: bool = False  # a person answers (autolabel demo --reviewer terminal)
    human_labels: dict[str, str] = field(default_factory=dict)  # id -> the person's label
    seeded: int = 0  # seed labels published before the stream
    answer_errors: int = 0
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=RECENT_WINDOW))
    worker: dict[str, float] = field(default_factory=dict)  # scraped metrics

    # -- ingesting --

    def _first(self, key: str, outcome: Outcome) -> bool:
        """Register an output; ``False`` when it is a duplicate or unknown."""
        if key not in self.truth and key not in self.malformed:
            self.unknown_keys += 1
            return False
        seen = self.outcome.get(key)
        if seen is not None:
            self.duplicates += 1
            self.conflicting += seen != outcome
            return False
        self.outcome[key] = outcome
        return True

    def ingest_label(self, key: str, label: str | None, reason: str) -> None:
        """An auto-accepted label (``label`` is None when the message was unreadable)."""
        if not self._first(key, "labels"):
            return
        self._misrouted(key)
        if key in self.truth:
            self.accepted += 1
            self.accepted_by_reason[reason] += 1
            self.correct += label == self.truth[key]
            self.recent.append(True)

    def ingest_review(self, key: str, reason: str) -> None:
        """A review request."""
        if not self._first(key, "review"):
            return
        self._misrouted(key)
        self.review_by_reason[reason] += 1
        if key in self.truth:
            self.review_ids.add(key)
            self.recent.append(False)

    def ingest_dead(self, key: str, reason: str) -> None:
        """A dead letter."""
        if not self._first(key, "dead-letter"):
            return
        self.dead_by_reason[reason] += 1
        if key in self.malformed:
            if self.malformed[key] == reason:
                self.malformed_caught += 1
            else:
                self.misrouted_malformed.append(f"{key} (got {reason})")
        else:
            self.valid_dead.append(f"{key} ({reason})")

    def ingest_answer(self, key: str, source: str) -> None:
        """The reviewer's answer was acknowledged by the broker."""
        self.answered[key] = source

    def _misrouted(self, key: str) -> None:
        if key in self.malformed:
            self.misrouted_malformed.append(f"{key} (not dead-lettered)")

    # -- figures --

    @property
    def expected(self) -> int:
        return len(self.truth) + len(self.malformed)

    @property
    def resolved(self) -> int:
        return len(self.outcome)

    @property
    def reviewed(self) -> int:
        return sum(self.review_by_reason.values())

    @property
    def dead(self) -> int:
        return sum(self.dead_by_reason.values())

    @property
    def wrong(self) -> int:
        return self.accepted - self.correct

    @property
    def precision(self) -> float | None:
        """Share of auto-accepted labels that match the truth."""
        return self.correct / self.accepted if self.accepted else None

    @property
    def auto_share(self) -> float | None:
        """Share of valid records whose output so far is an auto-accepted label."""
        routed = self.accepted + len(self.review_ids)
        return self.accepted / routed if routed else None

    @property
    def recent_share(self) -> float | None:
        """Share auto-accepted among the last ``RECENT_WINDOW`` routed records."""
        return sum(self.recent) / len(self.recent) if self.recent else None

    @property
    def missing(self) -> list[str]:
        """Keys sent that have no output yet (sorted)."""
        return sorted(k for k in (*self.truth, *self.malformed) if k not in self.outcome)

    @property
    def unanswered(self) -> set[str]:
        return self.review_ids - self.answered.keys()

    @property
    def complete(self) -> bool:
        """Everything sent came out, and every review request was answered."""
        return self.sending_done and self.resolved == self.expected and not self.unanswered

    def problems(self) -> list[str]:
        """Broken guarantees, readable; empty when the run was clean."""
        out: list[str] = []
        if missing := self.missing:
            out.append(
                f"{len(missing)} of {self.expected} messages never came out on labels, review"
                f" or dead-letter (e.g. {', '.join(missing[:5])})"
            )
        if (unanswered := self.unanswered) and not self.human:  # a person may stop any time
            out.append(
                f"{len(unanswered)} review requests were not answered"
                f" (e.g. {', '.join(sorted(unanswered)[:5])})"
            )
        if self.misrouted_malformed:
            out.append("malformed input not dead-lettered as expected: " + ", ".join(
                self.misrouted_malformed[:5]))  # fmt: skip
        if self.valid_dead:
            out.append(
                f"{len(self.valid_dead)} valid records were dead-lettered: "
                + ", ".join(self.valid_dead[:5])
            )
        if self.answer_errors:
            out.append(f"{self.answer_errors} reviewer answers failed to send")
        if self.unreadable:
            out.append(f"{self.unreadable} outputs did not parse as their topic's message")
        if self.unknown_keys:
            out.append(f"{self.unknown_keys} outputs carried a key this run never sent")
        return out


def format_counts(counts: Mapping[str, int]) -> str:
    """``cold_start 50, uncertain 7`` (largest first), or ``-`` when empty.

    >>> format_counts(Counter({"uncertain": 7, "cold_start": 50, "drift": 0}))
    'cold_start 50, uncertain 7'
    """
    items = [(k, n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n]
    return ", ".join(f"{k} {n:,}" for k, n in items) or "-"


def percent(value: float | None, digits: int = 1) -> str:
    """``97.3%``, or ``n/a``.

    >>> percent(0.97312), percent(None), percent(1.0, 0)
    ('97.3%', 'n/a', '100%')
    """
    return "n/a" if value is None else f"{value:.{digits}%}"


def parse_metrics(text: str) -> dict[str, float]:
    """A Prometheus text exposition as sample name → value, summed over label values.

    Non-finite samples are left out.

    >>> text = 'a 0.5\\nb_total{x="1"} 3.0\\nb_total{x="2"} 1.0\\nc NaN\\n'
    >>> parse_metrics(text)
    {'a': 0.5, 'b_total': 4.0}
    """
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if math.isfinite(sample.value):
                values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
    return values


def interpretation(tally: DemoTally, target: float | None) -> str:
    """A few honest sentences about the run.

    >>> t = DemoTally(truth={"a": "x", "b": "x"}, malformed={})
    >>> interpretation(t, 0.95)
    'Nothing came out yet.'
    >>> t.ingest_label("a", "x", "certified"); t.ingest_review("b", "cold_start")
    >>> interpretation(t, 0.95)  # doctest: +NORMALIZE_WHITESPACE
    'The service auto-labeled 50% of the records (50% of the last 2) at 100.0% precision
    against the truth (target 95%), on only 1 accepted labels: too few to judge. 1 went to
    review as cold start: the policy did not yet have the evidence to certify a threshold.
    The simulated reviewer labeled everything else, and the worker learned online from its
    answers.'
    """
    t = tally
    sentences: list[str] = []
    if t.precision is None:
        if not t.resolved:
            return "Nothing came out yet."
        sentences.append(
            "Nothing was auto-accepted: the policy never gathered the evidence to trust the"
            " model in this run, so every record went to the reviewer (try more records)."
        )
    else:
        target_text = f" (target {percent(target, 0)})" if target is not None else ""
        few = t.accepted < 100
        # The run itself is a sample: how sure are we that the true precision is short?
        right = t.accepted - t.wrong
        upper = 1.0 - clopper_pearson_lower(t.wrong, t.accepted, 0.025) if t.accepted else 1.0
        if target is not None and upper < target:
            verdict = (
                f" — BELOW the target{' (a small sample)' if few else ''}:"
                " treat these labels with suspicion."
            )
        elif target is not None and t.precision < target:
            verdict = (
                f", a hair under the target but within this run's sampling noise ({right:,} of"
                f" {t.accepted:,} right; the 95% interval reaches {percent(upper)})."
            )
        elif few:
            verdict = f", on only {t.accepted} accepted labels: too few to judge."
        else:
            verdict = "."
        sentences.append(
            f"The service auto-labeled {percent(t.auto_share, 0)} of the records"
            f" ({percent(t.recent_share, 0)} of the last {len(t.recent):,}) at"
            f" {percent(t.precision)} precision against the truth{target_text}{verdict}"
        )
    if cold := t.review_by_reason.get("cold_start", 0):
        sentences.append(
            f"{cold:,} went to review as cold start: the policy did not yet have the"
            " evidence to certify a threshold."
        )
    absorbed = t.worker.get(ABSORBED)
    if t.human:
        agreed = sum(t.truth.get(k) == label for k, label in t.human_labels.items())
        left = len(t.unanswered)
        sentences.append(
            f"You answered {len(t.answered):,} review requests"
            + (f" ({left:,} left for the next reviewer)" if left else "")
            + f" and agreed with the data set's labels on {agreed:,} of them;"
            " the worker learned online from your answers."
        )
    elif absorbed is not None and absorbed - t.seeded < len(t.answered):
        sentences.append(
            f"The simulated reviewer labeled everything else; the worker's learner had taken in"
            f" {int(absorbed - t.seeded):,} of its {len(t.answered):,} answers when the demo"
            " stopped waiting."
        )
    else:
        sentences.append(
            "The simulated reviewer labeled everything else, and the worker learned online"
            " from its answers."
        )
    return " ".join(sentences)


Row = tuple[str, str, str]  # name, value, detail


def live_rows(tally: DemoTally, elapsed: float) -> list[Row]:
    """The progress rows shown while the demo runs."""
    t = tally
    absorbed = t.worker.get(ABSORBED)
    accuracy = t.worker.get(ACCURACY)
    recent = f"last {RECENT_WINDOW}: {percent(t.recent_share)}"
    return [
        ("records sent", f"{min(t.sent, t.expected):,} / {t.expected:,}",
         f"{len(t.truth):,} records + {len(t.malformed)} malformed"),
        ("outputs seen", f"{t.resolved:,} / {t.expected:,}", f"duplicates {t.duplicates}"),
        ("auto-accepted", f"{t.accepted:,}", f"{percent(t.auto_share)} of routed; {recent}"),
        ("precision vs truth", percent(t.precision), f"{t.wrong:,} wrong"),
        ("sent to review", f"{t.reviewed:,}", format_counts(t.review_by_reason)),
        ("reviewer answers", f"{len(t.answered):,}", f"{len(t.unanswered):,} pending"),
        ("dead letters", f"{t.dead:,}", format_counts(t.dead_by_reason)),
        ("worker learner", f"{int(absorbed or 0):,} answers",
         f"prequential accuracy {percent(accuracy)}"),
        ("elapsed", f"{elapsed:.1f} s", ""),
    ]  # fmt: skip


def summary_rows(tally: DemoTally, elapsed: float, target: float | None) -> list[Row]:
    """The final, honest summary.

    >>> t = DemoTally(truth={"a": "x"}, malformed={"bad": "invalid_json"})
    >>> t.ingest_label("a", "x", "certified"); t.ingest_dead("bad", "invalid_json")
    >>> for row in summary_rows(t, 1.0, 0.95)[1:4]: print(row)
    ('records', '1', '+ 1 malformed messages')
    ('auto-accepted', '1', '100.0% of records; certified 1')
    ('precision', '100.0%', 'auto-accepted labels vs truth: 0 wrong; target 95%')
    """
    t = tally
    w = t.worker
    learned = w.get(LEARNED)
    absorbed = w.get(ABSORBED)
    rows: list[Row] = [
        ("seed labels", f"{t.seeded:,}", "checked for label errors, learned before the stream"),
        ("records", f"{len(t.truth):,}", f"+ {len(t.malformed)} malformed messages"),
        ("auto-accepted", f"{t.accepted:,}",
         f"{percent(t.auto_share)} of records; {format_counts(t.accepted_by_reason)}"),
        ("precision", percent(t.precision),
         f"auto-accepted labels vs truth: {t.wrong:,} wrong"
         + (f"; target {percent(target, 0)}" if target is not None else "")),
    ]  # fmt: skip
    if BOUND in w:
        bound = w[BOUND]
        rows.append(("certified bound", percent(bound), "the policy's own lower bound, at the end"))
    rows += [
        ("recent share", percent(t.recent_share),
         f"auto-accepted among the last {len(t.recent):,} records"),
        ("review requests", f"{t.reviewed:,}", format_counts(t.review_by_reason)),
        ("reviewer answers", f"{len(t.answered):,}", format_counts(Counter(t.answered.values()))),
        ("dead letters", f"{t.dead:,}", format_counts(t.dead_by_reason)),
        ("malformed caught", f"{t.malformed_caught} / {len(t.malformed)}",
         "dead-lettered with the expected reason"),
        ("duplicates", f"{t.duplicates:,}",
         f"redelivered outputs (at-least-once); {t.conflicting} conflicting"),
        ("answers absorbed", "n/a" if absorbed is None else f"{int(absorbed - t.seeded):,}",
         "answers the worker's learner took in"),
        ("examples learned", "n/a" if learned is None else f"{int(learned):,}",
         "in the worker's current model"),
        ("prequential acc.", percent(w.get(ACCURACY)),
         "worker's rolling accuracy on the answers (mostly hard cases)"),
    ]  # fmt: skip
    if DRIFTS in w:
        rows.append((
            "drift alarms", f"{int(w[DRIFTS]):,}",
            f"model replacements {int(w.get(PROMOTIONS, 0)):,}; this data set does not drift,"
            " so any alarm is a false one",
        ))  # fmt: skip
    rows += [
        ("run time", f"{elapsed:.1f} s", f"outputs for {t.resolved:,} of {t.expected:,} messages"),
    ]  # fmt: skip
    return rows


def render(rows: Iterable[Row], title: str, *, header: bool) -> Table:
    """A three-column rich table of ``rows``."""
    table = Table(
        box=box.SIMPLE_HEAD if header else box.SIMPLE,
        title=title,
        title_justify="left",
        show_header=header,
    )
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("detail", style="" if header else "dim")
    for row in rows:
        table.add_row(*row)
    return table
