"""`autolabel seed` through a real broker: check the seed set, publish it, the worker learns it.

A seed file with a few deliberately wrong labels: the check names them (given and
suggested label), ``--drop-suspicious`` leaves them out, the rest arrives on the
feedback topic as ``source=seed`` keyed by record id, and the worker learns every
published example.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka_support import blobs, run_cli, wait_for_metric

from autolabel.core.messages import Feedback, FeedbackSource
from autolabel.tools.harness import WorkerProcess

pytestmark = pytest.mark.integration

N = 300
FLIPPED = {7, 51, 123, 200, 277}


@pytest.fixture(scope="module")
def seed_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seed") / "seed.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "x", "y", "colour", "truth"])
        writer.writeheader()
        for i, (record, label) in enumerate(blobs("seed", N, seed=3, centre=2.0)):
            assert record.features is not None
            given = {"pos": "neg", "neg": "pos"}[label] if i in FLIPPED else label
            writer.writerow({"id": record.id, **record.features, "truth": given})
    return path


async def read_feedback(worker: WorkerProcess, expected: int) -> list[Feedback]:
    s = worker.settings
    consumer = AIOKafkaConsumer(
        bootstrap_servers=s.kafka.bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(s.topics.feedback, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        out: list[Feedback] = []
        for _ in range(40):
            batch = await consumer.getmany(tp, timeout_ms=500)
            out += [Feedback.model_validate_json(m.value) for m in batch.get(tp, [])]
            if len(out) >= expected and not batch:
                break
        return out
    finally:
        await consumer.stop()


async def test_seed_check_flags_wrong_labels_and_publishes_the_rest(
    make_settings, start_worker, seed_file: Path
) -> None:
    worker = start_worker(make_settings())
    env = worker.settings.to_env()

    dry = run_cli("seed", str(seed_file), "--label-column", "truth", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    flagged = {f"seed-{i:05d}" for i in FLIPPED if f"seed-{i:05d}" in dry.stdout}
    assert len(flagged) >= 4, f"the check missed planted label errors:\n{dry.stdout}"
    assert "would publish 300 of 300" in dry.stdout  # a dry run publishes nothing

    run = run_cli("seed", str(seed_file), "--label-column", "truth", "--drop-suspicious", env=env)
    assert run.returncode == 0, run.stderr
    published = await read_feedback(worker, 1)
    kept = {f.id for f in published}
    assert len(published) == len(kept), "a seed example was published twice"
    assert all(f.source is FeedbackSource.SEED for f in published)
    assert not kept & flagged, "suspicious rows were published despite --drop-suspicious"
    assert N - 40 <= len(published) <= N - len(flagged)
    assert f"published {len(published)} seed examples" in run.stdout
    for f in published:  # the truth column became the label, never a feature
        assert f.record.features is not None and "truth" not in f.record.features

    await wait_for_metric(
        worker,
        lambda m: m.get("autolabel_feedback_learned_total", source="seed") == len(published),
        what="the worker learning every published seed example",
    )
