"""The review page's server without a broker: sign-in, CSRF, the JSON API, undo, skip.

The reviewers' queues are an in-process fake with the interface of
:class:`autolabel.review.kafka_queue.ReviewQueue`; the browser test
(``tests/integration/test_review_page.py``) runs the real queue on a real broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from autolabel.core.messages import (
    Feedback,
    FeedbackSource,
    LabelProbability,
    Record,
    ReviewReason,
    ReviewRequest,
)
from autolabel.review import answer
from autolabel.review.queue import AnswerTally, Claim, QueueStats
from autolabel.review.web.server import COOKIE, CSRF_HEADER, create_app
from autolabel.settings import MissingToken, Settings

TOKEN = "review-token-for-unit-tests-0123"


def request(n: int, reason: str = "uncertain", **record: Any) -> ReviewRequest:
    body = record or {"features": {"x": n / 10, "colour": "red"}}
    return ReviewRequest(
        id=f"r{n}",
        request_id=f"ticket-{n}",
        record=Record(id=f"r{n}", **body),
        predicted_label="cat",
        probabilities=[
            LabelProbability(label="cat", probability=0.7),
            LabelProbability(label="dog", probability=0.2),
            LabelProbability(label="fox", probability=0.1),
        ],
        reason=ReviewReason(reason),
        priority=0.5,
        model_version=3,
    )


class FakeQueue:
    """ReviewQueue's interface over a list; records what was sent and released."""

    def __init__(self, reviewer: str, requests: list[ReviewRequest]) -> None:
        self.reviewer = reviewer
        self.pending = [Claim(r, partition=0, offset=i) for i, r in enumerate(requests)]
        self.sent: list[Feedback] = []
        self.released: list[str] = []
        self.started = self.stopped = False
        self.fail_sends = False
        self.tally = AnswerTally()

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def next(self, timeout_s: float = 1.0) -> Claim | None:
        if self.pending:
            return self.pending.pop(0)
        await asyncio.sleep(min(timeout_s, 0.01))
        return None

    async def answer(self, claim: Claim, label: str) -> Feedback:
        if self.fail_sends:
            raise ConnectionError("broker unreachable")
        feedback = answer(claim.request, label, self.reviewer)
        self.sent.append(feedback)
        self.tally.count(claim.request, label)
        return feedback

    def release(self, claim: Claim) -> None:
        self.released.append(claim.request.id)
        self.pending.append(claim)

    def known_labels(self) -> list[str]:
        return sorted({"cat", "dog", "fox", "owl"} | {f.label for f in self.sent})

    def stats(self) -> QueueStats:
        return self.tally.stats(
            buffered=len(self.pending),
            claimed=0,
            lag=0,
            buffered_by_reason=Counter(c.request.reason.value for c in self.pending),
            partitions=[0],
        )


def settings(**review: Any) -> Settings:
    return Settings(review={"token": TOKEN, **review})  # type: ignore[arg-type]


@pytest.fixture
def queues() -> dict[str, FakeQueue]:
    return {}


@pytest.fixture
def requests() -> list[ReviewRequest]:
    return [request(1), request(2, "audit"), request(3, text="a short text")]


@pytest.fixture
async def make_client(
    queues: dict[str, FakeQueue], requests: list[ReviewRequest]
) -> AsyncIterator[Callable[..., Any]]:
    """Start a review server over fake queues (each reviewer's holds ``requests``)."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(**review: Any) -> TestClient[web.Request, web.Application]:
        def make_queue(reviewer: str) -> FakeQueue:
            queues[reviewer] = FakeQueue(reviewer, list(requests))
            return queues[reviewer]

        app = create_app(settings(**review), make_queue)  # type: ignore[arg-type]
        client: TestClient[web.Request, web.Application] = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()  # a second close does nothing


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> Any:
    return await make_client(undo_window_s=0)


async def sign_in(client: Any, reviewer: str = "Ada") -> str:
    """Sign in; the CSRF token of the session."""
    response = await client.post(
        "/login", data={"reviewer": reviewer, "token": TOKEN}, allow_redirects=False
    )
    assert response.status == 303, await response.text()
    session = await (await client.get("/api/session")).json()
    assert session["reviewer"] == reviewer
    return str(session["csrf"])


async def post(client: Any, path: str, body: Any, csrf: str | None) -> tuple[int, Any]:
    headers = {CSRF_HEADER: csrf} if csrf else {}
    response = await client.post(path, json=body, headers=headers)
    return response.status, await response.json()


# ------------------------------------------------------------------------- sign-in


async def test_signed_out_the_page_sends_to_the_login_form_and_the_api_says_401(client) -> None:
    page = await client.get("/", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/login"
    login = await client.get("/login")
    assert login.status == 200 and 'name="token"' in await login.text()
    api = await client.get("/api/next")
    assert api.status == 401
    assert "sign in" in (await api.json())["error"]


async def test_a_wrong_token_is_refused_and_never_logged_or_echoed(client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-token-but-long-enough"
    response = await client.post("/login", data={"reviewer": "Ada", "token": wrong})
    body = await response.text()
    assert response.status == 401
    assert "not right" in body
    assert COOKIE not in response.cookies
    assert wrong not in body and wrong not in caplog.text and TOKEN not in caplog.text
    await sign_in(client)
    assert TOKEN not in caplog.text


async def test_signing_in_sets_an_httponly_samesite_strict_cookie(client) -> None:
    response = await client.post(
        "/login", data={"reviewer": "Ada", "token": TOKEN}, allow_redirects=False
    )
    assert response.status == 303 and response.headers["Location"] == "/"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie
    page = await client.get("/")
    assert page.status == 200 and "review.js" in await page.text()
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"


async def test_secure_cookie_setting_marks_the_cookie_secure(make_client) -> None:
    client = await make_client(secure_cookie=True)
    response = await client.post(
        "/login", data={"reviewer": "Ada", "token": TOKEN}, allow_redirects=False
    )
    assert "Secure" in response.headers["Set-Cookie"]
    await client.close()


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Enter your name"), ("x" * 65, "longer than 64"), ("a\tb", "control characters")],
)
async def test_a_bad_reviewer_name_is_refused_with_the_reason(client, name, message) -> None:
    response = await client.post("/login", data={"reviewer": name, "token": TOKEN})
    assert response.status == 400
    assert message in await response.text()


async def test_too_many_wrong_tokens_are_throttled(client) -> None:
    for _ in range(10):
        response = await client.post("/login", data={"reviewer": "Eve", "token": "guess" * 4})
        assert response.status == 401
    response = await client.post("/login", data={"reviewer": "Eve", "token": TOKEN})
    assert response.status == 429  # even the right token waits
    assert int(response.headers["Retry-After"]) > 0


async def test_a_cross_site_login_post_is_refused(client) -> None:
    response = await client.post(
        "/login",
        data={"reviewer": "Ada", "token": TOKEN},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status == 403


async def test_signing_out_ends_the_session_and_stops_the_reviewers_queue(client, queues) -> None:
    csrf = await sign_in(client)
    await client.get("/api/next")
    status, body = await post(client, "/logout", {}, csrf)
    assert status == 200 and body == {"signed_out": "Ada"}
    assert queues["Ada"].stopped
    assert (await client.get("/api/next")).status == 401


def test_the_server_needs_a_token() -> None:
    with pytest.raises(MissingToken, match="AUTOLABEL_REVIEW__TOKEN"):
        create_app(Settings())


# ------------------------------------------------------------------------- CSRF and input


async def test_posts_without_the_csrf_header_or_from_another_site_are_refused(client) -> None:
    csrf = await sign_in(client)
    token = (await (await client.get("/api/next")).json())["token"]
    status, body = await post(client, "/api/answer", {"token": token, "label": "cat"}, None)
    assert status == 403 and CSRF_HEADER in body["error"]
    status, body = await post(client, "/api/answer", {"token": token, "label": "cat"}, "forged")
    assert status == 403
    response = await client.post(
        "/api/answer",
        json={"token": token, "label": "cat"},
        headers={CSRF_HEADER: csrf, "Origin": "https://evil.example"},
    )
    assert response.status == 403 and "cross-site" in (await response.json())["error"]
    form = await client.post(
        "/api/answer", data={"token": token, "label": "cat"}, headers={CSRF_HEADER: csrf}
    )
    assert form.status == 415
    status, _ = await post(client, "/api/answer", {"token": token, "label": "cat"}, csrf)
    assert status == 200


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"label": "cat"}, 400, 'send "token"'),
        ({"token": "T", "label": 3}, 400, 'send "label"'),
        ({"token": "T", "label": "   "}, 400, "the label is empty"),
        ({"token": "T", "label": "x" * 257}, 400, "longer than 256"),
        ({"token": "T", "label": "a\nb"}, 400, "control characters"),
        ([1, 2], 400, "a JSON object"),
        ({"token": "not-on-screen", "label": "cat"}, 409, "no longer on your screen"),
    ],
)
async def test_bad_answers_get_a_4xx_that_says_what_is_wrong(client, body, status, message) -> None:
    csrf = await sign_in(client)
    await client.get("/api/next")
    got, answer_body = await post(client, "/api/answer", body, csrf)
    assert got == status, answer_body
    assert message in answer_body["error"]


async def test_a_body_that_is_not_json_is_a_400(client) -> None:
    csrf = await sign_in(client)
    response = await client.post(
        "/api/answer",
        data=b"{not json",
        headers={CSRF_HEADER: csrf, "Content-Type": "application/json"},
    )
    assert response.status == 400 and "not valid JSON" in (await response.json())["error"]


@pytest.mark.parametrize("wait", ["-1", "26", "nan", "soon"])
async def test_a_bad_wait_is_a_400(client, wait) -> None:
    await sign_in(client)
    response = await client.get(f"/api/next?wait={wait}")
    assert response.status == 400 and "wait must be" in (await response.json())["error"]


async def test_labels_outside_the_deployments_classes_are_refused() -> None:
    app = create_app(
        Settings(review={"token": TOKEN, "undo_window_s": 0}, model={"classes": "cat,dog"}),  # type: ignore[arg-type]
        lambda reviewer: FakeQueue(reviewer, [request(1)]),  # type: ignore[arg-type,return-value]
    )
    async with TestClient(TestServer(app)) as client:
        csrf = await sign_in(client)
        token = (await (await client.get("/api/next")).json())["token"]
        status, body = await post(client, "/api/answer", {"token": token, "label": "owl"}, csrf)
        assert status == 400 and "not one of this deployment's classes (cat, dog" in body["error"]


# ------------------------------------------------------------------------- answering


async def test_an_answer_goes_through_the_queue_with_the_request_id_and_reviewer(
    client, queues
) -> None:
    csrf = await sign_in(client, "Grace")
    shown = await (await client.get("/api/next")).json()
    view = shown["request"]
    assert view["id"] == "r1" and view["reason"] == "uncertain"
    assert view["features"] == [["x", "0.1"], ["colour", "red"]]
    assert [c["label"] for c in view["choices"]] == ["cat", "dog", "fox"]
    assert "owl" in shown["labels"]
    status, body = await post(
        client, "/api/answer", {"token": shown["token"], "label": "dog"}, csrf
    )
    assert status == 200
    assert body["answered"] == {"id": "r1", "label": "dog", "sent": True, "undo_s": 0}
    [feedback] = queues["Grace"].sent
    assert feedback.request_id == "ticket-1" and feedback.reviewer == "Grace"
    assert feedback.source is FeedbackSource.REVIEW and feedback.label == "dog"

    audit = await (await client.get("/api/next")).json()
    assert audit["request"]["reason"] == "audit"
    await post(client, "/api/answer", {"token": audit["token"], "label": "fox"}, csrf)
    assert queues["Grace"].sent[-1].source is FeedbackSource.AUDIT
    stats = await (await client.get("/api/stats")).json()
    assert stats["answered"] == 2 and stats["audits_answered"] == 1
    assert stats["audit_disagreements"] == 1 and stats["audit_disagreement_rate"] == 1.0
    assert stats["backlog"] == 1 and stats["reviewer"] == "Grace"


async def test_the_same_request_stays_on_screen_until_answered(client) -> None:
    await sign_in(client)
    first = await (await client.get("/api/next")).json()
    again = await (await client.get("/api/next")).json()
    assert again["token"] == first["token"] and again["request"]["id"] == "r1"


async def test_skip_releases_the_claim_and_shows_the_next(client, queues) -> None:
    csrf = await sign_in(client)
    first = await (await client.get("/api/next")).json()
    status, body = await post(client, "/api/skip", {"token": first["token"]}, csrf)
    assert status == 200 and body == {"skipped": "r1"}
    assert queues["Ada"].released == ["r1"]
    assert (await (await client.get("/api/next")).json())["request"]["id"] == "r2"


async def test_nothing_to_review_is_an_empty_answer_not_an_error(make_client) -> None:
    client = await make_client(undo_window_s=0)
    csrf = await sign_in(client)
    for _ in range(3):
        shown = await (await client.get("/api/next")).json()
        await post(client, "/api/answer", {"token": shown["token"], "label": "cat"}, csrf)
    response = await client.get("/api/next?wait=0.05")
    assert response.status == 200
    assert (await response.json())["request"] is None
    await client.close()


async def test_undo_takes_back_a_held_answer_before_it_is_sent(make_client, queues) -> None:
    client = await make_client(undo_window_s=0.4)
    csrf = await sign_in(client)
    first = await (await client.get("/api/next")).json()
    status, body = await post(
        client, "/api/answer", {"token": first["token"], "label": "dog"}, csrf
    )
    assert status == 200 and body["answered"]["sent"] is False
    assert 0 < body["answered"]["undo_s"] <= 0.4
    stats = await (await client.get("/api/stats")).json()
    assert stats["answered"] == 1 and stats["held"][0]["label"] == "dog"

    second = await (await client.get("/api/next")).json()
    assert second["request"]["id"] == "r2"
    status, body = await post(client, "/api/undo", {}, csrf)
    assert status == 200 and body == {"undone": "r1"}
    back = await (await client.get("/api/next")).json()
    assert back["request"]["id"] == "r1"  # the undone request first, r2 after it
    await asyncio.sleep(0.6)
    assert queues["Ada"].sent == []  # nothing was sent

    await post(client, "/api/answer", {"token": back["token"], "label": "fox"}, csrf)
    assert (await (await client.get("/api/next")).json())["request"]["id"] == "r2"
    await asyncio.sleep(0.6)
    assert [(f.id, f.label) for f in queues["Ada"].sent] == [("r1", "fox")]
    status, body = await post(client, "/api/undo", {}, csrf)
    assert status == 409 and "nothing to undo" in body["error"]
    await client.close()


async def test_held_answers_are_sent_when_the_server_stops(make_client, queues) -> None:
    client = await make_client(undo_window_s=60)
    csrf = await sign_in(client)
    shown = await (await client.get("/api/next")).json()
    await post(client, "/api/answer", {"token": shown["token"], "label": "dog"}, csrf)
    assert queues["Ada"].sent == []
    await client.close()
    assert [f.label for f in queues["Ada"].sent] == ["dog"] and queues["Ada"].stopped


async def test_a_failed_send_puts_the_request_back_and_says_so(make_client, queues) -> None:
    client = await make_client(undo_window_s=0)
    csrf = await sign_in(client)
    shown = await (await client.get("/api/next")).json()
    queues["Ada"].fail_sends = True
    status, body = await post(
        client, "/api/answer", {"token": shown["token"], "label": "dog"}, csrf
    )
    assert status == 502 and "still on screen" in body["error"]
    again = await (await client.get("/api/next")).json()
    assert again["token"] == shown["token"]
    await client.close()


async def test_each_signed_in_name_answers_through_its_own_queue(client, queues) -> None:
    await sign_in(client, "Ada")
    await client.get("/api/next")
    client.session.cookie_jar.clear()
    await sign_in(client, "Grace")
    await client.get("/api/next")
    assert set(queues) == {"Ada", "Grace"}
    assert queues["Ada"].reviewer == "Ada" and queues["Grace"].reviewer == "Grace"


async def test_static_files_are_served_and_unknown_ones_are_404(client) -> None:
    css = await client.get("/static/review.css")
    assert css.status == 200 and css.content_type == "text/css"
    assert (await client.get("/static/../settings.py")).status == 404
    assert (await client.get("/static/secret.txt")).status == 404
    assert (await client.get("/healthz")).status == 200
