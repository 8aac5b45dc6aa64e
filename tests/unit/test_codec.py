"""autolabel.core.codec: every rejection has one reason and a readable error; never raises."""

from __future__ import annotations

import base64
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolabel.core.codec import Rejected, dead_letter, decode, decode_record, encode
from autolabel.core.messages import (
    DeadLetter,
    DeadLetterReason,
    Feedback,
    FeedbackSource,
    PlainRecord,
    Record,
)

R = DeadLetterReason
MAX = 10_000
RECORD = {"id": "r1", "features": {"x": 1.0}}


def js(obj: object) -> bytes:
    return json.dumps(obj).encode()


# (raw, expected reason, expected record_id, fragment of the error)
RECORD_CASES = {
    "null value": (None, R.INVALID_JSON, None, "null value"),
    "empty bytes": (b"", R.INVALID_JSON, None, "not valid JSON"),
    "truncated": (b'{"id": "a", "text": "x"', R.INVALID_JSON, None, "not valid JSON"),
    "not utf-8": (b"\xff\xfe\x00", R.INVALID_JSON, None, "not valid JSON"),
    "array": (b"[1, 2]", R.NOT_AN_OBJECT, None, "JSON object"),
    "string": (b'"hello"', R.NOT_AN_OBJECT, None, "JSON object"),
    "json null": (b"null", R.NOT_AN_OBJECT, None, "JSON object"),
    "missing id": (js({"features": {"x": 1}}), R.MISSING_ID, None, "'id'"),
    "numeric id": (js({"id": 7, "text": "t"}), R.WRONG_TYPE, None, "id: "),
    "list feature": (
        js({"id": "a", "features": {"x": [1]}}),
        R.WRONG_TYPE,
        "a",
        "features.x: must be a number, string or bool",
    ),
    "nested feature": (
        js({"id": "a", "features": {"x": {"y": 1}}}),
        R.WRONG_TYPE,
        "a",
        "features.x",
    ),
    "null feature": (js({"id": "a", "features": {"x": None}}), R.WRONG_TYPE, "a", "features.x"),
    "text not a string": (js({"id": "a", "text": 5}), R.WRONG_TYPE, "a", "text"),
    "embedding of strings": (js({"id": "a", "embedding": ["x"]}), R.WRONG_TYPE, "a", "embedding"),
    "unknown field": (
        js({**RECORD, "colour": "red"}),
        R.UNKNOWN_FIELD,
        "r1",
        "unknown field 'colour'",
    ),
    "two unknown fields": (
        js({**RECORD, "b": 1, "a": 2}),
        R.UNKNOWN_FIELD,
        "r1",
        "'a', 'b'",
    ),
    "NaN feature": (
        b'{"id": "a", "features": {"x": NaN}}',
        R.NON_FINITE_NUMBER,
        "a",
        "features.x",
    ),
    "-Infinity feature": (
        b'{"id": "a", "features": {"x": -Infinity}}',
        R.NON_FINITE_NUMBER,
        "a",
        "features.x",
    ),
    "Infinity in embedding": (
        b'{"id": "a", "embedding": [1.0, Infinity]}',
        R.NON_FINITE_NUMBER,
        "a",
        "embedding.1",
    ),
    "overflow to infinity": (
        b'{"id": "a", "features": {"x": 1e999}}',
        R.NON_FINITE_NUMBER,
        "a",
        "features.x",
    ),
    "empty features": (js({"id": "a", "features": {}}), R.EMPTY_PAYLOAD, "a", "empty"),
    "no payload": (js({"id": "a"}), R.EMPTY_PAYLOAD, "a", "got none"),
    "empty text": (js({"id": "a", "text": ""}), R.EMPTY_PAYLOAD, "a", "text"),
    "empty embedding": (js({"id": "a", "embedding": []}), R.EMPTY_PAYLOAD, "a", "embedding"),
    "text and features": (
        js({"id": "a", "text": "t", "features": {"x": 1}}),
        R.BAD_PAYLOAD,
        "a",
        "got features, text",
    ),
    "schema version 2": (
        js({"schema_version": 2, "id": "a", "text": "t"}),
        R.UNSUPPORTED_SCHEMA_VERSION,
        "a",
        "schema_version must be 1",
    ),
}


@pytest.mark.parametrize(
    ("raw", "reason", "record_id", "fragment"), RECORD_CASES.values(), ids=RECORD_CASES.keys()
)
def test_every_bad_record_gets_its_reason_and_a_readable_error(
    raw: bytes | None, reason: DeadLetterReason, record_id: str | None, fragment: str
) -> None:
    result = decode(Record, raw, max_bytes=MAX)
    assert isinstance(result, Rejected)
    assert result.reason is reason, result.error
    assert result.record_id == record_id
    assert fragment in result.error
    # readable: no pydantic internals, no URL, one line
    assert "errors.pydantic.dev" not in result.error and "type=" not in result.error
    assert "\n" not in result.error


def test_oversized_is_checked_before_parsing_and_names_the_setting() -> None:
    raw = js({"id": "big", "text": "x" * 200})
    result = decode(Record, raw, max_bytes=100)
    assert isinstance(result, Rejected)
    assert result.reason is R.OVERSIZED
    assert str(len(raw)) in result.error and "100" in result.error
    assert "AUTOLABEL_LABELER__MAX_MESSAGE_BYTES" in result.error
    assert result.record_id == "big"  # still keyed by id when it can be read
    assert decode(Record, raw, max_bytes=len(raw)) == Record(id="big", text="x" * 200)


def test_oversized_garbage_has_no_id() -> None:
    result = decode(Record, b"\x00" * 200, max_bytes=100)
    assert isinstance(result, Rejected) and result.reason is R.OVERSIZED
    assert result.record_id is None


FEEDBACK = {"id": "r1", "record": RECORD, "label": "cat", "source": "review"}
FEEDBACK_CASES = {
    "unknown source": ({**FEEDBACK, "source": "robot"}, R.UNKNOWN_FEEDBACK_SOURCE, "source"),
    "missing label": (
        {k: v for k, v in FEEDBACK.items() if k != "label"},
        R.INVALID_MESSAGE,
        "label: Field required",
    ),
    "missing record": (
        {k: v for k, v in FEEDBACK.items() if k != "record"},
        R.INVALID_MESSAGE,
        "record",
    ),
    "id differs from record": ({**FEEDBACK, "id": "r2"}, R.BAD_PAYLOAD, "differs"),
    "empty label": ({**FEEDBACK, "label": ""}, R.EMPTY_PAYLOAD, "label"),
    "bad record inside": (
        {**FEEDBACK, "record": {"id": "r1", "features": {"x": [1]}}},
        R.WRONG_TYPE,
        "record.features.x",
    ),
    "unknown field": ({**FEEDBACK, "extra": 1}, R.UNKNOWN_FIELD, "'extra'"),
    "a claimed weight": ({**FEEDBACK, "sample_weight": 20}, R.UNKNOWN_FIELD, "'sample_weight'"),
}


@pytest.mark.parametrize(
    ("value", "reason", "fragment"), FEEDBACK_CASES.values(), ids=FEEDBACK_CASES.keys()
)
def test_every_bad_feedback_gets_its_reason(
    value: dict[str, object], reason: DeadLetterReason, fragment: str
) -> None:
    result = decode(Feedback, js(value), max_bytes=MAX)
    assert isinstance(result, Rejected)
    assert result.reason is reason, result.error
    assert fragment in result.error


def test_valid_messages_decode_to_their_models() -> None:
    record = decode(Record, js({**RECORD, "metadata": {"k": [1, "a"]}}), max_bytes=MAX)
    assert record == Record(id="r1", features={"x": 1.0}, metadata={"k": [1, "a"]})
    feedback = decode(Feedback, js(FEEDBACK), max_bytes=MAX)
    assert isinstance(feedback, Feedback) and feedback.source is FeedbackSource.REVIEW


def test_encode_round_trips_and_omits_nones() -> None:
    record = Record(id="r1", text="hello")
    raw = encode(record)
    assert json.loads(raw) == {"schema_version": 1, "id": "r1", "text": "hello"}
    assert decode(Record, raw, max_bytes=MAX) == record


@pytest.mark.parametrize(
    ("raw", "payload", "encoding"),
    [
        (b'{"id": "a"}', '{"id": "a"}', "utf-8"),
        ("héllo ✓".encode(), "héllo ✓", "utf-8"),
        (b"\xff\x00\x81", base64.b64encode(b"\xff\x00\x81").decode(), "base64"),
        (None, "", "utf-8"),
    ],
)
def test_dead_letter_keeps_the_original_bytes(
    raw: bytes | None, payload: str, encoding: str
) -> None:
    rejected = decode(Record, raw, max_bytes=MAX)
    assert isinstance(rejected, Rejected)
    letter = dead_letter(rejected, raw, topic="t", partition=2, offset=41, stage="labeler")
    assert (letter.payload, letter.payload_encoding) == (payload, encoding)
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == ("t", 2, 41)
    assert letter.reason is rejected.reason and letter.error == rejected.error
    # the dead letter itself is a valid contract message
    assert DeadLetter.model_validate_json(encode(letter)) == letter


@pytest.mark.parametrize(
    "metadata", [b'{"k": NaN}', b'{"k": [1, Infinity]}', b'{"a": {"b": -Infinity}}']
)
def test_non_finite_numbers_in_metadata_are_rejected_too(metadata: bytes) -> None:
    """Metadata is echoed untouched: NaN would come out as null, so it is refused."""
    raw = b'{"id": "a", "text": "t", "metadata": ' + metadata + b"}"
    result = decode(Record, raw, max_bytes=MAX)
    assert isinstance(result, Rejected) and result.reason is R.NON_FINITE_NUMBER
    assert "metadata" in result.error and result.record_id == "a"


# ---------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)
record_like = st.fixed_dictionaries(
    {},
    optional={
        "id": json_values | st.text(max_size=300),
        "features": st.dictionaries(st.text(max_size=5), json_values, max_size=4) | json_values,
        "text": json_values,
        "embedding": st.lists(st.floats(), max_size=4) | json_values,
        "metadata": json_values,
        "schema_version": st.sampled_from([1, 2, "1", None]),
        "extra": json_values,
    },
)


def check_total(model: type[Record] | type[Feedback], raw: bytes | None) -> None:
    result = decode(model, raw, max_bytes=2_000)
    if isinstance(result, Rejected):
        assert isinstance(result.reason, DeadLetterReason) and result.error
        assert result.record_id is None or isinstance(result.record_id, str)
        letter = dead_letter(result, raw, topic="t", partition=0, offset=0, stage="labeler")
        original = (
            base64.b64decode(letter.payload)
            if letter.payload_encoding == "base64"
            else letter.payload.encode()
        )
        assert original == (raw or b"")
    else:
        assert isinstance(result, model)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.none())
def test_decode_never_raises_on_arbitrary_bytes(raw: bytes | None) -> None:
    check_total(Record, raw)
    check_total(Feedback, raw)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_decode_never_raises_on_arbitrary_json_values(value: object) -> None:
    raw = json.dumps(value).encode()  # NaN and Infinity included, as producers send them
    check_total(Record, raw)
    check_total(Feedback, raw)


@settings(max_examples=300, deadline=None)
@given(record_like)
def test_decode_never_raises_on_record_like_objects(value: dict[str, object]) -> None:
    raw = json.dumps(value).encode()
    check_total(Record, raw)
    result = decode(Record, raw, max_bytes=2_000)
    if isinstance(result, Record) and result.features:
        assert all(not isinstance(v, float) or math.isfinite(v) for v in result.features.values())


# ------------------------------------------------------------------ the labeler's shortcut

scalars = (
    st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
plain_records = st.fixed_dictionaries(
    {"id": st.text(max_size=300), "features": st.dictionaries(st.text(max_size=6), scalars)},
    optional={
        "schema_version": st.sampled_from([1, 2, True, 1.0, "1"]),
        "text": st.none() | st.text(max_size=3),
        "metadata": st.none() | st.dictionaries(st.text(max_size=3), scalars, max_size=2),
        "colour": st.just("red"),
    },
)


def _same(fast: object, slow: object) -> None:
    """Both paths reject alike, or accept a record with the same id, kind and values."""
    if isinstance(slow, Rejected):
        assert fast == slow
        return
    assert isinstance(slow, Record) and not isinstance(fast, Rejected)
    assert isinstance(fast, Record | PlainRecord)
    assert (fast.id, fast.kind, fast.text, fast.embedding) == (
        slow.id,
        slow.kind,
        slow.text,
        slow.embedding,
    )
    assert fast.features == slow.features
    if fast.features is not None and slow.features is not None:
        assert [type(v) for v in fast.features.values()] == [
            type(v) for v in slow.features.values()
        ]
    if isinstance(fast, PlainRecord):
        assert slow.metadata is None  # the shortcut never drops metadata


@settings(max_examples=400)
@given(plain_records | record_like)
def test_the_record_shortcut_agrees_with_the_model(value: dict[str, object]) -> None:
    raw = json.dumps(value).encode()  # NaN and Infinity become their JSON tokens
    _same(decode_record(raw, max_bytes=MAX), decode(Record, raw, max_bytes=MAX))


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "a", "features": {"i": 3, "f": 3.0, "b": true, "s": "3"}}',
        b'{"id": "a", "features": {"i": 123456789012345678901234567890}}',
        b'{"id": "a", "features": {"x": 1}, "metadata": {"k": "v"}}',
        b'{"id": "a", "features": {"x": 1}, "text": null, "schema_version": 1}',
        b'{"id": "a", "features": {"x": 1}, "schema_version": true}',
        b'{"id": "a", "features": {"x": 1, "x": [1]}}',
        b'{"id": "a", "features": {"": 1}}',
    ],
)
def test_the_shortcut_on_edge_cases(raw: bytes) -> None:
    _same(decode_record(raw, max_bytes=MAX), decode(Record, raw, max_bytes=MAX))


def test_plain_records_take_the_shortcut() -> None:
    raw = b'{"id": "a", "features": {"x": 1.5, "colour": "red"}}'
    assert isinstance(decode_record(raw, max_bytes=MAX), PlainRecord)
