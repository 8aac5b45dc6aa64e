"""``schemas/``: JSON Schema and one example per message, generated from the models.

``autolabel schemas`` writes them; ``autolabel schemas --check`` (and a unit
test) fails when the committed files no longer match the models.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from autolabel.core.messages import (
    ALL_MESSAGES,
    ConfidenceSignal,
    DeadLetter,
    DeadLetterReason,
    Feedback,
    FeedbackSource,
    LabeledRecord,
    LabelProbability,
    Message,
    Record,
    ReviewReason,
    ReviewRequest,
)
from autolabel.core.messages import AcceptReason as _Accept

_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
_REQUEST_ID = "r1yYn1BqW0f7UAAAAAAAAAAHFAAAAAAAAAAAAAGNo7OAAPeRbCZ5PKMl0_QWjO8Z1Zw"
"""The shape of a request id (the service signs real ones; this one verifies nowhere)."""


def examples() -> dict[type[Message], Message]:
    """One realistic, valid example of every message."""
    record = Record(
        id="img-000042",
        features={"intensity-mean": 59.6, "hue-mean": -2.04, "region": "top", "edge": True},
        metadata={"camera": "north-3"},
    )
    return {
        Record: record,
        LabeledRecord: LabeledRecord(
            id=record.id,
            label="sky",
            confidence=0.991,
            threshold=0.93,
            reason=_Accept.CERTIFIED,
            model_version=1812,
            labeled_at=_AT,
        ),
        ReviewRequest: ReviewRequest(
            id=record.id,
            request_id=_REQUEST_ID,
            record=record,
            predicted_label="window",
            probabilities=[
                LabelProbability(label="window", probability=0.48),
                LabelProbability(label="brickface", probability=0.41),
            ],
            reason=ReviewReason.UNCERTAIN,
            priority=0.93,
            model_version=1812,
            requested_at=_AT,
        ),
        Feedback: Feedback(
            id=record.id,
            record=record,
            label="brickface",
            source=FeedbackSource.REVIEW,
            request_id=_REQUEST_ID,
            reviewer="ana@example.org",
            time=_AT,
        ),
        DeadLetter: DeadLetter(
            reason=DeadLetterReason.UNKNOWN_FIELD,
            error="unknown field 'colour'",
            record_id="img-000043",
            source_topic="autolabel.records",
            source_partition=2,
            source_offset=1207,
            stage="labeler",
            payload='{"id": "img-000043", "features": {"x": 1}, "colour": "red"}',
            payload_encoding="utf-8",
            payload_size=59,
            failed_at=_AT,
        ),
        ConfidenceSignal: ConfidenceSignal(
            worker="autolabel-7d9f-1",
            epoch=2,
            model_version=1812,
            chunk_means=[0.91, 0.88, 0.93],
            sent_at=_AT,
        ),
    }


def rendered() -> dict[str, str]:
    """File name → content, for every schema and example."""
    files: dict[str, str] = {}
    for model, example in examples().items():
        stem = _stem(model)
        schema = model.model_json_schema(mode="serialization")
        schema["$id"] = f"https://autolabel.dev/schemas/{stem}.schema.json"
        files[f"{stem}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        files[f"{stem}.example.json"] = example.model_dump_json(indent=2, exclude_none=True) + "\n"
    assert len(files) == 2 * len(ALL_MESSAGES)
    return files


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in rendered().items():
        path = out / name
        path.write_text(content)
        written.append(path)
    return written


def check_schemas(out: Path) -> list[str]:
    """Names of files that are missing or differ from what the models generate."""
    return [
        name
        for name, content in rendered().items()
        if not (out / name).exists() or (out / name).read_text() != content
    ]


def _stem(model: type[Message]) -> str:
    name = model.__name__
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")
