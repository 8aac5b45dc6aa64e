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
    assert bad.returncode == 2 and "TARGET_PRECISION" in bad.stderr
