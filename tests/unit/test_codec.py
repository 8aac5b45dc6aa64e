"""autolabel.core.codec: every rejection has one reason and a readable error; never raises."""

from __future__ import annotations

import base64
import codecs
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import field_validator

from autolabel.core import codec
from autolabel.core.codec import (
    MAX_ERROR_CHARS,
    Rejected,
    dead_letter,
    dead_letter_message,
    decode,
    decode_feedback,
    decode_record,
    encode,
)
from autolabel.core.messages import (
    MAX_METADATA_DEPTH,
    DeadLetter,
    DeadLetterReason,
    Feedback,
    FeedbackSource,
    PlainRecord,
    Record,
    ReviewReason,
    ReviewRequest,
)

R = DeadLetterReason
MAX = 100_000
RECORD = {"id": "r1", "features": {"x": 1.0}}


def js(obj: object) -> bytes:
    return json.dumps(obj).encode()


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    """``depth`` arrays, one inside the other, around ``leaf``."""
    return b"[" * depth + leaf + b"]" * depth


def deep_metadata(depth: int) -> bytes:
    """A text record whose metadata nests ``depth`` levels (the metadata object is 1)."""
    return b'{"id": "a", "text": "t", "metadata": {"k": ' + nested(depth - 1) + b"}}"


DEEP = "arrays or objects nested too deeply"


# (raw, expected reason, expected record_id, fragment of the error)
RECORD_CASES = {
    "null value": (None, R.INVALID_JSON, None, "null value"),
    "empty bytes": (b"", R.INVALID_JSON, None, "not valid JSON: empty message"),
    "only whitespace": (b" \n\t ", R.INVALID_JSON, None, "not valid JSON: empty message"),
    "binary garbage": (bytes(range(256)) * 4, R.INVALID_JSON, None, "not UTF-8 text (byte 128"),
    "nul bytes": (b"\x00" * 16, R.INVALID_JSON, None, "not valid JSON"),
    "invalid UTF-8 inside a string": (
        b'{"id": "a\xc3\x28", "text": "t"}',
        R.INVALID_JSON,
        None,
        "not UTF-8 text (byte 9 is 0xc3)",
    ),
    "lone surrogate escape": (b'{"id": "\\ud800", "text": "t"}', R.INVALID_JSON, None, "JSON"),
    "UTF-8 BOM": (codecs.BOM_UTF8 + js(RECORD), R.INVALID_JSON, None, "UTF-8 byte order mark"),
    "UTF-16 BOM": (
        codecs.BOM_UTF16_LE + json.dumps(RECORD).encode("utf-16-le"),
        R.INVALID_JSON,
        None,
        "UTF-16 byte order mark",
    ),
    "UTF-16 without BOM": (json.dumps(RECORD).encode("utf-16-le"), R.INVALID_JSON, None, "JSON"),
    "5000 levels deep in a feature": (
        b'{"id": "a", "features": {"x": ' + nested(5000) + b"}}",
        R.INVALID_JSON,
        None,
        DEEP,
    ),
    "5000 levels deep, unclosed": (
        b'{"id": "a", "text": ' + b"[" * 5000,
        R.INVALID_JSON,
        None,
        DEEP,
    ),
    "5000 objects deep in metadata": (
        b'{"id": "a", "text": "t", "metadata": ' + b'{"k": ' * 5000 + b"1" + b"}" * 5000 + b"}",
        R.INVALID_JSON,
        None,
        DEEP,
    ),
    "5000 levels deep in the embedding": (
        b'{"id": "a", "embedding": ' + nested(5000, b"1.0") + b"}",
        R.INVALID_JSON,
        None,
        DEEP,
    ),
    "deep in an unknown field": (
        b'{"id": "a", "text": "t", "x": ' + nested(5000) + b"}",
        R.INVALID_JSON,
        None,
        DEEP,
    ),
    "a top-level array 5000 deep": (nested(5000), R.INVALID_JSON, None, DEEP),
    "metadata over the depth limit": (
        deep_metadata(MAX_METADATA_DEPTH + 1),
        R.INVALID_JSON,
        "a",
        f"metadata: nested too deeply (over {MAX_METADATA_DEPTH} levels)",
    ),
    "a feature 50 levels deep is a wrong type": (
        b'{"id": "a", "features": {"x": ' + nested(50) + b"}}",
        R.WRONG_TYPE,
        "a",
        "features.x: must be a number, string or bool",
    ),
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
        "schema_version must be 1, the JSON integer, not 2",
    ),
}


def version(v: bytes) -> bytes:
    return b'{"schema_version": ' + v + b', "id": "a", "text": "t"}'


SCHEMA_VERSIONS = {  # as sent -> as the error shows it
    "true": "true",
    "false": "false",
    "1.0": "1.0",
    "1e0": "1.0",
    '"1"': '"1"',
    "null": "null",
    "0": "0",
    "[1]": "[1]",
}
RECORD_CASES |= {
    f"schema version {sent}": (
        version(sent.encode()),
        R.UNSUPPORTED_SCHEMA_VERSION,
        "a",
        f"schema_version must be 1, the JSON integer, not {shown}",
    )
    for sent, shown in SCHEMA_VERSIONS.items()
}
# strict types: no string is a number, no bool is a number, no number is a string
RECORD_CASES |= {
    "numeric string in the embedding": (
        js({"id": "a", "embedding": [1.0, "2.5"]}),
        R.WRONG_TYPE,
        "a",
        "embedding.1: Input should be a valid number",
    ),
    "bool in the embedding": (
        js({"id": "a", "embedding": [True]}),
        R.WRONG_TYPE,
        "a",
        "embedding.0: Input should be a valid number",
    ),
    "numeric text": (js({"id": "a", "text": 12}), R.WRONG_TYPE, "a", "text: "),
    "bool id": (js({"id": True, "text": "t"}), R.WRONG_TYPE, None, "id: "),
    "metadata not an object": (js({**RECORD, "metadata": [1]}), R.WRONG_TYPE, "r1", "metadata"),
}
OVER = "magnitude over 1e+15 (AUTOLABEL_LABELER__MAX_ABS_NUMBER)"
RECORD_CASES |= {
    "huge float feature": (
        js({"id": "a", "features": {"x": 1e308, "s": "red"}}),
        R.OUT_OF_RANGE,
        "a",
        f"features.x: {OVER}",
    ),
    "huge negative feature": (
        js({"id": "a", "features": {"x": -2e15}}),
        R.OUT_OF_RANGE,
        "a",
        f"features.x: {OVER}",
    ),
    "huge int feature": (
        js({"id": "a", "features": {"n": 10**16, "ok": 10**15, "b": True}}),
        R.OUT_OF_RANGE,
        "a",
        f"features.n: {OVER}",
    ),
    "int beyond 64 bits": (
        js({"id": "a", "features": {"n": 123456789012345678901234567890}}),
        R.OUT_OF_RANGE,
        "a",
        "features.n: magnitude over",
    ),
    "every huge feature is named": (
        js({"id": "a", "features": {"x": 1e16, "y": 1, "z": -1e300}}),
        R.OUT_OF_RANGE,
        "a",
        f"features.x, features.z: {OVER}",
    ),
    "huge embedding value": (
        js({"id": "a", "embedding": [0.5, 1, 3e17]}),
        R.OUT_OF_RANGE,
        "a",
        f"embedding.2: {OVER}",
    ),
    "NaN beside a huge number is non-finite first": (
        b'{"id": "a", "features": {"x": NaN, "y": 1e300}}',
        R.NON_FINITE_NUMBER,
        "a",
        "features.x",
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


def decode_as(decoder: str, raw: bytes, *, max_bytes: int) -> Feedback | Rejected:
    """Feedback decoded by the model (``decode``) or the learner's shortcut."""
    if decoder == "decode":
        return decode(Feedback, raw, max_bytes=max_bytes)
    return decode_feedback(raw, max_bytes=max_bytes)


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
    "a request id as a number": ({**FEEDBACK, "request_id": 7}, R.WRONG_TYPE, "request_id: "),
    "numeric label": ({**FEEDBACK, "label": 3}, R.WRONG_TYPE, "label: "),
    "numeric reviewer": ({**FEEDBACK, "reviewer": 3}, R.WRONG_TYPE, "reviewer: "),
    "time as a unix timestamp": ({**FEEDBACK, "time": 1_700_000_000}, R.WRONG_TYPE, "time: "),
    "schema version true": (
        {**FEEDBACK, "schema_version": True},
        R.UNSUPPORTED_SCHEMA_VERSION,
        "schema_version must be 1, the JSON integer, not true",
    ),
    "huge number in the echoed record": (
        {**FEEDBACK, "record": {"id": "r1", "features": {"x": 1e308}}},
        R.OUT_OF_RANGE,
        "record.features.x: magnitude over 1e+15",
    ),
    "huge number in the echoed embedding": (
        {**FEEDBACK, "record": {"id": "r1", "embedding": [-1e200]}},
        R.OUT_OF_RANGE,
        "record.embedding.0: magnitude over 1e+15",
    ),
    "the record's schema version 1.0": (
        {**FEEDBACK, "record": {**RECORD, "schema_version": 1.0}},
        R.UNSUPPORTED_SCHEMA_VERSION,
        "record.schema_version must be 1, the JSON integer, not 1.0",
    ),
}
DEEP_FEEDBACK = {
    "5000 levels deep in the record's features": (
        b'{"id": "r1", "record": {"id": "r1", "features": {"x": '
        + nested(5000)
        + b'}}, "label": "cat", "source": "review"}',
        R.INVALID_JSON,
        DEEP,
    ),
    "5000 levels deep in the label": (
        b'{"id": "r1", "record": {"id": "r1", "features": {"x": 1}}, "label": '
        + nested(5000, b'"cat"')
        + b', "source": "review"}',
        R.INVALID_JSON,
        DEEP,
    ),
    "record metadata over the depth limit": (
        b'{"id": "a", "record": '
        + deep_metadata(MAX_METADATA_DEPTH + 1)
        + b', "label": "cat", "source": "review"}',
        R.INVALID_JSON,
        "record.metadata: nested too deeply",
    ),
}


@pytest.mark.parametrize(
    ("value", "reason", "fragment"), FEEDBACK_CASES.values(), ids=FEEDBACK_CASES.keys()
)
@pytest.mark.parametrize("decoder", ["decode", "decode_feedback"])
def test_every_bad_feedback_gets_its_reason(
    value: dict[str, object], reason: DeadLetterReason, fragment: str, decoder: str
) -> None:
    result = decode_as(decoder, js(value), max_bytes=MAX)
    assert isinstance(result, Rejected)
    assert result.reason is reason, result.error
    assert fragment in result.error


@pytest.mark.parametrize(
    ("raw", "reason", "fragment"), DEEP_FEEDBACK.values(), ids=DEEP_FEEDBACK.keys()
)
@pytest.mark.parametrize("decoder", ["decode", "decode_feedback"])
def test_deeply_nested_feedback_is_rejected_not_a_crash(
    raw: bytes, reason: DeadLetterReason, fragment: str, decoder: str
) -> None:
    result = decode_as(decoder, raw, max_bytes=len(raw))
    assert isinstance(result, Rejected)
    assert result.reason is reason, result.error
    assert fragment in result.error


def test_metadata_up_to_the_depth_limit_is_kept_and_stays_readable_when_echoed() -> None:
    raw = deep_metadata(MAX_METADATA_DEPTH)
    record = decode(Record, raw, max_bytes=MAX)
    assert isinstance(record, Record)
    # one level down, inside feedback, it still decodes
    feedback = b'{"id": "a", "record": ' + raw + b', "label": "x", "source": "seed"}'
    assert isinstance(decode(Feedback, feedback, max_bytes=MAX), Feedback)


class Consumed(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def test_an_oversized_message_cut_mid_way_is_still_keyed_by_its_id() -> None:
    raw = js({"id": "big", "text": "x" * 10_000})
    result = decode(Record, raw, max_bytes=5_000)  # only the first 4 KB are read for the id
    assert isinstance(result, Rejected) and result.record_id == "big"


def test_dead_letter_message_never_raises_even_on_an_id_that_is_not_unicode() -> None:
    """A lone surrogate cannot be encoded: the letter falls back to the input's key."""
    rejected = Rejected(R.WRONG_TYPE, "bad \ud800 error", "id-\ud800")
    key, value = dead_letter_message(rejected, Consumed("t", 1, 2, b"k", b"\xff"), "labeler")
    letter = DeadLetter.model_validate_json(value)
    assert key == b"k" and letter.record_id is None and letter.reason is R.WRONG_TYPE
    assert letter.payload_encoding == "base64" and (
        letter.source_partition,
        letter.source_offset,
    ) == (1, 2)


class Buggy(Record):
    """A record type whose validator has a bug that is not a ValueError."""

    @field_validator("text")
    @classmethod
    def _boom(cls, value: str | None) -> str | None:
        raise TypeError("boom")


def test_a_bug_in_a_validator_is_a_rejection_not_a_crash() -> None:
    result = decode(Buggy, js({"id": "a", "text": "t"}), max_bytes=MAX)
    assert result == Rejected(R.INVALID_MESSAGE, "could not be validated (TypeError: boom)")


def test_a_bug_while_explaining_is_a_rejection_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object) -> Rejected:
        raise KeyError("ctx")

    monkeypatch.setattr(codec, "_explain_fields", broken)
    result = decode(Record, js({"id": 1, "text": "t"}), max_bytes=MAX)
    assert isinstance(result, Rejected) and result.reason is R.INVALID_MESSAGE
    assert "KeyError" in result.error


def test_a_bug_in_the_shortcut_falls_back_to_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("shortcut bug")

    monkeypatch.setattr(codec, "_plain_record", broken)
    assert decode_record(js(RECORD), max_bytes=MAX) == Record(id="r1", features={"x": 1.0})


def test_errors_are_one_line_and_bounded_whatever_the_input_names() -> None:
    names = {f"bad\nname\x00{i}" * 20: i for i in range(200)}
    result = decode(Record, js({**RECORD, **names}), max_bytes=1_000_000)
    assert isinstance(result, Rejected) and result.reason is R.UNKNOWN_FIELD
    assert "\n" not in result.error and "\x00" not in result.error
    assert len(result.error) <= MAX_ERROR_CHARS and result.error.endswith("…")


def test_strict_types_still_read_what_json_carries() -> None:
    """ISO datetimes, enum values, ints for floats, and features keep their JSON types."""
    raw = js(
        {
            **FEEDBACK,
            "schema_version": 1,
            "record": {"id": "r1", "features": {"i": 3, "f": 3.0, "b": True, "s": "3"}},
            "time": "2024-05-01T12:00:00Z",
            "request_id": "r1abc",
        }
    )
    feedback = decode(Feedback, raw, max_bytes=MAX)
    assert isinstance(feedback, Feedback), feedback
    assert feedback.time == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert feedback.source is FeedbackSource.REVIEW and feedback.request_id == "r1abc"
    features = feedback.record.features
    assert features == {"i": 3, "f": 3.0, "b": True, "s": "3"}
    assert [type(v) for v in features.values()] == [int, float, bool, str]
    embedding = decode(Record, js({"id": "e", "embedding": [1, 2.5, -3]}), max_bytes=MAX)
    assert isinstance(embedding, Record) and embedding.embedding == [1.0, 2.5, -3.0]


def test_strict_types_hold_for_every_message_the_service_writes() -> None:
    request = {
        "id": "r1",
        "request_id": "r1abc",
        "record": RECORD,
        "probabilities": [{"label": "cat", "probability": 1}],
        "reason": "uncertain",
        "priority": 0,
        "model_version": 3,
    }
    assert isinstance(decode(ReviewRequest, js(request), max_bytes=MAX), ReviewRequest)
    for bad in (
        {**request, "probabilities": [{"label": "cat", "probability": "0.5"}]},
        {**request, "probabilities": [{"label": "cat", "probability": True}]},
        {**request, "model_version": 3.0},
        {**request, "model_version": "3"},
        {**request, "priority": "0.5"},
    ):
        result = decode(ReviewRequest, js(bad), max_bytes=MAX)
        assert isinstance(result, Rejected) and result.reason is R.WRONG_TYPE, bad


@pytest.mark.parametrize(
    "features",
    [
        {"x": 1e15, "y": -1e15, "n": -(10**15)},  # on the bound: kept
        {"x": 999999999999999.9, "s": "1e300", "b": True},  # strings are not numbers
    ],
)
def test_numbers_up_to_the_bound_are_kept(features: dict[str, object]) -> None:
    raw = js({"id": "a", "features": features})
    for result in (decode(Record, raw, max_bytes=MAX), decode_record(raw, max_bytes=MAX)):
        assert not isinstance(result, Rejected) and result.features == features


def test_metadata_is_never_bounded_but_must_be_finite() -> None:
    raw = js({"id": "a", "text": "t", "metadata": {"big": 1e308, "huge": 10**400}})
    record = decode(Record, raw, max_bytes=MAX)
    assert isinstance(record, Record) and record.metadata == {"big": 1e308, "huge": 10**400}
    inf = decode(Record, b'{"id": "a", "text": "t", "metadata": {"x": 1e999}}', max_bytes=MAX)
    assert isinstance(inf, Rejected) and inf.reason is R.NON_FINITE_NUMBER


@pytest.mark.parametrize("decoder", ["decode", "decode_record"])
def test_the_bound_is_configurable(decoder: str) -> None:
    def run(raw: bytes, bound: float) -> object:
        if decoder == "decode":
            return decode(Record, raw, max_bytes=MAX, max_abs_number=bound)
        return decode_record(raw, max_bytes=MAX, max_abs_number=bound)

    raw = js({"id": "a", "features": {"x": 1e18, "s": "x"}})
    assert not isinstance(run(raw, 1e20), Rejected)
    assert not isinstance(run(raw, math.inf), Rejected)
    small = run(js({"id": "a", "features": {"x": 11, "y": 10.0}}), 10.0)
    assert isinstance(small, Rejected) and small.reason is R.OUT_OF_RANGE
    assert small.error == "features.x: magnitude over 10 (AUTOLABEL_LABELER__MAX_ABS_NUMBER)"
    feedback = js({**FEEDBACK, "record": {"id": "r1", "embedding": [1e18]}})
    assert isinstance(decode(Feedback, feedback, max_bytes=MAX, max_abs_number=1e20), Feedback)


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
    | st.sampled_from(["1", "-2.5", "true", "null", "NaN", "1e999"])  # strings stay strings
)
plain_records = st.fixed_dictionaries(
    {
        "id": st.text(max_size=300) | st.integers() | st.booleans(),
        "features": st.dictionaries(st.text(max_size=6), scalars),
    },
    optional={
        "schema_version": st.sampled_from([1, 2, 0, True, False, 1.0, "1", None]),
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
@given(plain_records | record_like, st.sampled_from([1e15, 1e15, 10.0, 2.0**53, 1e20, math.inf]))
def test_the_record_shortcut_agrees_with_the_model(value: dict[str, object], bound: float) -> None:
    raw = json.dumps(value).encode()  # NaN and Infinity become their JSON tokens
    _same(
        decode_record(raw, max_bytes=MAX, max_abs_number=bound),
        decode(Record, raw, max_bytes=MAX, max_abs_number=bound),
    )


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id": "a", "features": {"i": 3, "f": 3.0, "b": true, "s": "3"}}',
        b'{"id": "a", "features": {"i": 123456789012345678901234567890}}',
        b'{"id": "a", "features": {"x": 1}, "metadata": {"k": "v"}}',
        b'{"id": "a", "features": {"x": 1}, "text": null, "schema_version": 1}',
        b'{"id": "a", "features": {"x": 1}, "schema_version": true}',
        b'{"id": "a", "features": {"x": 1}, "schema_version": 1.0}',
        b'{"id": "a", "features": {"x": 1}, "schema_version": "1"}',
        b'{"id": "a", "features": {"x": 1}, "schema_version": false}',
        b'{"id": "a", "features": {"x": "1", "y": "2.5", "z": "true"}}',
        b'{"id": "a", "features": {"x": true, "y": false, "z": 0}}',
        b'{"id": true, "features": {"x": 1}}',
        b'{"id": 5, "features": {"x": 1}}',
        b'{"id": "a", "features": {"x": 1e15, "y": -1e15, "z": 1000000000000000}}',
        b'{"id": "a", "features": {"x": 1000000000000001, "s": "a"}}',
        b'{"id": "a", "features": {"x": 1e308}}',
        b'{"id": "a", "features": {"x": -9007199254740993}}',
        b'{"id": "a", "features": {"x": 18446744073709551615}}',
        b'{"id": "a", "features": {"x": 1, "x": [1]}}',
        b'{"id": "a", "features": {"": 1}}',
    ],
)
def test_the_shortcut_on_edge_cases(raw: bytes) -> None:
    _same(decode_record(raw, max_bytes=MAX), decode(Record, raw, max_bytes=MAX))


def test_plain_records_take_the_shortcut() -> None:
    raw = b'{"id": "a", "features": {"x": 1.5, "colour": "red"}}'
    assert isinstance(decode_record(raw, max_bytes=MAX), PlainRecord)


# ------------------------------------------------------------------ the learner's shortcut


def _same_feedback(fast: Feedback | Rejected, slow: Feedback | Rejected) -> None:
    """Both paths reject alike, or accept an answer built alike: equal field values of the
    same types in the same order, the same fields given, the same JSON when encoded. A
    ``time`` the input did not give is the time of decoding: only its kind is compared."""
    if isinstance(slow, Rejected):
        assert fast == slow
        return
    assert isinstance(fast, Feedback) and type(fast) is type(slow)
    assert type(fast.record) is type(slow.record) is Record
    for a, b in ((fast, slow), (fast.record, slow.record)):
        assert a.__pydantic_fields_set__ == b.__pydantic_fields_set__
        assert a.__pydantic_extra__ == b.__pydantic_extra__
        assert a.__pydantic_private__ == b.__pydantic_private__
        assert list(a.__dict__) == list(b.__dict__)
        assert [type(v) for v in a.__dict__.values()] == [type(v) for v in b.__dict__.values()]
    assert fast.record == slow.record
    features = fast.record.features or {}
    assert list(features.items()) == list((slow.record.features or {}).items())
    assert [type(v) for v in features.values()] == [
        type(v) for v in (slow.record.features or {}).values()
    ]
    assert fast.source is slow.source
    if "time" in slow.__pydantic_fields_set__:
        assert fast == slow
        assert type(fast.time.tzinfo) is type(slow.time.tzinfo)
        assert fast.time.utcoffset() == slow.time.utcoffset()
        assert encode(fast) == encode(slow)
    else:
        assert fast.time.utcoffset() == slow.time.utcoffset() == timedelta(0)
        assert abs(fast.time - slow.time) < timedelta(minutes=1)
        assert fast.model_copy(update={"time": slow.time}) == slow


def at_limit(n: int) -> st.SearchStrategy[str]:
    """Strings of ``n`` and ``n + 1`` characters (astral ones are 2 in UTF-16, 4 in UTF-8)."""
    return st.sampled_from([c * m for c in ("x", "é", "\U0001d11e") for m in (n, n + 1)])


answer_ids = st.text(min_size=1, max_size=6) | at_limit(256)
odd_texts = st.sampled_from(["", "a", "x" * 128, "x" * 129, "x" * 256, "x" * 257, "\x00"])
written_times = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.none()
    | st.just(UTC)
    | st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439)),
).map(lambda t: t.isoformat()) | st.builds(
    lambda t, z: t.isoformat(timespec="microseconds")[:26] + z,
    st.datetimes(),
    st.sampled_from(["Z", "z", "+00:00", "-00:00", "+0200", "+24:00", "", "Z "]),
)
times = (  # mostly as clients write them, then what pydantic may or may not read as one
    written_times
    | written_times
    | written_times
    | st.from_regex(
        r"\A[0-9]{4,5}-[01][0-9]-[0-3][0-9]"
        r"([Tt _][0-2][0-9]:[0-6][0-9](:[0-6][0-9]([.,][0-9]{0,10})?)?)?"
        r"([Zz]|[+-][0-2][0-9]:?[0-6][0-9])?\Z"
    )
    | st.sampled_from(["1700000000", "1700000000.5", "-1", "1e10", "now", "", "2024-05-01"])
)
odd_values = (
    json_values
    | odd_texts
    | st.sampled_from([True, False, 0, 1, 2, 1.0, "1", None, 2**64, [], {}, "REVIEW", "robot"])
    | st.sampled_from([*(s.value for s in FeedbackSource), "2024-05-01T12:00:00Z"])
)
near_bounds = st.sampled_from(
    [1, -1, 10, 10.0, -10.0, 9.999999, 10.000001, 15, 1e15, 1e15 + 0.125, -(10**15) - 1, 2**53 + 1]
)
bounds = st.sampled_from([1e15, 1e15, 10.0, 10.0, 15.0, 2.0**53, 1e20, math.inf])
ANSWER_FIELDS = ["id", "label", "source", "schema_version", "request_id", "reviewer", "time"]
RECORD_FIELDS = ["id", "features", "schema_version", "text", "embedding", "metadata"]


@st.composite
def answers(draw: st.DrawFn) -> dict[str, object]:
    """A valid answer about a tabular record (its numbers not always within the bound),
    then as often as not one to three fields deleted, retyped or added, in the answer or
    its record: valid answers and answers just beside them."""
    rid = draw(answer_ids)
    features = draw(
        feature_maps
        | feature_maps
        | st.dictionaries(st.text(min_size=1, max_size=3), near_bounds, min_size=1, max_size=3)
        | st.dictionaries(st.text(max_size=6), scalars, max_size=4)
    )
    record: dict[str, object] = {"id": rid, "features": features}
    record |= draw(
        st.fixed_dictionaries(
            {}, optional={"schema_version": st.just(1), "text": st.none(), "metadata": st.none()}
        )
    )
    value: dict[str, object] = {
        "id": rid,
        "record": record,
        "label": draw(st.text(min_size=1, max_size=8) | at_limit(256)),
        "source": draw(st.sampled_from([s.value for s in FeedbackSource])),
    }
    value |= draw(
        st.fixed_dictionaries(
            {},
            optional={
                "schema_version": st.just(1),
                "request_id": st.none() | st.text(min_size=1, max_size=8) | at_limit(128),
                "reviewer": st.none() | st.text(max_size=8) | at_limit(256),
                "time": times,
            },
        )
    )
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2, 3]))):
        inside = draw(st.booleans())
        target = record if inside else value
        names = RECORD_FIELDS if inside else ANSWER_FIELDS
        name = draw(st.sampled_from([*names, "sample_weight", "record"]))
        if draw(st.integers(0, 4)) == 0:
            target.pop(name, None)
        else:
            target[name] = draw(times | odd_values if name == "time" else odd_values)
    return value


@settings(max_examples=1000, deadline=None)
@given(answers() | answers() | json_values, bounds)
def test_the_feedback_shortcut_agrees_with_the_model(value: object, bound: float) -> None:
    raw = json.dumps(value).encode()  # NaN and Infinity become their JSON tokens
    _same_feedback(
        decode_feedback(raw, max_bytes=MAX, max_abs_number=bound),
        decode(Feedback, raw, max_bytes=MAX, max_abs_number=bound),
    )


LIMITS = {
    n: [(c * m).encode() for c in ("x", "é", "\U0001d11e") for m in (n, n + 1)] for n in (128, 256)
}
SEED_ANSWER = (
    b'{"id": "a", "record": {"id": "a", "features": {"x": %s}}, "label": "c", "source": "seed"}'
)
ANSWER = b'{"id": "a", "record": {"id": "a", "features": {"x": 1.5, "s": "red"}}, "label": "cat"'


@pytest.mark.parametrize(
    "raw",
    [
        ANSWER + b', "source": "review"}',
        ANSWER + b', "source": "review", "schema_version": 1, "time": "2024-05-01T12:00:00Z"}',
        ANSWER + b', "source": "review", "schema_version": true}',
        ANSWER + b', "source": "review", "schema_version": 1.0}',
        ANSWER + b', "source": "review", "schema_version": 18446744073709551617}',
        ANSWER + b', "source": "review", "sample_weight": 20}',
        ANSWER + b', "source": "review", "review_reason": "audit"}',
        ANSWER + b', "source": "Review"}',
        ANSWER + b', "source": ["review"]}',
        ANSWER + b', "source": {"review": 1}}',
        ANSWER + b', "source": "review", "request_id": null, "reviewer": null}',
        ANSWER + b', "source": "review", "request_id": ""}',
        ANSWER + b', "source": "review", "reviewer": ""}',
        ANSWER + b', "source": "review", "time": null}',
        ANSWER + b', "source": "review", "time": 1700000000}',
        ANSWER + b', "source": "review", "time": "1700000000"}',
        ANSWER + b', "source": "review", "time": "2024-05-01"}',
        ANSWER + b', "source": "review", "time": "2024-05-01 12:00:00.1234567+02:00"}',
        ANSWER + b', "source": "review", "time": "2024-02-30T12:00:00Z"}',
        ANSWER + b', "source": "review", "time": "2024-05-01T12:00:00Z\\u0000"}',
        ANSWER + b', "source": "review", "reviewer": "\\ud800"}',
        ANSWER + b', "source": "review", "reviewer": "\\u0000\\u00e9"}',
        ANSWER + b', "source": "review", "reviewer": "\x01"}',
        ANSWER + b', "source": "review", "source": "seed"}',
        ANSWER + b', "source": "review", "id": "b"}',
        ANSWER + b', "source": "review"}  ',
        ANSWER + b', "source": "review"} x',
        ANSWER + b', "source": "review",}',
        codecs.BOM_UTF8 + ANSWER + b', "source": "review"}',
        SEED_ANSWER % b"1e308",
        SEED_ANSWER % b"1e999",
        SEED_ANSWER % b"NaN",
        b'{"id": "a", "record": {"id": "a", "features": {"x": 1, "x": 2.5, "y": 0}},'
        b' "label": "c", "source": "seed"}',
        b'{"id": "a", "record": {"id": "a", "features": {"x": 1}, "text": null, "metadata": null},'
        b' "label": "c", "source": "seed"}',
        b'{"id": "a", "record": {"id": "a", "text": "t"}, "label": "c", "source": "seed"}',
        b'{"id": "a", "record": {"id": "a", "features": {"x": 1}}, "label": '
        + nested(5000, b'"c"')
        + b', "source": "seed"}',
        b'{"id": "a", "record": {"id": "a", "features": {"x": 1}}, "label": "c", "source": "seed",'
        b' "time": ' + nested(300, b'"c"') + b"}",
        *(SEED_ANSWER % n for n in (b"1E5", b"-0", b"-0.0", b"1e-400", b"5e-324", b"0.1e1")),
        *(SEED_ANSWER % n for n in (b"2.2250738585072011e-308", b"123456789012345678901")),
        *(SEED_ANSWER % n for n in (b"999999999999999.9", b"-1000000000000000.1", b"01")),
        # decimal literals the two parsers must round alike (to even at a halfway point)
        SEED_ANSWER % b"0.1000000000000000055511151231257827021181583404541015625",
        SEED_ANSWER % b"1.00000000000000011102230246251565404236316680908203125",
        SEED_ANSWER % b"1.00000000000000011102230246251565404236316680908203126",
        SEED_ANSWER % b"2.4703282292062328e-324",
        SEED_ANSWER % b"9007199254740993.0",
        *(ANSWER + b', "source": "review", "label": "' + t + b'"}' for t in LIMITS[256]),
        *(ANSWER + b', "source": "review", "reviewer": "' + t + b'"}' for t in LIMITS[256]),
        *(ANSWER + b', "source": "review", "request_id": "' + t + b'"}' for t in LIMITS[128]),
        b"\n\t\r " + ANSWER + b', "source": "review"}\n',
        b"\x0c" + ANSWER + b', "source": "review"}',
    ],
)
def test_the_feedback_shortcut_on_edge_cases(raw: bytes) -> None:
    _same_feedback(decode_feedback(raw, max_bytes=MAX), decode(Feedback, raw, max_bytes=MAX))


def test_plain_answers_take_the_shortcut(monkeypatch: pytest.MonkeyPatch) -> None:
    """The answers a review client sends do not reach the model (which is slower)."""

    def model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was asked")

    assert codec._CONSTRUCTIBLE, "Feedback or Record changed: check _plain_feedback again"
    monkeypatch.setattr(codec, "decode", model)
    for raw in (
        ANSWER + b', "source": "review", "reviewer": "ada", "time": "2024-05-01T12:00:00Z"}',
        ANSWER
        + b', "source": "audit", "request_id": "r1abc", "time": "2024-05-01T12:00:00+02:00"}',
        ANSWER + b', "source": "seed"}',
    ):
        assert isinstance(decode_feedback(raw, max_bytes=MAX), Feedback)


def test_a_bug_in_the_feedback_shortcut_falls_back_to_the_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(raw: bytes, limit: float) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(codec, "_plain_feedback", broken)
    raw = js({**FEEDBACK, "time": "2024-05-01T12:00:00Z"})
    assert decode_feedback(raw, max_bytes=MAX) == decode(Feedback, raw, max_bytes=MAX)


def test_the_feedback_shortcut_keeps_the_size_limit() -> None:
    raw = js(FEEDBACK)
    result = decode_feedback(raw, max_bytes=len(raw) - 1)
    assert isinstance(result, Rejected) and result.reason is R.OVERSIZED
    assert result == decode(Feedback, raw, max_bytes=len(raw) - 1)
    assert decode_feedback(None, max_bytes=MAX) == decode(Feedback, None, max_bytes=MAX)


# ------------------------------------------------------ fuzzing the boundary near valid input

DEEP_SENTINEL = "\x00deep\x00"
TOKEN_SENTINEL = "\x00token\x00"

feature_maps = st.dictionaries(
    st.text(min_size=1, max_size=6),
    st.booleans() | st.integers(-1000, 1000) | st.floats(-1e6, 1e6) | st.text(max_size=6),
    min_size=1,
    max_size=6,
)
valid_records = st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=12)},
    optional={
        "schema_version": st.just(1),
        "metadata": st.dictionaries(st.text(max_size=4), json_values, max_size=3),
    },
).flatmap(
    lambda base: st.one_of(
        st.builds(lambda f: {**base, "features": f}, feature_maps),
        st.builds(lambda t: {**base, "text": t}, st.text(min_size=1, max_size=20)),
        st.builds(
            lambda e: {**base, "embedding": e}, st.lists(st.floats(-10, 10), min_size=1, max_size=6)
        ),
    )
)
valid_feedback = valid_records.flatmap(
    lambda record: st.fixed_dictionaries(
        {
            "id": st.just(record["id"]),
            "record": st.just(record),
            "label": st.text(min_size=1, max_size=8),
            "source": st.sampled_from([s.value for s in FeedbackSource]),
        },
        optional={
            "schema_version": st.just(1),
            "reviewer": st.text(max_size=8),
            "time": st.just("2024-05-01T12:00:00Z"),
            "review_reason": st.sampled_from([r.value for r in ReviewReason]),
            "sample_weight": st.floats(1, 100),
        },
    )
)
extreme_numbers = st.sampled_from(
    [1e308, -1e308, 1e16, -(2**63), 10**30, 1e15, 1e15 + 0.125, math.nan, math.inf, TOKEN_SENTINEL]
)
replacements = st.one_of(
    json_values,  # retyped: any JSON value
    st.sampled_from(
        [
            *(1e308, -1e308, 1e16, -(2**63), 2**64, 10**30, 1e15, -1e15, 5e-324, -0.0),
            *(math.nan, math.inf, -math.inf, "1", "1.5", "true", True, None, [], {}, 1.0, 2),
        ]
    ),
    st.just(TOKEN_SENTINEL),  # a literal that Python's json cannot write, e.g. 1e999
    st.just(DEEP_SENTINEL),  # arrays or objects nested very deeply
)


def _paths(value: object, path: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    """Every place in a JSON value: dict keys and list indexes, outermost first."""
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _set(value: object, path: tuple[object, ...], new: object, *, delete: bool = False) -> object:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if delete and not rest:
            copy.pop(head, None)
        else:
            copy[head] = _set(copy[head], rest, new, delete=delete)
        return copy
    assert isinstance(value, list) and isinstance(head, int)
    items = list(value)
    if delete and not rest:
        del items[head]
    else:
        items[head] = _set(items[head], rest, new, delete=delete)
    return items


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """Valid Record or Feedback JSON with up to three mutations: fields deleted, duplicated or
    retyped, values replaced by huge, non-finite or very deep ones, bytes cut or flipped."""
    value: object = draw(valid_records | valid_feedback)
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(value)
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["retype", "retype", "number", "delete", "add"]))
        numbers = [p for p in paths if set(p) & {"features", "embedding"} and len(p) >= 2]
        if action == "number" and numbers:  # a huge or non-finite feature or embedding value
            value = _set(value, draw(st.sampled_from(numbers)), draw(extreme_numbers))
        elif action == "delete" and path:
            value = _set(value, path, None, delete=True)
        elif action == "add" and isinstance(value, dict):
            key = draw(st.sampled_from(["id", "features", "text", "embedding", "metadata", "x"]))
            value = {**value, key: draw(replacements)}
        else:
            value = _set(value, path, draw(replacements))
    raw = json.dumps(value).encode()
    deep = draw(st.sampled_from([50, 200, 201, 202, 1025, 5000]))
    opener = draw(st.sampled_from([b"[", b'{"k": ']))
    closer = b"]" if opener == b"[" else b"}"
    raw = raw.replace(json.dumps(DEEP_SENTINEL).encode(), opener * deep + b"1" + closer * deep)
    token = draw(st.sampled_from([b"1e999", b"-1e400", b"NaN", b"1E+16", b"123456789012345678901"]))
    raw = raw.replace(json.dumps(TOKEN_SENTINEL).encode(), token)
    if raw.startswith(b"{") and draw(st.booleans()):  # a duplicated field, last one wins
        key = draw(st.sampled_from([b"id", b"features", b"schema_version", b"record"]))
        dup = json.dumps(draw(replacements)).replace(json.dumps(DEEP_SENTINEL), "[[1]]")
        dup = dup.replace(json.dumps(TOKEN_SENTINEL), "1e999")
        raw = b'{"' + key + b'": ' + dup.encode() + b", " + raw[1:]
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "flip", "bom", "garbage"]))
    if damage == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif damage == "flip" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([draw(st.integers(0, 255))]) + raw[at + 1 :]
    elif damage == "bom":
        raw = codecs.BOM_UTF8 + raw
    elif damage == "garbage":
        raw += draw(st.binary(min_size=1, max_size=8))
    return raw


def assert_total(raw: bytes | None, bound: float = 1e15) -> None:
    """Every decoder returns a message or a Rejected with a reason, a one-line error and a
    dead letter that can be written; an accepted record's numbers are finite and bounded."""
    consumed = Consumed("t", 0, 7, b"key", raw)
    fast = decode_record(raw, max_bytes=100_000, max_abs_number=bound)
    slow = decode(Record, raw, max_bytes=100_000, max_abs_number=bound)
    feedback = decode(Feedback, raw, max_bytes=100_000, max_abs_number=bound)
    fast_feedback = decode_feedback(raw, max_bytes=100_000, max_abs_number=bound)
    oversized = decode(Record, raw, max_bytes=len(raw or b"") - 1)  # only peeks at the id
    _same(fast, slow)
    _same_feedback(fast_feedback, feedback)
    for result in (fast, slow, feedback, fast_feedback, oversized):
        if isinstance(result, Rejected):
            assert isinstance(result.reason, DeadLetterReason)
            assert result.error and result.error.isprintable()
            assert len(result.error) <= MAX_ERROR_CHARS
            assert result.record_id is None or result.record_id.encode()
            key, value = dead_letter_message(result, consumed, "labeler")
            assert DeadLetter.model_validate_json(value).reason is result.reason
            assert key == (result.record_id.encode() if result.record_id else b"key")
            continue
        assert isinstance(result, Record | PlainRecord | Feedback)
        record = result.record if isinstance(result, Feedback) else result
        numbers = [v for v in (record.features or {}).values() if not isinstance(v, str | bool)]
        for v in [*numbers, *(record.embedding or ())]:
            assert math.isfinite(v) and abs(v) <= bound


@settings(max_examples=500, deadline=None)
@given(near_valid(), st.sampled_from([1e15, 1e15, 1e6]))
def test_near_valid_input_never_raises_and_always_gets_a_reason(raw: bytes, bound: float) -> None:
    assert_total(raw, bound)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.none())
def test_random_bytes_never_raise_and_always_get_a_reason(raw: bytes | None) -> None:
    assert_total(raw)


def test_the_fuzzer_reaches_every_outcome_that_matters() -> None:
    """The near-valid strategy is worth its time only if it makes valid messages as well
    as each of the rejections it is meant to provoke."""
    seen: set[object] = set()

    @settings(max_examples=400, deadline=None, database=None, derandomize=True)
    @given(near_valid())
    def collect(raw: bytes) -> None:
        for result in (
            decode(Record, raw, max_bytes=100_000),
            decode(Feedback, raw, max_bytes=100_000),
        ):
            seen.add(result.reason if isinstance(result, Rejected) else type(result))
            if isinstance(result, Rejected) and "nested too deeply" in result.error:
                seen.add("deep")

    collect()
    wanted = {Record, Feedback, "deep", R.INVALID_JSON, R.WRONG_TYPE, R.OUT_OF_RANGE}
    wanted |= {R.NON_FINITE_NUMBER, R.UNSUPPORTED_SCHEMA_VERSION, R.UNKNOWN_FIELD}
    assert wanted <= seen, wanted - seen
