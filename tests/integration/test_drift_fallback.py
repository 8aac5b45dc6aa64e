"""Drift fallback through a real worker: acceptance stops on drift and comes back.

A worker certifies on concept A and auto-accepts. Then the concept flips (labels
swap): audited labels come back wrong, the audits refute the certified precision,
and every fresh record goes to review with reason ``drift``. Reviewers label the
new concept; once the policy re-certifies on post-drift evidence alone,
acceptance resumes, and what it accepts follows the new concept.
"""

from __future__ import annotations

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
    wait_for_metric,
)

from autolabel.core.messages import AcceptReason, FeedbackSource, Record, ReviewReason
from autolabel.review import answer
from autolabel.tools.harness import WorkerProcess

pytestmark = pytest.mark.integration

FLIP = {"pos": "neg", "neg": "pos"}


def flipped(examples: list[tuple[Record, str]]) -> list[tuple[Record, str]]:
    return [(record, FLIP[label]) for record, label in examples]


def learned(m: object) -> float:
    return sum(m.series("autolabel_feedback_learned_total").values())  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def worker(make_settings, start_worker) -> WorkerProcess:
    return start_worker(
        make_settings(
            policy={"audit_rate": 0.2, "cold_start_examples": 20, "drift_audit_rate": 0.3}
        )
    )


async def route(worker: WorkerProcess, records: list[tuple[Record, str]]) -> Outputs:
    s = worker.settings
    await produce(s.kafka.bootstrap_servers, s.topics.records, keyed([r for r, _ in records]))
    ids = {r.id for r, _ in records}
    out = await collect(s, all_ids_seen(ids), worker=worker, what="fresh records routed")
    return Outputs(s, [o for o in out.items if o.key is not None and o.key.decode() in ids])


async def test_drift_stops_acceptance_and_recertification_restores_it(
    worker: WorkerProcess,
) -> None:
    s = worker.settings
    bootstrap = s.kafka.bootstrap_servers

    # 1. Concept A: enough reviewed feedback to certify, then fresh records are accepted.
    train = blobs("a-train", 900, seed=7, centre=1.5)
    await produce(bootstrap, s.topics.feedback, keyed(feedback_for(train, FeedbackSource.REVIEW)))
    await wait_for_metric(
        worker,
        lambda m: m.get("autolabel_certified_precision_lower_bound_ratio") >= 0.95,
        what="a certificate on concept A",
    )
    before = await route(worker, blobs("a-fresh", 300, seed=8, centre=1.5))
    assert before.labels, "nothing accepted on concept A"
    assert all(lab.reason is AcceptReason.CERTIFIED for lab in before.labels)

    # 2. The concept flips. Audited labels come back wrong: the certificate is refuted.
    audits = [r for r in before.reviews if r.reason is ReviewReason.AUDIT]
    assert len(audits) >= 5, "need audits of the accepted region to see the drift"
    truth_a = {r.id: label for r, label in blobs("a-fresh", 300, seed=8, centre=1.5)}
    wrong = [answer(r, FLIP[truth_a[r.id]]) for r in audits]
    await produce(bootstrap, s.topics.feedback, keyed(wrong))
    after_drift = await wait_for_metric(
        worker,
        lambda m: m.get("autolabel_drift_fallback_active") == 1.0,
        what="drift fallback",
    )
    assert sum(after_drift.series("autolabel_drift_events_total").values()) >= 1

    # 3. While in fallback nothing is auto-accepted: every fresh record asks a human.
    during = await route(worker, flipped(blobs("b-during", 200, seed=9, centre=1.5)))
    assert not during.labels
    assert Counter(r.reason for r in during.reviews) == {ReviewReason.DRIFT: 200}

    # 4. Reviewers label the new concept; the policy re-certifies on it alone. How much
    # post-change evidence that takes depends on the share of delta the new epoch gets
    # and on which test of its schedule passes first, so reviewers keep answering, round
    # after round, until acceptance is back (here: within 2,700 answers).
    seen = learned(after_drift)
    for round_ in range(3):
        post = flipped(blobs(f"b-train-{round_}", 900, seed=10 + 100 * round_, centre=1.5))
        await produce(
            bootstrap, s.topics.feedback, keyed(feedback_for(post, FeedbackSource.REVIEW))
        )
        seen += len(post)
        m = await wait_for_metric(
            worker,
            lambda m, target=seen: learned(m) >= target,
            what=f"round {round_ + 1} of post-change answers learned",
        )
        if m.get("autolabel_drift_fallback_active") == 0.0:
            break
    else:
        await wait_for_metric(
            worker,
            lambda m: m.get("autolabel_drift_fallback_active") == 0.0,
            what="re-certification after the drift",
        )
    fresh_b = flipped(blobs("b-fresh", 300, seed=11, centre=1.5))
    after = await route(worker, fresh_b)
    assert after.labels, "acceptance did not come back after re-certification"
    truth_b = {r.id: label for r, label in fresh_b}
    right = sum(lab.label == truth_b[lab.id] for lab in after.labels)
    assert right / len(after.labels) >= 0.9, "accepted labels follow the old concept"
