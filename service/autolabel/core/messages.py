"""The message contract: every value on every autolabel topic.

These pydantic models are shared by upstream producers, the service and the
tests; ``schemas/`` holds the JSON Schema generated from them
(``autolabel schemas``), and a test keeps the two in sync.

Every message carries ``schema_version``. Input is strict: unknown fields,
values of the wrong JSON type, non-finite numbers, feature or embedding numbers
beyond ``±max_abs_number``, metadata nested deeper than ``MAX_METADATA_DEPTH``
and a record with zero or several payloads are rejected (the service sends them
to dead-letter with the reason), never silently fixed.

>>> r = Record.model_validate_json(b'{"id": "r1", "features": {"x": 1.5, "colour": "red"}}')
>>> r.kind
'features'
>>> Record.model_validate({"id": "r2", "text": "hello"}).kind
'text'
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal, NamedTuple, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

SCHEMA_VERSION: Literal[1] = 1
"""The one version this build reads and writes."""

RecordKind = Literal["features", "text", "embedding"]
Stage = Literal["labeler", "learner"]
FeatureValue = bool | int | float | str
RecordId = Annotated[str, Field(min_length=1, max_length=256)]
RequestId = Annotated[str, Field(min_length=1, max_length=128)]
Label = Annotated[str, Field(min_length=1, max_length=256)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


DEFAULT_MAX_ABS_NUMBER = 1e15
"""The largest magnitude a record's feature or embedding value may have, unless the
validation context says otherwise (``{"max_abs_number": bound}``, which
:func:`autolabel.core.codec.decode` sets from its ``max_abs_number`` argument). Larger
numbers are almost always a bug upstream, and one of them is enough to turn a linear
model's scaler and weights to NaN."""

MAX_METADATA_DEPTH = 32
"""How deeply a record's metadata may nest (the metadata object itself is level 1).

Far below the JSON parser's own limit, so that a record stays readable when it is
echoed one level down in a review request or in feedback."""


def _json_problem(
    value: dict[str, JsonValue] | list[JsonValue], max_depth: int = MAX_METADATA_DEPTH
) -> str | None:
    """What is wrong with a JSON object or array: ``"non_finite"`` (a NaN or an
    infinity), ``"too_deep"`` (arrays or objects nested over ``max_depth`` levels, the
    outermost being level 1) or None.

    Level by level, without recursion, so no input can exhaust the stack.

    >>> _json_problem({"a": [1, 2.5, {"b": None}]}), _json_problem({"a": [float("nan")]})
    (None, 'non_finite')
    >>> _json_problem({"a": {"b": {}}}, max_depth=2)
    'too_deep'
    """
    level = [value]
    depth = 0
    while level:
        depth += 1
        nested: list[dict[str, JsonValue] | list[JsonValue]] = []
        for item in level:
            for child in item.values() if type(item) is dict else item:
                kind = type(child)
                if kind is float:
                    if not math.isfinite(child):  # type: ignore[arg-type]
                        return "non_finite"
                elif kind is dict or kind is list:
                    nested.append(child)  # type: ignore[arg-type]
        if nested and depth >= max_depth:
            return "too_deep"
        level = nested
    return None


def _max_abs_number(info: ValidationInfo) -> float:
    context = info.context
    if context is None:
        return DEFAULT_MAX_ABS_NUMBER
    return float(context.get("max_abs_number", DEFAULT_MAX_ABS_NUMBER))


def _out_of_range(where: list[str] | list[int], bound: float) -> PydanticCustomError:
    """The error for numbers beyond ``±bound``; ``where`` are their keys or indexes."""
    return PydanticCustomError(
        "out_of_range",
        "magnitude over {bound} at {where}",
        {"bound": f"{bound:g}", "where": where},
    )


def utc_now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


_WIRE = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)
"""Strict types: no string is read as a number, no number or bool as a string, no bool
as a number. JSON still gives datetimes as ISO strings, enums as their values and ints
where floats are expected; in Python, pass datetime and enum instances."""


class Message(BaseModel):
    """Base of every message: strict, immutable, versioned.

    >>> from pydantic import ValidationError
    >>> for version in (b"1", b"true", b"1.0", b'"1"', b"2"):
    ...     raw = b'{"schema_version": ' + version + b', "id": "a", "text": "t"}'
    ...     try:
    ...         print(Record.model_validate_json(raw).schema_version)
    ...     except ValidationError as exc:
    ...         print(exc.errors()[0]["loc"])
    1
    ('schema_version',)
    ('schema_version',)
    ('schema_version',)
    ('schema_version',)
    """

    model_config = _WIRE

    # A strict int from 1 to 1, checked in pydantic's core: a strict Literal[1] would
    # still take true and 1.0 (they equal 1 in Python).
    schema_version: Annotated[int, Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)] = Field(
        default=SCHEMA_VERSION,
        description="Version of this message's schema.",
        json_schema_extra={"const": SCHEMA_VERSION},
    )


class Record(Message):
    """A raw record to label (topic ``autolabel.records``, key = ``id``).

    Exactly one of ``features``, ``text`` or ``embedding`` is set.
    """

    id: RecordId = Field(description="Stable identifier; outputs are keyed by it.")
    features: dict[Annotated[str, Field(min_length=1)], FeatureValue] | None = Field(
        default=None, description="Flat map of feature name to number, string or bool."
    )
    text: Annotated[str, Field(min_length=1)] | None = Field(
        default=None, description="Free text to classify."
    )
    embedding: Annotated[list[float], Field(min_length=1)] | None = Field(
        default=None, description="Dense vector, e.g. from an image encoder upstream."
    )
    metadata: dict[str, JsonValue] | None = Field(
        default=None, description="Passed through untouched; never used as a feature."
    )

    @field_validator("features", "embedding")
    @classmethod
    def _within_bound(
        cls, value: dict[str, FeatureValue] | list[float] | None, info: ValidationInfo
    ) -> dict[str, FeatureValue] | list[float] | None:
        # A cheap sufficient test first, the exact one only when it fails: the sum of
        # magnitudes (exact for ints of any size), or for a long embedding of floats the
        # Euclidean norm (math.hypot: one C pass, within a few ulps). Either is at least
        # the largest magnitude. Validated strings are exactly str here.
        if not value:
            return value
        bound = _max_abs_number(info)
        if isinstance(value, dict):
            numbers: list[float] = [v for v in value.values() if type(v) is not str]  # type: ignore[misc]
            if sum(map(abs, numbers)) > bound:
                keys = [k for k, v in value.items() if not isinstance(v, str) and abs(v) > bound]
                if keys:
                    raise _out_of_range(keys, bound)
        elif math.hypot(*value) > bound * (1 - 1e-9):
            indexes = [i for i, v in enumerate(value) if abs(v) > bound]
            if indexes:
                raise _out_of_range(indexes, bound)
        return value

    @field_validator("metadata")
    @classmethod
    def _finite_metadata(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
        # JsonValue lets NaN through; echoed downstream it would silently become null.
        problem = None if value is None else _json_problem(value)
        if problem == "non_finite":
            raise PydanticCustomError("finite_number", "Input should be a finite number")
        if problem == "too_deep":
            raise PydanticCustomError(
                "too_deep",
                "nested over {max_depth} levels",
                {"max_depth": MAX_METADATA_DEPTH},
            )
        return value

    @model_validator(mode="after")
    def _exactly_one_payload(self) -> Record:
        # Runs for every record on the hot path: count first, explain only on failure.
        payloads = (
            (self.features is not None) + (self.text is not None) + (self.embedding is not None)
        )
        if payloads != 1:
            given = [
                name
                for name in ("features", "text", "embedding")
                if getattr(self, name) is not None
            ]
            raise ValueError(
                "a record needs exactly one of 'features', 'text' or 'embedding'"
                + (f" (got {', '.join(given)})" if given else " (got none)")
            )
        if self.features == {}:
            raise ValueError("'features' is empty: send at least one feature")
        return self

    @property
    def kind(self) -> RecordKind:
        """Which payload this record carries."""
        if self.features is not None:
            return "features"
        if self.text is not None:
            return "text"
        return "embedding"


class RecordLike(Protocol):
    """What the model and the labeler read of a record: a :class:`Record`, or the
    :class:`PlainRecord` the labeler builds for plain tabular records."""

    @property
    def id(self) -> str: ...
    @property
    def features(self) -> Mapping[str, FeatureValue] | None: ...
    @property
    def text(self) -> str | None: ...
    @property
    def embedding(self) -> Sequence[float] | None: ...
    @property
    def kind(self) -> RecordKind: ...


class PlainRecord(NamedTuple):
    """A tabular record already checked against every rule of :class:`Record`
    (:func:`autolabel.core.codec.decode_record`), without building the model: the labeler
    reads thousands a second and only needs its id and features."""

    id: str
    features: dict[str, FeatureValue]
    text: None = None
    embedding: None = None

    @property
    def kind(self) -> RecordKind:
        return "features"


class AcceptReason(StrEnum):
    """Why a label was auto-accepted."""

    CONFIDENT = "confident"  # confidence at or above a fixed threshold
    CERTIFIED = "certified"  # confidence at or above a threshold certified by risk control


class ReviewReason(StrEnum):
    """Why a record went to human review."""

    UNCERTAIN = "uncertain"
    AUDIT = "audit"
    DRIFT = "drift"
    COLD_START = "cold_start"


class FeedbackSource(StrEnum):
    """Where a true label came from."""

    REVIEW = "review"
    AUDIT = "audit"
    SEED = "seed"
    EXTERNAL = "external"


class LabeledRecord(Message):
    """An auto-accepted label (topic ``autolabel.labels``, key = record id)."""

    id: RecordId
    label: str
    confidence: Probability
    threshold: float = Field(description="The acceptance threshold in force for this label.")
    reason: AcceptReason
    model_version: int = Field(ge=0)
    labeled_at: datetime = Field(default_factory=utc_now)


class LabelProbability(BaseModel):
    """One entry of a top-k list."""

    model_config = _WIRE

    label: str
    probability: Probability


class ReviewRequest(Message):
    """A record a human should label (topic ``autolabel.review``, key = record id).

    Higher ``priority`` means more informative: review those first. Answer with a
    :class:`Feedback` that echoes ``request_id`` and ``record``
    (:func:`autolabel.review.answer` builds it).
    """

    id: RecordId
    request_id: RequestId = Field(
        description="Signed identity of this request; echo it in the answer (Feedback)."
    )
    record: Record
    predicted_label: str | None = None
    probabilities: list[LabelProbability] = Field(default_factory=list)
    reason: ReviewReason
    priority: float = Field(ge=0.0, le=1.0)
    model_version: int = Field(ge=0)
    sample_weight: float = Field(
        default=1.0,
        ge=1.0,
        description="Records this request stands for (1 / audit rate for audits);"
        " informational: the service derives it from request_id.",
    )
    requested_at: datetime = Field(default_factory=utc_now)


class Feedback(Message):
    """A true label for a record (topic ``autolabel.feedback``, key = record id).

    An answer to a review request echoes its ``request_id`` and ``record``; seed and
    external labels carry no request id.
    """

    id: RecordId
    record: Record = Field(description="The record, echoed from the review request.")
    label: Label
    source: FeedbackSource
    request_id: RequestId | None = Field(
        default=None,
        description="The review request's request_id, echoed unchanged. Required for audit"
        " answers; absent for seed and external labels. The service derives the answer's"
        " audit status and weight from it, and learns an answer to one request once.",
    )
    reviewer: Annotated[str, Field(max_length=256)] | None = None
    time: datetime = Field(default_factory=utc_now)

    @model_validator(mode="after")
    def _id_matches_record(self) -> Feedback:
        if self.id != self.record.id:
            raise ValueError(f"feedback id {self.id!r} differs from record id {self.record.id!r}")
        return self


class DeadLetterReason(StrEnum):
    """Why a message was dead-lettered: a small, fixed set (also a metric label)."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_ID = "missing_id"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    NON_FINITE_NUMBER = "non_finite_number"
    OUT_OF_RANGE = "out_of_range"
    EMPTY_PAYLOAD = "empty_payload"
    BAD_PAYLOAD = "bad_payload"
    OVERSIZED = "oversized"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    UNKNOWN_FEEDBACK_SOURCE = "unknown_feedback_source"
    UNKNOWN_CLASS = "unknown_class"
    UNVERIFIED_REQUEST = "unverified_request"
    CONFLICTING_FEEDBACK = "conflicting_feedback"
    MODEL_UPDATE_REFUSED = "model_update_refused"
    INVALID_MESSAGE = "invalid_message"
    PROCESSING_ERROR = "processing_error"


class ConfidenceSignal(Message):
    """What a labeler saw of unlabeled traffic, for the learner's drift detection
    (topic ``autolabel.signals``, key = worker id). Labelers only: not an input API.

    ``records`` is how many records it routed since its previous signal (the learner's
    record clock: evidence ages by records); ``chunk_means`` are means of consecutive
    prediction confidences (``CONFIDENCE_CHUNK`` per mean). ``alarm`` says the labeler's
    own detector saw confidence fall and it stopped accepting until the learner answers.
    """

    worker: Annotated[str, Field(min_length=1, max_length=256)]
    epoch: int = Field(ge=0, description="Trust epoch of the snapshot the labeler used.")
    model_version: int = Field(ge=0)
    records: int = Field(
        default=0, ge=0, description="Records the labeler routed since its last signal."
    )
    chunk_means: Annotated[list[Probability], Field(max_length=100_000)]
    alarm: bool = False
    sent_at: datetime = Field(default_factory=utc_now)


class DeadLetter(Message):
    """A message the service could not use (topic ``autolabel.dead-letter``).

    Keyed by the record id when it could be read. ``payload`` is the original
    bytes as text, or base64 when they are not UTF-8. Payloads over
    ``DEAD_LETTER_PAYLOAD_BYTES`` keep their beginning only (``payload_truncated``),
    so the dead letter itself always fits a Kafka message; the whole original
    stays at ``source_topic``/``source_partition``/``source_offset``.
    """

    reason: DeadLetterReason
    error: str = Field(description="Readable explanation: what was wrong and where.")
    record_id: str | None = None
    source_topic: str
    source_partition: int
    source_offset: int
    stage: Stage
    payload: str
    payload_encoding: Literal["utf-8", "base64"]
    payload_size: int = Field(ge=0, description="Bytes of the original message.")
    payload_truncated: bool = False
    failed_at: datetime = Field(default_factory=utc_now)

    @staticmethod
    def encode_payload(raw: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
        """Keep raw bytes readable when they are text, exact either way.

        >>> DeadLetter.encode_payload(b'{"a": 1}')
        ('{"a": 1}', 'utf-8')
        >>> DeadLetter.encode_payload(b'\\xff\\x00')
        ('/wA=', 'base64')
        """
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii"), "base64"


DEAD_LETTER_PAYLOAD_BYTES = 256 * 1024
"""The most of an original message a dead letter carries."""

ALL_MESSAGES: tuple[type[Message], ...] = (
    Record,
    LabeledRecord,
    ReviewRequest,
    Feedback,
    DeadLetter,
    ConfidenceSignal,
)
"""Every message type on a topic, in the order ``schemas/`` lists them."""
