"""What one replay says about trust: windows, the response to each change, per class.

Pure functions of a :class:`~autolabel.tools.evaluation.StreamRun` (or of several, for
shuffled orders). Definitions, as the suite reports them:

- **worst window**: the lowest precision of auto-labels over every window of
  ``WINDOW`` consecutive records (sliding by one record) holding at least
  ``MIN_WINDOW_ACCEPTED`` auto-labels; ``None`` when no window holds that many.
- **response to a change** at record ``c`` (the first record of the new concept), up to
  the next change point ``e``: acceptance *stops* at the first record in ``[c, e)``
  decided while nothing could be accepted (not certified, drift fallback, or a labeler's
  hold); the wrong auto-labels in ``[c, stop)`` are the damage. Acceptance is *back* at
  the first auto-label after the stop; the records and the reviews (records sent to
  review) between the stop and then measure recovery. The first drift event in
  ``[c, e)`` and the wrong auto-labels before it are reported too.
- **per class**: for every class, its share of the stream and of the auto-labels (by
  predicted label), the precision and recall of its auto-labels; a class is flagged
  ``never_predicted`` when reviewers gave it at least ``MIN_REVIEWED`` times and the
  model never predicted it, and ``under_auto_labeled`` when its share of the auto-labels
  is under ``UNDER_SHARE`` of its share of the stream while at least
  ``MIN_EXPECTED_AUTO`` of its auto-labels were expected (share times auto-labels).
- **false alarms**: drift events before the first change point (all of them on a
  stream without one); on a covariate-shift stream every drift event is one.
- **oracle**: the loosest single threshold that, in hindsight, meets the target on the
  run's own label-time scores (:func:`scored_oracle`).

>>> run = _toy(accepted=[1, 1, 1, 0, 1, 1], right=[1, 1, 0, 1, 1, 1])
>>> worst_window(run, window=3, min_accepted=2)["precision"]
0.5
>>> change_response(run, 2)["wrong_before_stop"], change_response(run, 2)["stop_at"]
(1, 3)
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from scipy.stats import beta

from autolabel.trust.risk import oracle_threshold

if TYPE_CHECKING:
    from autolabel.tools.evaluation import StreamRun

WINDOW = 500
MIN_WINDOW_ACCEPTED = 20
MIN_REVIEWED = 10
UNDER_SHARE = 1 / 3
MIN_EXPECTED_AUTO = 20

REVIEWED_REASONS = frozenset({"uncertain", "audit", "drift", "cold_start"})


def scored_oracle(run: StreamRun, target_precision: float) -> dict[str, Any]:
    """The best single threshold in hindsight: on the run's own label-time scores, and on
    each candidate model's (when the run recorded them); the most automation wins.

    ``model`` says whose scores it was ("labeler": the scores the records were labeled
    with, else a candidate's name).
    """
    runs = {"labeler": list(zip(run.confidence, run.predicted, strict=True))}
    runs.update(run.candidate_scores)
    best: dict[str, Any] | None = None
    for model, scores in runs.items():
        oracle = _oracle(scores, run.truth, target_precision)
        if best is None or oracle["automation_rate"] > best["automation_rate"]:
            best = {**oracle, "model": model}
    assert best is not None
    return best


def _oracle(
    scores: list[tuple[float | None, str | None]], truth: list[str], target: float
) -> dict[str, Any]:
    conf = [c if c is not None else -1.0 for c, _ in scores]
    correct = [p is not None and p == t for (_, p), t in zip(scores, truth, strict=True)]
    threshold = oracle_threshold(conf, correct, target)
    n = len(conf)
    taken = [i for i in range(n) if conf[i] >= threshold] if math.isfinite(threshold) else []
    right = sum(correct[i] for i in taken)
    return {
        "threshold": threshold if math.isfinite(threshold) else None,
        "automation_rate": len(taken) / n if n else 0.0,
        "auto_precision": right / len(taken) if taken else None,
    }


def _wrong(run: StreamRun, i: int) -> bool:
    return run.accepted[i] and run.predicted[i] != run.truth[i]


def worst_window(
    run: StreamRun, window: int = WINDOW, min_accepted: int = MIN_WINDOW_ACCEPTED
) -> dict[str, Any] | None:
    """The window of ``window`` records whose auto-labels have the lowest precision."""
    n = len(run.truth)
    acc = [0]
    wrong = [0]
    for i in range(n):
        acc.append(acc[-1] + run.accepted[i])
        wrong.append(wrong[-1] + _wrong(run, i))
    width = min(window, n)
    worst: dict[str, Any] | None = None
    for start in range(0, n - width + 1):
        k = acc[start + width] - acc[start]
        if k < min_accepted:
            continue
        precision = 1.0 - (wrong[start + width] - wrong[start]) / k
        if worst is None or precision < worst["precision"]:
            worst = {"start": start, "stop": start + width, "accepted": k, "precision": precision}
    return worst


def change_response(run: StreamRun, at: int, until: int | None = None) -> dict[str, Any]:
    """How the run met a change at record ``at`` (see the module docstring)."""
    n = len(run.truth)
    end = n if until is None else min(until, n)
    stop = next((i for i in range(at, end) if not run.accepting[i]), None)
    damage_end = end if stop is None else stop
    accepted = sum(run.accepted[at:damage_end])
    wrong = sum(_wrong(run, i) for i in range(at, damage_end))
    event = next((d for d in sorted(run.drift_at) if at <= d < end), None)
    detect_end = end if event is None else min(event, end)
    back = None
    if stop is not None:
        back = next((i for i in range(stop, end) if run.accepted[i]), None)
    reviews = None
    if stop is not None and back is not None:
        reviews = sum(run.reason[i] in REVIEWED_REASONS for i in range(stop, back))
    segment = range(at, end)
    tail = range(end - max(1, (end - at) // 5), end)
    return {
        "at": at,
        "until": end,
        "accepting_at_change": bool(run.accepting[at]) if at < n else False,
        "stop_at": stop,
        "stopped_after": None if stop is None else stop - at,
        "accepted_before_stop": accepted,
        "wrong_before_stop": wrong,
        "first_drift_event": event,
        "wrong_before_drift_event": sum(_wrong(run, i) for i in range(at, detect_end)),
        "back_at": back,
        "back_after_records": None if back is None or stop is None else back - stop,
        "back_after_reviews": reviews,
        "segment": _summary(run, segment),
        "segment_last_fifth": _summary(run, tail),
    }


def _summary(run: StreamRun, idx: range) -> dict[str, Any]:
    n = len(idx)
    acc = [i for i in idx if run.accepted[i]]
    wrong = sum(_wrong(run, i) for i in acc)
    return {
        "records": n,
        "auto_accepted": len(acc),
        "automation_rate": len(acc) / n if n else 0.0,
        "auto_precision": 1.0 - wrong / len(acc) if acc else None,
        "auto_errors": wrong,
    }


def per_class(run: StreamRun) -> dict[str, Any]:
    """Per-class precision, recall and shares of auto-labels, and the classes flagged."""
    n = len(run.truth)
    support = Counter(run.truth)
    predicted = Counter(p for p in run.predicted if p is not None)
    reviewed = Counter(
        label
        for label, accepted, reason in zip(run.final_label, run.accepted, run.reason, strict=True)
        if not accepted and label is not None and reason in REVIEWED_REASONS
    )
    auto = Counter(p for p, a in zip(run.predicted, run.accepted, strict=True) if a)
    auto_right = Counter(
        t for p, t, a in zip(run.predicted, run.truth, run.accepted, strict=True) if a and p == t
    )
    covered = Counter(t for t, a in zip(run.truth, run.accepted, strict=True) if a)
    total_auto = sum(auto.values())
    rows: list[dict[str, Any]] = []
    flags: list[dict[str, Any]] = []
    for label in sorted(set(support) | set(predicted)):
        share = support[label] / n if n else 0.0
        expected = share * total_auto
        row_flags: list[str] = []
        if reviewed[label] >= MIN_REVIEWED and predicted[label] == 0:
            row_flags.append("never_predicted")
        if expected >= MIN_EXPECTED_AUTO and auto[label] < UNDER_SHARE * expected:
            row_flags.append("under_auto_labeled")
        row: dict[str, Any] = {
            "class": label,
            "records": support[label],
            "share": share,
            "reviewed": reviewed[label],
            "predicted": predicted[label],
            "auto_labels": auto[label],
            "auto_share": auto[label] / total_auto if total_auto else 0.0,
            "precision": auto_right[label] / auto[label] if auto[label] else None,
            "recall": auto_right[label] / support[label] if support[label] else None,
            "auto_labeled": covered[label] / support[label] if support[label] else None,
            "flags": row_flags,
        }
        for flag in row_flags:
            flags.append(
                {
                    "class": label,
                    "flag": flag,
                    "share": share,
                    "auto_share": row["auto_share"],
                    "reviewed": reviewed[label],
                }
            )
        rows.append(row)
    return {"classes": rows, "flags": flags}


def measure(
    run: StreamRun,
    target_precision: float,
    change_points: Sequence[int] = (),
    *,
    window: int = WINDOW,
) -> dict[str, Any]:
    """The stream-level measures of one run."""
    whole = _summary(run, range(len(run.truth)))
    oracle = scored_oracle(run, target_precision)
    points = sorted(c for c in change_points if 0 < c < len(run.truth))
    bounds: list[int | None] = [*points[1:], None] if points else []
    return {
        "records": whole["records"],
        "automation_rate": whole["automation_rate"],
        "auto_precision": whole["auto_precision"],
        "auto_accepted": whole["auto_accepted"],
        "auto_errors": whole["auto_errors"],
        "oracle": oracle,
        "oracle_ratio": (
            whole["automation_rate"] / oracle["automation_rate"]
            if oracle["automation_rate"]
            else None
        ),
        "worst_window": worst_window(run, window),
        "drift_events": len(run.drift_at),
        "drift_events_before_change": sum(
            d < (points[0] if points else math.inf) for d in run.drift_at
        ),
        "drift_events_at": list(run.drift_at),
        "promotions": len(run.promoted_at),
        "changes": [change_response(run, c, e) for c, e in zip(points, bounds, strict=True)],
        "per_class": per_class(run),
    }


BAR_PRECISION = 0.94
BAR_WINDOW = 0.85
BAR_WRONG_BEFORE_STOP = 20
BAR_BACK_REVIEWS = 1000
BAR_ORACLE_RATIO = 0.75
BAR_ORACLE_MIN_RECORDS = 2000


def bars(entry: dict[str, Any], target_precision: float, delta: float) -> dict[str, bool | None]:
    """The "done when" bars of issue 7 for one suite stream; ``None`` where a bar does
    not apply (or cannot be judged: nothing accepted, no window with enough labels).

    ``entry`` holds the stream's ``kind``, ``swap``, ``rows``, its generated-order
    measures (``run``, from :func:`measure`) and its ``orders`` (from
    :func:`distribution`, or ``None``).
    """
    run, kind = entry["run"], entry["kind"]
    precision = run["auto_precision"]
    worst = run["worst_window"]
    orders = entry.get("orders")
    out: dict[str, bool | None] = {
        "precision": None if precision is None else precision >= BAR_PRECISION,
        "orders_below_target": (
            orders["below_target_share"] <= delta if kind == "stationary" and orders else None
        ),
        "worst_window": None if worst is None else worst["precision"] >= BAR_WINDOW,
        "wrong_before_stop": None,
        "back_within_reviews": None,
        "automation_vs_oracle": None,
        "no_false_alarm": (
            run["drift_events"] == 0 if kind in ("stationary", "covariate_shift") else None
        ),
    }
    if entry["swap"] and run["changes"]:
        changes = run["changes"]
        out["wrong_before_stop"] = all(
            c["wrong_before_stop"] <= BAR_WRONG_BEFORE_STOP for c in changes
        )
        out["back_within_reviews"] = all(
            c["stop_at"] is None
            or (c["back_after_reviews"] is not None and c["back_after_reviews"] <= BAR_BACK_REVIEWS)
            for c in changes
        )
    if entry["rows"] >= BAR_ORACLE_MIN_RECORDS and run["oracle_ratio"] is not None:
        out["automation_vs_oracle"] = run["oracle_ratio"] >= BAR_ORACLE_RATIO
    return out


def binomial_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval for a share ``k / n``.

    >>> [round(v, 3) for v in binomial_interval(0, 20)]
    [0.0, 0.168]
    """
    if n <= 0:
        return (0.0, 1.0)
    alpha = 1.0 - level
    lo = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return (lo, hi)


def _spread(values: Sequence[float | None]) -> dict[str, float | None]:
    got = [v for v in values if v is not None]
    if not got:
        return {"min": None, "median": None, "mean": None, "max": None}
    return {
        "min": min(got),
        "median": statistics.median(got),
        "mean": statistics.fmean(got),
        "max": max(got),
    }


def distribution(runs: Sequence[dict[str, Any]], target_precision: float) -> dict[str, Any]:
    """How :func:`measure` results spread over shuffled orders of one stream.

    A run that auto-accepted nothing has no precision: it is not below target, and
    counts in the number of orders (``no_acceptance`` says how many).
    """
    n = len(runs)
    precisions = [r["auto_precision"] for r in runs]
    below = sum(p is not None and p < target_precision for p in precisions)
    lo, hi = binomial_interval(below, n)
    out: dict[str, Any] = {
        "orders": n,
        "below_target": below,
        "below_target_share": below / n if n else None,
        "below_target_interval": [lo, hi],
        "no_acceptance": sum(p is None for p in precisions),
        "auto_precision": _spread(precisions),
        "automation_rate": _spread([r["automation_rate"] for r in runs]),
        "oracle_ratio": _spread([r["oracle_ratio"] for r in runs]),
        "worst_window": _spread([(r["worst_window"] or {}).get("precision") for r in runs]),
        "drift_events": _spread([float(r["drift_events"]) for r in runs]),
    }
    changes = [r["changes"][0] for r in runs if r["changes"]]
    if changes:
        out["first_change"] = {
            "wrong_before_stop": _spread([float(c["wrong_before_stop"]) for c in changes]),
            "back_after_reviews": _spread([_float(c["back_after_reviews"]) for c in changes]),
            "never_back": sum(c["back_at"] is None for c in changes),
        }
    return out


def _float(value: int | float | None) -> float | None:
    return None if value is None else float(value)


def _toy(accepted: Sequence[int], right: Sequence[int]) -> StreamRun:
    """A hand-made run for the doctests: every record predicted ``a``, accepting on."""
    from autolabel.tools.evaluation import StreamRun

    n = len(accepted)
    return StreamRun(
        truth=["a" if r else "b" for r in right],
        accepted=[bool(a) for a in accepted],
        reason=["certified" if a else "uncertain" for a in accepted],
        predicted=["a"] * n,
        confidence=[0.9] * n,
        final_label=[
            None if a else ("a" if r else "b") for a, r in zip(accepted, right, strict=True)
        ],
        accepting=[bool(a) for a in accepted],
    )
