"""Building named tuples on the hot path.

``new_tuple(Kind, (a, b, c))`` makes the same ``Kind(a, b, c)`` without running the
``__new__`` that :class:`typing.NamedTuple` generates in Python: the labeler builds
several tuples per record, and that call is a measurable share of its time.

>>> from typing import NamedTuple
>>> class Pair(NamedTuple):
...     left: int
...     right: int
>>> new_tuple(Pair, (1, 2)) == Pair(1, 2), type(new_tuple(Pair, (1, 2))) is Pair
(True, True)
"""

from __future__ import annotations

new_tuple = tuple.__new__
