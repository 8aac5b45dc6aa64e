"""Tests of the drift monitor (autolabel.trust.drift)."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from autolabel.trust.drift import DriftConfig, DriftEvent, DriftMonitor, DriftSignal, split_means

CHANGE = 2000


def error_stream(seed: int, n: int, before: float, after: float) -> list[bool]:
    rng = random.Random(seed)
    return [rng.random() < (before if i < CHANGE else after) for i in range(n)]


def confidence_stream(seed: int, n: int, before: float, after: float) -> list[float]:
    rng = random.Random(seed)
    return [min(1.0, max(0.0, rng.gauss(before if i < CHANGE else after, 0.08))) for i in range(n)]


def feed_errors(
    monitor: DriftMonitor, stream: list[bool], *, audit: bool = False
) -> list[tuple[int, DriftEvent]]:
    events = []
    for i, err in enumerate(stream):
        event = monitor.update_error(err, audit=audit)
        if event is not None:
            events.append((i, event))
    return events


def test_error_increase_fires_soon_after_change_and_not_before() -> None:
    monitor = DriftMonitor()
    events = feed_errors(monitor, error_stream(0, 3000, 0.05, 0.4))
    assert events, "no drift detected after the error rate rose from 0.05 to 0.4"
    first_i, first = events[0]
    assert CHANGE <= first_i < CHANGE + 300
    assert first.signal is DriftSignal.PREQUENTIAL_ERROR
    assert first.at == first_i + 1
    assert first.before == pytest.approx(0.05, abs=0.03)
    assert first.after > 0.2
    assert first.detail.startswith("error rate rose from 0.0")
    assert monitor.events_total == len(events)
    assert monitor.counts[DriftSignal.PREQUENTIAL_ERROR] == len(events)
    assert monitor.counts[DriftSignal.AUDIT_ERROR] == 0
    assert monitor.last_event == events[-1][1]


def test_error_detection_over_seeds_is_reliable_and_false_alarms_rare() -> None:
    seeds = range(1, 21)
    false_alarms = 0
    delays = []
    for seed in seeds:
        events = feed_errors(DriftMonitor(), error_stream(seed, 2600, 0.05, 0.4))
        false_alarms += sum(1 for i, _ in events if i < CHANGE)
        after = [i - CHANGE for i, _ in events if i >= CHANGE]
        delays.append(after[0] if after else math.inf)
    # Measured: 0 false alarms and delays of 31-63 steps on seeds 0-49.
    assert false_alarms <= 1
    assert max(delays) < 300


def test_stationary_error_stream_rarely_fires() -> None:
    rng = random.Random(7)
    monitor = DriftMonitor()
    fired = sum(monitor.update_error(rng.random() < 0.1) is not None for _ in range(20_000))
    assert fired <= 1


def test_error_drop_does_not_fire() -> None:
    monitor = DriftMonitor()
    events = feed_errors(monitor, error_stream(0, 4000, 0.4, 0.02))
    assert events == []
    # ...while the same detector does notice an increase.
    events = feed_errors(DriftMonitor(), error_stream(0, 4000, 0.02, 0.4))
    assert events


def test_audit_stream_is_separate_and_fires() -> None:
    monitor = DriftMonitor()
    rng = random.Random(3)
    events = []
    for i in range(600):
        event = monitor.update_error(rng.random() < (0.02 if i < 300 else 0.25), audit=True)
        if event is not None:
            events.append((i, event))
    assert events
    i, event = events[0]
    assert 300 <= i < 500
    assert event.signal is DriftSignal.AUDIT_ERROR
    assert event.detail.startswith("audit error rate rose")
    assert monitor.seen(DriftSignal.AUDIT_ERROR) == 600
    assert monitor.seen(DriftSignal.PREQUENTIAL_ERROR) == 0


def test_confidence_mean_shift_fires() -> None:
    monitor = DriftMonitor()
    events = []
    for i, c in enumerate(confidence_stream(0, 3000, 0.9, 0.75)):
        event = monitor.update_confidence(c)
        if event is not None:
            events.append((i, event))
    assert events
    i, event = events[0]
    assert CHANGE <= i < CHANGE + 300
    assert event.signal is DriftSignal.CONFIDENCE
    assert event.detail.startswith("mean confidence fell from 0.8")
    assert event.before == pytest.approx(0.9, abs=0.01)
    assert event.after < event.before


def test_confidence_rise_respects_direction_setting() -> None:
    stream = confidence_stream(1, 3000, 0.7, 0.9)
    both = DriftMonitor()
    fired_both = [e for c in stream if (e := both.update_confidence(c)) is not None]
    assert fired_both and "rose" in fired_both[0].detail
    only_decrease = DriftMonitor(DriftConfig(confidence_direction="decrease"))
    assert all(only_decrease.update_confidence(c) is None for c in stream)


def test_stationary_confidence_rarely_fires() -> None:
    rng = random.Random(11)
    monitor = DriftMonitor()
    fired = sum(
        monitor.update_confidence(min(1.0, max(0.0, rng.gauss(0.85, 0.1)))) is not None
        for _ in range(20_000)
    )
    assert fired <= 1


def test_confidence_validation() -> None:
    monitor = DriftMonitor()
    for bad in (-0.1, 1.5, math.nan):
        with pytest.raises(ValueError, match="confidence must be a probability"):
            monitor.update_confidence(bad)


def test_warmup_is_respected() -> None:
    # The error rate jumps at step 50, well inside a 1000-step warm-up.
    rng = random.Random(0)
    stream = [rng.random() < (0.0 if i < 50 else 0.6) for i in range(400)]
    assert feed_errors(DriftMonitor(DriftConfig(error_warmup=1000)), stream) == []
    assert feed_errors(DriftMonitor(DriftConfig(error_warmup=0)), stream)


def test_min_error_increase_filters_small_changes() -> None:
    stream = error_stream(2, 12_000, 0.05, 0.10)
    strict = DriftMonitor(DriftConfig(min_error_increase=0.2))
    assert feed_errors(strict, stream) == []


def test_reset_restarts_warmup_and_keeps_counters() -> None:
    monitor = DriftMonitor()
    events = feed_errors(monitor, error_stream(0, 2600, 0.05, 0.4))
    assert events
    total = monitor.events_total
    monitor.reset()
    assert monitor.events_total == total  # monotonic metrics survive
    assert monitor.seen(DriftSignal.PREQUENTIAL_ERROR) == 2600
    assert math.isnan(monitor.mean(DriftSignal.PREQUENTIAL_ERROR))
    # A new change after the reset is detected again, with `at` counting on.
    rng = random.Random(5)
    new = []
    for i in range(3000):
        event = monitor.update_error(rng.random() < (0.1 if i < 1500 else 0.6))
        if event is not None:
            new.append((i, event))
    assert new
    assert all(i >= 1500 for i, _ in new)
    assert new[0][1].at == 2600 + new[0][0] + 1
    assert monitor.events_total == total + len(new)


def test_pickle_round_trip_preserves_state() -> None:
    monitor = DriftMonitor(DriftConfig(error_delta=0.005))
    stream = error_stream(4, 2600, 0.05, 0.4)
    feed_errors(monitor, stream[:1990])
    for c in confidence_stream(4, 500, 0.9, 0.9):
        monitor.update_confidence(c)
    clone = pickle.loads(pickle.dumps(monitor))
    assert clone.config == monitor.config
    assert clone.seen(DriftSignal.PREQUENTIAL_ERROR) == 1990
    assert clone.mean(DriftSignal.CONFIDENCE) == monitor.mean(DriftSignal.CONFIDENCE)
    # Both continue identically.
    assert feed_errors(clone, stream[1990:]) == feed_errors(monitor, stream[1990:])
    assert clone.events_total == monitor.events_total > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"audit_delta": 1.0}, "audit_delta"),
        ({"clock": 0}, "clock"),
        ({"recent_window": 0}, "recent_window"),
        ({"error_warmup": -1}, "error_warmup"),
        ({"min_error_increase": 1.0}, "min_error_increase"),
        ({"confidence_direction": "up"}, "confidence_direction"),
    ],
)
def test_config_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftConfig(**kwargs)  # type: ignore[arg-type]


def test_split_means() -> None:
    before, after = split_means(100, 5.0, 1.0, 20, 8.0)
    assert before == pytest.approx((5.0 + 1.0 - 8.0) / 81)
    assert after == pytest.approx(0.4)
