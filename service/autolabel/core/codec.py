"""Bytes to messages and back, with one readable reason for every rejection.

Decoding never raises on bad data: it returns a :class:`Rejected` that says
which :class:`~autolabel.core.messages.DeadLetterReason` applies and what to fix.

>>> from autolabel.core.messages import Record
>>> decode(Record, b'{"id": "a", "features": {"x": 1}}', max_bytes=1000)
Record(schema_version=1, id='a', features={'x': 1}, text=None, embedding=None, metadata=None)
>>> r = decode(Record, b'{"id": "a", "features": {"x": 1}, "colour": 3}', max_bytes=1000)
>>> r.reason.value, r.error
('unknown_field', "unknown field 'colour'")
>>> decode(Record, b'{"id": 1, "text": "t"}', max_bytes=1000).error
'id: Input should be a valid string'
>>> decode(Record, b'x' * 20, max_bytes=10).reason.value
'oversized'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from autolabel.core.messages import (
    DEAD_LETTER_PAYLOAD_BYTES,
    SCHEMA_VERSION,
    DeadLetter,
    DeadLetterReason,
    Feedback,
    Message,
    PlainRecord,
    Record,
)

M = TypeVar("M", bound=Message)


class Consumed(Protocol):
    """What dead-lettering needs of a consumed message: aiokafka's ``ConsumerRecord``
    (and Faust's message) have these attributes, so nothing is copied."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a message could not be used, and the id when one could be read."""

    reason: DeadLetterReason
    error: str
    record_id: str | None = None


def decode(model: type[M], raw: bytes | None, *, max_bytes: int) -> M | Rejected:
    """Parse and validate ``raw`` as ``model``, or say why not."""
    if raw is None:
        return Rejected(DeadLetterReason.INVALID_JSON, "empty message (null value)")
    if len(raw) > max_bytes:
        return Rejected(
            DeadLetterReason.OVERSIZED,
            f"message is {len(raw)} bytes, over the limit of {max_bytes}"
            " (AUTOLABEL_LABELER__MAX_MESSAGE_BYTES)",
            _peek_id(raw[:4096]),
        )
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        return _explain(model, exc, raw)


_RECORD_FIELDS = frozenset({"schema_version", "id", "features", "text", "embedding", "metadata"})
_EXACT_INT_LIMIT = 2.0**53  # beyond this an integer literal may have been read as a float
_FEATURE_TYPES = frozenset({float, int, str, bool})
_NUMBER_TYPES = frozenset({float, int, bool})


def decode_record(raw: bytes | None, *, max_bytes: int) -> Record | PlainRecord | Rejected:
    """:func:`decode` for the labeler, with a shortcut for the common case.

    A plain tabular record (``id`` and a flat ``features`` map of finite numbers,
    strings and bools; nothing else) is read with orjson and checked here against the
    same rules as :class:`Record`, for a third of the cost. Anything else, valid or
    not, goes through the model, which also explains every rejection; a test checks
    on arbitrary input that both paths accept the same records with the same values.

    >>> decode_record(b'{"id": "a", "features": {"x": 1.5}}', max_bytes=100)
    PlainRecord(id='a', features={'x': 1.5}, text=None, embedding=None)
    """
    if raw is not None and len(raw) <= max_bytes:
        plain = _plain_record(raw)
        if plain is not None:
            return plain
    return decode(Record, raw, max_bytes=max_bytes)


def _plain_record(raw: bytes) -> PlainRecord | None:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict or not data.keys() <= _RECORD_FIELDS:
        return None
    version = data.get("schema_version", SCHEMA_VERSION)
    record_id = data.get("id")
    features = data.get("features")
    if (
        type(version) is not int
        or version != SCHEMA_VERSION
        or type(record_id) is not str
        or not 0 < len(record_id) <= 256
        or type(features) is not dict
        or not features
        or data.get("text") is not None
        or data.get("embedding") is not None
        or data.get("metadata") is not None
    ):
        return None
    values = features.values()
    kinds = set(map(type, values))
    if not kinds <= _FEATURE_TYPES or "" in features:
        return None
    if float in kinds:
        # Floats beyond 2**53 may have been integer literals too big for an int (the
        # model would keep those as int): leave them to the model.
        floats = values if kinds <= _NUMBER_TYPES else [v for v in values if type(v) is float]
        if not min(floats) > -_EXACT_INT_LIMIT or not max(floats) < _EXACT_INT_LIMIT:
            return None
    return PlainRecord(record_id, features)


def encode(message: BaseModel) -> bytes:
    """Serialize a message as compact JSON bytes."""
    return message.model_dump_json(exclude_none=True).encode()


def _explain(model: type[Message], exc: ValidationError, raw: bytes) -> Rejected:
    errors = exc.errors(include_url=False, include_input=True)
    record_id = _peek_id(raw)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        return Rejected(DeadLetterReason.INVALID_JSON, f"not valid JSON: {first['msg']}")
    if kind == "model_type":
        return Rejected(DeadLetterReason.NOT_AN_OBJECT, "expected a JSON object")
    types = {e["type"] for e in errors}
    where = {_loc(e["loc"]) for e in errors}
    if "schema_version" in where:
        return Rejected(
            DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION,
            "schema_version must be 1 (this build reads version 1 only)",
            record_id,
        )
    if "extra_forbidden" in types:
        names = sorted(_loc(e["loc"]) for e in errors if e["type"] == "extra_forbidden")
        return Rejected(
            DeadLetterReason.UNKNOWN_FIELD,
            "unknown field " + ", ".join(repr(n) for n in names),
            record_id,
        )
    if "finite_number" in types:
        bad = sorted(
            {_loc(e["loc"], drop_union=True) for e in errors if e["type"] == "finite_number"}
        )
        return Rejected(
            DeadLetterReason.NON_FINITE_NUMBER,
            "NaN or infinity is not a number we can learn from: " + ", ".join(bad),
            record_id,
        )
    if any(e["type"] == "missing" and e["loc"] == ("id",) for e in errors):
        return Rejected(DeadLetterReason.MISSING_ID, "missing required field 'id'")
    if model is Feedback and any(e["loc"] == ("source",) for e in errors):
        return Rejected(
            DeadLetterReason.UNKNOWN_FEEDBACK_SOURCE,
            "source must be one of review, audit, seed, external",
            record_id,
        )
    if types <= {
        "value_error",
        "too_short",
        "string_too_short",
        "list_too_short",
        "dict_too_short",
    }:
        msg = "; ".join(_short(e) for e in errors)
        reason = (
            DeadLetterReason.EMPTY_PAYLOAD
            if "empty" in msg or "got none" in msg or "too_short" in " ".join(types)
            else DeadLetterReason.BAD_PAYLOAD
        )
        return Rejected(reason, msg, record_id)
    if types & {"missing"}:
        return Rejected(
            DeadLetterReason.INVALID_MESSAGE, "; ".join(_short(e) for e in errors), record_id
        )
    return Rejected(DeadLetterReason.WRONG_TYPE, _first_per_location(errors), record_id)


def _loc(loc: tuple[int | str, ...], *, drop_union: bool = False) -> str:
    parts = [str(p) for p in loc]
    if drop_union and parts and parts[-1] in {"bool", "int", "float", "str"}:
        parts = parts[:-1]
    return ".".join(parts)


def _short(error: Any) -> str:
    msg = str(error["msg"]).removeprefix("Value error, ")
    loc = _loc(error["loc"])
    return f"{loc}: {msg}" if loc else msg


def _first_per_location(errors: list[Any]) -> str:
    seen: dict[str, str] = {}
    for e in errors:
        loc = _loc(e["loc"], drop_union=True)
        if loc not in seen:
            union = e["loc"] and str(e["loc"][-1]) in {"bool", "int", "float", "str"}
            seen[loc] = "must be a number, string or bool" if union else str(e["msg"])
    return "; ".join(f"{loc}: {msg}" for loc, msg in seen.items())


def _peek_id(raw: bytes) -> str | None:
    """Best-effort record id from a message that failed validation."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # the stdlib parser also reads NaN and Infinity
            value = json.loads(raw)
        except ValueError:
            return None
    if isinstance(value, dict):
        rid = value.get("id")
        if isinstance(rid, str) and 0 < len(rid) <= 256:
            return rid
    return None


def dead_letter(
    rejected: Rejected,
    raw: bytes | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    stage: Literal["labeler", "learner"],
) -> DeadLetter:
    """The dead-letter message for a rejected input, keeping the original bytes
    (their first ``DEAD_LETTER_PAYLOAD_BYTES`` when larger)."""
    raw = raw or b""
    kept = raw[:DEAD_LETTER_PAYLOAD_BYTES]
    payload, encoding = DeadLetter.encode_payload(kept)
    return DeadLetter(
        reason=rejected.reason,
        error=rejected.error,
        record_id=rejected.record_id,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        stage=stage,
        payload=payload,
        payload_encoding=encoding,
        payload_size=len(raw),
        payload_truncated=len(kept) < len(raw),
    )


def dead_letter_message(
    rejected: Rejected, msg: Consumed, stage: Literal["labeler", "learner"]
) -> tuple[bytes | None, bytes]:
    """Key and value of the dead letter for a consumed message: keyed by the record id
    when one could be read, else by the message's own key."""
    letter = dead_letter(
        rejected,
        msg.value,
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        stage=stage,
    )
    key = rejected.record_id.encode() if rejected.record_id else msg.key
    return key, encode(letter)
