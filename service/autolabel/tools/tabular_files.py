"""Labeled tabular files (CSV or JSONL) as records plus the truth.

``autolabel produce`` replays such a file into the records topic,
``autolabel evaluate`` and ``autolabel seed`` read it offline; all three share
these functions. A row becomes one :class:`~autolabel.core.messages.Record` and its
label; the label column never goes into the record.

Columns:

- ``label_column`` (required): the truth, removed from the record.
- ``id_column`` (default ``"id"``): the record id when the row has one,
  otherwise a stable ``"<prefix>-<row index>"`` (the file's stem for files).
- ``text_column`` / ``embedding_column`` (optional): the record's payload.
  A record carries exactly one payload, so with either of them the remaining
  columns travel as ``metadata`` (passed through, never used as features).
- everything else: ``features``.

CSV cells are text, typed per column, never per cell (:func:`column_types`, one
pass over the file before the first row is converted): a column is ``int`` when
every filled cell is a whole number, ``float`` when every filled cell is a number,
``bool`` when every filled cell is ``true`` or ``false``, and text otherwise, where
every cell stays the string it was. A number written with a leading zero (``02134``,
``007``) counts as text: it is a code, not a quantity. So a zip-code column with
``02134`` and ``n/a`` stays strings, and a numeric column with one ``n/a`` becomes text
as a whole (clean the cell, or leave it empty). Empty cells (and ``nan``/``null``) are
missing (omitted) and do not vote. JSONL values keep their JSON types; ``null`` is
missing. Files may be gzip-compressed (``.csv.gz``, ``.jsonl.gz``).

Rows are numbered from 1, the header not counted ("row 3" is the third data
row); record ids generated from a position use the 0-based index.

>>> record, label = row_to_example(
...     {"id": "a1", "size": "2.5", "colour": "red", "y": "cat"},
...     index=0, label_column="y", csv_cells=True)
>>> record.id, record.features, label
('a1', {'size': 2.5, 'colour': 'red'}, 'cat')
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import ValidationError

from autolabel.core.messages import FeatureValue, Record

FileFormat = Literal["csv", "jsonl"]

FORMATS: dict[str, FileFormat] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",  # JSON Lines too, or one JSON array of objects
}
"""File suffixes this module reads (each also with ``.gz`` appended)."""

MISSING_CELLS = frozenset({"", "nan", "NaN", "null", "NULL"})
"""CSV cells read as a missing value (after stripping whitespace)."""

MAX_LABEL_LENGTH = 256  # the Feedback message's limit

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_LEADING_ZERO = re.compile(r"[+-]?0\d")

ColumnType = Literal["int", "float", "bool", "text"]
"""How every cell of a CSV column is read."""


class DataFileError(ValueError):
    """A data file, or one of its rows, cannot be used; the message says what to fix.

    ``path`` and ``row`` (1-based data row, ``None`` for the whole file) say where.
    """

    def __init__(self, message: str, *, path: Path | str | None = None, row: int | None = None):
        where = ", ".join(
            part
            for part in (str(path) if path is not None else "", f"row {row}" if row else "")
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.path = Path(path) if path is not None else None
        self.row = row
        self.detail = message


@dataclass(frozen=True, slots=True)
class Example:
    """One converted row: the record to send, its true label, and where it came from."""

    record: Record
    label: str
    index: int  # 0-based data row index


def file_format(path: Path | str) -> FileFormat:
    """The format of a data file, from its name.

    >>> file_format("data/train.csv"), file_format("x.jsonl.gz")
    ('csv', 'jsonl')
    >>> file_format("x.parquet")
    Traceback (most recent call last):
    ...
    autolabel.tools.tabular_files.DataFileError: x.parquet: unsupported file type '.parquet': \
use a .csv, .jsonl or .json file (optionally .gz-compressed)
    """
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if suffix not in FORMATS:
        raise DataFileError(
            f"unsupported file type {suffix or '(none)'!r}: use a .csv, .jsonl or .json file"
            " (optionally .gz-compressed)",
            path=p,
        )
    return FORMATS[suffix]


def cell_type(cell: str) -> ColumnType | None:
    """What one CSV cell could be on its own; None for a missing cell.

    >>> [cell_type(c) for c in ["42", "-1.5e3", "TRUE", "red", "02134", "0", "0.5", ""]]
    ['int', 'float', 'bool', 'text', 'text', 'int', 'float', None]
    """
    value = cell.strip()
    if value in MISSING_CELLS:
        return None
    if _INT.fullmatch(value) or _FLOAT.fullmatch(value):
        return "text" if _LEADING_ZERO.match(value) else "int" if _INT.fullmatch(value) else "float"
    if value.lower() in ("true", "false"):
        return "bool"
    return "text"


def column_type(cell_types: Iterable[ColumnType | None]) -> ColumnType:
    """The type of a column from the types of its cells (missing cells do not vote).

    >>> column_type(["int", None, "int"]), column_type(["int", "float"]), column_type([None])
    ('int', 'float', 'text')
    >>> column_type(["text", "int"]), column_type(["bool", "int"])
    ('text', 'text')
    """
    kinds = {kind for kind in cell_types if kind is not None}
    if kinds == {"int"} or kinds == {"bool"}:
        return kinds.pop()
    if kinds and kinds <= {"int", "float"}:
        return "float"
    return "text"


class ColumnTypes:
    """Collects the cell types of every column, row by row; :meth:`result` decides.

    >>> types = ColumnTypes()
    >>> for row in [{"zip": "02134", "n": "1"}, {"zip": "n/a", "n": "2.5"}, {"zip": "10001"}]:
    ...     types.add(row)
    >>> types.result()
    {'zip': 'text', 'n': 'float'}
    """

    def __init__(self) -> None:
        self._seen: dict[str, set[ColumnType | None]] = {}

    def add(self, row: dict[str, Any]) -> None:
        for name, cell in row.items():
            kinds = self._seen.setdefault(name, set())
            if "text" not in kinds and isinstance(cell, str):
                kinds.add(cell_type(cell))

    def result(self) -> dict[str, ColumnType]:
        return {name: column_type(kinds) for name, kinds in self._seen.items()}


def type_cell(cell: str, kind: ColumnType) -> FeatureValue | None:
    """Read one CSV cell as its column's type; None for a missing cell.

    >>> type_cell("02134", "text"), type_cell("3", "float"), type_cell(" TRUE", "bool")
    ('02134', 3.0, True)
    >>> type_cell("", "int"), type_cell(" red ", "text")
    (None, 'red')
    """
    value = cell.strip()
    if value in MISSING_CELLS:
        return None
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "bool":
        return value.lower() == "true"
    return value


def parse_cell(cell: str) -> FeatureValue | None:
    """Type one CSV cell as a column of its own would be (see :func:`cell_type`).

    Empty cells (and ``nan``/``null``) are missing: ``None``.

    >>> [parse_cell(c) for c in ["42", "-1.5e3", "TRUE", "false", " red ", "007"]]
    [42, -1500.0, True, False, 'red', '007']
    >>> parse_cell(""), parse_cell("NaN"), parse_cell("inf"), parse_cell("1_000")
    (None, None, 'inf', '1_000')
    """
    kind = cell_type(cell)
    return None if kind is None else type_cell(cell, kind)


def _open_text(path: Path) -> IO[str]:
    try:
        if path.suffix.lower() == ".gz":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
        return path.open(encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise DataFileError("no such file", path=path) from None
    except IsADirectoryError:
        raise DataFileError("is a directory, expected a .csv or .jsonl file", path=path) from None
    except PermissionError:
        raise DataFileError("permission denied", path=path) from None


def iter_rows(path: Path | str) -> Iterator[tuple[int, dict[str, Any] | DataFileError]]:
    """Every data row as ``(index, row)``, or ``(index, error)`` for an unreadable row.

    Per-row problems (a JSONL line that is not a JSON object, a CSV row with more
    cells than the header) are yielded, so a caller can skip them; problems with
    the whole file (missing, not UTF-8, no header) raise :class:`DataFileError`.
    CSV values are the cells' text, without empty cells.
    """
    p = Path(path)
    fmt = file_format(p)
    with _open_text(p) as handle:
        try:
            if fmt == "csv":
                yield from _csv_rows(p, handle)
            else:
                yield from _jsonl_rows(p, handle)
        except UnicodeDecodeError as exc:
            raise DataFileError(
                f"not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8", path=p
            ) from None
        except (OSError, EOFError) as exc:  # e.g. a truncated .gz
            raise DataFileError(f"cannot read: {exc}", path=p) from None
        except csv.Error as exc:
            raise DataFileError(f"not a readable CSV file: {exc}", path=p) from None


def _csv_rows(path: Path, handle: IO[str]) -> Iterator[tuple[int, dict[str, Any] | DataFileError]]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None:
        raise DataFileError("empty file: expected a header row with the column names", path=path)
    columns = [name.strip() for name in header]
    for position, name in enumerate(columns, start=1):
        if not name:
            raise DataFileError(f"column {position} of the header has no name", path=path)
    duplicated = sorted({n for n in columns if columns.count(n) > 1})
    if duplicated:
        raise DataFileError(
            "duplicate column names in the header: " + ", ".join(map(repr, duplicated)),
            path=path,
        )
    index = 0
    for cells in reader:
        if not cells or all(not c.strip() for c in cells):
            continue  # blank line
        if len(cells) > len(columns):
            yield (
                index,
                DataFileError(
                    f"has {len(cells)} cells but the header names {len(columns)} columns"
                    f" (line {reader.line_num}): quote cells that contain commas",
                    path=path,
                    row=index + 1,
                ),
            )
        else:
            yield index, {name: cell for name, cell in zip(columns, cells, strict=False) if cell}
        index += 1


def _jsonl_rows(
    path: Path, handle: IO[str]
) -> Iterator[tuple[int, dict[str, Any] | DataFileError]]:
    lines = enumerate(handle, start=1)
    first = next(((n, line) for n, line in lines if line.strip()), None)
    if first is not None and first[1].lstrip().startswith("["):  # one JSON array of objects
        yield from _array_rows(path, first[1] + handle.read())
        return
    index = 0
    for line_number, line in itertools.chain([first] if first else [], lines):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield (
                index,
                DataFileError(
                    f"line {line_number} is not valid JSON ({exc.msg} at column {exc.colno}):"
                    " each line must be one JSON object",
                    path=path,
                    row=index + 1,
                ),
            )
        else:
            if isinstance(value, dict):
                yield index, {k: v for k, v in value.items() if v is not None}
            else:
                yield (
                    index,
                    DataFileError(
                        f"line {line_number} is a JSON {type(value).__name__}, expected an object"
                        ' like {"feature": 1.5, "label": "cat"}',
                        path=path,
                        row=index + 1,
                    ),
                )
        index += 1


def _array_rows(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any] | DataFileError]]:
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(
            f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): expected"
            " one object per line, or one array of objects",
            path=path,
        ) from None
    if not isinstance(values, list):
        raise DataFileError("expected one object per line, or one array of objects", path=path)
    for index, value in enumerate(values):
        if isinstance(value, dict):
            yield index, {k: v for k, v in value.items() if v is not None}
        else:
            yield (
                index,
                DataFileError(
                    f"item {index + 1} of the array is a JSON {type(value).__name__}, expected"
                    " an object",
                    path=path,
                    row=index + 1,
                ),
            )


def read_rows(path: Path | str) -> Iterator[dict[str, Any]]:
    """Every data row of a CSV or JSONL file as a dict; raises on the first bad row."""
    for _, row in iter_rows(path):
        if isinstance(row, DataFileError):
            raise row
        yield row


def count_rows(path: Path | str) -> int:
    """How many data rows a file has (blank lines and the CSV header not counted)."""
    return scan(path).rows


@dataclass(frozen=True, slots=True)
class FileScan:
    """What one pass over a file found: its data rows and, for CSV, its column types."""

    rows: int
    column_types: dict[str, ColumnType]


def scan(path: Path | str) -> FileScan:
    """Count the rows and type the columns of a file in one pass (whole-file errors raise)."""
    csv_cells = file_format(path) == "csv"
    types = ColumnTypes()
    rows = 0
    for _, row in iter_rows(path):
        rows += 1
        if csv_cells and isinstance(row, dict):
            types.add(row)
    return FileScan(rows, types.result())


def column_types(path: Path | str) -> dict[str, ColumnType]:
    """The type of every column of a CSV file (``{}`` for JSONL, whose values are typed)."""
    return scan(path).column_types if file_format(path) == "csv" else {}


def columns(path: Path | str) -> list[str]:
    """The CSV header, or the keys of a JSONL file's first row (``[]`` when empty)."""
    p = Path(path)
    if file_format(p) == "csv":
        with _open_text(p) as handle:
            try:
                header = next(csv.reader(handle), None)
            except (UnicodeDecodeError, csv.Error, OSError, EOFError) as exc:
                raise DataFileError(f"cannot read the header: {exc}", path=p) from None
        return [name.strip() for name in header or []]
    for _, row in iter_rows(p):
        if isinstance(row, dict):
            return list(row)
    return []


def require_columns(path: Path | str, required: Iterable[str | None]) -> None:
    """Fail early, naming the columns there are, when a required column is absent.

    For JSONL files the first row stands for the file.
    """
    present = columns(path)
    missing = [c for c in required if c is not None and c not in present]
    if missing:
        shown = ", ".join(repr(c) for c in present[:30]) + (" ..." if len(present) > 30 else "")
        raise DataFileError(
            f"no column {', '.join(map(repr, missing))} (the columns are: {shown or 'none'});"
            " pick another with --label-column / --text-column / --embedding-column",
            path=path,
        )


def row_to_example(
    row: dict[str, Any],
    *,
    index: int,
    label_column: str,
    id_column: str = "id",
    text_column: str | None = None,
    embedding_column: str | None = None,
    id_prefix: str = "row",
    csv_cells: bool = False,
    column_types: dict[str, ColumnType] | None = None,
    path: Path | str | None = None,
) -> tuple[Record, str]:
    """Turn one row into ``(record, true label)``; the label never enters the record.

    Parameters
    ----------
    row
        Column name to value, as :func:`read_rows` yields it.
    index
        0-based data row index: errors name row ``index + 1``, generated ids use it.
    label_column, id_column, text_column, embedding_column
        See the module docstring.
    id_prefix
        Generated ids are ``f"{id_prefix}-{index}"``.
    csv_cells
        The values are CSV text: type feature cells, parse an embedding cell as JSON.
    column_types
        With ``csv_cells``: each column's type (:func:`column_types`); a column not
        in it is typed as if this row were the whole file.
    path
        Named in error messages.

    Raises
    ------
    DataFileError
        The row cannot be a valid record; the message names the row and the fix.

    Examples
    --------
    >>> row_to_example({"x": 1, "ok": True, "y": 3}, index=6, label_column="y", id_prefix="f")
    ... # doctest: +ELLIPSIS
    (Record(schema_version=1, id='f-6', features={'x': 1, 'ok': True}, ...), '3')
    >>> rec, _ = row_to_example({"id": 7, "emb": "[0.5, 1]", "src": "cam", "y": "a"},
    ...                         index=0, label_column="y", embedding_column="emb",
    ...                         csv_cells=True)
    >>> rec.id, rec.embedding, rec.metadata
    ('7', [0.5, 1.0], {'src': 'cam'})
    >>> row_to_example({"x": 1}, index=4, label_column="y", path="d.csv")
    Traceback (most recent call last):
    ...
    autolabel.tools.tabular_files.DataFileError: d.csv, row 5: no value in the label column 'y' \
(every row needs its true label; fill it in or drop the row)
    """

    def fail(message: str) -> DataFileError:
        return DataFileError(message, path=path, row=index + 1)

    if text_column is not None and embedding_column is not None:
        raise DataFileError(
            "give a text column or an embedding column, not both: a record carries one payload",
            path=path,
        )
    reserved = {label_column, id_column, text_column, embedding_column}
    label = _label(row.get(label_column), label_column, fail)
    raw_id = row.get(id_column)
    record_id = _scalar_text(raw_id) if raw_id not in (None, "") else f"{id_prefix}-{index}"
    if record_id is None:
        raise fail(f"the id column {id_column!r} holds {_describe(raw_id)}; ids are strings")

    rest: dict[str, Any] = {}
    for name, value in row.items():
        if name in reserved:
            continue
        typed: Any = value
        if csv_cells and isinstance(value, str):
            kind = (column_types or {}).get(name)
            typed = parse_cell(value) if kind is None else type_cell(value, kind)
        if typed is None:
            continue
        if not isinstance(typed, bool | int | float | str):
            raise fail(
                f"column {name!r} holds {_describe(typed)}; features must be numbers, strings"
                " or bools (flatten nested values, or name it with --embedding-column)"
            )
        if isinstance(typed, float) and not math.isfinite(typed):
            raise fail(f"column {name!r} is {typed}: use a finite number or leave it empty")
        rest[name] = typed

    payload: dict[str, Any]
    if text_column is not None:
        text = row.get(text_column)
        if not isinstance(text, str) or not text.strip():
            raise fail(f"no text in the text column {text_column!r}")
        payload = {"text": text, "metadata": rest or None}
    elif embedding_column is not None:
        payload = {
            "embedding": _embedding(row.get(embedding_column), embedding_column, fail),
            "metadata": rest or None,
        }
    else:
        if not rest:
            raise fail(
                f"no feature values besides the label (columns: {', '.join(map(repr, row))})"
            )
        payload = {"features": rest}
    try:
        return Record(id=record_id, **payload), label
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        )
        raise fail(f"not a valid record ({problems})") from None


def _label(value: Any, column: str, fail: Callable[[str], DataFileError]) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise fail(
            f"no value in the label column {column!r}"
            " (every row needs its true label; fill it in or drop the row)"
        )
    text = _scalar_text(value)
    if text is None:
        raise fail(f"the label column {column!r} holds {_describe(value)}; labels are scalars")
    text = text.strip()
    if len(text) > MAX_LABEL_LENGTH:
        raise fail(f"the label is {len(text)} characters long, over {MAX_LABEL_LENGTH}")
    return text


def _scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _embedding(value: Any, column: str, fail: Callable[[str], DataFileError]) -> list[float]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise fail(
                f"the embedding column {column!r} is not a JSON list like [0.1, 0.2]"
            ) from None
    if value is None:
        raise fail(f"no value in the embedding column {column!r}")
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise fail(f"the embedding column {column!r} must be a non-empty list of numbers")
    if not all(math.isfinite(v) for v in value):
        raise fail(f"the embedding column {column!r} contains NaN or infinity")
    return [float(v) for v in value]


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return f"{value!r}"


def iter_examples(
    path: Path | str,
    *,
    label_column: str,
    id_column: str = "id",
    text_column: str | None = None,
    embedding_column: str | None = None,
    limit: int | None = None,
    types: dict[str, ColumnType] | None = None,
) -> Iterator[Example | DataFileError]:
    """Every row of a file converted, or the error that says why it could not be.

    Whole-file problems (missing file, missing column, not UTF-8) raise right away
    (before the first row is asked for); a bad row is yielded as its
    :class:`DataFileError` so replay can warn and go on. A CSV file's column types
    are found first, by one pass over it, unless ``types`` gives them
    (:func:`scan` finds them along with the row count).
    """
    p = Path(path)
    require_columns(p, [label_column, text_column, embedding_column])
    if text_column is not None and embedding_column is not None:
        raise DataFileError(
            "give a text column or an embedding column, not both: a record carries one payload",
            path=p,
        )
    return _examples(
        p,
        label_column=label_column,
        id_column=id_column,
        text_column=text_column,
        embedding_column=embedding_column,
        limit=limit,
        types=column_types(p) if types is None else types,
    )


def _examples(
    path: Path,
    *,
    label_column: str,
    id_column: str,
    text_column: str | None,
    embedding_column: str | None,
    limit: int | None,
    types: dict[str, ColumnType],
) -> Iterator[Example | DataFileError]:
    csv_cells = file_format(path) == "csv"
    prefix = stem(path)
    for index, row in iter_rows(path):
        if limit is not None and index >= limit:
            return
        if isinstance(row, DataFileError):
            yield row
            continue
        try:
            record, label = row_to_example(
                row,
                index=index,
                label_column=label_column,
                id_column=id_column,
                text_column=text_column,
                embedding_column=embedding_column,
                id_prefix=prefix,
                csv_cells=csv_cells,
                column_types=types,
                path=path,
            )
        except DataFileError as exc:
            yield exc
        else:
            yield Example(record, label, index)


def load_examples(
    path: Path | str,
    *,
    label_column: str,
    id_column: str = "id",
    text_column: str | None = None,
    embedding_column: str | None = None,
    limit: int | None = None,
) -> list[tuple[Record, str]]:
    """Every row of a file as ``(record, label)``; raises on the first bad row."""
    examples: list[tuple[Record, str]] = []
    for item in iter_examples(
        path,
        label_column=label_column,
        id_column=id_column,
        text_column=text_column,
        embedding_column=embedding_column,
        limit=limit,
    ):
        if isinstance(item, DataFileError):
            raise item
        examples.append((item.record, item.label))
    return examples


def stem(path: Path) -> str:
    """The file name without its data suffixes: ``train.csv.gz`` → ``train``."""
    name = path.name
    for suffix in (".gz", *FORMATS):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name or "row"
