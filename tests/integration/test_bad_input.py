"""Bad input of any shape lands in dead-letter with its reason; good records keep flowing.

One worker (max message size 2048 bytes, so "oversized" is cheap to provoke) takes a
stream of good records, one of every kind of bad record, more good records, and bad
feedback. Every bad message must come out on the dead-letter topic exactly once, with
its reason, its source coordinates and its original bytes; the worker stays healthy.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass

import pytest
from kafka_support import (
    PRODUCED,
    Outputs,
    blobs,
    collect,
    feedback_for,
    keyed,
    produce,
    reconcile,
    wait_for_metric,
)

from autolabel.core.messages import DeadLetter, DeadLetterReason, FeedbackSource, ReviewReason
from autolabel.tools.harness import WorkerProcess

pytestmark = pytest.mark.integration

MAX_BYTES = 2048
R = DeadLetterReason


@dataclass(frozen=True)
class Bad:
    name: str
    value: bytes | None
    reason: DeadLetterReason
    record_id: str | None  # what the dead letter must name
    error: str  # a fragment the readable error must contain


def js(obj: object) -> bytes:
    return json.dumps(obj).encode()


BAD_RECORDS = [
    Bad("invalid_json", b'{"id": "b-json", "features": {"x": 1}', R.INVALID_JSON, None, "JSON"),
    Bad("not_utf8", b"\xff\xfe\x00\x81 not text", R.INVALID_JSON, None, "JSON"),
    Bad("null_value", None, R.INVALID_JSON, None, "empty"),
    Bad("array", b"[1, 2, 3]", R.NOT_AN_OBJECT, None, "object"),
    Bad(
        "feature_list",
        js({"id": "b-list", "features": {"x": [1, 2]}}),
        R.WRONG_TYPE,
        "b-list",
        "features.x",
    ),
    Bad("numeric_id", js({"id": 17, "text": "hello"}), R.WRONG_TYPE, None, "id"),
    Bad("missing_id", js({"features": {"x": 1.0}}), R.MISSING_ID, None, "'id'"),
    Bad(
        "unknown_field",
        js({"id": "b-extra", "features": {"x": 1}, "colour": "red"}),
        R.UNKNOWN_FIELD,
        "b-extra",
        "'colour'",
    ),
    Bad(
        "nan_feature",
        b'{"id": "b-nan", "features": {"x": NaN, "y": 1}}',
        R.NON_FINITE_NUMBER,
        "b-nan",
        "features.x",
    ),
    Bad(
        "infinite_embedding",
        b'{"id": "b-inf", "embedding": [0.5, Infinity]}',
        R.NON_FINITE_NUMBER,
        "b-inf",
        "embedding.1",
    ),
    Bad(
        "overflowing_number",
        b'{"id": "b-1e999", "features": {"x": 1e999}}',
        R.NON_FINITE_NUMBER,
        "b-1e999",
        "features.x",
    ),
    Bad("empty_features", js({"id": "b-empty", "features": {}}), R.EMPTY_PAYLOAD, "b-empty", ""),
    Bad("no_payload", js({"id": "b-none"}), R.EMPTY_PAYLOAD, "b-none", "exactly one"),
    Bad(
        "oversized",
        js({"id": "b-big", "text": "word " * (MAX_BYTES // 4)}),
        R.OVERSIZED,
        "b-big",
        "AUTOLABEL_LABELER__MAX_MESSAGE_BYTES",
    ),
    Bad(
        "schema_version_2",
        js({"schema_version": 2, "id": "b-v2", "text": "hi"}),
        R.UNSUPPORTED_SCHEMA_VERSION,
        "b-v2",
        "schema_version",
    ),
    Bad(
        "text_and_features",
        js({"id": "b-both", "text": "hi", "features": {"x": 1}}),
        R.BAD_PAYLOAD,
        "b-both",
        "exactly one",
    ),
    Bad(
        # 2,000 levels in 2 KB: it used to raise RecursionError in the labeler
        "deep_nesting",
        b'{"id": "b-deep", "features": {"x": ' + b"[" * 2000,
        R.INVALID_JSON,
        None,
        "nested too deeply",
    ),
    Bad(
        "huge_number",
        js({"id": "b-huge", "features": {"x": 1e308, "y": 1.0}}),
        R.OUT_OF_RANGE,
        "b-huge",
        "features.x: magnitude over 1e+15",
    ),
    Bad(
        "schema_version_true",
        js({"schema_version": True, "id": "b-true", "features": {"x": 1}}),
        R.UNSUPPORTED_SCHEMA_VERSION,
        "b-true",
        "not true",
    ),
]

GOOD_RECORD = js({"id": "f-good", "features": {"x": 1.0}})
BAD_FEEDBACK = [
    Bad("feedback_invalid_json", b"{not json", R.INVALID_JSON, None, "JSON"),
    Bad(
        "feedback_robot_source",
        js({"id": "f-good", "record": json.loads(GOOD_RECORD), "label": "a", "source": "robot"}),
        R.UNKNOWN_FEEDBACK_SOURCE,
        "f-good",
        "review, audit, seed, external",
    ),
    Bad(
        "feedback_missing_label",
        js({"id": "f-good", "record": json.loads(GOOD_RECORD), "source": "review"}),
        R.INVALID_MESSAGE,
        "f-good",
        "label",
    ),
    Bad(
        "feedback_deep_nesting",  # it used to raise RecursionError in the learner
        b'{"id": "f-deep", "record": {"id": "f-deep", "features": {"x": ' + b"[" * 1980,
        R.INVALID_JSON,
        None,
        "nested too deeply",
    ),
    Bad(
        "feedback_huge_number",
        js(
            {
                "id": "f-huge",
                "record": {"id": "f-huge", "features": {"x": -1e300}},
                "label": "a",
                "source": "seed",
            }
        ),
        R.OUT_OF_RANGE,
        "f-huge",
        "record.features.x: magnitude over",
    ),
    Bad(
        "feedback_claims_a_weight",  # weights come from the request id, never from a claim
        js(
            {
                "id": "f-w",
                "record": {"id": "f-w", "features": {"x": 1.0}},
                "label": "a",
                "source": "audit",
                "sample_weight": 20,
            }
        ),
        R.UNKNOWN_FIELD,
        "f-w",
        "'sample_weight'",
    ),
    Bad(
        "feedback_forged_audit",  # an audit answer without the request it answers
        js(
            {
                "id": "f-a",
                "record": {"id": "f-a", "features": {"x": 1.0}},
                "label": "a",
                "source": "audit",
            }
        ),
        R.UNVERIFIED_REQUEST,
        "f-a",
        "request_id",
    ),
    Bad(
        "feedback_forged_request_id",
        js(
            {
                "id": "f-r",
                "record": {"id": "f-r", "features": {"x": 1.0}},
                "label": "a",
                "source": "audit",
                "request_id": "r1" + "A" * 66,
            }
        ),
        R.UNVERIFIED_REQUEST,
        "f-r",
        "not issued by this service",
    ),
    Bad(
        "feedback_bad_record",
        js({"id": "f-x", "record": {"id": "f-x", "features": {}}, "label": "a", "source": "seed"}),
        R.EMPTY_PAYLOAD,
        "f-x",
        "features",
    ),
]


@dataclass
class Run:
    """What was sent and what came out."""

    out: Outputs
    coords: dict[str, tuple[int, int]]  # bad case name -> (partition, offset) it was written at
    keys: dict[str, bytes]  # bad case name -> message key used
    good_ids: list[str]


@pytest.fixture(scope="module")
def worker(make_settings, start_worker) -> WorkerProcess:
    return start_worker(make_settings(labeler={"max_message_bytes": MAX_BYTES}))


@pytest.fixture(scope="module")
async def run(worker: WorkerProcess) -> Run:
    s = worker.settings
    bootstrap = s.kafka.bootstrap_servers
    before = [r for r, _ in blobs("before", 20, seed=11)]
    after = [r for r, _ in blobs("after", 20, seed=12)]
    keys = {b.name: f"key-{b.name}".encode() for b in BAD_RECORDS + BAD_FEEDBACK}
    await produce(bootstrap, s.topics.records, keyed(before))
    bad = [(keys[b.name], b.value) for b in BAD_RECORDS]
    bad_meta = await produce(bootstrap, s.topics.records, bad)
    await produce(bootstrap, s.topics.records, keyed(after))
    feedback = [(keys[b.name], b.value) for b in BAD_FEEDBACK]
    good_feedback = keyed(feedback_for(blobs("fb", 3, seed=13), FeedbackSource.SEED))
    fb_meta = await produce(bootstrap, s.topics.feedback, feedback + good_feedback)
    written = bad_meta + fb_meta[: len(feedback)]
    coords = {
        b.name: (m.partition, m.offset)
        for b, m in zip(BAD_RECORDS + BAD_FEEDBACK, written, strict=True)
    }
    good_ids = [r.id for r in before + after]

    def done(out: Outputs) -> bool:
        return set(good_ids) <= out.routed_ids() and len(out.dead) >= len(coords)

    out = await collect(
        s, done, what="good records routed and every bad one dead-lettered", worker=worker
    )
    # the good feedback after the bad one was learned: the learner kept going
    await wait_for_metric(
        worker,
        lambda m: m.get("autolabel_feedback_learned_total", source="seed") == 3,
        what="the good feedback after the bad taken in",
    )
    return Run(out, coords, keys, good_ids)


@pytest.mark.parametrize("bad", BAD_RECORDS + BAD_FEEDBACK, ids=lambda b: b.name)
async def test_bad_message_is_dead_lettered_with_reason_source_and_original_bytes(
    run: Run, worker: WorkerProcess, bad: Bad
) -> None:
    s = worker.settings
    learner = bad in BAD_FEEDBACK
    stage = "learner" if learner else "labeler"
    partition, offset = run.coords[bad.name]
    letters = [
        o
        for o in run.out.by_topic(s.topics.dead_letter)
        if (o.value.source_partition, o.value.source_offset, o.value.stage)
        == (partition, offset, stage)
    ]
    assert len(letters) == 1, f"{len(letters)} dead letters for {bad.name}"
    letter: DeadLetter = letters[0].value
    assert letter.source_topic == (s.topics.feedback if learner else s.topics.records)
    assert letter.reason is bad.reason, letter.error
    assert bad.error in letter.error
    assert letter.record_id == bad.record_id
    # keyed by the record id when one could be read, else by the input's own key
    assert letters[0].key == (bad.record_id.encode() if bad.record_id else run.keys[bad.name])
    original = (
        base64.b64decode(letter.payload)
        if letter.payload_encoding == "base64"
        else letter.payload.encode("utf-8")
    )
    assert original == (bad.value or b"")
    if bad.name == "not_utf8":
        assert letter.payload_encoding == "base64"


async def test_good_records_around_bad_ones_are_routed_exactly_once(
    run: Run, worker: WorkerProcess
) -> None:
    routed = Counter(o.value.id for o in run.out.items if o.topic == worker.settings.topics.review)
    assert {i: routed[i] for i in run.good_ids} == dict.fromkeys(run.good_ids, 1)
    for review in run.out.reviews:
        assert review.reason is ReviewReason.COLD_START  # 3 examples < default cold start 50
    assert run.out.labels == []


async def test_worker_survives_bad_input(run: Run, worker: WorkerProcess) -> None:
    assert worker.alive()
    assert worker.get("/healthz") == (200, b'{"status":"ok"}')
    status, _ = worker.get("/readyz")
    assert status == 200


async def test_mixed_batch_over_three_partitions_ends_in_exactly_one_topic_each(
    run: Run, worker: WorkerProcess
) -> None:
    s = worker.settings
    good = [r for r, _ in blobs("mixed", 150, seed=21)]
    shapes = [
        lambda i: js({"id": i, "features": {"x": [1]}}),
        lambda i: js({"id": i, "features": {"x": 1}, "extra": True}),
        lambda i: js({"id": i, "features": {}}),
        lambda i: f'{{"id": "{i}", "embedding": [NaN]}}'.encode(),
        lambda i: js({"id": i, "schema_version": 3, "text": "t"}),
    ]
    bad = [(f"mixed-bad-{n}", shapes[n % len(shapes)](f"mixed-bad-{n}")) for n in range(30)]
    messages = keyed(good) + [(i.encode(), v) for i, v in bad]
    order = list(range(len(messages)))
    order = order[::2] + order[1::2]  # interleave good and bad
    ids = [r.id for r in good] + [i for i, _ in bad]
    meta = await produce(s.kafka.bootstrap_servers, s.topics.records, [messages[k] for k in order])
    assert {m.partition for m in meta} == {0, 1, 2}
    where = {ids[k]: (m.partition, m.offset) for k, m in zip(order, meta, strict=True)}

    def done(out: Outputs) -> bool:
        seen = out.routed_ids() | {d.record_id for d in out.dead}
        return set(ids) <= seen

    out = await collect(s, done, what="every mixed record somewhere", worker=worker)
    for record_id in ids:
        found = out.outputs_for(record_id)
        assert len(found) == 1, f"{record_id} came out {len(found)} times: {found}"
        o = found[0]
        assert o.key == record_id.encode()
        if record_id.startswith("mixed-bad"):
            assert o.topic == s.topics.dead_letter
            assert (o.value.source_partition, o.value.source_offset) == where[record_id]
        else:
            assert o.topic == s.topics.review


async def test_metrics_count_exactly_what_came_out(run: Run, worker: WorkerProcess) -> None:
    s = worker.settings
    records_in = PRODUCED[s.topics.records]
    assert records_in >= 20 + len(BAD_RECORDS) + 20
    metrics = await wait_for_metric(
        worker,
        lambda m: m.get("autolabel_records_consumed_total") >= records_in,
        what="every record consumed",
    )
    learner_dead = len(BAD_FEEDBACK)
    out = await collect(
        s,
        lambda o: len(o.items) >= records_in + learner_dead,
        what="all outputs of the module",
        worker=worker,
    )
    assert reconcile(metrics, out, records_in) == []
    assert metrics.get("autolabel_feedback_learned_total", source="seed") == 3
    robots = metrics.get(
        "autolabel_dead_letters_total", stage="learner", reason="unknown_feedback_source"
    )
    assert robots == 1


async def test_a_message_too_big_to_dead_letter_whole_does_not_stop_the_labeler(
    run: Run, worker: WorkerProcess
) -> None:
    """1.2 MB of non-UTF-8 bytes: its dead letter (base64) cannot fit a 1 MB Kafka message."""
    s = worker.settings
    huge = b"\xff" + bytes(range(256)) * 4800
    after = [r for r, _ in blobs("post-huge", 5, seed=31)]
    meta = await produce(s.kafka.bootstrap_servers, s.topics.records, [(b"huge", huge)])
    await produce(s.kafka.bootstrap_servers, s.topics.records, keyed(after))

    def done(out: Outputs) -> bool:
        return {r.id for r in after} <= out.routed_ids() and bool(
            out.dead_at(meta[0].partition, meta[0].offset)
        )

    out = await collect(
        s, done, what="the huge message dead-lettered, later records routed", worker=worker
    )
    (letter,) = out.dead_at(meta[0].partition, meta[0].offset)
    assert letter.reason is DeadLetterReason.OVERSIZED
    assert letter.payload_truncated and letter.payload_size == len(huge)
    assert base64.b64decode(letter.payload) == huge[: len(base64.b64decode(letter.payload))]
    assert worker.alive()
