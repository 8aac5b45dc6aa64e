"""``autolabel demo`` end to end: the CLI starts its own broker and worker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

MALFORMED = 5  # autolabel.tools.demo.malformed_messages()


def run_demo(tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOLABEL_")}
    env["COLUMNS"] = "160"  # one summary row per line
    proc = subprocess.run(
        [sys.executable, "-m", "autolabel", "demo", *args],
        cwd=tmp_path,  # .artifacts/ goes there
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    output = proc.stdout + proc.stderr
    log = tmp_path / ".artifacts" / "demo-worker.log"
    if proc.returncode != 0 and log.exists():
        output += "\n--- worker log (end) ---\n" + "\n".join(log.read_text().splitlines()[-40:])
    return proc.returncode, output


def row(output: str, name: str) -> str:
    """The value column of a summary row."""
    match = re.search(rf"^\s*{re.escape(name)}\s+(\S+(?: / \S+)?)\s", output, re.MULTILINE)
    assert match, f"no {name!r} row in the demo output:\n{output}"
    return match.group(1)


def number(output: str, name: str) -> int:
    return int(row(output, name).replace(",", ""))


def percentage(output: str, name: str) -> float:
    return float(row(output, name).rstrip("%")) / 100


@pytest.mark.timeout(150)
def test_demo_accounts_for_every_message(tmp_path: Path) -> None:
    code, out = run_demo(tmp_path, "--records", "600", "--rate", "600")
    assert code == 0, out
    assert "autolabel demo: summary" in out
    streamed = 600 - 600 // 3  # the default seed set is a third of a short run
    assert number(out, "records") == streamed
    accepted, reviewed = number(out, "auto-accepted"), number(out, "review requests")
    assert accepted + reviewed == streamed, out  # every valid record routed exactly once
    assert number(out, "reviewer answers") == reviewed, out
    assert number(out, "dead letters") == MALFORMED, out
    assert row(out, "malformed caught") == f"{MALFORMED} / {MALFORMED}", out
    assert number(out, "duplicates") >= 0
    assert number(out, "answers absorbed") == reviewed, out  # the learner took in every answer
    assert 0 < number(out, "examples learned") <= reviewed + number(out, "seed labels"), out
    assert f"outputs for {streamed + MALFORMED} of {streamed + MALFORMED} messages" in out
    assert "problem:" not in out
    assert (tmp_path / ".artifacts" / "demo-worker.log").stat().st_size > 0


@pytest.mark.timeout(150)
def test_full_demo_auto_accepts_with_sane_precision(tmp_path: Path) -> None:
    code, out = run_demo(tmp_path)  # the defaults a newcomer runs
    assert code == 0, out
    streamed = 2310 - 800  # the default seed set is learned first
    assert number(out, "records") == streamed
    accepted = number(out, "auto-accepted")
    assert accepted > 0, f"nothing was auto-accepted on the full data set:\n{out}"
    assert percentage(out, "precision") >= 0.9, out
    assert number(out, "auto-accepted") + number(out, "review requests") == streamed, out
    assert 0.5 <= percentage(out, "prequential acc.") <= 1.0, out
