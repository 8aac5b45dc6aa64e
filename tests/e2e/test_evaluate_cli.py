"""`autolabel dataset` and `autolabel evaluate` end to end: files in, table, JSON and plot out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autolabel", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_evaluate_writes_table_json_and_plot(tmp_path: Path) -> None:
    data = tmp_path / "phishing.csv"
    made = cli("dataset", "phishing", str(data))
    assert made.returncode == 0, made.stderr
    out, png = tmp_path / "report.json", tmp_path / "plot.png"
    run = cli(
        "evaluate", "--data", str(data), "--label-column", "label",
        "--audit-rate", "0.1", "--json", str(out), "--plot", str(png),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "fixed 0.9" in run.stdout and "oracle" in run.stdout
    report = json.loads(out.read_text())
    assert report["n_records"] == 1250
    assert report["audit_rate"] == 0.1
    assert report["auto_precision"] is None or report["auto_precision"] >= 0.95
    assert {"fixed_0.9", "oracle"} <= set(report["baselines"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_explains_bad_input(tmp_path: Path) -> None:
    data = tmp_path / "x.csv"
    data.write_text("a,b\n1,2\n")
    run = cli("evaluate", "--data", str(data), "--label-column", "label")
    assert run.returncode == 2
    assert "label" in run.stderr
    bad = cli("evaluate", "--data", str(data), "--label-column", "b", "--target-precision", "2")
    assert bad.returncode == 2
    assert bad.stderr == "autolabel evaluate: --target-precision must be in (0.5, 1), got 2\n"


def test_dataset_writes_a_suite_stream_with_its_metadata(tmp_path: Path) -> None:
    data = tmp_path / "late.csv"
    made = cli("dataset", "late_class", str(data), "--variant", "1")
    assert made.returncode == 0, made.stderr
    meta = json.loads(data.with_suffix(".meta.json").read_text())
    assert meta["kind"] == "abrupt" and meta["variant"] == 1 and meta["change_points"]
    assert len(data.read_text().splitlines()) == meta["rows"] + 1


def test_evaluate_orders_trace_and_refusals(tmp_path: Path) -> None:
    trace, out = tmp_path / "trace.csv", tmp_path / "r.json"
    run = cli(
        "evaluate", "--stream", "covariate_shift", "--variant", "1", "--scale", "0.1",
        "--orders", "2",
        "--trace", str(trace), "--json", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "shuffled orders (within segments)" in run.stdout and "per class" in run.stdout
    report = json.loads(out.read_text())
    assert report["orders"]["orders"] == 2 and report["change_points"]
    header, first = trace.read_text().splitlines()[:2]
    assert header == (
        "index,id,truth,predicted,confidence,accepted,reason,model_version,threshold,accepting"
    )
    assert first.startswith("0,r000000,")
    gradual = cli("evaluate", "--stream", "rbf_gradual", "--orders", "2")
    assert gradual.returncode == 2 and "gradually" in gradual.stderr


def test_suite_quick_prints_the_tables_and_writes_json(tmp_path: Path) -> None:
    run = cli(
        "suite", "--quick", "--streams", "segments_swap,minority_2pct", "--jobs", "1",
        "--out", str(tmp_path), "--plots",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "| segments_swap (1,200) | abrupt, 600 |" in run.stdout
    assert "**Bars**" in run.stdout and "applicable bars met" in run.stdout
    result = json.loads((tmp_path / "variant-0.quick.json").read_text())
    by_name = {s["name"]: s for s in result["streams"]}
    assert set(by_name) == {"segments_swap", "minority_2pct"}
    assert by_name["minority_2pct"]["orders"]["orders"] == 2
    assert by_name["minority_2pct"]["bars_in_orders"]["no_false_alarm"]["judged"] == 2
    assert by_name["segments_swap"]["run"]["changes"][0]["at"] == 600
    assert (tmp_path / "variant-0.quick.md").read_text().startswith("## Drift suite")
    assert (tmp_path / "plots-v0" / "segments_swap.png").exists()
