"""The review page's web server: an aiohttp app with a sign-in, the page and its JSON API.

Routes (every ``/api/*`` route needs a signed-in session; every POST also its CSRF token):

==========================  ==========================================================
``GET  /``                  the review page (signed out: a redirect to ``/login``)
``GET  /login``             the sign-in form; ``POST /login`` checks it (form fields
                            ``reviewer`` and ``token``) and sets the session cookie
``POST /logout``            ends the session
``GET  /api/session``       the reviewer's name, the CSRF token, the undo window
``GET  /api/next?wait=S``   the request on screen (claims the best one, waiting up to
                            S seconds, at most 25), or ``{"request": null}``
``POST /api/answer``        ``{"token", "label"}``: answer the request on screen
``POST /api/skip``          ``{"token"}``: give it back to the queue (shown again later)
``POST /api/undo``          take back the latest answer still inside its undo window
``GET  /api/stats``         backlog, answered, audit disagreement, answers held for undo
``GET  /healthz``           liveness, no sign-in
``GET  /static/…``          the page's CSS and JavaScript
==========================  ==========================================================

**Sign-in.** The form's token is compared with ``AUTOLABEL_REVIEW__TOKEN`` in constant
time; after 10 wrong tokens in a minute an address gets 429 for the rest of the minute.
A session is a random id in an ``HttpOnly``, ``SameSite=Strict`` cookie (``Secure`` with
``AUTOLABEL_REVIEW__SECURE_COOKIE`` or over HTTPS); the token itself is never stored in
the browser, logged or echoed. The server keeps sessions in memory: a restart signs
everyone out.

**CSRF.** Every POST under ``/api/`` and ``/logout`` must carry the session's CSRF token
in an ``X-CSRF-Token`` header (a cross-site form cannot set headers) with a JSON body,
and a POST whose ``Origin`` names another site is refused, ``/login`` included; the
``SameSite=Strict`` cookie is a second line. Responses carry a strict Content Security
Policy (scripts and styles from this server only) and forbid framing.

Errors are JSON ``{"error": "..."}`` with a 4xx status that says what to fix (a 5xx only
for a failure of the server or the cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import string
import unicodedata
from collections.abc import Awaitable, Callable
from html import escape
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from autolabel.core.messages import Feedback
from autolabel.review.web.desk import Desk, DeskError, Desks, Held, QueueFactory, Shown
from autolabel.review.web.sessions import (
    InvalidReviewer,
    LoginThrottle,
    Session,
    Sessions,
    reviewer_name,
    token_matches,
)
from autolabel.review.web.view import request_view
from autolabel.settings import Settings

log = logging.getLogger(__name__)

COOKIE = "autolabel_review"
CSRF_HEADER = "X-CSRF-Token"
MAX_WAIT_S = 25.0
MAX_BODY_BYTES = 64 * 1024
MAX_LABEL_CHARS = 256
REAP_EVERY_S = 30.0
STATIC = {
    "review.css": "text/css",
    "review.js": "text/javascript",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https: http:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

SESSIONS = web.AppKey("sessions", Sessions)
DESKS = web.AppKey("desks", Desks)
THROTTLE = web.AppKey("throttle", LoginThrottle)
TOKEN = web.AppKey("token", bytes)
SETTINGS = web.AppKey("settings", Settings)
FILES = web.AppKey("files", dict[str, bytes])
REAPER = web.AppKey("reaper", asyncio.Task[None])
SESSION = web.RequestKey("session", Session)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(web.HTTPException):
    """A JSON error response: ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str, **headers: str) -> None:
        self.status_code = status
        super().__init__(
            text=json.dumps({"error": message}),
            content_type="application/json",
            headers=headers or None,
        )


def create_app(settings: Settings, make_queue: QueueFactory | None = None) -> web.Application:
    """The review server for ``settings``; reviewers' queues come from ``make_queue``
    (default: a :class:`~autolabel.review.kafka_queue.ReviewQueue` per reviewer).

    Raises :class:`~autolabel.settings.MissingToken` when no token is configured.
    """
    review = settings.review
    token = review.token_bytes()
    app = web.Application(
        middlewares=[_security_headers, _errors, _signed_in],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[TOKEN] = token
    app[SESSIONS] = Sessions(review.session_ttl_s)
    app[THROTTLE] = LoginThrottle()
    app[DESKS] = Desks(
        make_queue or kafka_queues(settings),
        undo_window_s=review.undo_window_s,
        idle_timeout_s=review.idle_timeout_s,
    )
    folder = resources.files("autolabel.review.web") / "static"
    app[FILES] = {
        name: (folder / name).read_bytes() for name in (*STATIC, "index.html", "login.html")
    }
    app.add_routes(
        [
            web.get("/", page),
            web.get("/login", login_form),
            web.post("/login", login),
            web.post("/logout", logout),
            web.get("/healthz", healthz),
            web.get("/static/{name}", static),
            web.get("/favicon.ico", favicon),
            web.get("/api/session", api_session),
            web.get("/api/next", api_next),
            web.post("/api/answer", api_answer),
            web.post("/api/skip", api_skip),
            web.post("/api/undo", api_undo),
            web.get("/api/stats", api_stats),
        ]
    )
    app.on_startup.append(_start_reaper)
    app.on_cleanup.append(_close_desks)
    return app


def kafka_queues(settings: Settings) -> QueueFactory:
    """One :class:`~autolabel.review.kafka_queue.ReviewQueue` per reviewer, all in the
    review group (``AUTOLABEL_REVIEW__GROUP_ID``, default ``<app_id>-reviewers``)."""
    from autolabel.review.kafka_queue import ReviewQueue

    def make(reviewer: str) -> ReviewQueue:
        return ReviewQueue(
            settings,
            reviewer=reviewer,
            group_id=settings.review.group_id,
            buffer_size=settings.review.buffer_size,
        )

    return make


def run_server(settings: Settings) -> None:
    """Serve the review page on ``AUTOLABEL_REVIEW__HOST``:``__PORT`` until SIGINT/SIGTERM;
    held answers are sent and every reviewer leaves the review group before it exits."""
    app = create_app(settings)
    host, port = settings.review.host, settings.review.port
    log.info("review page on http://%s:%d/ (topic %s)", host, port, settings.topics.review)
    web.run_app(app, host=host, port=port, access_log=None, print=None, shutdown_timeout=10.0)


# ---------------------------------------------------------------------- middlewares


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _harden(exc, request)
        raise
    _harden(response, request)
    return response


def _harden(response: web.StreamResponse, request: web.Request) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" with
    # the sign-in form, which the cross-site check must refuse.
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.path.startswith("/api/") or request.path in ("/", "/login"):
        headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Desk errors and unexpected failures as JSON errors under ``/api/``."""
    try:
        return await handler(request)
    except DeskError as exc:
        raise ApiError(exc.status, str(exc)) from None
    except web.HTTPException:
        raise
    except Exception:
        if not request.path.startswith("/api/"):
            raise
        log.exception("review page: %s %s failed", request.method, request.path)
        raise ApiError(500, "the server failed to do this; see its log") from None


@web.middleware
async def _signed_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    """``/api/*`` and ``/logout`` need a session; their POSTs need CSRF proof too."""
    guarded = request.path.startswith("/api/") or request.path == "/logout"
    if request.method == "POST":
        _same_origin(request)
    if not guarded:
        return await handler(request)
    session = request.app[SESSIONS].get(request.cookies.get(COOKIE))
    if session is None:
        raise ApiError(401, "not signed in (or the session expired): sign in at /login")
    if request.method == "POST":
        if not Sessions.csrf_ok(session, request.headers.get(CSRF_HEADER)):
            raise ApiError(
                403, f"missing or wrong {CSRF_HEADER} header: reload the page and try again"
            )
        if request.content_type != "application/json":
            raise ApiError(415, "send the body as JSON (Content-Type: application/json)")
    request[SESSION] = session
    return await handler(request)


def _same_origin(request: web.Request) -> None:
    """Refuse a POST whose ``Origin`` header names another site than this one."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    if origin == "null" or urlsplit(origin).netloc.lower() != request.host.lower():
        if request.path.startswith("/api/") or request.path == "/logout":
            raise ApiError(403, "cross-site request refused")
        raise web.HTTPForbidden(text="cross-site request refused")


# ---------------------------------------------------------------------- pages


async def page(request: web.Request) -> web.StreamResponse:
    if _session(request) is None:
        raise web.HTTPSeeOther("/login")
    return _html(request.app[FILES]["index.html"])


async def login_form(request: web.Request) -> web.StreamResponse:
    if _session(request) is not None:
        raise web.HTTPSeeOther("/")
    return _login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    app = request.app
    address = request.remote or "unknown"
    throttle = app[THROTTLE]
    wait = throttle.retry_after(address)
    if wait:
        return _login_page(
            request,
            f"Too many wrong tokens. Try again in {wait} s.",
            status=429,
            headers={"Retry-After": str(wait)},
        )
    form = await request.post()
    raw_name, raw_token = form.get("reviewer", ""), form.get("token", "")
    if not isinstance(raw_name, str) or not isinstance(raw_token, str):
        return _login_page(request, "Send the form's fields as text.", status=400)
    try:
        name = reviewer_name(raw_name)
    except InvalidReviewer as exc:
        return _login_page(request, f"{str(exc)[:1].upper()}{str(exc)[1:]}.", status=400)
    if not token_matches(raw_token, app[TOKEN]):
        throttle.failed(address)
        log.warning("review page: wrong token from %s (reviewer %r)", address, name)
        return _login_page(
            request, "That token is not right. Ask whoever runs the review page.", name, 401
        )
    session = app[SESSIONS].create(name)
    log.info("review page: %s signed in from %s", name, address)
    response = web.HTTPSeeOther("/")
    settings = app[SETTINGS].review
    response.set_cookie(
        COOKIE,
        session.id,
        max_age=int(settings.session_ttl_s),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=settings.secure_cookie or request.secure,
    )
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    session: Session = request[SESSION]
    request.app[SESSIONS].end(session.id)
    if session.reviewer not in request.app[SESSIONS].reviewers():
        await request.app[DESKS].close(session.reviewer)
    log.info("review page: %s signed out", session.reviewer)
    response = web.json_response({"signed_out": session.reviewer})
    response.del_cookie(COOKIE, path="/")
    return response


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def favicon(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/static/favicon.svg")


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound(text=f"no static file {name!r}")
    return web.Response(
        body=request.app[FILES][name],
        content_type=STATIC[name],
        headers={"Cache-Control": "no-cache"},
    )


# ---------------------------------------------------------------------- the API


async def api_session(request: web.Request) -> web.StreamResponse:
    session: Session = request[SESSION]
    settings = request.app[SETTINGS]
    return web.json_response(
        {
            "reviewer": session.reviewer,
            "csrf": session.csrf,
            "undo_window_s": settings.review.undo_window_s,
            "review_topic": settings.topics.review,
        }
    )


async def api_next(request: web.Request) -> web.StreamResponse:
    wait = _wait_s(request.query.get("wait", "0"))
    desk = await _desk(request)
    shown = await desk.current(wait)
    return web.json_response(_shown(desk, shown))


async def api_answer(request: web.Request) -> web.StreamResponse:
    body = await _json_body(request)
    token = _token(body)
    label = _label(body, request.app[SETTINGS])
    desk = await _desk(request)
    outcome = await desk.answer(token, label)
    if isinstance(outcome, Feedback):
        answered = {"id": outcome.id, "label": outcome.label, "sent": True, "undo_s": 0}
    else:
        answered = _held(outcome, desk)
    return web.json_response({"answered": answered})


async def api_skip(request: web.Request) -> web.StreamResponse:
    body = await _json_body(request)
    desk = await _desk(request)
    skipped = desk.skip(_token(body))
    return web.json_response({"skipped": skipped.id})


async def api_undo(request: web.Request) -> web.StreamResponse:
    await _json_body(request)
    desk = await _desk(request)
    shown = desk.undo()
    return web.json_response({"undone": shown.request.id})


async def api_stats(request: web.Request) -> web.StreamResponse:
    desk = await _desk(request)
    stats = desk.queue.stats()
    held = desk.held()
    return web.json_response(
        {
            "reviewer": desk.reviewer,
            "backlog": stats.backlog,
            "answered": stats.answered + len(held),
            "sent": stats.answered,
            "held": [_held(h, desk) for h in held],
            "audits_answered": stats.audits_answered,
            "audit_disagreements": stats.audit_disagreements,
            "audit_disagreement_rate": stats.audit_disagreement_rate,
            "backlog_by_reason": dict(stats.buffered_by_reason),
            "partitions": list(stats.partitions),
            "problem": desk.problem,
        }
    )


# ---------------------------------------------------------------------- helpers


def _session(request: web.Request) -> Session | None:
    return request.app[SESSIONS].get(request.cookies.get(COOKIE))


async def _desk(request: web.Request) -> Desk:
    session: Session = request[SESSION]
    return await request.app[DESKS].get(session.reviewer)


def _shown(desk: Desk, shown: Shown | None) -> dict[str, Any]:
    if shown is None:
        return {"request": None, "token": None, "labels": desk.known_labels()}
    return {
        "request": request_view(shown.request),
        "token": shown.token,
        "labels": desk.known_labels(shown),
    }


def _held(held: Held, desk: Desk) -> dict[str, Any]:
    return {
        "id": held.shown.request.id,
        "label": held.label,
        "sent": False,
        "undo_s": round(max(0.0, held.due - desk.clock()), 2),
    }


def _wait_s(raw: str) -> float:
    try:
        wait = float(raw)
    except ValueError:
        wait = math.nan
    if not 0 <= wait <= MAX_WAIT_S:  # NaN fails too
        raise ApiError(400, f"wait must be a number of seconds from 0 to {MAX_WAIT_S:g}")
    return wait


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body


def _token(body: dict[str, Any]) -> str:
    token = body.get("token")
    if not isinstance(token, str) or not token or len(token) > 64:
        raise ApiError(400, 'send "token": the token of the request on screen, from GET /api/next')
    return token


def _label(body: dict[str, Any], settings: Settings) -> str:
    raw = body.get("label")
    if not isinstance(raw, str):
        raise ApiError(400, 'send "label": the label you give the record, as a string')
    label = unicodedata.normalize("NFC", raw).strip()
    if not label:
        raise ApiError(400, "the label is empty: pick or type one")
    if len(label) > MAX_LABEL_CHARS:
        raise ApiError(400, f"the label is longer than {MAX_LABEL_CHARS} characters")
    if any(unicodedata.category(c).startswith("C") for c in label):
        raise ApiError(400, "the label may not contain control characters")
    classes = settings.model.class_set
    if classes and label not in classes:
        raise ApiError(
            400,
            f"{label!r} is not one of this deployment's classes"
            f" ({', '.join(sorted(classes))}; AUTOLABEL_MODEL__CLASSES)",
        )
    return label


def _html(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=body, status=status, content_type="text/html", charset="utf-8", headers=headers
    )


def _login_page(
    request: web.Request,
    error: str | None = None,
    reviewer: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> web.Response:
    template = string.Template(request.app[FILES]["login.html"].decode())
    notice = (
        f'<p class="notice notice-error" role="alert" id="login-error">{escape(error)}</p>'
        if error
        else ""
    )
    body = template.safe_substitute(error=notice, reviewer=escape(reviewer, quote=True))
    return _html(body.encode(), status, headers)


# ---------------------------------------------------------------------- lifecycle


async def _start_reaper(app: web.Application) -> None:
    desks = app[DESKS]
    every = min(REAP_EVERY_S, desks.idle_timeout_s / 4)

    async def reap() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                for name in await desks.reap_idle():
                    log.info("review page: %s was idle; their requests went back", name)
            except Exception:
                log.exception("review page: could not stop an idle reviewer's queue")

    app[REAPER] = asyncio.create_task(reap(), name="review-reaper")


async def _close_desks(app: web.Application) -> None:
    reaper = app.get(REAPER)
    if reaper is not None:
        reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reaper
    await app[DESKS].close_all()
