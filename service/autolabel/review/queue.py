"""The review queue's pure core: which request a reviewer sees next, and what may be committed.

:class:`PriorityBuffer` holds the requests one reviewer process has read (pending) and
handed out (claimed), at most ``capacity`` of both together, and hands out the most
useful first: audits (the unbiased evidence on auto-accepted labels), then higher
``priority`` (close calls), then older. A skipped request goes back after every other.

:class:`CommitTracker` decides, for one partition of the review topic, which offset may
be committed: only the contiguous prefix of offsets answered or deliberately dropped
(unreadable, duplicate), so a request nobody answered is never committed and comes back
to whoever reads the partition next.

The Kafka side (:mod:`autolabel.review.kafka_queue`) reads, decodes, sends answers and
commits; everything it decides is decided here.

>>> from autolabel.core.messages import Record, ReviewReason, ReviewRequest
>>> def claim(n: int, reason: str = "uncertain", priority: float = 0.5) -> Claim:
...     request = ReviewRequest(id=f"r{n}", request_id=f"q{n}", record=Record(id=f"r{n}", text="t"),
...                             reason=ReviewReason(reason), priority=priority, model_version=1)
...     return Claim(request, partition=0, offset=n)
>>> buffer = PriorityBuffer(capacity=3)
>>> for c in (claim(0, priority=0.2), claim(1, priority=0.9), claim(2, "audit", priority=0.1)):
...     _ = buffer.push(c)
>>> buffer.room
0
>>> [buffer.pop().request.id for _ in range(3)]
['r2', 'r1', 'r0']
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from autolabel.core.messages import ReviewReason, ReviewRequest, utc_now


@dataclass(frozen=True, slots=True)
class Claim:
    """A review request read from ``partition`` at ``offset``, as handed to a reviewer.

    Answer it (:meth:`ReviewQueue.answer <autolabel.review.kafka_queue.ReviewQueue.answer>`)
    or release it (skip); ``received_at`` is when this process read it (UTC).
    """

    request: ReviewRequest
    partition: int
    offset: int
    received_at: datetime = field(default_factory=utc_now)

    @property
    def request_id(self) -> str:
        return self.request.request_id

    @property
    def audit(self) -> bool:
        return self.request.reason is ReviewReason.AUDIT


class BufferFull(RuntimeError):
    """A push beyond the buffer's capacity: read no more than :attr:`PriorityBuffer.room`."""


_Key = tuple[int, int, float, float, int]


class PriorityBuffer:
    """Pending and claimed review requests, at most ``capacity`` together, best first.

    Order: requests never skipped before skipped ones (each skip goes behind every
    other), then audits, then higher ``priority``, then earlier ``requested_at``, then
    the order they were pushed. A request id is held once: pushing one already pending
    or claimed returns False and changes nothing.

    Parameters
    ----------
    capacity
        Most requests held, pending and claimed together (at least 1). Claimed ones count,
        so a released claim always fits back.

    Examples
    --------
    >>> from autolabel.core.messages import Record, ReviewReason, ReviewRequest
    >>> def claim(n: int) -> Claim:
    ...     request = ReviewRequest(id=f"r{n}", request_id=f"q{n}", record=Record(id=f"r{n}",
    ...         text="t"), reason=ReviewReason.UNCERTAIN, priority=n / 10, model_version=1)
    ...     return Claim(request, partition=0, offset=n)
    >>> buffer = PriorityBuffer(capacity=4)
    >>> [buffer.push(claim(n)) for n in (1, 2, 3)], buffer.push(claim(3))
    ([True, True, True], False)
    >>> first = buffer.pop()
    >>> first.request.id, len(buffer), buffer.claimed, buffer.room
    ('r3', 2, 1, 1)
    >>> buffer.release(first)  # skipped: after the others
    >>> [buffer.pop().request.id for _ in range(3)], buffer.pop()
    (['r2', 'r1', 'r3'], None)
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 (got {capacity})")
        self.capacity = capacity
        self._heap: list[tuple[_Key, Claim]] = []
        self._pending: dict[str, _Key] = {}  # request id -> its live heap key
        self._claimed: dict[str, Claim] = {}
        self._sequence = itertools.count()
        self._skips = itertools.count(1)

    def __len__(self) -> int:
        """Pending requests (not claimed)."""
        return len(self._pending)

    @property
    def claimed(self) -> int:
        """Requests handed out and neither answered nor released."""
        return len(self._claimed)

    @property
    def room(self) -> int:
        """How many more requests may be pushed."""
        return self.capacity - len(self._pending) - len(self._claimed)

    def holds(self, request_id: str) -> bool:
        """Whether a request id is pending or claimed here."""
        return request_id in self._pending or request_id in self._claimed

    def is_claimed(self, request_id: str) -> bool:
        return request_id in self._claimed

    def claim(self, request_id: str) -> Claim | None:
        """The claim handed out for a request id, if it is claimed."""
        return self._claimed.get(request_id)

    def push(self, claim: Claim) -> bool:
        """Hold a newly read request; False (nothing changes) when its id is already held.

        Raises :class:`BufferFull` when there is no room.
        """
        if self.holds(claim.request_id):
            return False
        if self.room <= 0:
            raise BufferFull(f"the review buffer holds {self.capacity} requests already")
        self._insert(claim, skipped=0)
        return True

    def pop(self) -> Claim | None:
        """The best pending request, now claimed; None when nothing is pending."""
        while self._heap:
            key, claim = heapq.heappop(self._heap)
            if self._pending.get(claim.request_id) != key:
                continue  # dropped or re-inserted since: a stale entry
            del self._pending[claim.request_id]
            self._claimed[claim.request_id] = claim
            return claim
        return None

    def release(self, claim: Claim, *, requeue: bool = True) -> None:
        """Give a claim back: pending again behind every other request (a skip), or, with
        ``requeue=False``, forgotten (its partition went to another reader)."""
        if self._claimed.pop(claim.request_id, None) is None:
            return
        if requeue:
            self._insert(claim, skipped=next(self._skips))

    def discard(self, request_id: str) -> Claim | None:
        """Forget a pending request (answered elsewhere); returns it, or None when it is
        not pending (claimed ones stay with their reviewer)."""
        key = self._pending.pop(request_id, None)
        if key is None:
            return None
        # The heap entry turns stale (pop() skips it); keys are unique by their sequence.
        return next(claim for k, claim in self._heap if k == key)

    def finish(self, claim: Claim) -> None:
        """Forget an answered claim."""
        self._claimed.pop(claim.request_id, None)

    def drop_partitions(self, partitions: Iterable[int]) -> list[Claim]:
        """Forget the pending requests of ``partitions`` (they moved to another reader);
        returns them. Claimed ones stay claimed until answered or released."""
        gone = set(partitions)
        dropped = [c for _, c in self._live() if c.partition in gone]
        for claim in dropped:
            del self._pending[claim.request_id]
        self._heap = [(k, c) for k, c in self._heap if self._pending.get(c.request_id) == k]
        heapq.heapify(self._heap)
        return dropped

    def by_reason(self) -> Counter[str]:
        """Pending requests per review reason."""
        return Counter(c.request.reason.value for _, c in self._live())

    def _live(self) -> Iterator[tuple[_Key, Claim]]:
        return ((k, c) for k, c in self._heap if self._pending.get(c.request_id) == k)

    def _insert(self, claim: Claim, *, skipped: int) -> None:
        request = claim.request
        key: _Key = (
            skipped,
            0 if claim.audit else 1,
            -request.priority,
            request.requested_at.timestamp(),
            next(self._sequence),
        )
        self._pending[claim.request_id] = key
        heapq.heappush(self._heap, (key, claim))


class CommitTracker:
    """Which offset of one partition may be committed: never past an unanswered request.

    Tell it every offset read (:meth:`received`) and every offset finished
    (:meth:`done`: answered, or dropped on purpose); :attr:`position` is the offset to
    commit (the next one to read after a restart): the lowest offset still open, or one
    past the highest read when none is. Offsets may have gaps (compaction, control
    records); only offsets read count.

    >>> t = CommitTracker()
    >>> for offset in (5, 6, 7, 9):
    ...     t.received(offset)
    >>> t.position is None, t.done(6), t.position
    (False, None, 5)
    >>> t.done(5); t.position
    7
    >>> t.done(9); t.done(7); t.position
    10
    >>> t.committable(), t.committed(10), t.committable()
    (10, None, None)
    """

    __slots__ = ("_committed", "_highest", "_open")

    def __init__(self) -> None:
        self._open: set[int] = set()
        self._highest: int | None = None
        self._committed: int | None = None

    def received(self, offset: int) -> None:
        """An offset read and not finished yet."""
        if self._committed is not None and offset < self._committed:
            return  # read again after a seek back; already committed past it
        self._open.add(offset)
        if self._highest is None or offset > self._highest:
            self._highest = offset

    def done(self, offset: int) -> None:
        """An offset answered or dropped on purpose; unknown offsets are ignored."""
        self._open.discard(offset)

    def is_open(self, offset: int) -> bool:
        return offset in self._open

    @property
    def open(self) -> int:
        """Offsets read and not finished."""
        return len(self._open)

    @property
    def position(self) -> int | None:
        """The offset it is safe to commit now; None before anything was read."""
        if self._open:
            return min(self._open)
        return None if self._highest is None else self._highest + 1

    def committable(self) -> int | None:
        """:attr:`position` when it is past the last commit, else None."""
        position = self.position
        if position is None or (self._committed is not None and position <= self._committed):
            return None
        return position

    def committed(self, position: int) -> None:
        """The group now holds ``position`` for this partition."""
        if self._committed is None or position > self._committed:
            self._committed = position


@dataclass(frozen=True, slots=True)
class QueueStats:
    """What a reviewer's screen shows about the queue (one process's view).

    ``backlog`` is what waits for this process: requests buffered here plus the lag of
    the partitions it reads (requests not read yet). ``answered`` and the audit counts
    are this process's answers since it started; an audit *disagrees* when the answer
    differs from the label the model predicted (auto-accepted it would have been wrong).
    """

    buffered: int
    claimed: int
    lag: int
    answered: int
    audits_answered: int
    audit_disagreements: int
    answered_by_reason: dict[str, int]
    buffered_by_reason: dict[str, int]
    partitions: list[int]

    @property
    def backlog(self) -> int:
        return self.buffered + self.lag

    @property
    def audit_disagreement_rate(self) -> float | None:
        """Share of audits answered against the prediction; None before the first."""
        if not self.audits_answered:
            return None
        return self.audit_disagreements / self.audits_answered


@dataclass
class AnswerTally:
    """Counts of the answers given, for :class:`QueueStats`.

    >>> from autolabel.core.messages import Record, ReviewReason, ReviewRequest
    >>> audit = ReviewRequest(id="a", request_id="q", record=Record(id="a", text="t"),
    ...     reason=ReviewReason.AUDIT, priority=0.1, model_version=1, predicted_label="cat")
    >>> tally = AnswerTally()
    >>> tally.count(audit, "cat"); tally.count(audit, "dog")
    >>> s = tally.stats(buffered=2, claimed=0, lag=5)
    >>> s.backlog, s.answered, s.audits_answered, s.audit_disagreement_rate, s.answered_by_reason
    (7, 2, 2, 0.5, {'audit': 2})
    """

    answered: int = 0
    audits: int = 0
    audit_disagreements: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)

    def count(self, request: ReviewRequest, label: str) -> None:
        self.answered += 1
        self.by_reason[request.reason.value] += 1
        if request.reason is ReviewReason.AUDIT:
            self.audits += 1
            self.audit_disagreements += label != request.predicted_label

    def stats(
        self,
        *,
        buffered: int,
        claimed: int,
        lag: int,
        buffered_by_reason: Counter[str] | None = None,
        partitions: Iterable[int] = (),
    ) -> QueueStats:
        return QueueStats(
            buffered=buffered,
            claimed=claimed,
            lag=lag,
            answered=self.answered,
            audits_answered=self.audits,
            audit_disagreements=self.audit_disagreements,
            answered_by_reason=dict(self.by_reason),
            buffered_by_reason=dict(buffered_by_reason or {}),
            partitions=list(partitions),
        )
