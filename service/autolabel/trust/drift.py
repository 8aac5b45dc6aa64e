"""Drift monitoring for the trust policy.

Three streams are watched, each by its own River :class:`~river.drift.ADWIN`
detector:

``prequential_error``
    0/1 errors of predictions scored *before* learning, one per reviewed
    example (the learner's prequential evaluation).
``audit_error``
    0/1 errors among audited records that the policy would have auto-accepted:
    the unbiased sample of the accepted region.
``confidence``
    the maximum class probability of every prediction made by the labeler.  A
    shift in mean confidence is a label-free sign of covariate shift.

ADWIN keeps an adaptive window and cuts it when two sub-windows have
significantly different means, in either direction.  When it cuts, the monitor
compares the mean of the dropped (older) part of the window, recovered from
the window totals just before and after the update, with the mean of the last
``recent_window`` values (kept in a small buffer: ADWIN's kept part often still
holds mostly pre-change data, and River 0.26 discards the whole window on the
update after a detection).  So every event says *from what to what* the stream
moved, and the direction decides whether it counts: on the error streams only
an **increase** is reported (a drop in error is no reason to stop
auto-accepting); on the confidence stream the direction is configurable (both
by default).  Detections during a warm-up period (counted since construction or
the last :meth:`DriftMonitor.reset`) and changes smaller than a minimum effect
size are ignored.

Persistence: River's ADWIN keeps its window in a compiled (Rust) helper whose
buckets are not exposed, so a JSON-able ``to_state()`` is not feasible without
losing the window.  The monitor is instead pickled together with the model
inside the HMAC-signed model snapshot; ``pickle.dumps(monitor)`` round-trips
the full state (detectors, warm-up counters, event counts).

This module is pure: no I/O, no clocks, no randomness.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from river import drift

# River's detectors are not annotated; treat them as Any.
_ADWIN: Any = drift.ADWIN

__all__ = [
    "DriftConfig",
    "DriftEvent",
    "DriftMonitor",
    "DriftSignal",
    "split_means",
]


class DriftSignal(StrEnum):
    """The stream on which a drift was detected."""

    PREQUENTIAL_ERROR = "prequential_error"
    AUDIT_ERROR = "audit_error"
    CONFIDENCE = "confidence"


@dataclass(frozen=True, slots=True)
class DriftEvent:
    """A drift that the monitor reports.

    Attributes
    ----------
    signal
        The stream on which the change was detected.
    at
        Number of values seen on that stream (since the monitor was created,
        not reset by :meth:`DriftMonitor.reset`) when the change was detected.
    before
        Mean of the stream over the older part of the detector's window (the
        part ADWIN dropped at the cut).
    after
        Mean of the last ``DriftConfig.recent_window`` values of the stream.
    detail
        Human-readable description, e.g. ``'error rate rose from 0.05 to 0.31'``.
    """

    signal: DriftSignal
    at: int
    before: float
    after: float
    detail: str


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """Parameters of a :class:`DriftMonitor`.

    Attributes
    ----------
    error_delta
        ADWIN significance level for the prequential error stream.  Smaller
        means fewer false alarms and slower detection.
    audit_delta
        ADWIN significance level for the audit error stream.  The audit stream
        is sparse, so it defaults to a looser level than the prequential one.
    confidence_delta
        ADWIN significance level for the confidence stream.  Confidence values
        arrive for every prediction (high volume), so the default is strict.
    clock
        ADWIN checks for a cut every ``clock`` values (1 = every value).
        Detection delay has this granularity; the audit stream always uses 1
        because it is sparse.
    min_window_length
        Minimum length of an ADWIN sub-window considered for a cut.
    recent_window
        Number of most recent values whose mean is reported as the level
        *after* a change (and decides its direction).
    error_warmup
        Values seen on the prequential error stream (since construction or
        reset) before a detection counts.
    audit_warmup
        Same, for the audit error stream.
    confidence_warmup
        Same, for the confidence stream.
    min_error_increase
        Smallest absolute rise in error rate (recent minus older mean) reported
        on the error streams.
    min_confidence_change
        Smallest absolute change in mean confidence reported.
    confidence_direction
        ``"both"`` reports rises and falls of mean confidence, ``"decrease"``
        only falls (use it if the steady growth of confidence of a model that
        is still learning causes unwanted alarms).

    Examples
    --------
    >>> DriftConfig().error_warmup
    100
    >>> DriftConfig(error_delta=0.0)
    Traceback (most recent call last):
    ...
    ValueError: error_delta must be in (0, 1), got 0.0
    """

    error_delta: float = 0.002
    audit_delta: float = 0.01
    confidence_delta: float = 0.001
    clock: int = 16
    min_window_length: int = 5
    recent_window: int = 50
    error_warmup: int = 100
    audit_warmup: int = 30
    confidence_warmup: int = 200
    min_error_increase: float = 0.02
    min_confidence_change: float = 0.02
    confidence_direction: Literal["both", "decrease"] = "both"

    def __post_init__(self) -> None:
        for name in ("error_delta", "audit_delta", "confidence_delta"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value!r}")
        for name in ("clock", "min_window_length", "recent_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("error_warmup", "audit_warmup", "confidence_warmup"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("min_error_increase", "min_confidence_change"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if self.confidence_direction not in ("both", "decrease"):
            raise ValueError(
                "confidence_direction must be 'both' or 'decrease', "
                f"got {self.confidence_direction!r}"
            )


def split_means(
    width_before: float, total_before: float, x: float, width_after: float, total_after: float
) -> tuple[float, float]:
    """Means of the dropped and the kept part of an ADWIN window after a cut.

    Before the update the window held ``width_before`` values summing to
    ``total_before``; the update added ``x`` and the cut kept ``width_after``
    values summing to ``total_after``.  Everything else was dropped.

    Parameters
    ----------
    width_before, total_before
        Window length and sum before the update.
    x
        The value just added.
    width_after, total_after
        Window length and sum after the update (and the cut).

    Returns
    -------
    tuple of float
        ``(mean of the dropped part, mean of the kept part)``; NaN where a part
        is empty.

    Examples
    --------
    >>> split_means(10, 1.0, 1.0, 3, 2.0)
    (0.0, 0.6666666666666666)
    >>> split_means(0, 0.0, 1.0, 1, 1.0)
    (nan, 1.0)
    """
    n_dropped = width_before + 1 - width_after
    s_dropped = total_before + x - total_after
    before = s_dropped / n_dropped if n_dropped > 0 else math.nan
    after = total_after / width_after if width_after > 0 else math.nan
    return before, after


class _Stream:
    """One watched stream: an ADWIN detector plus counters."""

    __slots__ = (
        "clock",
        "delta",
        "detector",
        "min_window_length",
        "recent",
        "seen",
        "since_reset",
    )

    def __init__(self, delta: float, clock: int, min_window_length: int, recent: int) -> None:
        self.delta = delta
        self.clock = clock
        self.min_window_length = min_window_length
        self.detector: Any = self._new_detector()
        self.recent: deque[float] = deque(maxlen=recent)
        self.seen = 0
        self.since_reset = 0

    def _new_detector(self) -> Any:
        return _ADWIN(
            delta=self.delta,
            clock=self.clock,
            min_window_length=self.min_window_length,
        )

    def update(self, x: float) -> tuple[float, float] | None:
        """Add ``x``; on a cut return ``(older mean, recent mean)``."""
        det = self.detector
        width_before = float(det.width)
        total_before = float(det.total)
        det.update(x)
        self.recent.append(x)
        self.seen += 1
        self.since_reset += 1
        if not det.drift_detected:
            return None
        # River's ADWIN discards its whole window on the next update after a
        # detection, so the split must be read now.
        before, _ = split_means(width_before, total_before, x, float(det.width), float(det.total))
        return before, math.fsum(self.recent) / len(self.recent)

    def reset(self) -> None:
        self.detector = self._new_detector()
        self.recent.clear()
        self.since_reset = 0

    @property
    def mean(self) -> float:
        width = self.detector.width
        return float(self.detector.total) / width if width else math.nan


class DriftMonitor:
    """Watches error and confidence streams for drift.

    Parameters
    ----------
    config
        Detector parameters; defaults to :class:`DriftConfig()`.

    Notes
    -----
    Feed :meth:`update_error` with ``audit=False`` for every reviewed example
    scored before learning, and with ``audit=True`` for audited records the
    policy would have accepted (each call feeds exactly one stream: the caller
    decides whether an audit outcome also counts as a prequential one).  Feed
    :meth:`update_confidence` with the maximum class probability of each
    prediction.  Each update returns a :class:`DriftEvent` when a drift that
    counts was detected, else ``None``.  After handling a drift, call
    :meth:`reset` to start the detectors afresh (event counters are kept: they
    are monotonic metrics).

    The monitor is picklable; it is stored inside the signed model snapshot.

    Examples
    --------
    >>> monitor = DriftMonitor()
    >>> monitor.update_error(False) is None
    True
    >>> monitor.seen(DriftSignal.PREQUENTIAL_ERROR)
    1
    >>> monitor.events_total
    0
    """

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config if config is not None else DriftConfig()
        cfg = self.config
        self._streams: dict[DriftSignal, _Stream] = {
            DriftSignal.PREQUENTIAL_ERROR: _Stream(
                cfg.error_delta, cfg.clock, cfg.min_window_length, cfg.recent_window
            ),
            DriftSignal.AUDIT_ERROR: _Stream(
                cfg.audit_delta, 1, cfg.min_window_length, cfg.recent_window
            ),
            DriftSignal.CONFIDENCE: _Stream(
                cfg.confidence_delta, cfg.clock, cfg.min_window_length, cfg.recent_window
            ),
        }
        self._counts: dict[DriftSignal, int] = dict.fromkeys(DriftSignal, 0)
        self._last_event: DriftEvent | None = None

    # ------------------------------------------------------------------ updates

    def update_error(
        self, error: bool, *, audit: bool = False, expected: float | None = None
    ) -> DriftEvent | None:
        """Record whether one prediction was wrong.

        Parameters
        ----------
        error
            ``True`` when the prediction (made before learning) was wrong.
        audit
            ``True`` for an audited, would-be auto-accepted record (audit
            stream); ``False`` for the prequential stream.
        expected
            The error probability the model itself gave (``1 - confidence``).
            When set, the stream watches the *excess* error ``error - expected``
            (mapped into [0, 1]) instead of the raw error. Reviewed records are
            a sample whose mix of easy and hard cases moves with the
            acceptance threshold; the excess error does not move with that mix
            unless the model's calibration changes, which is what drift does.

        Returns
        -------
        DriftEvent or None
            An event when the error rate rose significantly, after warm-up.
        """
        signal = DriftSignal.AUDIT_ERROR if audit else DriftSignal.PREQUENTIAL_ERROR
        warmup = self.config.audit_warmup if audit else self.config.error_warmup
        stream = self._streams[signal]
        raw = 1.0 if error else 0.0
        if expected is not None:
            if not 0.0 <= expected <= 1.0:
                raise ValueError(f"expected must be a probability in [0, 1], got {expected!r}")
            raw = (raw - expected + 1.0) / 2.0
        cut = stream.update(raw)
        if cut is None or stream.since_reset < warmup:
            return None
        before, after = cut
        if expected is not None:  # back from [0, 1] to excess error in [-1, 1]
            before, after = 2.0 * before - 1.0, 2.0 * after - 1.0
            # An underconfident model growing sure of itself also raises the excess;
            # only errors beyond what the model itself predicts are a reason to stop.
            if after < self.config.min_error_increase:
                return None
        if math.isnan(before) or after - before < self.config.min_error_increase:
            return None
        name = "audit error rate" if audit else "error rate"
        if expected is not None:
            name = "error beyond the model's own estimate"
        return self._emit(
            signal, stream.seen, before, after, f"{name} rose from {before:.3f} to {after:.3f}"
        )

    def update_confidence(self, confidence: float) -> DriftEvent | None:
        """Record the confidence (max class probability) of one prediction.

        Parameters
        ----------
        confidence
            A probability in ``[0, 1]``.

        Returns
        -------
        DriftEvent or None
            An event when mean confidence changed significantly, after warm-up.

        Raises
        ------
        ValueError
            If ``confidence`` is not a finite number in ``[0, 1]``.
        """
        value = float(confidence)
        if not 0.0 <= value <= 1.0:  # also rejects NaN
            raise ValueError(f"confidence must be a probability in [0, 1], got {confidence!r}")
        stream = self._streams[DriftSignal.CONFIDENCE]
        cut = stream.update(value)
        if cut is None or stream.since_reset < self.config.confidence_warmup:
            return None
        before, after = cut
        if math.isnan(before):
            return None
        change = after - before
        if abs(change) < self.config.min_confidence_change:
            return None
        if change > 0 and self.config.confidence_direction == "decrease":
            return None
        verb = "rose" if change > 0 else "fell"
        return self._emit(
            DriftSignal.CONFIDENCE,
            stream.seen,
            before,
            after,
            f"mean confidence {verb} from {before:.3f} to {after:.3f}",
        )

    def _emit(
        self, signal: DriftSignal, at: int, before: float, after: float, detail: str
    ) -> DriftEvent:
        event = DriftEvent(signal=signal, at=at, before=before, after=after, detail=detail)
        self._counts[signal] += 1
        self._last_event = event
        return event

    # -------------------------------------------------------------------- state

    def reset(self) -> None:
        """Start all detectors afresh after a drift was handled.

        Warm-up periods start again; lifetime counters (values seen, events)
        are kept.
        """
        for stream in self._streams.values():
            stream.reset()

    @property
    def events_total(self) -> int:
        """Number of drift events reported since construction."""
        return sum(self._counts.values())

    @property
    def counts(self) -> dict[DriftSignal, int]:
        """Number of drift events reported per signal since construction."""
        return dict(self._counts)

    @property
    def last_event(self) -> DriftEvent | None:
        """The most recent event, if any."""
        return self._last_event

    def seen(self, signal: DriftSignal) -> int:
        """Number of values seen on ``signal``'s stream since construction."""
        return self._streams[signal].seen

    def mean(self, signal: DriftSignal) -> float:
        """Current mean of ``signal``'s detector window (NaN when empty).

        For the error streams this is the recent error rate; for the
        confidence stream the recent mean confidence.
        """
        return self._streams[signal].mean
