"""Who may use the review page: the sign-in token, sessions, CSRF tokens, login throttling.

Pure and synchronous (no web framework), so every rule is a plain function to test.

* :func:`token_matches` compares a submitted token with the configured one in constant
  time (:func:`hmac.compare_digest` over the UTF-8 bytes).
* :class:`Sessions` keeps signed-in reviewers in memory: an unguessable session id (the
  cookie, 256 random bits) maps to the reviewer's name, a CSRF token and an expiry. A
  restart of the server signs everyone out; there is nothing to leak on disk.
* :class:`LoginThrottle` refuses further attempts from an address after a few wrong
  tokens in a short window.

>>> sessions = Sessions(ttl_s=3600, clock=lambda: 0.0)
>>> s = sessions.create("ada")
>>> sessions.get(s.id) is s, sessions.csrf_ok(s, s.csrf), sessions.csrf_ok(s, "guess")
(True, True, False)
>>> sessions.end(s.id); sessions.get(s.id) is None
True
"""

from __future__ import annotations

import hmac
import secrets
import time
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

MAX_SESSIONS = 10_000
"""Sessions kept at most; the oldest sign-in is dropped first beyond it."""
MAX_REVIEWER_CHARS = 64


def token_matches(submitted: str, expected: bytes) -> bool:
    """Whether ``submitted`` is the configured token, in time independent of where they differ.

    >>> token_matches("correct-horse-battery", b"correct-horse-battery")
    True
    >>> token_matches("correct-horse-battery!", b"correct-horse-battery"), token_matches("", b"x")
    (False, False)
    """
    return hmac.compare_digest(submitted.encode("utf-8", "surrogatepass"), expected)


class InvalidReviewer(ValueError):
    """A reviewer name the page does not accept; the message says why."""


def reviewer_name(raw: str) -> str:
    """The reviewer name as answers will carry it: trimmed, 1 to 64 printable characters.

    >>> reviewer_name("  Ada Lovelace ")
    'Ada Lovelace'
    >>> reviewer_name("")
    Traceback (most recent call last):
    ...
    autolabel.review.web.sessions.InvalidReviewer: enter your name: answers carry it
    >>> reviewer_name("a\\x00b")
    Traceback (most recent call last):
    ...
    autolabel.review.web.sessions.InvalidReviewer: the name may not contain control characters
    """
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise InvalidReviewer("enter your name: answers carry it")
    if len(name) > MAX_REVIEWER_CHARS:
        raise InvalidReviewer(f"the name is longer than {MAX_REVIEWER_CHARS} characters")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidReviewer("the name may not contain control characters")
    return name


@dataclass(slots=True)
class Session:
    """One signed-in browser: ``id`` is its cookie, ``csrf`` what its POSTs must echo."""

    id: str
    reviewer: str
    csrf: str
    expires_at: float


class Sessions:
    """Signed-in reviewers, in memory, each for ``ttl_s`` seconds.

    Parameters
    ----------
    ttl_s
        How long a sign-in lasts.
    clock
        Seconds, monotonic (tests pass their own).
    max_sessions
        Most sessions kept; the oldest is dropped beyond it.
    """

    def __init__(
        self,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_sessions = max_sessions
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_id)

    def create(self, reviewer: str) -> Session:
        """A new session for ``reviewer`` (already checked with :func:`reviewer_name`)."""
        session = Session(
            id=secrets.token_urlsafe(32),
            reviewer=reviewer,
            csrf=secrets.token_urlsafe(32),
            expires_at=self.clock() + self.ttl_s,
        )
        self._by_id[session.id] = session
        while len(self._by_id) > self.max_sessions:
            self._by_id.popitem(last=False)
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id; None when unknown or expired.

        >>> now = [0.0]
        >>> sessions = Sessions(ttl_s=10, clock=lambda: now[0])
        >>> s = sessions.create("ada")
        >>> now[0] = 11.0
        >>> sessions.get(s.id) is None, len(sessions)
        (True, 0)
        """
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        if session.expires_at <= self.clock():
            del self._by_id[session_id]
            return None
        return session

    def end(self, session_id: str) -> None:
        """Sign out (nothing happens for an unknown id)."""
        self._by_id.pop(session_id, None)

    def reviewers(self) -> set[str]:
        """Names with a live session."""
        now = self.clock()
        return {s.reviewer for s in self._by_id.values() if s.expires_at > now}

    @staticmethod
    def csrf_ok(session: Session, submitted: str | None) -> bool:
        """Whether a POST's CSRF token is this session's (constant time)."""
        if not submitted:
            return False
        return hmac.compare_digest(submitted.encode(), session.csrf.encode())


class LoginThrottle:
    """At most ``max_failures`` wrong tokens per address in ``window_s`` seconds.

    >>> now = [0.0]
    >>> throttle = LoginThrottle(max_failures=2, window_s=60, clock=lambda: now[0])
    >>> throttle.failed("10.0.0.1"); throttle.failed("10.0.0.1")
    >>> throttle.retry_after("10.0.0.1"), throttle.retry_after("10.0.0.2")
    (60, 0)
    >>> now[0] = 61.0
    >>> throttle.retry_after("10.0.0.1")
    0
    """

    def __init__(
        self,
        max_failures: int = 10,
        window_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try again; 0 when it may now."""
        recent = self._recent(address)
        if len(recent) < self.max_failures:
            return 0
        return max(1, int(recent[0] + self.window_s - self.clock() + 0.999))

    def failed(self, address: str) -> None:
        """Count one wrong token from ``address``."""
        recent = self._recent(address)
        recent.append(self.clock())
        self._failures[address] = recent
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)

    def _recent(self, address: str) -> deque[float]:
        recent = self._failures.get(address, deque())
        horizon = self.clock() - self.window_s
        while recent and recent[0] <= horizon:
            recent.popleft()
        return recent
