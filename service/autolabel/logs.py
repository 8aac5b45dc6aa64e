"""Logging for every command: one handler on the root logger, set up once at start.

:func:`configure` sends every logger's records (autolabel's, and Faust's, mode's and
aiokafka's, which all reach the root logger) to standard error, as text lines or, with
``AUTOLABEL_LOG_FORMAT=json``, as one JSON object per line (:class:`JsonFormatter`):
``time``, ``level``, ``logger``, ``message``, then the record's structured extras;
an extra whose name looks secret (key, password, secret, token) is redacted.

Repeated warnings are rate-limited in the worker. When the brokers go away, Kafka
clients log the same complaint for every retry; 45 s of outage used to add thousands
of lines. :class:`RateLimit` lets the first ``burst`` records of each (logger, message
template, level) through per ``period_s`` and folds the rest into a count, reported
on the next one that passes.

>>> import logging
>>> limit = RateLimit(period_s=60.0, burst=2, clock=iter(range(100)).__next__)
>>> def rec(msg="broker %s down", arg="b1"):
...     return logging.LogRecord("kafka", logging.WARNING, __file__, 1, msg, (arg,), None)
>>> [limit.filter(rec()) for _ in range(4)]
[True, True, False, False]
>>> limit = RateLimit(period_s=2.0, burst=1, clock=iter([0, 1, 1.5, 5]).__next__)
>>> [limit.filter(rec()) for _ in range(3)]
[True, False, False]
>>> r = rec(); limit.filter(r), r.getMessage()
(True, 'broker b1 down (2 similar messages suppressed in the last 2 s)')
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from autolabel.settings import SECRET_NAME

MAX_KEYS = 1000
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "[redacted]"
_RECORD_ATTRIBUTES = frozenset(
    set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line.

    >>> record = logging.LogRecord("autolabel", logging.INFO, __file__, 1, "sent %d", (3,), None)
    >>> record.created = 0.0
    >>> record.topic, record.sasl_password = "autolabel.labels", "hunter2"
    >>> entry = json.loads(JsonFormatter().format(record))
    >>> list(entry)
    ['time', 'level', 'logger', 'message', 'topic', 'sasl_password']
    >>> entry["time"], entry["message"], entry["topic"], entry["sasl_password"]
    ('1970-01-01T00:00:00.000Z', 'sent 3', 'autolabel.labels', '[redacted]')
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and not name.startswith("_") and name not in entry:
                entry[name] = REDACTED if SECRET_NAME.search(name) else _plain(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, allow_nan=False, default=str)


def _plain(value: object) -> object:
    """A value JSON can hold: non-finite numbers and other objects become their text
    (a ``SecretStr``'s text is its mask)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return str(value)
    return value


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs (so it can replace its own, and only it)."""


def configure(
    level: str, log_format: Literal["text", "json"], stream: TextIO | None = None
) -> logging.Handler:
    """Send every record at ``level`` and above to ``stream`` (standard error), formatted.

    Installs one handler on the root logger (replacing one an earlier call installed),
    and routes Python's warnings through logging, so with ``json`` every line the
    process logs is one JSON object. Call it once, at start, before Faust runs (the
    worker tells Faust not to set up logging of its own).
    """
    handler = _Handler(stream if stream is not None else sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    return handler


class RateLimit(logging.Filter):
    """At most ``burst`` records per message template and ``period_s``, from ``level`` up."""

    def __init__(
        self,
        period_s: float = 10.0,
        burst: int = 3,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.period_s = period_s
        self.burst = burst
        self.level = level
        self._clock = clock
        self._windows: OrderedDict[tuple[str, str, int], list[float]] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level:
            return True
        key = (record.name, str(record.msg), record.levelno)
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window[0] >= self.period_s:
            suppressed = int(window[2]) if window is not None else 0
            self._windows[key] = [now, 1, 0]
            self._windows.move_to_end(key)
            while len(self._windows) > MAX_KEYS:
                self._windows.popitem(last=False)
            if suppressed:
                record.msg = (
                    f"{record.getMessage()} ({suppressed} similar messages suppressed in the"
                    f" last {self.period_s:g} s)"
                )
                record.args = None
            return True
        window[1] += 1
        if window[1] <= self.burst:
            return True
        window[2] += 1
        return False


def install(limit: RateLimit | None = None) -> RateLimit:
    """Attach one rate limit to every handler of the root logger (idempotent per handler)."""
    limit = limit or RateLimit()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RateLimit) for f in handler.filters):
            handler.addFilter(limit)
    return limit
