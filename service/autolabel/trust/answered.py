"""The review requests already answered: what makes an answer re-sent for one request
be learned once.

The learner keeps the last ``window`` requests it learned an answer to, by the MAC of
their signed ticket, and every snapshot carries them (a restart or a new learner must
not learn a re-sent answer again). A mature deployment's window is 100,000 requests: as
a dict of 16-byte keys it pickled key by key, on the learner's loop, into ~1.7 MiB that
zlib cannot shrink (the keys are random), with every snapshot. So only the first
``KEY_BYTES`` of each MAC are kept (to whoever lacks the deployment's key they are as
random as the rest: two requests share them with probability ~``n² / 2**65``, 3e-10 for
a full window, and then the second answer is counted as a duplicate), and the window
pickles as one bytes string.

>>> answered = AnsweredRequests(window=2)
>>> for mac in (b"A" * 16, b"B" * 16, b"C" * 16):
...     answered.add(mac)
>>> b"A" * 16 in answered, b"C" * 16 in answered, len(answered)
(False, True, 2)
>>> import pickle
>>> pickle.loads(pickle.dumps(answered)) == answered
True
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

KEY_BYTES = 8


class AnsweredRequests:
    """The last ``window`` request keys added, oldest first (``window`` 0: none kept)."""

    __slots__ = ("_keys", "window")

    def __init__(self, window: int, packed: bytes = b"") -> None:
        self.window = window
        n = KEY_BYTES
        self._keys: OrderedDict[bytes, None] = OrderedDict.fromkeys(
            packed[i : i + n] for i in range(0, len(packed) - len(packed) % n, n)
        )
        self._trim()

    @classmethod
    def of(cls, keys: Iterable[bytes], window: int) -> AnsweredRequests:
        """A window holding ``keys`` (oldest first), e.g. from an older snapshot's dict."""
        out = cls(window)
        for key in keys:
            out.add(key)
        return out

    def __contains__(self, key: bytes) -> bool:
        return key[:KEY_BYTES] in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AnsweredRequests):
            return NotImplemented
        return self.window == other.window and list(self._keys) == list(other._keys)

    __hash__ = None  # type: ignore[assignment]  # mutable

    def add(self, key: bytes) -> None:
        """Remember ``key``; the oldest key goes once there are more than ``window``."""
        if self.window <= 0:
            return
        self._keys[key[:KEY_BYTES]] = None
        self._trim()

    def _trim(self) -> None:
        keys = self._keys
        while len(keys) > max(self.window, 0):
            keys.popitem(last=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # One bytes string: pickling (on the learner's loop) and unpickling are a copy.
        return (AnsweredRequests, (self.window, b"".join(self._keys)))
