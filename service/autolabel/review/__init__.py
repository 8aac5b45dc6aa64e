"""Answering review requests: the one helper a reviewer integration needs, and the queue.

:func:`answer` (here, pure) builds the answer to a request. :mod:`autolabel.review.queue`
is the queue's pure core (order, bound, what may be committed) and
:mod:`autolabel.review.kafka_queue` its Kafka side, :class:`ReviewQueue`, on which the
reviewer tools sit; this module imports neither.

A review request (topic ``autolabel.review``) is answered by a
:class:`~autolabel.core.messages.Feedback` on ``autolabel.feedback``, keyed by the
record id, that echoes the request's ``request_id`` and ``record``. :func:`answer`
builds it, so the source is right for audits and nothing is left to get wrong; the
service derives the answer's audit status and weight from the request id, never from
what the answer claims.

>>> from autolabel.core.messages import Record, ReviewReason, ReviewRequest
>>> request = ReviewRequest(id="r1", request_id="r1AAAA", record=Record(id="r1", text="hi"),
...                         reason=ReviewReason.AUDIT, priority=0.5, model_version=3)
>>> feedback = answer(request, "greeting", reviewer="ada")
>>> feedback.source.value, feedback.request_id, feedback.label
('audit', 'r1AAAA', 'greeting')
"""

from __future__ import annotations

from autolabel.core.codec import encode
from autolabel.core.messages import Feedback, FeedbackSource, ReviewReason, ReviewRequest


def answer(request: ReviewRequest, label: str, reviewer: str | None = None) -> Feedback:
    """The feedback that answers ``request`` with ``label``."""
    audit = request.reason is ReviewReason.AUDIT
    return Feedback(
        id=request.id,
        record=request.record,
        label=label,
        source=FeedbackSource.AUDIT if audit else FeedbackSource.REVIEW,
        request_id=request.request_id,
        reviewer=reviewer,
    )


def answer_message(
    request: ReviewRequest, label: str, reviewer: str | None = None
) -> tuple[bytes, bytes]:
    """Key and value to produce to the feedback topic."""
    return request.id.encode(), encode(answer(request, label, reviewer))
