"""autolabel.review.queue: the order reviewers see, the bound, and what may be committed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autolabel.core.messages import Record, ReviewReason, ReviewRequest
from autolabel.review.queue import BufferFull, Claim, CommitTracker, PriorityBuffer

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def claim(
    n: int,
    reason: ReviewReason = ReviewReason.UNCERTAIN,
    priority: float = 0.5,
    age_s: float = 0.0,
    partition: int = 0,
) -> Claim:
    request = ReviewRequest(
        id=f"r{n}",
        request_id=f"q{n}",
        record=Record(id=f"r{n}", text="t"),
        reason=reason,
        priority=priority,
        model_version=1,
        requested_at=T0 - timedelta(seconds=age_s),
    )
    return Claim(request, partition=partition, offset=n)


def drain(buffer: PriorityBuffer) -> list[str]:
    out = []
    while (c := buffer.pop()) is not None:
        out.append(c.request.id)
    return out


def test_audits_first_then_higher_priority_then_older() -> None:
    buffer = PriorityBuffer(10)
    for c in (
        claim(0, priority=0.9),
        claim(1, ReviewReason.AUDIT, priority=0.0),
        claim(2, priority=0.9, age_s=60),
        claim(3, ReviewReason.COLD_START, priority=1.0),
        claim(4, ReviewReason.AUDIT, priority=0.0, age_s=5),
        claim(5, ReviewReason.DRIFT, priority=0.2),
    ):
        buffer.push(c)
    assert drain(buffer) == ["r4", "r1", "r3", "r2", "r0", "r5"]


def test_a_skipped_request_comes_after_every_other_even_new_ones() -> None:
    buffer = PriorityBuffer(10)
    buffer.push(claim(0, ReviewReason.AUDIT))
    buffer.push(claim(1, priority=0.1))
    skipped = buffer.pop()
    assert skipped is not None and skipped.request.id == "r0"
    buffer.release(skipped)
    buffer.push(claim(2, priority=0.0))
    again = buffer.pop()
    assert again is not None and again.request.id == "r1"
    buffer.release(again)  # skipped second: after the first skip
    assert drain(buffer) == ["r2", "r0", "r1"]


def test_bounded_pending_and_claimed_together() -> None:
    buffer = PriorityBuffer(2)
    buffer.push(claim(0))
    taken = buffer.pop()
    buffer.push(claim(1))
    assert buffer.room == 0
    with pytest.raises(BufferFull):
        buffer.push(claim(2))
    assert taken is not None
    buffer.release(taken)  # a released claim always fits back
    assert len(buffer) == 2 and buffer.claimed == 0
    buffer.finish(taken)  # not claimed: nothing happens
    assert len(buffer) == 2


def test_one_request_id_is_held_once() -> None:
    buffer = PriorityBuffer(5)
    assert buffer.push(claim(0))
    assert not buffer.push(claim(0))
    taken = buffer.pop()
    assert taken is not None and buffer.is_claimed("q0") and buffer.claim("q0") is taken
    assert not buffer.push(claim(0))
    buffer.finish(taken)
    assert not buffer.holds("q0") and buffer.room == 5


def test_dropping_partitions_keeps_claims_and_other_partitions() -> None:
    buffer = PriorityBuffer(10)
    for n in range(6):
        buffer.push(claim(n, priority=n / 10, partition=n % 2))
    held = buffer.pop()  # r5, partition 1
    assert held is not None and held.partition == 1
    dropped = buffer.drop_partitions([1])
    assert sorted(c.request.id for c in dropped) == ["r1", "r3"]
    assert buffer.is_claimed("q5")
    buffer.release(held, requeue=False)  # its partition is gone: forgotten
    assert drain(buffer) == ["r4", "r2", "r0"]
    assert buffer.claimed == 3 and buffer.room == 7


def test_by_reason_counts_pending_only() -> None:
    buffer = PriorityBuffer(10)
    buffer.push(claim(0, ReviewReason.AUDIT))
    buffer.push(claim(1))
    buffer.push(claim(2))
    buffer.pop()
    assert buffer.by_reason() == {"uncertain": 2}


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(ReviewReason)),
            st.floats(0, 1),
            st.integers(0, 1000),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_pop_order_is_sorted_by_the_documented_key(items: list) -> None:
    buffer = PriorityBuffer(len(items))
    claims = [claim(n, reason, prio, age) for n, (reason, prio, age) in enumerate(items)]
    for c in claims:
        buffer.push(c)
    expected = sorted(
        claims,
        key=lambda c: (
            c.request.reason is not ReviewReason.AUDIT,
            -c.request.priority,
            c.request.requested_at,
            c.offset,
        ),
    )
    assert drain(buffer) == [c.request.id for c in expected]


# --------------------------------------------------------------------------- commits


@given(
    st.lists(st.integers(0, 60), min_size=1, max_size=40, unique=True),
    st.data(),
)
def test_never_commits_past_an_unanswered_offset(offsets: list[int], data: st.DataObject) -> None:
    tracker = CommitTracker()
    for offset in sorted(offsets):
        tracker.received(offset)
    order = data.draw(st.permutations(offsets))
    answered: set[int] = set()
    for offset in order:
        tracker.done(offset)
        answered.add(offset)
        position = tracker.committable()
        if position is not None:
            tracker.committed(position)
            # every offset read below the position is answered
            assert all(o in answered for o in offsets if o < position)
            # and the position stops at the first open offset, or right after the last read
            unanswered = [o for o in offsets if o not in answered]
            assert position == (min(unanswered) if unanswered else max(offsets) + 1)
    assert tracker.position == max(offsets) + 1 and tracker.open == 0


def test_commit_positions_only_move_forward() -> None:
    tracker = CommitTracker()
    assert tracker.position is None and tracker.committable() is None
    tracker.received(3)
    assert tracker.committable() == 3  # nothing answered: commit before the first read
    tracker.committed(3)
    assert tracker.committable() is None
    tracker.done(3)
    assert tracker.committable() == 4
    tracker.committed(4)
    tracker.received(2)  # read again below the commit: ignored
    assert tracker.open == 0 and tracker.committable() is None
    tracker.done(99)  # unknown offsets are ignored
    assert tracker.position == 4


def test_a_request_answered_elsewhere_is_discarded_unless_claimed() -> None:
    buffer = PriorityBuffer(5)
    for n in range(3):
        buffer.push(claim(n, priority=n / 10))
    taken = buffer.pop()  # r2
    assert taken is not None
    buffer.release(taken)  # pending again, with a stale heap entry behind it
    gone = buffer.discard("q2")
    assert gone is not None and gone.request.id == "r2"
    assert buffer.discard("q2") is None and buffer.discard("nope") is None
    held = buffer.pop()
    assert held is not None and buffer.discard(held.request_id) is None  # claimed: kept
    assert drain(buffer) == ["r0"] and buffer.room == 3
