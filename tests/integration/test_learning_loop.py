"""The learning loop end to end, through one worker: cold start → feedback → auto-labels.

The policy is the fixed-threshold one (``AUTOLABEL_POLICY__MODE=fixed``), so what is
accepted is predictable; ``test_certified_policy.py`` covers the certified default.

The tests share one worker (a start costs seconds) and run in file order, each
phase building on the model state the previous one left: no feedback yet, then
10 examples (below the cold start of 20), then 300.
"""

from __future__ import annotations

from collections import Counter

import pytest
from kafka_support import (
    PRODUCED,
    Metrics,
    Outputs,
    all_ids_seen,
    blobs,
    collect,
    feedback_for,
    keyed,
    produce,
    readyz,
    reconcile,
    wait_for_metric,
)

from autolabel.core.messages import AcceptReason, FeedbackSource, Record, ReviewReason
from autolabel.tools.harness import WorkerProcess

pytestmark = pytest.mark.integration

COLD_START = 20
THRESHOLD = 0.9
SEED_EXAMPLES = 10
TRAIN_EXAMPLES = 300

TRAIN = blobs("train", TRAIN_EXAMPLES, seed=1)
FRESH = blobs("fresh", 300, seed=2)


@pytest.fixture(scope="module")
def worker(make_settings, start_worker) -> WorkerProcess:
    return start_worker(
        make_settings(
            policy={
                "mode": "fixed",
                "cold_start_examples": COLD_START,
                "confidence_threshold": THRESHOLD,
            },
            learner={"accuracy_window": 200},
        )
    )


async def send_records(worker: WorkerProcess, records: list[Record]) -> Outputs:
    s = worker.settings
    await produce(s.kafka.bootstrap_servers, s.topics.records, keyed(records))
    return await collect(
        s, all_ids_seen(r.id for r in records), what="every record routed", worker=worker
    )


def learned(n: int):
    """The learner learned ``n`` examples and the labeler labels with that model."""
    return lambda m: (
        m.get("autolabel_model_examples_learned") >= n
        and m.get("autolabel_snapshot_feedback_offset") >= n
    )


def only(out: Outputs, ids: set[str]) -> Outputs:
    """The outputs about ``ids`` (the module's topics also hold earlier phases)."""
    return Outputs(out.settings, [o for o in out.items if getattr(o.value, "id", None) in ids])


async def test_cold_start_sends_every_record_to_review_with_the_record_echoed(
    worker: WorkerProcess,
) -> None:
    records = [
        Record(id=f"cold-{i}", features={"x": float(i), "kind": "a"}, metadata={"n": i, "s": "m"})
        for i in range(30)
    ]
    out = only(await send_records(worker, records), {r.id for r in records})

    assert out.labels == [] and out.dead == []
    assert sorted(r.id for r in out.reviews) == sorted(r.id for r in records)  # one each
    sent = {r.id: r for r in records}
    for o in out.items:
        review = o.value
        assert o.key == review.id.encode()
        assert review.reason is ReviewReason.COLD_START
        assert review.record == sent[review.id]  # echoed in full, metadata included
        assert review.predicted_label is None and review.probabilities == []
        assert review.model_version == 0
        assert review.priority == 1.0  # nothing known: most informative
    assert len({o.partition for o in out.items}) > 1  # keyed by id: spread over partitions


async def test_cold_start_lasts_until_enough_examples_are_learned(
    worker: WorkerProcess,
) -> None:
    s = worker.settings
    seed = feedback_for(TRAIN[:SEED_EXAMPLES], FeedbackSource.SEED)
    await produce(s.kafka.bootstrap_servers, s.topics.feedback, keyed(seed))
    await wait_for_metric(worker, learned(SEED_EXAMPLES), what=f"{SEED_EXAMPLES} learned")

    records = [r for r, _ in FRESH[:20]]
    out = only(await send_records(worker, records), {r.id for r in records})

    assert out.labels == [] and len(out.reviews) == len(records)
    for review in out.reviews:
        assert review.reason is ReviewReason.COLD_START
        assert review.model_version == SEED_EXAMPLES
        assert review.predicted_label in {"pos", "neg"}  # the model exists, but is not trusted
        assert review.probabilities[0].label == review.predicted_label
        assert sum(p.probability for p in review.probabilities) == pytest.approx(1.0, abs=1e-5)


async def test_feedback_teaches_the_model_and_confident_labels_are_auto_accepted(
    worker: WorkerProcess,
) -> None:
    s = worker.settings
    rest = feedback_for(TRAIN[SEED_EXAMPLES:], FeedbackSource.REVIEW, reviewer="ana")
    await produce(s.kafka.bootstrap_servers, s.topics.feedback, keyed(rest))
    metrics = await wait_for_metric(
        worker, learned(TRAIN_EXAMPLES), what=f"{TRAIN_EXAMPLES} examples learned"
    )
    assert metrics.get("autolabel_model_examples_learned") == TRAIN_EXAMPLES  # each once
    assert metrics.get("autolabel_feedback_learned_total", source="seed") == SEED_EXAMPLES
    assert metrics.get("autolabel_feedback_learned_total", source="review") == len(rest)
    assert metrics.get("autolabel_prequential_accuracy_ratio") >= 0.85

    fresh = FRESH[20:]
    truth = {r.id: label for r, label in fresh}
    out = only(await send_records(worker, [r for r, _ in fresh]), set(truth))

    assert out.dead == []
    assert Counter(o.value.id for o in out.items) == Counter(dict.fromkeys(truth, 1))
    labels, reviews = out.labels, out.reviews
    # how many depends on the model's calibration; that acceptance began is the point
    assert len(labels) >= 0.15 * len(fresh), f"only {len(labels)} of {len(fresh)} auto-accepted"
    for label in labels:
        assert label.reason is AcceptReason.CONFIDENT
        assert label.confidence >= THRESHOLD and label.threshold == THRESHOLD
        assert label.model_version == TRAIN_EXAMPLES
    correct = sum(label.label == truth[label.id] for label in labels)
    assert correct / len(labels) >= 0.97, f"{correct}/{len(labels)} accepted labels correct"
    assert reviews, "with overlapping classes some records must stay uncertain"
    for review in reviews:
        assert review.reason is ReviewReason.UNCERTAIN
        assert review.predicted_label in {"pos", "neg"}
        assert review.probabilities[0].probability < THRESHOLD + 1e-6
        assert review.model_version == TRAIN_EXAMPLES
        top, second = (p.probability for p in review.probabilities)
        # a small margin is the most informative: reviewed first
        assert review.priority == pytest.approx(1.0 - (top - second), abs=1e-5)

    status, body = readyz(worker)
    assert status == 200
    assert body["ready"] and body["reasons"] == [] and body["learner_active"]
    assert (body["model_version"], body["examples_learned"], body["feedback_offset"]) == (
        300,
        300,
        300,
    )


async def test_metrics_agree_with_the_topics(worker: WorkerProcess) -> None:
    s = worker.settings
    records_in = PRODUCED[s.topics.records]
    assert records_in == 30 + len(FRESH)

    def caught_up(m: Metrics) -> bool:
        lag = m.series("autolabel_consumer_lag_records")
        return m.get("autolabel_records_consumed_total") >= records_in and (
            lag and all(v == 0 for v in lag.values())
        )

    metrics = await wait_for_metric(worker, caught_up, what="every record consumed, lag 0")
    out = await collect(
        s,
        lambda o: len(o.labels) + len(o.reviews) >= records_in,
        what="every output of the module",
        worker=worker,
    )
    assert reconcile(metrics, out, records_in) == []
    assert {dict(k)["partition"] for k in metrics.series("autolabel_consumer_lag_records")} == {
        "0",
        "1",
        "2",
    }
    assert metrics.get("autolabel_model_version") == TRAIN_EXAMPLES
    batches = metrics.get("autolabel_batch_processing_seconds_count")
    assert 3 <= batches <= records_in  # one per send_records call at least
    assert metrics.get("autolabel_batch_processing_seconds_sum") > 0
