"""``autolabel review``: a person answers review requests at the terminal.

It reads the review queue (:class:`~autolabel.review.kafka_queue.ReviewQueue`: a
consumer group shared with every other reviewer, the best requests first), shows one
request at a time (:mod:`autolabel.tools.review_screen`) and reads one key:

* ``Enter`` accepts the model's label, ``1``-``9`` picks that entry of the top k;
* typing picks any label (Tab completes among the labels known so far; ``/`` first
  for a label that begins with a command key); a label never seen asks for a ``y``;
* ``s`` skips (the request goes back behind every other), ``u`` undoes the last answer
  while it is held, ``q`` (or Ctrl-C, Ctrl-D) quits, ``?`` shows the keys.

Each answer is held for ``undo_s`` seconds, or until the next answer, whichever comes
first, and then sent (a :class:`~autolabel.core.messages.Feedback` built by
:func:`autolabel.review.answer`); only what was sent is committed, so a request skipped
or still on screen at ``q`` goes to the next reviewer. The counts (backlog, answered,
audits and how often they disagreed with the model) stay in the bottom line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiokafka.errors import KafkaError
from prompt_toolkit import PromptSession
from prompt_toolkit.application import get_app
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.filters import Condition
from prompt_toolkit.formatted_text import HTML
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from rich.console import Console
from rich.markup import escape

from autolabel.core.messages import Feedback, utc_now
from autolabel.review.kafka_queue import ReviewQueue
from autolabel.review.queue import Claim
from autolabel.tools.review_screen import choose_label, counts_line, keys_help, request_view

log = logging.getLogger(__name__)

DEFAULT_UNDO_S = 5.0


@dataclass(frozen=True, slots=True)
class Key:
    """A command key pressed at the prompt (anything else is typed text)."""

    name: str


class LabelCompleter(Completer):
    """Completes the typed text (after an optional ``/``) among the known labels."""

    def __init__(self, labels: Callable[[], Iterable[str]]) -> None:
        self.labels = labels

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Any:
        typed = document.text_before_cursor
        word = typed.removeprefix("/").lower()
        for label in self.labels():
            if label.lower().startswith(word):
                yield Completion(label, start_position=-len(typed.removeprefix("/")))


@dataclass
class Held:
    """An answer waiting out its undo window."""

    claim: Claim
    label: str
    timer: asyncio.Task[None]


class TerminalReviewer:
    """The terminal reviewer's loop over a started :class:`ReviewQueue`.

    Parameters
    ----------
    queue
        Started; answers go out through it.
    console
        Where requests are shown.
    undo_s
        How long an answer is held (``u`` takes it back) unless the next answer comes
        first.
    classes
        The labels allowed (``AUTOLABEL_MODEL__CLASSES``); empty: any.
    on_sent
        Called with every answer once the brokers acknowledged it.
    """

    def __init__(
        self,
        queue: ReviewQueue,
        console: Console,
        *,
        undo_s: float = DEFAULT_UNDO_S,
        classes: Iterable[str] = (),
        on_sent: Callable[[Feedback], None] | None = None,
    ) -> None:
        self.queue = queue
        self.console = console
        self.undo_s = undo_s
        self.classes = frozenset(classes)
        self.on_sent = on_sent
        self.held: Held | None = None
        self.upcoming: deque[Claim] = deque()  # shown again first (after an undo)
        self.sent = 0
        self.problem: str | None = None  # the last send failure, for the bottom line
        self._send_lock = asyncio.Lock()
        self._finish = asyncio.Event()
        self.session: PromptSession[Any] = PromptSession(
            key_bindings=self._keys(),
            completer=LabelCompleter(queue.known_labels),
            complete_while_typing=True,
            bottom_toolbar=self._toolbar,
            refresh_interval=0.5,
        )

    def finish(self) -> None:
        """End the loop the next time it waits for a request (the demo's stream is done)."""
        self._finish.set()

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Show requests and read answers until ``q`` (or :meth:`finish` while idle)."""
        self.console.print(keys_help(self.undo_s))
        current: Claim | None = None
        try:
            while True:
                if current is None:
                    current = await self._next_request()
                    if current is None:
                        return
                    self._show(current)
                result = await self.session.prompt_async(HTML("<b>label</b> &gt; "))
                if isinstance(result, Key):
                    if result.name == "quit":
                        return
                    if result.name == "help":
                        self.console.print(keys_help(self.undo_s))
                    elif result.name == "skip":
                        self.queue.release(current)
                        self.console.print("[dim]skipped: back to the queue[/]")
                        current = None
                    elif result.name == "undo":
                        current = self._undo(current)
                    continue
                label = await self._label(str(result), current)
                if label is None:
                    continue
                await self._hold(current, label)
                current = None
        finally:
            await self._close(current)

    async def _next_request(self) -> Claim | None:
        """The next request: one given back by an undo, or the queue's best; while none
        comes, a prompt that takes ``q`` and ``?``. None: quit."""
        if self.upcoming:
            return self.upcoming.popleft()
        claim = await self.queue.next(timeout_s=0.05)
        if claim is not None:
            return claim
        self.console.print("[dim]waiting for review requests ...[/]")
        while True:
            arrival = asyncio.ensure_future(self.queue.next(timeout_s=3600.0))
            finishing = asyncio.ensure_future(self._finish.wait())
            prompt = asyncio.ensure_future(self.session.prompt_async(HTML("<i>waiting</i> &gt; ")))
            done, _ = await asyncio.wait(
                {arrival, finishing, prompt}, return_when=asyncio.FIRST_COMPLETED
            )
            if prompt not in done:
                if self.session.app.is_running:
                    self.session.app.exit(result=Key("arrived"))
                with contextlib.suppress(Exception):
                    await prompt
            finishing.cancel()
            if arrival.done() and not arrival.cancelled():
                claim = arrival.result()
                if claim is not None:
                    return claim
            else:
                arrival.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    claim = await arrival
                if claim is not None:  # arrived while cancelling: keep it
                    return claim
            if self._finish.is_set():
                return None
            result = prompt.result() if prompt.done() and not prompt.cancelled() else None
            if isinstance(result, Key) and result.name == "quit":
                return None
            if isinstance(result, Key) and result.name == "undo":
                undone = self._undo(None)
                if undone is not None:
                    return undone
            if isinstance(result, Key) and result.name == "help":
                self.console.print(keys_help(self.undo_s))

    async def _label(self, typed: str, claim: Claim) -> str | None:
        choice = choose_label(typed, claim.request, self.queue.known_labels(), self.classes)
        if choice.problem is not None:
            self.console.print(f"[red]{escape(choice.problem)}[/]")
            return None
        assert choice.label is not None
        if choice.new:
            confirm: PromptSession[str] = PromptSession()
            answer = await confirm.prompt_async(
                f"{choice.label!r} is a label never seen before: use it? [y/N] "
            )
            if answer.strip().lower() not in ("y", "yes"):
                return None
        return choice.label

    # ------------------------------------------------------------------ answers and undo

    async def _hold(self, claim: Claim, label: str) -> None:
        """Send the answer held before, then hold this one for ``undo_s``."""
        await self._send_held()
        timer = asyncio.create_task(self._send_later(), name="review-undo-window")
        self.held = Held(claim, label, timer)
        self.console.print(
            f"[green]✓[/] {escape(claim.request.id)}: [bold]{escape(label)}[/]"
            f" [dim](sent in {self.undo_s:g} s or with the next answer; u undoes)[/]"
        )

    async def _send_later(self) -> None:
        await asyncio.sleep(self.undo_s)
        await self._send_held(from_timer=True)

    def _undo(self, current: Claim | None) -> Claim | None:
        """Take the held answer back and show its request again; the request on screen
        comes next."""
        held = self.held
        if held is None:
            self.console.print("[yellow]nothing to undo: the last answer was sent already[/]")
            return current
        held.timer.cancel()
        self.held = None
        if current is not None:
            self.upcoming.appendleft(current)
        self.console.print(f"[yellow]undone:[/] {escape(held.claim.request.id)} is back")
        self._show(held.claim)
        return held.claim

    async def _send_held(self, *, from_timer: bool = False) -> None:
        async with self._send_lock:
            held, self.held = self.held, None
            if held is None:
                return
            if not from_timer:
                held.timer.cancel()
            try:
                feedback = await self.queue.answer(held.claim, held.label)
            except (KafkaError, OSError, TimeoutError) as exc:
                self.problem = f"an answer was not sent ({exc!r}); its request goes back"
                self.queue.release(held.claim)
                return
            self.sent += 1
            self.problem = None
            if self.on_sent is not None:
                self.on_sent(feedback)

    async def _close(self, current: Claim | None) -> None:
        """Send the held answer; give every request not answered back to the queue."""
        await self._send_held()
        for claim in [*self.upcoming, *([current] if current is not None else [])]:
            self.queue.release(claim)
        self.upcoming.clear()
        stats = self.queue.stats()
        self.console.print(f"[bold]done[/]: you sent {self.sent} answers · {counts_line(stats)}")

    # ------------------------------------------------------------------ prompt_toolkit

    def _show(self, claim: Claim) -> None:
        counts = counts_line(self.queue.stats(), held=1 if self.held is not None else 0)
        self.console.print(request_view(claim.request, now=utc_now(), subtitle=counts))

    def _toolbar(self) -> HTML:
        held = 1 if self.held is not None else 0
        line = counts_line(self.queue.stats(), held=held)
        problem = f"  <style fg='ansired'>{_html(self.problem)}</style>" if self.problem else ""
        return HTML(f" {_html(line)} · ? keys{problem}")

    def _keys(self) -> KeyBindings:
        keys = KeyBindings()
        empty = Condition(lambda: not get_app().current_buffer.text)

        def command(name: str) -> Callable[[KeyPressEvent], None]:
            def press(event: KeyPressEvent) -> None:
                event.app.exit(result=Key(name))

            return press

        for key, name in (("s", "skip"), ("u", "undo"), ("q", "quit"), ("?", "help")):
            keys.add(key, filter=empty)(command(name))
        keys.add("c-c")(command("quit"))
        keys.add("c-d")(command("quit"))
        for digit in "123456789":
            keys.add(digit, filter=empty)(_pick(digit))
        return keys


def _pick(digit: str) -> Callable[[KeyPressEvent], None]:
    def press(event: KeyPressEvent) -> None:
        event.app.exit(result=digit)

    return press


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def run_review(
    queue: ReviewQueue,
    *,
    undo_s: float = DEFAULT_UNDO_S,
    classes: Iterable[str] = (),
    console: Console | None = None,
) -> int:
    """``autolabel review`` on a queue it starts and stops; the exit code."""
    console = console or Console(highlight=False)
    console.print(
        f"reviewing [bold]{escape(queue.settings.topics.review)}[/] as"
        f" [bold]{escape(queue.reviewer)}[/] (group {escape(queue.group_id)}) ..."
    )
    await queue.start()
    try:
        await TerminalReviewer(queue, console, undo_s=undo_s, classes=classes).run()
    finally:
        await queue.stop()
    return 0
