"""Streams to try the service on, written as CSV files ``evaluate``/``produce`` read.

Every stream of the drift suite (:mod:`autolabel.tools.suite_streams`), among them
River's bundled ImageSegments (2,310 rows, 7 classes) and Phishing (1,250 rows,
2 classes), and two synthetic 10,000-row streams with an abrupt concept drift at row
5,000: a rotating hyperplane, and SEA whose label rule flips to its opposite (the hard
case). Next to ``OUT.csv``, ``OUT.meta.json`` says what kind of stream it is and where
it changes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autolabel.tools.suite_streams import NAMES, SuiteStream, build

__all__ = ["NAMES", "export", "rows"]


def rows(name: str, variant: int = 0) -> Iterator[dict[str, Any]]:
    """Rows of a named stream: ``id``, feature columns, then ``label``."""
    for i, (features, label) in enumerate(build(name, variant).rows):
        yield {"id": f"r{i:06d}", **features, "label": label}


def export(name: str, path: Path, variant: int = 0) -> SuiteStream:
    """Write a named stream as CSV and its description as ``.meta.json``; returns it."""
    stream = build(name, variant)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer: csv.DictWriter[str] | None = None
        for i, (features, label) in enumerate(stream.rows):
            row = {"id": f"r{i:06d}", **features, "label": label}
            if writer is None:
                writer = csv.DictWriter(handle, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
    meta = path.with_suffix(".meta.json")
    meta.write_text(json.dumps(stream.describe(), indent=2, sort_keys=True) + "\n")
    return stream
