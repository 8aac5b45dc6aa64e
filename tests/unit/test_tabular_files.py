"""Reading labeled CSV / JSONL files into records and the truth."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from autolabel.tools.tabular_files import (
    DataFileError,
    Example,
    FileScan,
    column_types,
    columns,
    count_rows,
    file_format,
    iter_examples,
    load_examples,
    parse_cell,
    read_rows,
    require_columns,
    row_to_example,
    scan,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[object]) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


# --- file formats and reading ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.csv", "csv"), ("a.CSV", "csv"), ("a.jsonl", "jsonl"), ("a.ndjson", "jsonl"),
     ("a.csv.gz", "csv"), ("a.b.jsonl.gz", "jsonl"), ("a.json", "jsonl")],
)  # fmt: skip
def test_format_from_extension(name: str, fmt: str) -> None:
    assert file_format(name) == fmt


@pytest.mark.parametrize("name", ["a.parquet", "a", "a.gz", "a.tsv"])
def test_unsupported_extension_is_a_clear_error(name: str) -> None:
    with pytest.raises(
        DataFileError, match=r"unsupported file type .*use a \.csv, \.jsonl or \.json"
    ):
        file_format(name)


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataFileError, match=r"nope\.csv: no such file"):
        list(read_rows(path))


def test_csv_rows_are_text_without_empty_cells(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id,x,y\na,1,cat\nb,,dog\n\n")
    assert list(read_rows(path)) == [{"id": "a", "x": "1", "y": "cat"}, {"id": "b", "y": "dog"}]
    assert count_rows(path) == 2
    assert columns(path) == ["id", "x", "y"]


def test_csv_with_bom_and_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes('\ufeffx,note,y\n1,"two\nlines",a\n2,plain,b\n'.encode())
    rows = list(read_rows(path))
    assert rows[0] == {"x": "1", "note": "two\nlines", "y": "a"}
    assert count_rows(path) == 2


def test_jsonl_rows_keep_json_types_and_drop_nulls(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"x": 1.5, "b": true, "n": null, "y": "a"}\n\n{"y": 2}\n')
    assert list(read_rows(path)) == [{"x": 1.5, "b": True, "y": "a"}, {"y": 2}]
    assert count_rows(path) == 2


def test_gzip_files(tmp_path: Path) -> None:
    path = tmp_path / "d.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("x,y\n1,a\n")
    examples = load_examples(path, label_column="y")
    assert examples[0][0].id == "d-0"
    assert examples[0][1] == "a"


def test_empty_csv_needs_a_header(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="empty file: expected a header row"):
        list(read_rows(write(tmp_path / "e.csv", "")))


def test_duplicate_header_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="duplicate column names in the header: 'x'"):
        list(read_rows(write(tmp_path / "d.csv", "x,x,y\n1,2,a\n")))


def test_unnamed_header_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="column 2 of the header has no name"):
        list(read_rows(write(tmp_path / "d.csv", "x,,y\n1,2,a\n")))


def test_not_utf8_says_so(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"x,y\n\xff\xfe,a\n")
    with pytest.raises(DataFileError, match="not UTF-8 text"):
        list(read_rows(path))


def test_bad_jsonl_line_names_row_and_line(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"x": 1, "y": "a"}\n\n{"x": 2,\n[1, 2]\n')
    with pytest.raises(DataFileError, match=r"d\.jsonl, row 2: line 3 is not valid JSON"):
        list(read_rows(path))
    items = list(iter_examples(path, label_column="y"))
    assert isinstance(items[0], Example)
    assert isinstance(items[1], DataFileError) and items[1].row == 2
    assert isinstance(items[2], DataFileError)
    assert "line 4 is a JSON list, expected an object" in str(items[2])


def test_csv_row_with_too_many_cells(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "x,y\n1,a\n1,2,a\n")
    items = list(iter_examples(path, label_column="y"))
    assert isinstance(items[1], DataFileError)
    assert "row 2: has 3 cells but the header names 2 columns" in str(items[1])


# --- typing CSV cells --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "value"),
    [("3", 3), ("-3", -3), ("+4", 4), ("2.5", 2.5), (".5", 0.5), ("1e3", 1000.0),
     ("True", True), ("false", False), ("red", "red"), ("  red  ", "red"), ("1_000", "1_000"),
     ("inf", "inf"), ("0x1f", "0x1f"), ("", None), ("   ", None), ("NaN", None), ("null", None)],
)  # fmt: skip
def test_parse_cell(cell: str, value: object) -> None:
    parsed = parse_cell(cell)
    assert parsed == value
    assert type(parsed) is type(value)


def test_csv_features_are_typed(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "n,f,b,s,e,y\n1,2.5,true,red,,cat\n")
    [(record, label)] = load_examples(path, label_column="y")
    assert record.features == {"n": 1, "f": 2.5, "b": True, "s": "red"}
    assert label == "cat"


def test_csv_columns_are_typed_as_a_whole_not_cell_by_cell(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.csv",
        "zip,code,n,x,flag,y\n02134,10001,1,1,true,a\nn/a,02134,2,2.5,false,b\n10001,,3,,,c\n",
    )
    records = [record.features for record, _ in load_examples(path, label_column="y")]
    assert [r["zip"] for r in records] == ["02134", "n/a", "10001"]  # strings, all of them
    assert [r.get("code") for r in records] == ["10001", "02134", None]  # a leading zero: text
    assert [r["n"] for r in records] == [1, 2, 3]
    assert all(type(r["n"]) is int for r in records)
    assert [r.get("x") for r in records] == [1.0, 2.5, None]  # one float makes the column float
    assert all(type(r["x"]) is float for r in records if "x" in r)
    assert [r.get("flag") for r in records] == [True, False, None]


def test_one_text_cell_makes_a_numeric_column_text(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "x,y\n1,a\n2,a\nunknown,b\n")
    assert column_types(path) == {"x": "text", "y": "text"}
    assert [r.features["x"] for r, _ in load_examples(path, label_column="y")] == [
        "1",
        "2",
        "unknown",
    ]


def test_column_types_come_from_every_row_even_with_a_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "x,y\n1,a\n2,a\nn/a,b\n")
    [(record, _)] = load_examples(path, label_column="y", limit=1)
    assert record.features == {"x": "1"}


def test_scan_counts_rows_and_types_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "x,y\n1,a\n2.5,a\n")
    assert scan(path) == FileScan(rows=2, column_types={"x": "float", "y": "text"})
    jsonl = write_jsonl(tmp_path / "d.jsonl", [{"x": 1, "y": "a"}])
    assert column_types(jsonl) == {}  # JSON values are typed already


def test_json_file_holds_json_lines_or_one_array(tmp_path: Path) -> None:
    lines = write_jsonl(tmp_path / "lines.json", [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}])
    array = write(tmp_path / "array.json", '[{"x": 1, "y": "a"},\n {"x": 2, "y": "b"}]\n')
    for path in (lines, array):
        assert [(r.features, label) for r, label in load_examples(path, label_column="y")] == [
            ({"x": 1}, "a"),
            ({"x": 2}, "b"),
        ]
    bad = write(tmp_path / "bad.json", '[{"x": 1, "y": "a"}, 3]')
    items = list(iter_examples(bad, label_column="y"))
    assert isinstance(items[1], DataFileError) and "item 2 of the array" in str(items[1])


def test_jsonl_strings_stay_strings(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"zip": "02134", "y": "a"}])
    [(record, _)] = load_examples(path, label_column="y")
    assert record.features == {"zip": "02134"}


# --- ids and labels ----------------------------------------------------------------------


def test_id_column_becomes_the_record_id_verbatim(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id,x,y\n007,1,a\n")
    [(record, _)] = load_examples(path, label_column="y")
    assert record.id == "007"
    assert record.features is not None and "id" not in record.features


def test_custom_id_column(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"key": 12, "id": "feature!", "y": "a"}])
    [(record, _)] = load_examples(path, label_column="y", id_column="key")
    assert record.id == "12"
    assert record.features == {"id": "feature!"}


def test_generated_ids_are_stable_and_use_the_stem(tmp_path: Path) -> None:
    path = write(tmp_path / "train.csv", "x,y\n1,a\n2,b\n\n3,c\n")
    ids = [r.id for r, _ in load_examples(path, label_column="y")]
    assert ids == ["train-0", "train-1", "train-2"]
    assert ids == [r.id for r, _ in load_examples(path, label_column="y")]


def test_empty_id_cell_falls_back_to_a_generated_id(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "id,x,y\n,1,a\n")
    assert load_examples(path, label_column="y")[0][0].id == "d-0"


def test_label_never_goes_into_the_record(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "x,secret,y\n1,2,the-truth\n")
    [(record, label)] = load_examples(path, label_column="secret")
    assert label == "2"
    assert record.features == {"x": 1, "y": "the-truth"}
    assert "2" not in record.model_dump_json().replace('"schema_version":1', "")


def test_json_label_types_become_strings() -> None:
    for value, text in [(3, "3"), (1.5, "1.5"), (True, "true"), (" cat ", "cat")]:
        _, label = row_to_example({"x": 1, "y": value}, index=0, label_column="y")
        assert label == text


def test_missing_label_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "x,y\n1,a\n2,\n")
    with pytest.raises(DataFileError, match=r"d\.csv, row 2: no value in the label column 'y'"):
        load_examples(path, label_column="y")
    items = list(iter_examples(path, label_column="y"))
    assert isinstance(items[1], DataFileError) and items[1].row == 2


def test_missing_label_column_lists_the_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "x,label\n1,a\n")
    with pytest.raises(DataFileError, match=r"no column 'y' \(the columns are: 'x', 'label'\)"):
        load_examples(path, label_column="y")
    with pytest.raises(DataFileError, match="no column 'y'"):
        require_columns(write_jsonl(tmp_path / "d.jsonl", [{"x": 1}]), ["y"])


def test_nested_label_is_refused() -> None:
    with pytest.raises(DataFileError, match="holds a list; labels are scalars"):
        row_to_example({"x": 1, "y": [1]}, index=0, label_column="y")


# --- payloads ----------------------------------------------------------------------------


def test_text_column_with_other_columns_as_metadata(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'id,body,lang,y\nm1,"Hello, world",en,spam\n')
    [(record, label)] = load_examples(path, label_column="y", text_column="body")
    assert record.kind == "text"
    assert record.text == "Hello, world"
    assert record.metadata == {"lang": "en"}
    assert label == "spam"


def test_embedding_column_csv_json_list(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", 'emb,y\n"[0.1, 2, -3e-1]",a\n')
    [(record, _)] = load_examples(path, label_column="y", embedding_column="emb")
    assert record.embedding == [0.1, 2.0, -0.3]
    assert record.metadata is None


def test_embedding_column_jsonl_list(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"emb": [1, 2.5], "y": "a"}])
    [(record, _)] = load_examples(path, label_column="y", embedding_column="emb")
    assert record.embedding == [1.0, 2.5]


@pytest.mark.parametrize(
    ("value", "message"),
    [("[0.1, oops]", "not a JSON list"), ("[]", "non-empty list of numbers"),
     ('["a"]', "non-empty list of numbers"), ("[NaN]", "NaN or infinity"),
     ("[true]", "non-empty list of numbers")],
)  # fmt: skip
def test_bad_embeddings(value: str, message: str) -> None:
    with pytest.raises(DataFileError, match=message):
        row_to_example(
            {"emb": value, "y": "a"}, index=0, label_column="y", embedding_column="emb",
            csv_cells=True,
        )  # fmt: skip


def test_text_and_embedding_together_is_refused() -> None:
    with pytest.raises(DataFileError, match="not both"):
        row_to_example(
            {"t": "x", "e": [1.0], "y": "a"},
            index=0,
            label_column="y",
            text_column="t",
            embedding_column="e",
        )


def test_row_without_features_is_an_error() -> None:
    with pytest.raises(DataFileError, match="row 3: no feature values besides the label"):
        row_to_example({"id": "a", "y": "b"}, index=2, label_column="y")


def test_nested_feature_is_refused_with_a_hint() -> None:
    with pytest.raises(DataFileError, match="column 'pos' holds an object; features must be"):
        row_to_example({"pos": {"x": 1}, "y": "a"}, index=0, label_column="y")


def test_non_finite_json_feature_is_refused() -> None:
    with pytest.raises(DataFileError, match="column 'x' is nan: use a finite number"):
        row_to_example({"x": float("nan"), "y": "a"}, index=0, label_column="y")


def test_overlong_id_is_a_row_error() -> None:
    with pytest.raises(DataFileError, match=r"row 1: not a valid record \(id: String should"):
        row_to_example({"id": "i" * 300, "x": 1, "y": "a"}, index=0, label_column="y")


def test_limit_stops_early(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "x,y\n" + "".join(f"{i},a\n" for i in range(10)))
    assert len(load_examples(path, label_column="y", limit=3)) == 3
