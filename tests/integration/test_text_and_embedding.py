"""Text and embedding records become predictable from feedback, like tabular ones.

The worker never leaves cold start here (``cold_start_examples`` is huge), so every
record goes to review and the review request shows what the model predicts.
"""

from __future__ import annotations

import random

import pytest
from kafka_support import (
    Outputs,
    all_ids_seen,
    collect,
    feedback_for,
    keyed,
    produce,
    wait_for_metric,
)

from autolabel.core.messages import FeedbackSource, Record, ReviewReason
from autolabel.tools.harness import WorkerProcess

pytestmark = pytest.mark.integration

SPORTS = {
    "who": ["the striker", "our goalkeeper", "the coach", "the home team", "the referee"],
    "did": ["scored a late goal", "won the match", "missed a penalty", "trained hard"],
    "where": ["in the stadium", "before the final", "at the league game", "on the pitch"],
}
COOKING = {
    "who": ["the chef", "my grandmother", "the baker", "our cook", "the kitchen team"],
    "did": ["simmered the sauce", "baked fresh bread", "chopped the onions", "roasted garlic"],
    "where": ["in the oven", "for the dinner recipe", "in a hot pan", "with olive oil"],
}
TOPICS = {"sports": SPORTS, "cooking": COOKING}
DIM = 8


def sentences(prefix: str, n: int, seed: int) -> list[tuple[Record, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        topic = rng.choice(sorted(TOPICS))
        words = TOPICS[topic]
        text = " ".join(rng.choice(words[part]) for part in ("who", "did", "where"))
        out.append((Record(id=f"{prefix}-{i}", text=text), topic))
    return out


def vectors(prefix: str, n: int, seed: int) -> list[tuple[Record, str]]:
    """Two clusters in 8 dimensions, e.g. image-encoder outputs of two kinds of object."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.choice(("cat", "dog"))
        centre = [0.8 if (d % 2 == 0) == (label == "cat") else -0.8 for d in range(DIM)]
        embedding = [round(c + rng.gauss(0, 0.6), 6) for c in centre]
        out.append((Record(id=f"{prefix}-{i}", embedding=embedding), label))
    return out


@pytest.fixture(scope="module")
def worker(make_settings, start_worker) -> WorkerProcess:
    return start_worker(make_settings(policy={"mode": "fixed", "cold_start_examples": 10**6}))


async def route(worker: WorkerProcess, records: list[Record]) -> Outputs:
    s = worker.settings
    await produce(s.kafka.bootstrap_servers, s.topics.records, keyed(records))
    out = await collect(
        s, all_ids_seen(r.id for r in records), what="records reviewed", worker=worker
    )
    wanted = {r.id for r in records}
    return Outputs(s, [o for o in out.items if getattr(o.value, "id", None) in wanted])


async def test_text_and_embedding_records_are_unpredictable_before_feedback(
    worker: WorkerProcess,
) -> None:
    records = [r for r, _ in sentences("t0", 3, seed=1) + vectors("e0", 3, seed=2)]
    out = await route(worker, records)
    assert len(out.reviews) == len(records) and out.dead == [] and out.labels == []
    for review in out.reviews:
        assert review.reason is ReviewReason.COLD_START
        assert review.predicted_label is None
        assert review.record.kind in {"text", "embedding"}


async def test_feedback_makes_text_and_embedding_records_predictable(
    worker: WorkerProcess,
) -> None:
    s = worker.settings
    train = sentences("t-train", 80, seed=3) + vectors("e-train", 80, seed=4)
    random.Random(5).shuffle(train)
    fb = feedback_for(train, FeedbackSource.REVIEW, reviewer="sam")
    await produce(s.kafka.bootstrap_servers, s.topics.feedback, keyed(fb))
    metrics = await wait_for_metric(
        worker,
        lambda m: (
            m.get("autolabel_model_examples_learned") >= len(train)
            and m.get("autolabel_snapshot_feedback_offset") >= len(train)
        ),
        what="text and embedding feedback learned, and the labeler on that model",
    )
    assert metrics.get("autolabel_model_examples_learned") == len(train)

    fresh = {"text": sentences("t-new", 60, seed=6), "embedding": vectors("e-new", 60, seed=7)}
    truth = {r.id: label for pairs in fresh.values() for r, label in pairs}
    out = await route(worker, [r for pairs in fresh.values() for r, _ in pairs])

    assert sorted(r.id for r in out.reviews) == sorted(truth)
    for kind, pairs in fresh.items():
        reviews = [r for r in out.reviews if r.record.kind == kind]
        assert len(reviews) == len(pairs)
        labels = {label for _, label in pairs}
        for review in reviews:
            assert review.predicted_label in labels
            assert review.probabilities[0].label == review.predicted_label
            assert {p.label for p in review.probabilities} == labels
            assert review.model_version == len(train)
        correct = sum(r.predicted_label == truth[r.id] for r in reviews)
        assert correct / len(reviews) >= 0.9, f"{kind}: {correct}/{len(reviews)} correct"
