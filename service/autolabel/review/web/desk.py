"""One reviewer's desk: the request on screen, answers held for undo, skips.

A :class:`Desk` sits between the page and one reviewer's
:class:`~autolabel.review.kafka_queue.ReviewQueue`:

* **On screen.** :meth:`Desk.current` returns the claim the reviewer is looking at,
  claiming the queue's best request when there is none. Each claim gets a random
  ``token``; an answer or a skip names it, so a stale tab cannot answer the wrong record.
* **Undo.** An answer is *held* for ``undo_window_s`` seconds, then sent through
  :meth:`ReviewQueue.answer` (which waits for the acknowledgement and commits only
  what was answered). :meth:`Desk.undo` takes back the latest held answer and puts its
  request on screen again; once sending has begun, it is too late (the learner learns a
  request's first answer only, so an answer cannot be recalled once sent). With a window
  of 0 an answer is sent before the call returns.
* **Skip** releases the claim: the queue shows it again after every other request.
* **Stop** sends every held answer at once (the reviewer gave them), releases the
  claims on screen and stops the queue.

A send that fails puts the request back on screen and says so in :meth:`Desk.status`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from autolabel.core.messages import Feedback, ReviewRequest
from autolabel.review.queue import Claim, QueueStats

log = logging.getLogger(__name__)


class Queue(Protocol):
    """The part of :class:`~autolabel.review.kafka_queue.ReviewQueue` a desk uses."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def next(self, timeout_s: float = 1.0) -> Claim | None: ...
    async def answer(self, claim: Claim, label: str) -> Feedback: ...
    def release(self, claim: Claim) -> None: ...
    def known_labels(self) -> list[str]: ...
    def stats(self) -> QueueStats: ...


class DeskError(Exception):
    """A request the desk cannot carry out; ``status`` is the HTTP status that says why."""

    status = 409


class NotOnScreen(DeskError):
    """The named claim is not the reviewer's to answer (any more)."""


class NothingToUndo(DeskError):
    """No held answer to take back."""


class SendFailed(DeskError):
    """The answer could not be sent (window 0); the request stays on screen."""

    status = 502


@dataclass(slots=True)
class Shown:
    """A claim on the reviewer's screen."""

    claim: Claim
    token: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    @property
    def request(self) -> ReviewRequest:
        return self.claim.request


@dataclass(slots=True)
class Held:
    """An answer given and not sent yet: undoable until ``due`` (monotonic seconds)."""

    shown: Shown
    label: str
    due: float
    sending: bool = False
    task: asyncio.Task[None] | None = None


class Desk:
    """One reviewer's screen over one queue; see the module's docstring.

    Parameters
    ----------
    reviewer
        Who answers (the queue writes it into every answer).
    queue
        The reviewer's queue (started by :meth:`start`).
    undo_window_s
        How long an answer is held before it is sent.
    clock
        Monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        reviewer: str,
        queue: Queue,
        *,
        undo_window_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reviewer = reviewer
        self.queue = queue
        self.undo_window_s = undo_window_s
        self.clock = clock
        self.last_used = clock()
        self.problem: str | None = None
        self._screen: deque[Shown] = deque()
        self._held: list[Held] = []
        self._claiming = asyncio.Lock()
        self._sent = 0

    async def start(self) -> None:
        await self.queue.start()

    async def stop(self) -> None:
        """Send every held answer now, release the claims on screen, stop the queue."""
        for held in list(self._held):
            if held.task is not None and not held.sending:
                held.task.cancel()
        for held in list(self._held):
            if not held.sending:
                await self._send(held)
        while self._screen:
            self.queue.release(self._screen.popleft().claim)
        await self.queue.stop()

    def touch(self) -> None:
        """The reviewer's page just asked for something."""
        self.last_used = self.clock()

    def idle_s(self) -> float:
        return self.clock() - self.last_used

    # ------------------------------------------------------------------ the screen

    async def current(self, wait_s: float) -> Shown | None:
        """The claim on screen; claims the best request (waiting up to ``wait_s``) if none."""
        self.touch()
        if self._screen:
            return self._screen[0]
        async with self._claiming:
            if self._screen:  # another tab claimed one while this one waited
                return self._screen[0]
            claim = await self.queue.next(timeout_s=wait_s)
            if claim is None:
                return None
            self._screen.append(Shown(claim))
            return self._screen[0]  # an undo while waiting put its request first

    async def answer(self, token: str, label: str) -> Held | Feedback:
        """Answer the claim named by ``token``: held for undo, or sent now (window 0).

        Raises :class:`NotOnScreen` for a token that is not on screen, and
        :class:`SendFailed` when a window-0 answer could not be sent.
        """
        self.touch()
        shown = self._take(token)
        if self.undo_window_s <= 0:
            try:
                feedback = await self.queue.answer(shown.claim, label)
            except Exception as exc:
                self._screen.appendleft(shown)
                raise SendFailed(
                    f"the answer for {shown.request.id!r} could not be sent"
                    f" ({type(exc).__name__}); it is still on screen: answer it again"
                ) from exc
            self._sent += 1
            return feedback
        held = Held(shown, label, due=self.clock() + self.undo_window_s)
        held.task = asyncio.create_task(self._send_when_due(held), name="review-answer")
        self._held.append(held)
        return held

    def skip(self, token: str) -> ReviewRequest:
        """Release the claim named by ``token``: it comes back after every other request."""
        self.touch()
        shown = self._take(token)
        self.queue.release(shown.claim)
        return shown.request

    def undo(self) -> Shown:
        """Take back the latest held answer; its request is on screen again, first."""
        self.touch()
        held = self._held[-1] if self._held else None
        if held is None or held.sending:
            window = f"{self.undo_window_s:g} s" if self.undo_window_s > 0 else "no time"
            raise NothingToUndo(
                f"nothing to undo: an answer can be taken back for {window} after it is given,"
                " until it is sent"
            )
        self._held.pop()
        if held.task is not None:
            held.task.cancel()
        self._screen.appendleft(held.shown)
        return held.shown

    def held(self) -> list[Held]:
        """Answers given and not sent yet, oldest first."""
        return list(self._held)

    def known_labels(self, shown: Shown | None = None) -> list[str]:
        labels = set(self.queue.known_labels())
        if shown is not None:
            labels.update(p.label for p in shown.request.probabilities)
        labels.update(h.label for h in self._held)
        return sorted(labels)

    # ------------------------------------------------------------------ sending

    def _take(self, token: str) -> Shown:
        for shown in self._screen:
            if shown.token == token:
                self._screen.remove(shown)
                return shown
        raise NotOnScreen(
            "this request is no longer on your screen (answered, skipped or undone in"
            " another tab); showing the next one"
        )

    async def _send_when_due(self, held: Held) -> None:
        await asyncio.sleep(max(0.0, held.due - self.clock()))
        await self._send(held)

    async def _send(self, held: Held) -> None:
        held.sending = True
        request = held.shown.request
        try:
            await self.queue.answer(held.shown.claim, held.label)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "review page: the answer of %s for %s could not be sent: %r",
                self.reviewer,
                request.id,
                exc,
            )
            self.problem = (
                f"the answer for {request.id!r} could not be sent ({type(exc).__name__});"
                " it is back on your screen: answer it again"
            )
            self._screen.appendleft(held.shown)
        else:
            self._sent += 1
            self.problem = None
        finally:
            with contextlib.suppress(ValueError):
                self._held.remove(held)


QueueFactory = Callable[[str], Queue]
"""Makes the queue of one reviewer (by name)."""


class Desks:
    """The desks of the signed-in reviewers, one per name, made on first use.

    A desk whose page asked nothing for ``idle_timeout_s`` is stopped by
    :meth:`reap_idle`, so a reviewer who closed the tab does not keep requests (and
    partitions of the review topic) from the others.
    """

    def __init__(
        self,
        make_queue: QueueFactory,
        *,
        undo_window_s: float,
        idle_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.make_queue = make_queue
        self.undo_window_s = undo_window_s
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock
        self._desks: dict[str, Desk] = {}
        self._starting: dict[str, asyncio.Task[Desk]] = {}

    def __len__(self) -> int:
        return len(self._desks)

    def find(self, reviewer: str) -> Desk | None:
        return self._desks.get(reviewer)

    async def get(self, reviewer: str) -> Desk:
        """The reviewer's desk, started on first use (concurrent callers share one start)."""
        desk = self._desks.get(reviewer)
        if desk is not None:
            desk.touch()
            return desk
        task = self._starting.get(reviewer)
        if task is None:
            task = asyncio.create_task(self._open(reviewer), name=f"review-desk-{reviewer}")
            self._starting[reviewer] = task
        return await asyncio.shield(task)

    async def _open(self, reviewer: str) -> Desk:
        try:
            desk = Desk(
                reviewer,
                self.make_queue(reviewer),
                undo_window_s=self.undo_window_s,
                clock=self.clock,
            )
            await desk.start()
            self._desks[reviewer] = desk
            log.info("review page: %s joined the review queue", reviewer)
            return desk
        finally:
            self._starting.pop(reviewer, None)

    async def close(self, reviewer: str) -> None:
        desk = self._desks.pop(reviewer, None)
        if desk is not None:
            await desk.stop()
            log.info("review page: %s left the review queue", reviewer)

    async def reap_idle(self) -> list[str]:
        """Stop the desks idle for ``idle_timeout_s``; their reviewers' names."""
        idle = [name for name, d in self._desks.items() if d.idle_s() >= self.idle_timeout_s]
        for name in idle:
            await self.close(name)
        return idle

    async def close_all(self) -> None:
        await _each(self.close(name) for name in list(self._desks))


async def _each(calls: object) -> None:
    """Await every call, logging (not raising) failures, so one stuck queue stops no other."""
    pending: list[Awaitable[None]] = list(calls)  # type: ignore[call-overload]
    for result in await asyncio.gather(*pending, return_exceptions=True):
        if isinstance(result, BaseException):
            log.warning("review page: a reviewer's queue did not stop cleanly: %r", result)
