"""The default, certified policy through a real worker: certify, accept, audit.

After enough reviewed feedback the policy certifies a threshold whose precision
bound meets the target; records above it come out as ``certified`` labels, except a
random ``audit_rate`` share that goes to review as ``audit`` with the weight the
evidence needs; answered audits come back as feedback and are counted.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
from kafka_support import (
    Outputs,
    all_ids_seen,
    blobs,
    collect,
    feedback_for,
    keyed,
    produce,
    scrape,
    synced,
    wait_for_metric,
)

from autolabel.core.messages import AcceptReason, FeedbackSource, ReviewReason
from autolabel.review import answer
from autolabel.tools.harness import WorkerProcess

pytestmark = pytest.mark.integration

TARGET = 0.95
AUDIT_RATE = 0.1
RATES = {AUDIT_RATE, 2 * AUDIT_RATE, 0.2}  # base, near the target, after a change
# overlapping classes (best accuracy ~95.5%): 95% precision needs a real threshold, and
# certifying it with the budget spent over every test takes ~1,000 examples (seeded)
TRAIN = blobs("c-train", 1200, seed=41, centre=1.2)
FRESH = blobs("c-fresh", 400, seed=42, centre=1.2)
TRUTH = {r.id: label for r, label in TRAIN + FRESH}


@pytest.fixture(scope="module")
def worker(make_settings, start_worker) -> WorkerProcess:
    return start_worker(
        make_settings(
            policy={
                "mode": "certified",
                "target_precision": TARGET,
                "delta": 0.05,
                "audit_rate": AUDIT_RATE,
                "cold_start_examples": 50,
            }
        )
    )


@pytest.fixture(scope="module")
async def routed(worker: WorkerProcess) -> Outputs:
    """Train on reviewed feedback until certified, then route fresh records."""
    s = worker.settings
    fb = feedback_for(TRAIN, FeedbackSource.REVIEW, reviewer="ana")
    await produce(s.kafka.bootstrap_servers, s.topics.feedback, keyed(fb))
    # (a share of feedback may be held out of training for calibration: count feedback
    # taken in, not examples the model learned)
    await wait_for_metric(
        worker,
        lambda m: m.get("autolabel_feedback_learned_total", source="review") == len(TRAIN),
        what="training feedback taken in",
    )
    await wait_for_metric(worker, synced(len(TRAIN)), what="the labeler on the trained model")
    await produce(s.kafka.bootstrap_servers, s.topics.records, keyed(r for r, _ in FRESH))
    out = await collect(
        s, all_ids_seen(r.id for r, _ in FRESH), what="fresh records routed", worker=worker
    )
    assert Counter(o.value.id for o in out.items) == Counter(r.id for r, _ in FRESH)
    return out


async def test_reviewed_feedback_certifies_a_threshold_meeting_the_target(
    routed: Outputs, worker: WorkerProcess
) -> None:
    m = await scrape(worker)
    assert m.get("autolabel_target_precision_ratio") == TARGET
    assert m.get("autolabel_certified_precision_lower_bound_ratio") >= TARGET
    # overall accuracy is below the target, so accepting everything cannot be certified
    assert 0.5 < m.get("autolabel_policy_threshold", scope="global") < 1.0
    thresholds = {
        m.get("autolabel_policy_threshold", scope=scope)
        for scope in ("global", "class_min", "class_max")
    }
    assert {label.threshold for label in routed.labels} <= thresholds
    assert m.get("autolabel_drift_fallback_active") == 0
    # the base rate, doubled near the target, raised after a new certificate (policy.drift)
    assert m.get("autolabel_audit_ratio") in RATES


async def test_certified_labels_are_precise_and_above_their_threshold(
    routed: Outputs, worker: WorkerProcess
) -> None:
    version = (await scrape(worker)).get("autolabel_model_version")
    assert 0 < version <= len(TRAIN)
    labels = routed.labels
    assert len(labels) >= 0.3 * len(FRESH), f"only {len(labels)} of {len(FRESH)} accepted"
    for label in labels:
        assert label.reason is AcceptReason.CERTIFIED
        assert math.isfinite(label.threshold) and label.confidence >= label.threshold
        assert label.model_version == version
    correct = sum(label.label == TRUTH[label.id] for label in labels)
    assert correct / len(labels) >= TARGET, f"{correct}/{len(labels)} accepted labels correct"


async def test_uncertain_records_sit_below_the_threshold_of_their_class(
    routed: Outputs,
) -> None:
    thresholds = {label.label: label.threshold for label in routed.labels}
    uncertain = [r for r in routed.reviews if r.reason is ReviewReason.UNCERTAIN]
    assert uncertain
    for review in uncertain:
        if review.predicted_label in thresholds:
            confidence = review.probabilities[0].probability
            assert confidence < thresholds[review.predicted_label] + 1e-6
    assert {r.reason for r in routed.reviews} <= {ReviewReason.UNCERTAIN, ReviewReason.AUDIT}


async def test_a_random_share_of_acceptable_records_is_audited(
    routed: Outputs, worker: WorkerProcess
) -> None:
    thresholds = {label.label: label.threshold for label in routed.labels}
    audits = [r for r in routed.reviews if r.reason is ReviewReason.AUDIT]
    acceptable = len(audits) + len(routed.labels)
    # binomial(acceptable, 0.1 to 0.2): far outside these bounds only if not sampled
    assert 0.02 * acceptable <= len(audits) <= 0.35 * acceptable, (len(audits), acceptable)
    for audit in audits:
        # each audit stands for 1 / (the rate it was drawn at) accepted records
        assert any(audit.sample_weight == pytest.approx(1 / rate) for rate in RATES)
        assert audit.probabilities[0].probability >= thresholds[audit.predicted_label] - 1e-6

    # reviewers answer the audits; the learner counts them as audit evidence
    s = worker.settings
    answers = [answer(a, TRUTH[a.id]) for a in audits]
    await produce(s.kafka.bootstrap_servers, s.topics.feedback, keyed(answers))
    m = await wait_for_metric(
        worker,
        lambda m: m.get("autolabel_feedback_learned_total", source="audit") == len(answers),
        what="audit answers learned",
    )
    wrong = sum(a.predicted_label != TRUTH[a.id] for a in audits)
    assert m.get("autolabel_audit_error_ratio") == pytest.approx(wrong / len(audits))
