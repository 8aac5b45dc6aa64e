"""``autolabel review`` in a pseudo-terminal (pexpect) against the broker and a live worker.

A person's session, key by key: accept the prediction (Enter), pick a top-k label (a
digit), type a label (a prefix it completes), skip (``s``, the request comes back
last), undo (``u``, the request comes back at once and is answered again), quit
(``q``). Then the answers on the feedback topic and the worker's learned counts must be
exactly what was typed.
"""

from __future__ import annotations

import os
import re
import sys
import time

import pexpect
import pytest
from kafka_support import (
    blobs,
    collect,
    feedback_for,
    keyed,
    produce,
    synced,
    wait_for_metric,
)
from review_support import feedback_on_topic, issue, publish

from autolabel.core.messages import FeedbackSource, ReviewReason
from autolabel.tools.harness import clean_environment

pytestmark = pytest.mark.integration

ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07]*\x07|[()][0-9A-B]|[=>])")
TITLE = re.compile(r"record (\S+) · (audit|uncertain|cold_start|drift)")
SEED = 40


class Screen:
    """The reviewer's terminal: keys in, text out (escape sequences ignored)."""

    def __init__(self, child: pexpect.spawn) -> None:
        self.child = child
        self.text = ""  # everything shown so far, without escape sequences
        self.seen = 0  # how much of it the test has read

    def _read(self) -> None:
        try:
            chunk = self.child.read_nonblocking(65536, timeout=0.2)
        except pexpect.TIMEOUT:
            return
        if "\x1b[6n" in chunk:  # where is the cursor? (a terminal answers; so does this one)
            self.child.send("\x1b[30;1R")
        self.text += ANSI.sub("", chunk)

    def wait_for(self, pattern: re.Pattern[str] | str, timeout_s: float = 60.0) -> re.Match[str]:
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout_s
        while True:
            found = regex.search(self.text, self.seen)
            if found is not None:
                self.seen = found.end()
                return found
            if time.monotonic() > deadline:
                tail = self.text[-3000:]
                raise AssertionError(f"never shown: {regex.pattern!r}; the screen ended:\n{tail}")
            self._read()

    def request(self) -> tuple[str, str]:
        """The id and reason of the next request shown."""
        found = self.wait_for(TITLE)
        self.wait_for("label >")
        return found.group(1), found.group(2)

    def press(self, keys: str) -> None:
        self.child.send(keys)


async def test_a_reviewer_answers_with_every_key(make_settings, start_worker, tmp_path) -> None:
    worker = start_worker(
        make_settings(policy={"cold_start_examples": 10_000}, model={"tabular": "softmax"})
    )
    s = worker.settings
    # a model that predicts, still in cold start: every record goes to review with a prediction
    seed = feedback_for(blobs("seed", SEED, seed=3), FeedbackSource.SEED)
    await produce(s.kafka.bootstrap_servers, s.topics.feedback, keyed(seed))
    await wait_for_metric(worker, synced(SEED), what="the seed learned")
    records = [r for r, _ in blobs("term", 6, seed=4)]
    await produce(s.kafka.bootstrap_servers, s.topics.records, keyed(records))
    routed = await collect(s, lambda out: len(out.reviews) >= 6, worker=worker)
    audits = issue("audit", [(ReviewReason.AUDIT, 0.3)] * 2, predicted="pos")
    await publish(s, audits)
    requests = {r.id: r for r in [*routed.reviews, *audits]}
    assert all(r.predicted_label in {"pos", "neg"} for r in requests.values())

    env = clean_environment(
        os.environ,
        {**s.to_env(), "NO_COLOR": "1", "TERM": "xterm"},
    )
    argv = ["-m", "autolabel", "review", "--reviewer", "tester", "--undo-seconds", "30"]
    child = pexpect.spawn(
        sys.executable, argv, env=env, encoding="utf-8", dimensions=(60, 110), timeout=60
    )
    child.logfile_read = (tmp_path / "screen.log").open("w")
    screen = Screen(child)
    expected: dict[str, str] = {}

    def top(rid: str, n: int) -> str:
        return requests[rid].probabilities[n - 1].label

    try:
        # 1. an audit: Enter accepts the prediction
        rid, reason = screen.request()
        assert reason == "audit"
        screen.press("\r")
        expected[rid] = requests[rid].predicted_label or ""
        # 2. the other audit: "2" picks the second label of the top k (a disagreement)
        rid, reason = screen.request()
        assert reason == "audit"
        screen.press("2")
        expected[rid] = top(rid, 2)
        assert expected[rid] != requests[rid].predicted_label
        # 3. skip: it comes back after every other request
        skipped, _ = screen.request()
        screen.press("s")
        # 4. type a label: a prefix of a known label is enough
        rid, _ = screen.request()
        screen.press("ne\r")
        expected[rid] = "neg"
        # 5. accept, then undo on the next screen: the request is shown again; answer it
        #    with "1"; the request that was on screen comes right after
        rid, _ = screen.request()
        screen.press("\r")
        screen.wait_for("sent in 30 s")
        following, _ = screen.request()
        screen.press("u")
        screen.wait_for(f"undone: {rid} is back")
        again, _ = screen.request()
        assert again == rid
        screen.press("1")
        expected[rid] = top(rid, 1)
        assert screen.request()[0] == following
        screen.press("\r")
        expected[following] = requests[following].predicted_label or ""
        # 6. the rest: accept each; the skipped one comes last
        while len(expected) < len(requests):
            rid, _ = screen.request()
            screen.press("\r")
            expected[rid] = requests[rid].predicted_label or ""
        assert rid == skipped, "a skipped request comes back after every other"
        screen.wait_for("waiting for review requests")
        screen.wait_for(r"answered 7 \(\+1 held\) · audits 2, disagreed 1 \(50%\)")
        screen.press("q")  # sends the held answer
        screen.wait_for("done: you sent 8 answers · backlog 0 · answered 8 · audits 2, disagreed 1")
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0, screen.text[-2000:]

    feedback = await feedback_on_topic(s, SEED + len(requests))
    answers = [f for f in feedback if f.source is not FeedbackSource.SEED]
    assert {f.id: f.label for f in answers} == expected
    assert len(answers) == len(expected), "each request answered once"
    assert {f.reviewer for f in answers} == {"tester"}
    assert {f.id for f in answers if f.source is FeedbackSource.AUDIT} == {a.id for a in audits}
    assert all(f.request_id == requests[f.id].request_id for f in answers)
    await wait_for_metric(
        worker,
        lambda m: (
            m.get("autolabel_feedback_learned_total", source="review") == 6
            and m.get("autolabel_feedback_learned_total", source="audit") == 2
        ),
        what="the terminal's answers learned",
    )
