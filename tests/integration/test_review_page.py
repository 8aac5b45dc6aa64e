"""The web review page end to end, in real headless Chromium, against a live worker.

A worker sends records to review (cold start, with the predictions of a seeded model),
two audits are issued with the deployment's key as a labeler issues them, and
``autolabel review-server`` serves the page. Chromium (Debian's ``/usr/bin/chromium``,
driven by Playwright with no browser download) signs in and answers with the keyboard
only: Enter accepts, a number picks a top-k label, ``/`` types a label, ``s`` skips,
``u`` undoes. Then the feedback topic must hold exactly those answers, each echoing the
request id the worker signed for that record, and the worker's ``/metrics`` must show
them learned. A screenshot goes to ``.artifacts/review-page.png``.

Without Chromium the test is skipped on a development machine and fails in CI
(``.ci/run`` installs ``chromium`` and ``chromium-driver``).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from kafka_support import (
    TEST_KEY,
    WAIT_S,
    blobs,
    collect,
    feedback_for,
    keyed,
    produce,
    wait_for_metric,
)

from autolabel.core.messages import (
    Feedback,
    FeedbackSource,
    LabelProbability,
    ReviewReason,
    ReviewRequest,
)
from autolabel.core.requests import RequestIssuer, record_digest
from autolabel.kafka.clients import make_consumer
from autolabel.settings import Settings
from autolabel.tools.harness import ChildProcess, http_get, worker_environment
from autolabel.tools.local_broker import free_port

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / ".artifacts" / "review-page.png"
TOKEN = "browser-test-review-token-0123456789"
REVIEWER = "Ada Lovelace"
UNDO_WINDOW_S = 2.0
SEED = 20
AUDIT_RATE = 0.05
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """Chromium's path; without it, skip on a development machine but fail in CI."""
    path = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None
    )
    if path is None:
        message = "Chromium is not installed (apt-get install chromium chromium-driver)"
        if "CI" in os.environ:
            pytest.fail(f"{message}; .ci/run installs it")
        pytest.skip(f"{message}; CI fails here")
    return path


def audits() -> list[ReviewRequest]:
    """Two audits of accepted-looking records, signed as the labeler signs them."""
    issuer = RequestIssuer(TEST_KEY.encode())
    out = []
    for record, _ in blobs("audit", 2, seed=7):
        out.append(
            ReviewRequest(
                id=record.id,
                request_id=issuer.issue(
                    record, ReviewReason.AUDIT, audit_rate=AUDIT_RATE, model_version=1, epoch=0
                ),
                record=record,
                predicted_label="pos",
                probabilities=[
                    LabelProbability(label="pos", probability=0.93),
                    LabelProbability(label="neg", probability=0.07),
                ],
                reason=ReviewReason.AUDIT,
                priority=0.1,
                model_version=1,
                sample_weight=1 / AUDIT_RATE,
            )
        )
    return out


async def answers_on_topic(settings: Settings, n: int) -> list[Feedback]:
    """The reviewers' answers on the feedback topic (seed feedback left out): waits for
    ``n``, then reads on for a second so an extra answer would be seen too."""
    consumer = make_consumer(settings.kafka, group_id=None)
    await consumer.start()
    tp = TopicPartition(settings.topics.feedback, 0)
    out: list[Feedback] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + WAIT_S
        quiet_until = None
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for messages in batch.values():
                out.extend(Feedback.model_validate_json(m.value) for m in messages)
            mine = [f for f in out if f.source is not FeedbackSource.SEED]
            if len(mine) >= n:
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() >= quiet_until:
                    break
    finally:
        await consumer.stop()
    return [f for f in out if f.source is not FeedbackSource.SEED]


def start_review_server(settings: Settings, log_path: Path) -> tuple[ChildProcess, str]:
    server = ChildProcess(
        [sys.executable, "-m", "autolabel", "review-server"],
        log_path,
        env=worker_environment(settings, os.environ),
        name="the review server",
    ).spawn()
    url = f"http://127.0.0.1:{settings.review.port}"
    deadline = time.monotonic() + 30
    while http_get(url + "/healthz", timeout_s=1.0)[0] != 200:
        if not server.alive() or time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"the review server did not start:\n{server.log_tail()}")
        time.sleep(0.2)
    return server, url


async def test_a_reviewer_answers_with_the_keyboard_in_chromium(
    make_settings, start_worker, tmp_path: Path
) -> None:
    executable = chromium()
    from playwright.async_api import async_playwright

    settings = make_settings(
        policy={"cold_start_examples": 10_000},  # every record goes to review
        review={
            "token": TOKEN,
            "host": "127.0.0.1",
            "port": free_port(),
            "undo_window_s": UNDO_WINDOW_S,
        },
    )
    worker = start_worker(settings)
    kafka = settings.kafka.bootstrap_servers
    train = blobs("seed", SEED, seed=3)
    await produce(kafka, settings.topics.feedback, keyed(feedback_for(train, FeedbackSource.SEED)))
    await wait_for_metric(
        worker, lambda m: m.get("autolabel_snapshot_feedback_offset") >= SEED, what="seed learned"
    )
    records = [r for r, _ in blobs("page", 6, seed=4)]
    await produce(kafka, settings.topics.records, keyed(records))
    issued = audits()
    await produce(kafka, settings.topics.review, keyed(issued))
    out = await collect(
        settings, lambda o: len(o.reviews) >= len(records) + len(issued), worker=worker
    )
    requests = {r.id: r for r in out.reviews}
    assert all(requests[r.id].predicted_label in {"pos", "neg"} for r in records)

    server, url = start_review_server(settings, tmp_path / "review-server.log")
    given: dict[str, str] = {}  # record id -> the label the reviewer finally gave
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
            page = await browser.new_page(viewport={"width": 1366, "height": 860})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            async def on_screen() -> str:
                await page.wait_for_selector("#record:not([hidden])", timeout=WAIT_S * 1000)
                await page.wait_for_function("() => !document.body.hasAttribute('aria-busy')")
                return await page.inner_text("#record-id")

            async def next_after(previous: str) -> str:
                await page.wait_for_function(
                    "prev => !document.getElementById('record').hidden"
                    " && document.getElementById('record-id').textContent !== prev"
                    " && !document.body.hasAttribute('aria-busy')",
                    arg=previous,
                    timeout=WAIT_S * 1000,
                )
                return await page.inner_text("#record-id")

            async def choice(n: int) -> str:
                return await page.get_attribute(f"#choices li:nth-child({n}) button", "data-label")

            # Sign in, with the keyboard.
            await page.goto(url + "/")
            assert page.url.endswith("/login")
            focused = "() => document.activeElement.id === 'reviewer'"  # autofocus, once applied
            await page.wait_for_function(focused)
            await page.keyboard.type(REVIEWER)
            await page.keyboard.press("Tab")
            await page.keyboard.type(TOKEN)
            await page.keyboard.press("Enter")
            await page.wait_for_url(url + "/")
            assert await page.inner_text("#reviewer-name") == REVIEWER

            # 1. An audit comes first: Enter accepts the prediction.
            first = await on_screen()
            assert first in {a.id for a in issued}
            assert await page.text_content("#reason") == "Audit"
            await page.keyboard.press("Enter")
            given[first] = "pos"

            # 2. The other audit: 2 picks the second label (disagrees with the model).
            second = await next_after(first)
            assert second in {a.id for a in issued}
            label = await choice(2)
            assert label == "neg"
            await page.keyboard.press("2")
            given[second] = label

            # 3. A cold-start request: / opens the type-ahead, Enter takes the match.
            third = await next_after(second)
            assert await page.text_content("#reason") == "Cold start"
            await page.keyboard.press("/")
            await page.keyboard.type("ne")
            await page.wait_for_selector("#suggestions li[aria-selected='true']")
            assert await page.inner_text("#suggestions li[aria-selected='true']") == "neg"
            await page.keyboard.press("Enter")
            given[third] = "neg"

            # 4. s skips: nothing is sent for it.
            skipped = await next_after(third)
            await page.keyboard.press("s")

            # 5. 1 answers, u takes it back within the window, 2 answers instead.
            fifth = await next_after(skipped)
            first_choice, second_choice = await choice(1), await choice(2)
            await page.keyboard.press("1")
            sixth = await next_after(fifth)
            await page.keyboard.press("u")
            await page.wait_for_function(
                "id => document.getElementById('record-id').textContent === id"
                " && !document.body.hasAttribute('aria-busy')",
                arg=fifth,
            )
            await page.keyboard.press("2")
            given[fifth] = second_choice
            assert first_choice != second_choice

            # 6. a accepts the prediction, as Enter does.
            assert await next_after(fifth) == sixth
            predicted = await page.inner_text("#predicted")
            await page.keyboard.press("a")
            given[sixth] = predicted

            # The counts follow without a reload: 5 answered, 1 audit of 2 disagreed.
            await page.wait_for_function(
                "() => document.getElementById('count-answered').textContent === '5'"
                " && document.getElementById('count-audit').textContent.startsWith('50%')",
                timeout=WAIT_S * 1000,
            )
            SCREENSHOT.parent.mkdir(exist_ok=True)
            await page.screenshot(path=str(SCREENSHOT))
            assert errors == [], errors
            await browser.close()

        # Every answer is on the feedback topic once, after its undo window.
        answers = await answers_on_topic(settings, len(given))
    finally:
        code = server.stop(timeout_s=20)
    assert code == 0, server.log_tail()
    assert TOKEN not in server.log_tail(lines=10_000)

    assert sorted(f.id for f in answers) == sorted(given), "one answer per answered request"
    assert skipped not in {f.id for f in answers}
    issuer = RequestIssuer(TEST_KEY.encode())
    for feedback in answers:
        request = requests[feedback.id]
        assert feedback.label == given[feedback.id]
        assert feedback.reviewer == REVIEWER
        assert feedback.request_id == request.request_id  # echoed from the worker's request
        ticket = issuer.verify(feedback.request_id)
        assert ticket is not None and ticket.digest == record_digest(feedback.record)
        assert feedback.record == request.record
        audit = request.reason is ReviewReason.AUDIT
        assert feedback.source is (FeedbackSource.AUDIT if audit else FeedbackSource.REVIEW)

    # ... and the worker learned each of them, once.
    metrics = await wait_for_metric(
        worker,
        lambda m: (
            m.get("autolabel_feedback_learned_total", source="review") == 3
            and m.get("autolabel_feedback_learned_total", source="audit") == 2
        ),
        what="the page's answers learned",
    )
    assert metrics.get("autolabel_model_examples_learned") == SEED + len(given)
