"""Streams to try the service on, written as CSV files ``evaluate``/``produce`` read.

River ships them (no download): ImageSegments (2,310 rows, 7 classes),
Phishing (1,250 rows, 2 classes), and two synthetic 10,000-row streams with an
abrupt concept drift at row 5,000: a rotating hyperplane, and SEA whose label
rule flips to its opposite (the hard case).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from river import datasets
from river.datasets import synth

NAMES = ("image_segments", "phishing", "hyperplane_drift", "sea_flip_drift")
DRIFT_ROWS = 10_000
DRIFT_AT = 5_000


def rows(name: str) -> Iterator[dict[str, Any]]:
    """Rows of a named stream: feature columns, then ``label``."""
    if name == "image_segments":
        yield from _labeled(datasets.ImageSegments())
    elif name == "phishing":
        yield from _labeled(datasets.Phishing())
    elif name == "hyperplane_drift":
        # The separating hyperplane turns abruptly to a new random orientation.
        before = synth.Hyperplane(seed=1, n_features=4, noise_percentage=0.0)
        after = synth.Hyperplane(seed=5, n_features=4, noise_percentage=0.0)
        yield from _labeled(_abrupt(before, after))
    elif name == "sea_flip_drift":
        # SEA concept 0, then its exact opposite: every confident prediction turns wrong.
        sea = synth.SEA(variant=0, seed=7)
        flipped = ((x, not y) for x, y in synth.SEA(variant=0, seed=8))
        yield from _labeled(_abrupt(sea, flipped))
    else:
        raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")


def _abrupt(
    before: Iterable[tuple[dict[str, Any], Any]], after: Iterable[tuple[dict[str, Any], Any]]
) -> Iterator[tuple[dict[str, Any], Any]]:
    """``DRIFT_AT`` rows of one concept, then the other, ``DRIFT_ROWS`` in all.

    (river's ``ConceptDriftStream`` overflows at ``width=1``, hence this.)
    """
    yield from itertools.islice(before, DRIFT_AT)
    yield from itertools.islice(after, DRIFT_ROWS - DRIFT_AT)


def _labeled(stream: Iterable[tuple[dict[str, Any], Any]]) -> Iterator[dict[str, Any]]:
    for i, (x, y) in enumerate(stream):
        features = {f"x{k}" if isinstance(k, int) else str(k): v for k, v in x.items()}
        yield {"id": f"r{i:06d}", **features, "label": str(y)}


def export(name: str, path: Path) -> int:
    """Write a named stream as CSV; returns the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", newline="") as handle:
        writer: csv.DictWriter[str] | None = None
        for row in rows(name):
            if writer is None:
                writer = csv.DictWriter(handle, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
            n += 1
    return n
