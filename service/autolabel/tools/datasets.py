"""Streams to try the service on, written as files ``evaluate``/``produce`` read.

Every stream of the drift suite (:mod:`autolabel.tools.suite_streams`), among them
River's bundled ImageSegments (2,310 rows, 7 classes) and Phishing (1,250 rows,
2 classes), and two synthetic 10,000-row streams with an abrupt concept drift at row
5,000: a rotating hyperplane, and SEA whose label rule flips to its opposite (the hard
case). The file's name says its format: ``.csv``, or ``.jsonl`` / ``.json`` (JSON
Lines: one object per line, values keep their JSON types), each optionally ``.gz``.
Next to ``OUT.csv``, ``OUT.meta.json`` says what kind of stream it is and where it
changes.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from autolabel.tools.suite_streams import NAMES, SuiteStream, build
from autolabel.tools.tabular_files import DataFileError, FileFormat, file_format, stem

__all__ = ["NAMES", "export", "meta_path", "rows"]


def rows(name: str, variant: int = 0) -> Iterator[dict[str, Any]]:
    """Rows of a named stream: ``id``, feature columns, then ``label``."""
    for i, (features, label) in enumerate(build(name, variant).rows):
        yield {"id": f"r{i:06d}", **features, "label": label}


def meta_path(path: Path) -> Path:
    """Where the description of a stream written to ``path`` goes.

    >>> meta_path(Path("out/sea.csv")), meta_path(Path("out/sea.jsonl.gz"))
    (PosixPath('out/sea.meta.json'), PosixPath('out/sea.meta.json'))
    """
    return path.with_name(stem(path) + ".meta.json")


def output_format(path: Path) -> FileFormat:
    """The format to write, from the file's name; a one-line error for anything else.

    >>> [output_format(Path(name)) for name in ("a.csv", "a.json", "a.jsonl.gz")]
    ['csv', 'jsonl', 'jsonl']
    >>> output_format(Path("a.parquet"))
    Traceback (most recent call last):
    ...
    autolabel.tools.tabular_files.DataFileError: a.parquet: unsupported file type '.parquet': \
use a .csv, .jsonl or .json file (optionally .gz-compressed)
    """
    return file_format(path)


def export(name: str, path: Path, variant: int = 0) -> SuiteStream:
    """Write a named stream as CSV or JSON Lines (by ``path``'s name) and its description
    as ``.meta.json``; returns it. The file is checked before the stream is built."""
    fmt = output_format(path)
    if path.is_dir():
        raise DataFileError("is a folder, expected a file name", path=path)
    stream = build(name, variant)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open_for_writing(path) as handle:
        if fmt == "csv":
            _write_csv(stream, handle)
        else:
            for i, (features, label) in enumerate(stream.rows):
                handle.write(json.dumps({"id": f"r{i:06d}", **features, "label": label}) + "\n")
    meta_path(path).write_text(json.dumps(stream.describe(), indent=2, sort_keys=True) + "\n")
    return stream


def _write_csv(stream: SuiteStream, handle: IO[str]) -> None:
    writer: csv.DictWriter[str] | None = None
    for i, (features, label) in enumerate(stream.rows):
        row = {"id": f"r{i:06d}", **features, "label": label}
        if writer is None:
            writer = csv.DictWriter(handle, fieldnames=list(row))
            writer.writeheader()
        writer.writerow(row)


def _open_for_writing(path: Path) -> IO[str]:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "wb"), encoding="utf-8", newline="")
    return path.open("w", encoding="utf-8", newline="")
