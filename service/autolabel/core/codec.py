"""Bytes to messages and back, with one readable reason for every rejection.

Decoding never raises, whatever the bytes: it returns a :class:`Rejected` that says
which :class:`~autolabel.core.messages.DeadLetterReason` applies and what to fix, in
one line. Nothing here parses untrusted input with a recursive parser, so no nesting
depth can exhaust the stack.

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
>>> decode(Record, b'{"id": "a", "text": ' + b'[' * 5000, max_bytes=10_000).error
'not valid JSON: arrays or objects nested too deeply at line 1 column 221'
>>> decode(Record, b'{"id": "a", "features": {"x": 1e300}}', max_bytes=1000).error
'features.x: magnitude over 1e+15 (AUTOLABEL_LABELER__MAX_ABS_NUMBER)'
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from math import hypot
from typing import Any, Literal, Protocol, TypeVar, get_args

import orjson
from annotated_types import MaxLen, MinLen
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import from_json

from autolabel.core.messages import (
    DEAD_LETTER_PAYLOAD_BYTES,
    DEFAULT_MAX_ABS_NUMBER,
    MAX_METADATA_DEPTH,
    SCHEMA_VERSION,
    DeadLetter,
    DeadLetterReason,
    FeatureValue,
    Feedback,
    FeedbackSource,
    Message,
    PlainRecord,
    Record,
    utc_now,
)
from autolabel.core.tuples import new_tuple

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


MAX_ERROR_CHARS = 1000
"""The longest error a :class:`Rejected` carries (the input can make it long)."""


def decode(
    model: type[M],
    raw: bytes | None,
    *,
    max_bytes: int,
    max_abs_number: float = DEFAULT_MAX_ABS_NUMBER,
) -> M | Rejected:
    """Parse and validate ``raw`` as ``model``, or say why not; never raises.

    ``max_abs_number`` bounds the magnitude of every feature and embedding value of a
    record, also a record inside the message (``AUTOLABEL_LABELER__MAX_ABS_NUMBER``).
    """
    if raw is None:
        return Rejected(DeadLetterReason.INVALID_JSON, "empty message (null value)")
    if len(raw) > max_bytes:
        return Rejected(
            DeadLetterReason.OVERSIZED,
            f"message is {len(raw)} bytes, over the limit of {max_bytes}"
            " (AUTOLABEL_LABELER__MAX_MESSAGE_BYTES)",
            _peek_id(raw[:4096], partial=True),
        )
    try:
        return model.model_validate_json(raw, context={"max_abs_number": max_abs_number})
    except ValidationError as exc:
        try:
            return _explain(model, exc, raw)
        except Exception as bug:  # explaining must not turn a rejection into a crash
            return Rejected(DeadLetterReason.INVALID_MESSAGE, _unexplained(bug))
    except Exception as bug:  # a validator's bug, or anything else: still never raise
        return Rejected(DeadLetterReason.INVALID_MESSAGE, _unexplained(bug))


def _unexplained(exc: Exception) -> str:
    return _one_line(f"could not be validated ({type(exc).__name__}: {exc})")


def _one_line(text: str) -> str:
    """An error as one printable line of at most ``MAX_ERROR_CHARS`` characters."""
    if not text.isprintable():
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 1] + "…"
    return text


_RECORD_FIELDS = frozenset({"schema_version", "id", "features", "text", "embedding", "metadata"})
_EXACT_INT_LIMIT = 2.0**53  # beyond this an integer literal may have been read as a float
_NORM_MARGIN = 1 - 1e-9  # math.hypot is within a few ulps of the true norm: stay clear


def decode_record(
    raw: bytes | None, *, max_bytes: int, max_abs_number: float = DEFAULT_MAX_ABS_NUMBER
) -> Record | PlainRecord | Rejected:
    """:func:`decode` for the labeler, with a shortcut for the common case.

    A plain tabular record (``id`` and a flat ``features`` map of finite numbers
    within ``±max_abs_number``, strings and bools; nothing else) is read with orjson
    and checked here against the same rules as :class:`Record`, for a third of the
    cost. The shortcut never rejects: anything else, valid or not, goes through the
    model, which also explains every rejection; a test checks on arbitrary input that
    both paths accept the same records with the same values.

    >>> decode_record(b'{"id": "a", "features": {"x": 1.5}}', max_bytes=100)
    PlainRecord(id='a', features={'x': 1.5}, text=None, embedding=None)
    """
    return decode_records([raw], max_bytes=max_bytes, max_abs_number=max_abs_number)[0]


def decode_records(
    raws: Iterable[bytes | None],
    *,
    max_bytes: int,
    max_abs_number: float = DEFAULT_MAX_ABS_NUMBER,
) -> list[Record | PlainRecord | Rejected]:
    """:func:`decode_record` of every message of a batch, in order; never raises."""
    limit = _shortcut_limit(max_abs_number)
    out: list[Record | PlainRecord | Rejected] = []
    for raw in raws:
        plain = None
        if raw is not None and len(raw) <= max_bytes:
            try:
                plain = _plain_record(raw, limit)
            except Exception:  # never expected; the model path explains whatever it is
                plain = None
        if plain is None:
            out.append(decode(Record, raw, max_bytes=max_bytes, max_abs_number=max_abs_number))
        else:
            out.append(plain)
    return out


def _shortcut_limit(max_abs_number: float) -> float:
    """The bound the shortcuts hold numbers strictly within: clear of ``max_abs_number``
    by more than :func:`math.hypot`'s rounding, and under 2**53 (see
    :func:`_plain_features`)."""
    limit = max_abs_number if max_abs_number < _EXACT_INT_LIMIT else _EXACT_INT_LIMIT
    return limit * _NORM_MARGIN


def _plain_record(raw: bytes, limit: float) -> PlainRecord | None:
    """The record if it is plain and every number lies strictly within ``±limit``."""
    try:
        data = orjson.loads(raw)  # depth-limited (1024) in Rust: no RecursionError
    except orjson.JSONDecodeError:
        return None
    features = _plain_features(data, limit)
    if features is None:
        return None
    return new_tuple(PlainRecord, (data["id"], features, None, None))


def _plain_features(data: object, limit: float) -> dict[str, FeatureValue] | None:
    """The features of ``data`` (as orjson read it) if it is a plain tabular record that
    :class:`Record` accepts and every number lies strictly within ``±limit``; then its
    ``id`` is a string of 1 to 256 characters and any other field it has is 1
    (``schema_version``) or null."""
    if type(data) is not dict or not _RECORD_FIELDS.issuperset(data):
        return None
    record_id = data.get("id")
    features = data.get("features")
    if (
        type(record_id) is not str
        or not 0 < len(record_id) <= 256
        or type(features) is not dict
        or not features
        or "" in features
    ):
        return None
    if len(data) > 2:  # more than id and features: each other field must say nothing
        version = data.get("schema_version", SCHEMA_VERSION)
        if (
            type(version) is not int
            or version != SCHEMA_VERSION
            or data.get("text") is not None
            or data.get("embedding") is not None
            or data.get("metadata") is not None
        ):
            return None
    # Every value a number, string or bool, and every number strictly within ±limit, in
    # one C-speed pass: orjson gives only str, int, float, bool, None, list and dict, and
    # hypot takes exactly the numbers (bools too) and raises TypeError for the rest. The
    # Euclidean norm is at least the largest magnitude (orjson's ints fit a float: larger
    # ones come as floats). ``limit`` is under 2**53, beyond which a float may have been
    # an integer literal too big for an int (the model keeps those as int). What this
    # does not accept (a large norm, a number near the bound) the model decides and
    # explains.
    try:
        norm = hypot(*[v for v in features.values() if type(v) is not str])
    except TypeError:
        return None
    if not norm < limit:
        return None
    return features


def decode_feedback(
    raw: bytes | None, *, max_bytes: int, max_abs_number: float = DEFAULT_MAX_ABS_NUMBER
) -> Feedback | Rejected:
    """:func:`decode` of a :class:`Feedback`, with a shortcut for the common case.

    An answer about a plain tabular record (see :func:`decode_record`) whose other
    fields are what :class:`Feedback` takes (``schema_version`` 1, ``id`` equal to the
    record's, ``label``, a known ``source``, optional ``request_id``, ``reviewer`` and
    ``time``) is read with orjson, checked here against the same rules as the model,
    and built as the model would build it, for about half the cost. The shortcut never
    rejects: anything else, valid or not, goes through the model, which also explains
    every rejection; a test checks on arbitrary input that both paths accept the same
    answers with equal values.

    >>> raw = (b'{"id": "a", "record": {"id": "a", "features": {"x": 1}},'
    ...        b' "label": "cat", "source": "review", "time": "2024-05-01T12:00:00Z"}')
    >>> decode_feedback(raw, max_bytes=1000) == decode(Feedback, raw, max_bytes=1000)
    True
    """
    if raw is not None and len(raw) <= max_bytes and _CONSTRUCTIBLE:
        try:
            plain = _plain_feedback(raw, _shortcut_limit(max_abs_number))
        except Exception:  # never expected; the model path explains whatever it is
            plain = None
        if plain is not None:
            return plain
    return decode(Feedback, raw, max_bytes=max_bytes, max_abs_number=max_abs_number)


_FEEDBACK_FIELDS = frozenset(Feedback.model_fields)
_SOURCES = {source.value: source for source in FeedbackSource}
_TIME = TypeAdapter(datetime, config=Feedback.model_config).validator
"""Feedback's ``time`` as the model reads it: the same parser (pydantic's) with the
same configuration, given the same JSON string."""


def _models_as_checked() -> bool:
    """Whether :class:`Feedback` and :class:`Record` still have exactly the fields (in
    this order), validators and defaults that :func:`_plain_feedback` checks and
    :func:`_built` sets. A change to the models turns the shortcut off (a test says so)
    until it is looked at again."""
    feedback_fields = ("schema_version", "id", "record", "label", "source", "request_id")
    record_fields = ("schema_version", "id", "features", "text", "embedding", "metadata")
    shapes: dict[type[Message], tuple[tuple[str, ...], set[str], set[str]]] = {
        Feedback: ((*feedback_fields, "reviewer", "time"), set(), {"_id_matches_record"}),
        Record: (
            record_fields,
            {"_within_bound", "_finite_metadata"},
            {"_exactly_one_payload"},
        ),
    }
    for model, (fields, field_validators, model_validators) in shapes.items():
        hooks = model.__pydantic_decorators__
        if (
            tuple(model.model_fields) != fields
            or set(hooks.field_validators) != field_validators
            or set(hooks.model_validators) != model_validators
            or hooks.validators
            or hooks.root_validators
            or model.model_fields["schema_version"].default != SCHEMA_VERSION
            or model.__pydantic_post_init__
            or model.__private_attributes__
            or model.model_config.get("extra") != "forbid"
        ):
            return False
    limits: dict[tuple[type[Message], str], tuple[int | None, int | None]] = {
        (Feedback, "id"): (1, 256),
        (Feedback, "label"): (1, 256),
        (Feedback, "request_id"): (1, 128),
        (Feedback, "reviewer"): (None, 256),
        (Record, "id"): (1, 256),
    }
    if any(_length_limits(model, name) != want for (model, name), want in limits.items()):
        return False
    return Feedback.model_fields["time"].default_factory is utc_now


def _length_limits(model: type[Message], name: str) -> tuple[int | None, int | None]:
    """A string field's (min_length, max_length), also inside ``Annotated[...] | None``."""
    info = model.model_fields[name]
    metadata = list(info.metadata)
    for arg in get_args(info.annotation):
        for item in getattr(arg, "__metadata__", ()):
            metadata.extend(getattr(item, "metadata", [item]))
    low = next((m.min_length for m in metadata if isinstance(m, MinLen)), None)
    high = next((m.max_length for m in metadata if isinstance(m, MaxLen)), None)
    return low, high


_CONSTRUCTIBLE = _models_as_checked()
_new_object = object.__new__
_set_attribute = object.__setattr__


def _plain_feedback(raw: bytes, limit: float) -> Feedback | None:
    """The answer if it is plain (see :func:`decode_feedback`) and its record's numbers
    lie strictly within ``±limit``."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(data) is not dict or not _FEEDBACK_FIELDS.issuperset(data):
        return None
    features = _plain_features(data.get("record"), limit)
    if features is None:
        return None
    record: dict[str, Any] = data["record"]  # a plain record: a dict with a valid id
    feedback_id = data.get("id")
    label = data.get("label")
    source = data.get("source")
    request_id = data.get("request_id")
    reviewer = data.get("reviewer")
    version = data.get("schema_version", SCHEMA_VERSION)
    if (
        type(feedback_id) is not str
        or feedback_id != record["id"]  # the record's id is a valid id: so is this one
        or type(label) is not str
        or not 0 < len(label) <= 256
        or type(source) is not str
        or source not in _SOURCES
        or (
            request_id is not None
            and (type(request_id) is not str or not 0 < len(request_id) <= 128)
        )
        or (reviewer is not None and (type(reviewer) is not str or len(reviewer) > 256))
        or type(version) is not int
        or version != SCHEMA_VERSION
    ):
        return None
    if "time" in data:
        when = data["time"]
        if type(when) is not str:
            return None
        try:
            time = _TIME.validate_json(orjson.dumps(when))
        except ValidationError:
            return None
    else:
        time = utc_now()  # the model's default
    return _built(
        Feedback,
        {
            "schema_version": SCHEMA_VERSION,
            "id": feedback_id,
            "record": _built(
                Record,
                {
                    "schema_version": SCHEMA_VERSION,
                    "id": feedback_id,
                    "features": features,
                    "text": None,
                    "embedding": None,
                    "metadata": None,
                },
                set(record),
            ),
            "label": label,
            "source": _SOURCES[source],
            "request_id": request_id,
            "reviewer": reviewer,
            "time": time,
        },
        set(data),
    )


def _built(model: type[M], values: dict[str, Any], fields_set: set[str]) -> M:
    """``model`` with these checked field values (every field, in the model's order) and
    the fields the input gave, as validation builds it: what ``model_construct`` does,
    without its generality."""
    message = _new_object(model)
    _set_attribute(message, "__dict__", values)
    _set_attribute(message, "__pydantic_fields_set__", fields_set)
    _set_attribute(message, "__pydantic_extra__", None)
    _set_attribute(message, "__pydantic_private__", None)
    return message


def encode(message: BaseModel) -> bytes:
    """Serialize a message as compact JSON bytes."""
    return message.model_dump_json(exclude_none=True).encode()


def _explain(model: type[Message], exc: ValidationError, raw: bytes) -> Rejected:
    errors = exc.errors(include_url=False, include_input=True)
    first = errors[0]
    kind = first["type"]
    if kind == "json_invalid":
        return Rejected(DeadLetterReason.INVALID_JSON, _one_line(_why_not_json(raw, first)))
    if kind == "model_type":
        return Rejected(DeadLetterReason.NOT_AN_OBJECT, "expected a JSON object")
    record_id = _peek_id(raw)
    rejected = _explain_fields(model, errors, record_id)
    return Rejected(rejected.reason, _one_line(rejected.error), rejected.record_id)


_BOMS = (
    (codecs.BOM_UTF8, "a UTF-8 byte order mark: send the JSON without it"),
    (codecs.BOM_UTF32_LE, "a UTF-32 byte order mark: JSON here must be UTF-8"),
    (codecs.BOM_UTF32_BE, "a UTF-32 byte order mark: JSON here must be UTF-8"),
    (codecs.BOM_UTF16_LE, "a UTF-16 byte order mark: JSON here must be UTF-8"),
    (codecs.BOM_UTF16_BE, "a UTF-16 byte order mark: JSON here must be UTF-8"),
)


def _why_not_json(raw: bytes, error: Any) -> str:
    """The parser's complaint, said plainly for the common causes."""
    if not raw.strip():
        return "not valid JSON: empty message"
    for bom, why in _BOMS:
        if raw.startswith(bom):
            return f"not valid JSON: starts with {why}"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid JSON: not UTF-8 text (byte {exc.start} is {raw[exc.start]:#04x})"
    msg = str(error["msg"]).removeprefix("Invalid JSON: ")
    if msg.startswith("recursion limit exceeded"):
        msg = "arrays or objects nested too deeply" + msg.removeprefix("recursion limit exceeded")
    return f"not valid JSON: {msg}"


_VERSION_LOCATIONS = (("schema_version",), ("record", "schema_version"))


def _explain_fields(model: type[Message], errors: list[Any], record_id: str | None) -> Rejected:
    types = {e["type"] for e in errors}
    versions = [e for e in errors if e["loc"] in _VERSION_LOCATIONS]
    if versions:  # top-level, or a record's inside feedback
        where_version, got = _loc(versions[0]["loc"]), versions[0].get("input")
        return Rejected(
            DeadLetterReason.UNSUPPORTED_SCHEMA_VERSION,
            f"{where_version} must be 1, the JSON integer, not {_show(got)}"
            " (this build reads version 1 only)",
            record_id,
        )
    if "extra_forbidden" in types:
        names = sorted(_loc(e["loc"]) for e in errors if e["type"] == "extra_forbidden")
        return Rejected(
            DeadLetterReason.UNKNOWN_FIELD,
            "unknown field " + ", ".join(repr(n) for n in names),
            record_id,
        )
    if "too_deep" in types:
        bad = sorted({_loc(e["loc"]) for e in errors if e["type"] == "too_deep"})
        return Rejected(
            DeadLetterReason.INVALID_JSON,
            f"{', '.join(bad)}: nested too deeply (over {MAX_METADATA_DEPTH} levels)",
            record_id,
        )
    if "out_of_range" in types:
        ranges = [e for e in errors if e["type"] == "out_of_range"]
        bad = [f"{_loc(e['loc'])}.{w}" for e in ranges for w in e["ctx"]["where"]]
        return Rejected(
            DeadLetterReason.OUT_OF_RANGE,
            f"{', '.join(bad)}: magnitude over {ranges[0]['ctx']['bound']}"
            " (AUTOLABEL_LABELER__MAX_ABS_NUMBER)",
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


def _show(value: object) -> str:
    """A value from the input as JSON, cut short.

    >>> _show(True), _show("1"), _show(1.0), _show("x" * 100)[-4:]
    ('true', '"1"', '1.0', 'x...')
    """
    try:
        text = orjson.dumps(value).decode()
    except Exception:  # e.g. an integer beyond 64 bits
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _loc(loc: tuple[int | str, ...], *, drop_union: bool = False) -> str:
    # Field names come from the input: _one_line later escapes any control character.
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


def _peek_id(raw: bytes, *, partial: bool = False) -> str | None:
    """Best-effort record id from a message that failed validation; never raises.

    Read with pydantic's parser (Rust, depth-limited: no input can exhaust the
    stack), which also takes NaN and Infinity and, with ``partial``, the beginning
    of a message cut short.

    >>> _peek_id(b'{"id": "a", "x": NaN}'), _peek_id(b'[' * 100_000)
    ('a', None)
    >>> _peek_id(b'{"id": "a", "text": "cut sh', partial=True)
    'a'
    """
    try:
        value = from_json(raw, allow_inf_nan=True, cache_strings=False, allow_partial=partial)
    except Exception:  # ValueError for bad JSON; anything else must not escape either
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
    when one could be read, else by the message's own key. Never raises on what the
    message holds."""
    try:
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
    except Exception as exc:  # e.g. an id or error that is not valid Unicode
        safe = Rejected(
            rejected.reason,
            _one_line(
                rejected.error.encode("utf-8", "backslashreplace").decode("utf-8")
                + f" (dead letter rebuilt without the id: {type(exc).__name__})"
            ),
        )
        letter = dead_letter(
            safe,
            msg.value,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            stage=stage,
        )
        return msg.key, encode(letter)
