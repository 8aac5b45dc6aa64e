"""What the service learned is trustworthy: only signed snapshots are used, an answer is
learned once, an update that would break the model is refused, and no message of any
shape stops the worker."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka_support import (
    blobs,
    collect,
    feedback_for,
    keyed,
    produce,
    readyz,
    synced,
    wait_for_metric,
)
from streams import newest_header

from autolabel.core.messages import DeadLetterReason, FeedbackSource, Record
from autolabel.core.signing import Signer
from autolabel.core.snapshot import MAGIC, SNAPSHOT_PURPOSE, encode_snapshot
from autolabel.review import answer
from autolabel.settings import ModelSettings, PolicySettings, Settings
from autolabel.tools.harness import WorkerProcess
from autolabel.trust.controller import ControllerConfig, TrustController

pytestmark = pytest.mark.integration


async def train(worker: WorkerProcess, n: int = 200, seed: int = 1) -> None:
    s = worker.settings
    examples = blobs(f"train{seed}", n, seed=seed)
    await produce(
        s.kafka.bootstrap_servers,
        s.topics.feedback,
        keyed(feedback_for(examples, FeedbackSource.SEED)),
    )
    await wait_for_metric(worker, synced(n), what=f"the labeler on a model that learned {n}")


async def newest_raw(settings: Settings) -> bytes:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=64 << 20,
    )
    await consumer.start()
    try:
        tp = TopicPartition(settings.topics.models, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, end - 1)
        batch = await consumer.getmany(tp, timeout_ms=5000)
        return batch[tp][-1].value
    finally:
        await consumer.stop()


async def test_unsigned_or_tampered_snapshots_are_refused_and_the_model_stays(
    make_settings, workers: Callable[[Settings], WorkerProcess]
) -> None:
    worker = workers(make_settings())
    await train(worker)
    s = worker.settings
    before = readyz(worker)[1]
    genuine = await newest_raw(s)
    # a state that learned far more, signed with another key
    other = TrustController(ControllerConfig(ModelSettings(), PolicySettings()))
    other.feedback_offset = 10**9
    forged = encode_snapshot(other, Signer(b"x" * 32, SNAPSHOT_PURPOSE), writer="attacker")
    tampered = genuine[:-10] + bytes(b ^ 0xFF for b in genuine[-10:])
    unsigned = b"\x80\x04\x95" + b"\x00" * 64  # a bare pickle
    key = s.app_id.encode()
    await produce(
        s.kafka.bootstrap_servers,
        s.topics.models,
        [(key, forged), (key, tampered), (key, unsigned), (key, MAGIC + b"short")],
    )
    m = await wait_for_metric(
        worker,
        lambda m: sum(m.series("autolabel_snapshots_rejected_total").values()) >= 4,
        what="four snapshots refused",
    )
    assert m.get("autolabel_snapshots_rejected_total", reason="bad_signature") == 2
    assert m.get("autolabel_snapshots_rejected_total", reason="unsigned") == 1
    assert m.get("autolabel_snapshots_rejected_total", reason="malformed") == 1
    after = readyz(worker)[1]
    assert after["model_version"] == before["model_version"]
    assert after["feedback_offset"] == before["feedback_offset"]
    assert worker.alive()
    assert "refused a snapshot" in worker.log_tail(400)


async def test_an_answer_sent_twice_is_learned_once(
    make_settings, workers: Callable[[Settings], WorkerProcess]
) -> None:
    worker = workers(make_settings())
    s = worker.settings
    examples = blobs("twice", 60, seed=3)
    truth = {r.id: y for r, y in examples}
    await produce(s.kafka.bootstrap_servers, s.topics.records, keyed(r for r, _ in examples))
    out = await collect(
        s, lambda o: len(o.reviews) >= len(examples), what="cold-start reviews", worker=worker
    )
    answers = keyed([answer(r, truth[r.id], "ana") for r in out.reviews])
    await produce(s.kafka.bootstrap_servers, s.topics.feedback, answers)
    # The retry comes after a snapshot of the originals, so only duplicates follow it:
    # the next snapshot must still move past them, or a restart reads them again.
    await wait_for_metric(worker, synced(len(answers)), what="a snapshot of the answers")
    await produce(s.kafka.bootstrap_servers, s.topics.feedback, answers)  # a reviewer's retry
    m = await wait_for_metric(
        worker,
        lambda m: m.get("autolabel_feedback_duplicates_total") >= len(answers),
        what="the re-sent answers recognised",
    )
    assert m.get("autolabel_feedback_learned_total", source="review") == len(answers)
    await wait_for_metric(worker, synced(2 * len(answers)), what="a snapshot of it all")
    header = await newest_header(s)
    assert header is not None
    assert header.learned_total == len(answers) and header.duplicates == len(answers)


@pytest.mark.parametrize(
    "model",
    [
        # softmax scores 1e308 finitely, and learning it overflows: rolled back
        {"tabular": "softmax", "text": "tfidf_nb", "embedding": "softmax"},
        {},  # the default candidates: the tree cannot even score it: refused at once
    ],
    ids=["rolled-back", "refused"],
)
async def test_an_update_that_would_make_the_model_non_finite_is_refused(
    make_settings, workers: Callable[[Settings], WorkerProcess], model: dict[str, str]
) -> None:
    # Only a deployment that raised the number bound lets 1e308 through the decoder.
    worker = workers(make_settings(labeler={"max_abs_number": 1.7976931348623157e308}, model=model))
    s = worker.settings
    await train(worker, 100)
    poison = Record(id="poison", features={"x": 1.0, "y": 1.0, "colour": "red"})
    poisoned = json.loads(
        feedback_for([(poison, "pos")], FeedbackSource.REVIEW)[0].model_dump_json()
    )
    poisoned["record"]["features"]["x"] = 1e308
    later = feedback_for(blobs("after", 50, seed=4), FeedbackSource.REVIEW)
    await produce(
        s.kafka.bootstrap_servers,
        s.topics.feedback,
        [(b"poison", json.dumps(poisoned).encode()), *keyed(later)],
    )
    m = await wait_for_metric(
        worker,
        lambda m: m.get("autolabel_feedback_learned_total", source="review") >= len(later),
        what="the feedback after the poison learned",
    )
    assert m.get("autolabel_model_updates_refused_total") == 1
    assert ("rolled back to the last snapshot" in worker.log_tail(2000)) == bool(model)
    out = await collect(
        s,
        lambda o: any(d.stage == "learner" for d in o.dead),
        what="the refused update dead-lettered",
        worker=worker,
    )
    letters = [d for d in out.dead if d.stage == "learner"]
    assert [(d.reason, d.record_id) for d in letters] == [
        (DeadLetterReason.MODEL_UPDATE_REFUSED, "poison")
    ]
    await wait_for_metric(worker, synced(100 + 1 + len(later)), what="a snapshot past it")
    header = await newest_header(s)
    assert header is not None
    assert header.learned_total == 100 + len(later)
    assert header.rejected == {"model_update_refused": 1}
    # the model labels with finite confidences
    fresh = [r for r, _ in blobs("fresh", 30, seed=5)]
    await produce(s.kafka.bootstrap_servers, s.topics.records, keyed(fresh))
    routed = await collect(
        s, lambda o: len(o.reviews) + len(o.labels) >= 30, what="fresh routed", worker=worker
    )
    confidences = [r.probabilities[0].probability for r in routed.reviews if r.probabilities]
    confidences += [label.confidence for label in routed.labels]
    assert confidences and all(0.0 <= c <= 1.0 for c in confidences)


async def test_labels_outside_the_allow_list_are_dead_lettered(
    make_settings, workers: Callable[[Settings], WorkerProcess]
) -> None:
    worker = workers(make_settings(model={"classes": "pos,neg"}))
    s = worker.settings
    good = feedback_for(blobs("ok", 20, seed=6), FeedbackSource.SEED)
    bad = feedback_for([(Record(id="cat-1", features={"x": 0.1}), "cat")], FeedbackSource.SEED)
    await produce(s.kafka.bootstrap_servers, s.topics.feedback, keyed(good + bad))
    out = await collect(s, lambda o: bool(o.dead), what="a dead letter", worker=worker)
    assert [(d.reason, d.record_id, d.stage) for d in out.dead] == [
        (DeadLetterReason.UNKNOWN_CLASS, "cat-1", "learner")
    ]
    m = await wait_for_metric(
        worker,
        lambda m: m.get("autolabel_feedback_learned_total", source="seed") == len(good),
        what="the allowed labels learned",
    )
    assert m.get("autolabel_dead_letters_total", stage="learner", reason="unknown_class") == 1


# --------------------------------------------------------------------------- fuzz


def fuzzed(n: int, seed: int) -> list[bytes]:
    """Near-valid and invalid records of every shape, reproducibly."""
    rng = random.Random(seed)
    base = [
        {"id": "r", "features": {"x": 1.5, "y": -2, "c": "red", "b": True}},
        {"id": "r", "text": "a short text"},
        {"id": "r", "embedding": [0.1, 0.2, 0.3]},
        {"id": "r", "features": {"x": 1.0}, "metadata": {"m": [1, {"k": "v"}]}},
    ]
    junk_values: list[object] = [
        None, True, "", "x" * 300, 1e308, -1e300, 10**30, [], {}, [[[]]], {"a": {"b": 1}},
        "NaN", 2**63, -0.0, "\u0000", "\ud7ff", 3.5,
    ]  # fmt: skip

    def deep(k: int) -> str:
        return "[" * k + "]" * k

    out: list[bytes] = []
    for i in range(n):
        doc = json.loads(json.dumps(rng.choice(base)))
        doc["id"] = f"fz-{i}"
        kind = rng.randrange(12)
        if kind == 0:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 80))))
            continue
        if kind == 1:
            raw = json.dumps(doc).encode()
            out.append(raw[: rng.randrange(len(raw))])
            continue
        if kind == 2:
            depth = rng.choice([50, 500, 5000])
            out.append(f'{{"id": "fz-{i}", "features": {{"x": {deep(depth)}}}}}'.encode())
            continue
        if kind == 3:
            out.append(
                json.dumps(doc).replace("1.5", rng.choice(["NaN", "Infinity", "1e999"])).encode()
            )
            continue
        if kind == 4:
            doc[rng.choice(["extra", "ID", "features2"])] = rng.choice(junk_values)
        elif kind == 5:
            key = rng.choice(list(doc))
            doc[key] = rng.choice(junk_values)
        elif kind == 6:
            doc.pop(rng.choice(list(doc)))
        elif kind == 7:
            doc["schema_version"] = rng.choice([True, 1.0, "1", 2, 0, None])
        elif kind == 8 and "features" in doc:
            doc["features"][rng.choice(["x", "new", ""])] = rng.choice(junk_values)
        elif kind == 9:
            doc["metadata"] = json.loads(deep(rng.choice([10, 40])))
        elif kind == 10:
            doc = rng.choice([[], "string", 42, None, [doc]])
        # kind 11: valid
        out.append(json.dumps(doc).encode())
    return out


async def test_ten_thousand_fuzzed_messages_never_stop_the_worker(
    make_settings, workers: Callable[[Settings], WorkerProcess]
) -> None:
    worker = workers(make_settings())
    s = worker.settings
    await train(worker, 100)
    records = fuzzed(10_000, seed=7)
    feedback = [
        r.replace(
            b'"id"',
            b'"label": "pos", "source": "seed", "record": {"id": "x", "text": "t"}, "id"',
            1,
        )
        for r in records[:2000]
    ]
    await produce(s.kafka.bootstrap_servers, s.topics.records, [(None, r) for r in records])
    await produce(s.kafka.bootstrap_servers, s.topics.feedback, [(None, f) for f in feedback])

    def accounted(m) -> bool:  # type: ignore[no-untyped-def]
        routed = sum(m.series("autolabel_decisions_total").values())
        dead = sum(
            v
            for k, v in m.series("autolabel_dead_letters_total").items()
            if ("stage", "labeler") in k
        )
        return m.get("autolabel_records_consumed_total") >= len(records) and routed + dead >= len(
            records
        )

    m = await wait_for_metric(worker, accounted, timeout_s=120, what="every fuzzed record routed")
    routed = sum(m.series("autolabel_decisions_total").values())
    dead = {
        dict(k)["reason"]: v
        for k, v in m.series("autolabel_dead_letters_total").items()
        if ("stage", "labeler") in k and v
    }
    assert routed + sum(dead.values()) == len(records) == m.get("autolabel_records_consumed_total")
    await wait_for_metric(
        worker, synced(100 + len(feedback)), timeout_s=120, what="feedback absorbed"
    )
    header = await newest_header(s)
    assert header is not None
    assert header.learned_total + sum(header.rejected.values()) + header.duplicates == 100 + len(
        feedback
    )
    status, body = readyz(worker)
    assert worker.alive() and status == 200, body
    assert "Traceback" not in worker.log_tail(2000)
    print(
        f"[fuzz] 10,000 records: routed {routed:.0f}, dead-lettered {dict(sorted(dead.items()))};"
        f" 2,000 feedback: learned {header.learned_total}, rejected {header.rejected}"
    )
