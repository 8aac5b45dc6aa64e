"""``autolabel demo --reviewer terminal``: a person (here a pseudo-terminal that presses
Enter on every request) answers the demo's review requests; the demo waits for them and
ends when every request is answered."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pexpect
import pytest

pytestmark = pytest.mark.e2e

ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-B]|[=>])")
PROMPT = re.compile(r"record (\S+) · \w+.*?label >", re.DOTALL)


@pytest.mark.timeout(420)
def test_a_person_answers_the_demo_at_the_terminal(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOLABEL_")}
    env.update(NO_COLOR="1", TERM="xterm", COLUMNS="140")
    argv = ["-m", "autolabel", "demo", "--reviewer", "terminal", "--records", "60"]
    argv += ["--seed", "20", "--rate", "50", "--undo-seconds", "1"]
    child = pexpect.spawn(
        sys.executable, argv, cwd=tmp_path, env=env, encoding="utf-8", dimensions=(50, 140)
    )
    child.logfile_read = (tmp_path / "screen.log").open("w")
    text, seen, answered = "", 0, []
    deadline = time.monotonic() + 360
    try:
        while time.monotonic() < deadline:
            try:
                chunk = child.read_nonblocking(65536, timeout=0.3)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                break
            if "\x1b[6n" in chunk:  # a cursor position request: answer like a terminal
                child.send("\x1b[30;1R")
            text += ANSI.sub("", chunk)
            while (shown := PROMPT.search(text, seen)) is not None:
                seen = shown.end()
                answered.append(shown.group(1))
                child.send("\r")  # accept the model's label
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    assert "you review at this terminal" in text, text[-3000:]
    assert child.exitstatus == 0, text[-3000:]
    assert "autolabel demo: summary" in text
    requests = int(re.search(r"review requests\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    assert requests == len(set(answered)) > 0, text[-3000:]
    assert f"You answered {requests} review requests" in re.sub(r"\s+", " ", text)
