"""Run a function over items in worker processes, results in input order."""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _quiet() -> None:
    # The controller logs each drift; replays report them in their results instead.
    logging.getLogger("autolabel").setLevel(logging.ERROR)


def map_jobs(
    fn: Callable[[T], R],
    items: Sequence[T],
    workers: int,
    on_done: Callable[[T, R], None] | None = None,
) -> list[R]:
    """``fn`` over ``items`` in ``workers`` processes (in this one when 1), results in
    input order; ``on_done`` is called as each finishes."""
    results: dict[int, R] = {}
    if workers <= 1:
        for i, item in enumerate(items):
            results[i] = fn(item)
            if on_done is not None:
                on_done(item, results[i])
        return [results[i] for i in range(len(items))]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_quiet) as pool:
        futures: dict[Future[R], int] = {pool.submit(fn, item): i for i, item in enumerate(items)}
        for future in as_completed(futures):
            i = futures[future]
            results[i] = future.result()
            if on_done is not None:
                on_done(items[i], results[i])
    return [results[i] for i in range(len(items))]
