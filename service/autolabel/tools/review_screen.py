"""What the terminal reviewer shows and how it reads what is typed; no I/O.

:func:`request_view` renders one review request (the record, the model's prediction
with its top-k probabilities, why it is asked), :func:`counts_line` the queue's counts,
and :func:`choose_label` turns a key or a typed label into a label (or says why not).
:mod:`autolabel.tools.terminal_review` runs them against the queue.

>>> from rich.console import Console
>>> from autolabel.core.messages import LabelProbability, Record, ReviewReason, ReviewRequest
>>> request = ReviewRequest(id="r7", request_id="q", record=Record(id="r7", text="A grey cat"),
...     reason=ReviewReason.AUDIT, priority=0.2, model_version=3, predicted_label="cat",
...     probabilities=[LabelProbability(label="cat", probability=0.9),
...                    LabelProbability(label="dog", probability=0.1)])
>>> console = Console(width=60, no_color=True, record=True, file=open("/dev/null", "w"))
>>> console.print(request_view(request))
>>> print(console.export_text())  # doctest: +NORMALIZE_WHITESPACE
╭─────────────────── record r7 · audit ────────────────────╮
│ A grey cat                                               │
│                                                          │
│ model v3 predicts cat                                    │
│   1  cat   90.0%  ██████████████████                     │
│   2  dog   10.0%  ██                                     │
│ audit: a random check of a label the model would         │
│ auto-accept                                              │
╰──────────────────────────────────────────────────────────╯
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import JsonValue
from rich.console import Group, RenderableType
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from autolabel.core.messages import Record, ReviewReason, ReviewRequest
from autolabel.review.queue import QueueStats

MAX_TEXT_LINES = 20
MAX_FEATURES = 60
BAR_WIDTH = 20

WHY = {
    ReviewReason.AUDIT: "audit: a random check of a label the model would auto-accept",
    ReviewReason.UNCERTAIN: "uncertain: the model is not sure enough to label it alone",
    ReviewReason.COLD_START: "cold start: the model has not learned enough to label alone yet",
    ReviewReason.DRIFT: "drift: the data changed, so every record is checked for now",
}

KEYS = """\
[bold]Enter[/]   accept the model's label        [bold]1[/]-[bold]9[/]  pick that label of the top k
[bold]type[/]    any label, Tab completes, Enter  [bold]/[/]     type a label starting with s, u, q
[bold]s[/]       skip (back to the queue)         [bold]u[/]     undo the last answer (while held)
[bold]q[/]       quit (sends the held answer)     [bold]?[/]     these keys
Each answer is held {undo:g} s, or until you answer the next request, before it is
sent: [bold]u[/] takes it back until then. Only what was sent is committed."""


def keys_help(undo_s: float) -> str:
    """The keys, as rich markup."""
    return KEYS.format(undo=undo_s)


def request_view(
    request: ReviewRequest, *, now: datetime | None = None, subtitle: str | None = None
) -> Panel:
    """One review request as a panel: the record, the prediction, the reason; the
    ``subtitle`` (the queue's counts) in its bottom border."""
    parts: list[RenderableType] = [record_view(request.record), Text("")]
    parts.append(prediction_view(request))
    why = WHY.get(request.reason, request.reason.value)
    parts.append(Text(why, style="dim"))
    if now is not None:
        parts.append(Text(f"waiting {_age(now - request.requested_at)}", style="dim"))
    title = f"record {escape(request.id)} · {request.reason.value}"
    style = "yellow" if request.reason is ReviewReason.AUDIT else "blue"
    return Panel(
        Group(*parts),
        title=title,
        subtitle=escape(subtitle) if subtitle else None,
        border_style=style,
    )


def record_view(record: Record) -> RenderableType:
    """What a person reads of a record: its ``display`` (metadata), text, features or
    embedding."""
    parts: list[RenderableType] = []
    display = (record.metadata or {}).get("display")
    if display is not None:
        parts.append(display_view(display))
    if record.text is not None:
        parts.append(Text(_clip(record.text)))
    elif record.features is not None:
        parts.append(features_table(record.features))
    elif record.embedding is not None:
        head = ", ".join(f"{v:.3g}" for v in record.embedding[:8])
        more = ", ..." if len(record.embedding) > 8 else ""
        parts.append(Text(f"embedding of {len(record.embedding)} numbers: [{head}{more}]"))
    return Group(*parts)


def display_view(display: JsonValue) -> RenderableType:
    """A producer's ``display`` field: a link (an image's URL, say) or a short rendering."""
    if isinstance(display, str):
        if display.startswith(("http://", "https://", "file://")):
            return Text.assemble(("view: ", "bold"), (display, f"link {display}"))
        return Text(_clip(display))
    return Text(_clip(json.dumps(display, ensure_ascii=False, indent=1)))


def features_table(features: dict[str, bool | int | float | str]) -> Table:
    """Features as name/value columns, in two pairs of columns when there are many."""
    items = list(features.items())[:MAX_FEATURES]
    pairs = 2 if len(items) > 8 else 1
    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
    for _ in range(pairs):
        table.add_column(style="dim", no_wrap=True)
        table.add_column(justify="right", no_wrap=True)
    rows = (len(items) + pairs - 1) // pairs
    for row in range(rows):
        cells: list[str] = []
        for column in range(pairs):
            index = column * rows + row
            if index < len(items):
                name, value = items[index]
                cells += [escape(name), escape(_value(value))]
            else:
                cells += ["", ""]
        table.add_row(*cells)
    if len(features) > MAX_FEATURES:
        table.add_row(f"... {len(features) - MAX_FEATURES} more", "", *[""] * (2 * pairs - 2))
    return table


def prediction_view(request: ReviewRequest) -> RenderableType:
    """The model's label and its top-k probabilities, numbered for the keys 1-9."""
    if request.predicted_label is None:
        return Text(f"model v{request.model_version}: no prediction yet; type the label")
    lines: list[RenderableType] = [
        Text.assemble(
            f"model v{request.model_version} predicts ",
            (request.predicted_label, "bold"),
        )
    ]
    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(justify="right", style="bold")
    table.add_column()
    table.add_column(justify="right")
    table.add_column()
    for n, entry in enumerate(request.probabilities[:9], start=1):
        bar = "█" * max(1, round(entry.probability * BAR_WIDTH)) if entry.probability else ""
        table.add_row(f"  {n}", escape(entry.label), f"{entry.probability:.1%}", bar)
    lines.append(table)
    return Group(*lines)


def counts_line(stats: QueueStats, *, held: int = 0) -> str:
    """The counts a reviewer watches: backlog, answered, audits and disagreement.

    >>> from autolabel.review.queue import QueueStats
    >>> s = QueueStats(buffered=3, claimed=1, lag=40, answered=12, audits_answered=4,
    ...                audit_disagreements=1, answered_by_reason={}, buffered_by_reason={},
    ...                partitions=[0])
    >>> counts_line(s, held=1)
    'backlog 43 · answered 12 (+1 held) · audits 4, disagreed 1 (25%)'
    """
    held_text = f" (+{held} held)" if held else ""
    rate = stats.audit_disagreement_rate
    audits = (
        f"audits {stats.audits_answered}, disagreed {stats.audit_disagreements} ({rate:.0%})"
        if rate is not None
        else "audits 0"
    )
    return f"backlog {stats.backlog} · answered {stats.answered}{held_text} · {audits}"


@dataclass(frozen=True, slots=True)
class Choice:
    """What a key or a typed label means: a label, or a reason it cannot be used."""

    label: str | None
    problem: str | None = None
    new: bool = False  # a label never seen: confirm it first


def choose_label(
    text: str,
    request: ReviewRequest,
    known: Collection[str],
    classes: Collection[str] = (),
) -> Choice:
    """The label meant by ``text``: empty = the prediction, a digit = that top-k entry,
    otherwise a label (a leading ``/`` is dropped; a unique prefix of a known label
    completes it). ``classes``: the only labels allowed, when configured.

    >>> from autolabel.core.messages import LabelProbability, Record, ReviewRequest
    >>> r = ReviewRequest(id="a", request_id="q", record=Record(id="a", text="t"),
    ...     reason=ReviewReason.UNCERTAIN, priority=0.5, model_version=1, predicted_label="cat",
    ...     probabilities=[LabelProbability(label="cat", probability=0.6),
    ...                    LabelProbability(label="dog", probability=0.4)])
    >>> [choose_label(t, r, {"cat", "dog", "sky"}).label for t in ("", "2", "sk", "/sky")]
    ['cat', 'dog', 'sky', 'sky']
    >>> choose_label("3", r, {"cat"}).problem
    'no label 3 in the top 2'
    >>> choose_label("bird", r, {"cat"}), choose_label("bird", r, {"cat"}, {"cat"}).problem
    (Choice(label='bird', problem=None, new=True), "'bird' is not one of the classes: cat")
    """
    typed = text.strip()
    if not typed:
        if request.predicted_label is None:
            return Choice(None, "no prediction to accept: type the label")
        return Choice(request.predicted_label)
    if typed.isdigit() and len(typed) == 1:
        n = int(typed)
        top: Sequence[str] = [p.label for p in request.probabilities]
        if not 1 <= n <= len(top):
            return Choice(None, f"no label {n} in the top {len(top)}")
        return Choice(top[n - 1])
    typed = typed.removeprefix("/").strip()
    if not typed:
        return Choice(None, "type a label after /")
    allowed = set(classes) or set(known)
    if typed in allowed:
        return Choice(typed)
    completions = sorted(label for label in allowed if label.lower().startswith(typed.lower()))
    if len(completions) == 1:
        return Choice(completions[0])
    if classes:
        return Choice(None, f"{typed!r} is not one of the classes: {', '.join(sorted(classes))}")
    if len(completions) > 1:
        return Choice(None, f"{typed!r} could be {', '.join(completions)}")
    return Choice(typed, new=True)


def _value(value: bool | int | float | str) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _clip(text: str) -> str:
    lines = text.splitlines() or [text]
    if len(lines) <= MAX_TEXT_LINES:
        return text
    return "\n".join(lines[:MAX_TEXT_LINES]) + f"\n... {len(lines) - MAX_TEXT_LINES} more lines"


def _age(delta: timedelta) -> str:
    seconds = max(0.0, delta.total_seconds())
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"
