"""Progress bars with an ETA for the long commands (``produce``, ``seed``, ``evaluate``).

On a terminal, a live bar: what, bar, done/total, any extra columns, elapsed time and
the time remaining. Elsewhere (a CI log, a pipe) nothing can be redrawn, so a plain
line every ``every_s`` seconds says the same (rich draws the final state at the end).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

LOG_EVERY_S = 15.0


class LoggedProgress(Progress):
    """A rich :class:`~rich.progress.Progress` that also writes lines where it cannot draw."""

    every_s = LOG_EVERY_S

    def __init__(self, *columns: ProgressColumn | str, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self._logged_at: dict[TaskID, float] = {}
        self._drawn = self.console.is_terminal

    def update(self, task_id: TaskID, **kwargs: Any) -> None:
        super().update(task_id, **kwargs)
        self._tick(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._tick(task_id)

    def _tick(self, task_id: TaskID) -> None:
        if self._drawn:
            return
        now = time.monotonic()
        if now - self._logged_at.setdefault(task_id, now) >= self.every_s:
            self._logged_at[task_id] = now
            self._line(next(t for t in self.tasks if t.id == task_id))

    def _line(self, task: Task) -> None:
        total = f"/{task.total:,.0f}" if task.total is not None else ""
        remaining = task.time_remaining
        eta = f", ETA {remaining:.0f} s" if remaining is not None and not task.finished else ""
        self.console.print(
            f"{task.description}: {task.completed:,.0f}{total},"
            f" {task.elapsed or 0.0:.0f} s elapsed{eta}",
            highlight=False,
        )


def progress_bar(
    console: Console, *extra: ProgressColumn, transient: bool = False
) -> LoggedProgress:
    """A progress display with done/total, ``extra`` columns, elapsed time and ETA."""
    return LoggedProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        *extra,
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )
