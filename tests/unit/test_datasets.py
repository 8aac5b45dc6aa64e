"""``autolabel dataset``: the output file's name chooses its format."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from autolabel.tools.datasets import export, meta_path
from autolabel.tools.tabular_files import DataFileError, load_examples

STREAM = "phishing"  # River's bundled data: 1,250 rows, quick to build


@pytest.mark.parametrize("name", ["out.csv", "out.jsonl", "out.json", "out.csv.gz", "out.jsonl.gz"])
def test_each_extension_writes_its_format_and_reads_back(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    stream = export(STREAM, path)
    raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
    first = raw.decode().splitlines()[0]
    if ".csv" in name:
        assert first.startswith("id,") and first.endswith(",label")
    else:
        row = json.loads(first)  # JSON Lines: one object per line, values typed
        assert row["id"] == "r000000" and "label" in row
        assert all(not isinstance(v, str) for k, v in row.items() if k not in ("id", "label"))
    examples = load_examples(path, label_column="label")
    assert len(examples) == len(stream.rows) == 1250
    assert json.loads(meta_path(path).read_text())["rows"] == 1250


def test_csv_and_jsonl_give_the_same_records(tmp_path: Path) -> None:
    export(STREAM, tmp_path / "a.csv")
    export(STREAM, tmp_path / "a.jsonl")
    from_csv = load_examples(tmp_path / "a.csv", label_column="label")
    from_jsonl = load_examples(tmp_path / "a.jsonl", label_column="label")
    assert from_csv[:50] == from_jsonl[:50]


@pytest.mark.parametrize("name", ["out.parquet", "out", "out.txt"])
def test_any_other_extension_is_a_one_line_error_before_any_work(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataFileError, match="unsupported file type") as info:
        export(STREAM, tmp_path / name)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []
