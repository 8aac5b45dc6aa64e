"""Log lines of every command: text by default, or one JSON object per line."""

from __future__ import annotations

import io
import json
import logging
import math
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from autolabel import logs
from autolabel.settings import Settings


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """The root logger configured for JSON into a buffer; restored afterwards."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = logs.configure("info", "json", stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_logs_one_object_per_line_for_every_library(logged: io.StringIO) -> None:
    logging.getLogger("aiokafka.consumer").warning("Heartbeat failed for group %s", "g1")
    logging.getLogger("faust.worker").info("[^Worker]: Ready")
    logging.getLogger("autolabel.worker.labeler").info(
        "batch", extra={"records": 3, "lag": math.nan, "sasl_password": "hunter2"}
    )
    logging.getLogger("autolabel").debug("below the level")
    first, second, third = lines(logged)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["time"].endswith("Z") and first["level"] == "WARNING"
    assert (first["logger"], first["message"]) == (
        "aiokafka.consumer",
        "Heartbeat failed for group g1",
    )
    assert second["logger"] == "faust.worker"
    assert third["records"] == 3 and third["lag"] == "nan"
    assert third["sasl_password"] == "[redacted]"
    assert "hunter2" not in logged.getvalue()


def test_json_logs_hold_a_traceback_and_warnings_on_one_line(logged: io.StringIO) -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("autolabel").exception("failed")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("old API", DeprecationWarning, stacklevel=1)
    failed, warned = lines(logged)
    assert failed["message"] == "failed"
    assert "ValueError: bad" in failed["exception"] and "Traceback" in failed["exception"]
    assert warned["logger"] == "py.warnings" and "old API" in warned["message"]
    assert len(logged.getvalue().splitlines()) == 2


def test_configure_replaces_its_own_handler_and_text_is_the_default() -> None:
    root = logging.getLogger()
    level = root.level
    first = logs.configure("info", "json", io.StringIO())
    text = io.StringIO()
    second = logs.configure("warning", "text", text)
    try:
        assert first not in root.handlers and second in root.handlers
        logging.getLogger("mode").warning("plain %s", "text")
        assert text.getvalue().rstrip().endswith("WARNING mode: plain text")
    finally:
        root.removeHandler(second)
        root.setLevel(level)
        logging.captureWarnings(False)
    assert Settings().log_format == "text"
    with pytest.raises(ValidationError):
        Settings(log_format="xml")  # type: ignore[arg-type]
