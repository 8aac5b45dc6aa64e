"""schemas/: in sync with the message models, and every example is a valid message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autolabel.core.messages import ALL_MESSAGES, Message
from autolabel.tools.schema_files import _stem, check_schemas, examples

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_committed_schemas_match_the_models() -> None:
    assert check_schemas(SCHEMAS) == [], "run `autolabel schemas` and commit the result"


def test_check_notices_a_stale_file(tmp_path: Path) -> None:
    for f in SCHEMAS.iterdir():
        (tmp_path / f.name).write_text(f.read_text())
    (tmp_path / "record.schema.json").write_text("{}\n")
    (tmp_path / "feedback.example.json").unlink()
    assert sorted(check_schemas(tmp_path)) == ["feedback.example.json", "record.schema.json"]


@pytest.mark.parametrize("model", ALL_MESSAGES, ids=lambda m: m.__name__)
def test_example_is_a_valid_message_that_matches_its_schema(model: type[Message]) -> None:
    example_text = (SCHEMAS / f"{_stem(model)}.example.json").read_text()
    message = model.model_validate_json(example_text)  # strict: unknown fields would fail
    assert message == examples()[model]
    assert message.schema_version == 1

    schema = json.loads((SCHEMAS / f"{_stem(model)}.schema.json").read_text())
    example = json.loads(example_text)
    assert schema["additionalProperties"] is False  # unknown fields are rejected
    assert set(schema.get("required", [])) <= set(example)
    assert set(example) <= set(schema["properties"])
    assert schema["properties"]["schema_version"]["const"] == 1


def test_one_schema_and_one_example_per_message() -> None:
    expected = {f"{_stem(m)}.{kind}.json" for m in ALL_MESSAGES for kind in ("schema", "example")}
    assert {f.name for f in SCHEMAS.glob("*.json")} == expected
