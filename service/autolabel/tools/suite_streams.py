"""The drift suite: labeled streams whose changes are known, built with fixed seeds.

Every stream comes from River's synthetic generators (``river.datasets.synth``) or its
bundled data (ImageSegments, Phishing): nothing is downloaded. :func:`build` returns a
:class:`SuiteStream`: the rows, where the concept changes (``change_points``), what kind
of stream it is, and what it tests. ``variant`` makes "the same kind of stream,
generated differently": variant 0 is the suite (its streams and change points are the
ones listed in ``bench/suite/``), any other variant draws other seeds, other swapped
classes or functions and other change points from the same ranges, so the work can be
checked on streams nobody tuned to. ``scale`` shortens every stream (change points
scale with it) for quick runs.

Kinds:

- ``stationary``: one concept throughout; any order of the rows is as likely.
- ``abrupt``: the concept changes at each change point (the first row of the new
  concept); each segment between change points is stationary.
- ``gradual``: the concept starts to drift at the change point and keeps drifting.
- ``covariate_shift``: the inputs move to another region at the change point, the
  labeling rule does not change: a drift alarm there is a false alarm.

>>> s = build("stagger_changes", scale=0.1)
>>> len(s.rows), s.change_points, s.kind
(900, (300, 600), 'abrupt')
>>> build("stagger_changes", scale=0.1).rows == s.rows  # fixed seeds
True
>>> build("stagger_changes", variant=1, scale=0.1).change_points != s.change_points
True
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import random
import statistics
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from autolabel.core.messages import Record

if TYPE_CHECKING:  # River takes seconds to import: only when a stream is built
    from river.datasets import synth

Kind = Literal["stationary", "abrupt", "gradual", "covariate_shift"]
Features = dict[str, Any]
Row = tuple[Features, str]
Example = tuple[Record, str]
T = TypeVar("T")

SEGMENT_JITTER = 0.05
"""ImageSegments-like rows: resampled rows plus Gaussian noise of this share of each
feature's standard deviation (so no row repeats exactly)."""

CONFIDENT_SEGMENTS = ("sky", "grass", "path", "brickface")
"""ImageSegments classes the default model labels most confidently (at target 0.95 in
file order: 98-100% precision, the four most auto-labeled classes). Swaps are drawn
among them."""

LED_NOISE = 0.03
"""LED streams: each segment flips with probability ``LED_NOISE - 0.01`` (River's rule)."""


@dataclass(frozen=True, slots=True)
class SuiteStream:
    """One stream of the suite: rows in order and what is known about them."""

    name: str
    variant: int
    kind: Kind
    tests: str  # what the stream tests, one line
    rows: list[Row]
    change_points: tuple[int, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)  # seeds, classes, functions
    clean_labels: list[str] | None = None  # the labels before label noise was added
    swap: bool = False  # confidently predicted classes swap at a change point

    @property
    def shuffle_segments(self) -> tuple[int, ...] | None:
        """Where shuffled orders must keep the rows apart: ``()`` to shuffle the whole
        stream, the change points to shuffle within segments, ``None`` when no other
        order keeps the stream's meaning (gradual drift)."""
        if self.kind == "stationary":
            return ()
        if self.kind == "gradual":
            return None
        return self.change_points

    def examples(self) -> list[Example]:
        """The rows as records (ids ``r000000``, ...) with their labels."""
        return [
            (Record(id=f"r{i:06d}", features=features), label)
            for i, (features, label) in enumerate(self.rows)
        ]

    def describe(self) -> dict[str, Any]:
        """Everything but the rows, as JSON-ready values."""
        return {
            "name": self.name,
            "variant": self.variant,
            "kind": self.kind,
            "tests": self.tests,
            "rows": len(self.rows),
            "change_points": list(self.change_points),
            "swap": self.swap,
            "details": dict(self.details),
        }


@dataclass(frozen=True, slots=True)
class _Built:
    rows: list[Row]
    change_points: tuple[int, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    clean_labels: list[str] | None = None


@dataclass(frozen=True, slots=True)
class _Spec:
    rows: int  # at scale 1
    kind: Kind
    tests: str
    make: Callable[[int, int, random.Random], _Built]  # (rows, variant, rng)
    swap: bool = False


def build(name: str, variant: int = 0, *, scale: float = 1.0) -> SuiteStream:
    """The stream ``name`` of the suite, generated for ``variant`` (0: the suite)."""
    spec = SPECS.get(name)
    if spec is None:
        raise ValueError(f"unknown stream {name!r}; choose one of {', '.join(NAMES)}")
    if variant < 0:
        raise ValueError(f"variant must be ≥ 0, got {variant}")
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    n = max(100, round(spec.rows * scale))
    built = spec.make(n, variant, random.Random(f"suite/{name}/{variant}"))
    return SuiteStream(
        name=name,
        variant=variant,
        kind=spec.kind,
        tests=spec.tests,
        rows=built.rows,
        change_points=built.change_points,
        details=built.details,
        clean_labels=built.clean_labels,
        swap=spec.swap,
    )


def _seed(rng: random.Random) -> int:
    return rng.randrange(2**31)


def _at(n: int, variant: int, rng: random.Random, share: float, spread: float) -> int:
    """A change point: ``share`` of the way for variant 0, else drawn within ±spread."""
    if variant:
        share = rng.uniform(share - spread, share + spread)
    return round(n * share)


def _pick(
    variant: int,
    default: T,
    draw: Callable[[], T],
    same: Callable[[T, T], bool] = operator.eq,
) -> T:
    """Variant 0's choice; another variant draws until its choice differs from it (other
    swapped classes, another late class, other functions)."""
    if not variant:
        return default
    while True:
        value = draw()
        if not same(value, default):
            return value


def _same_set(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return set(a) == set(b)


def _features(x: Mapping[Any, Any]) -> Features:
    return {f"x{k}" if isinstance(k, int) else str(k): v for k, v in x.items()}


def _take(stream: Iterable[tuple[Mapping[Any, Any], Any]], n: int) -> list[Row]:
    return [(_features(x), str(y)) for x, y in itertools.islice(stream, n)]


def _concat(*parts: tuple[Iterable[tuple[Mapping[Any, Any], Any]], int]) -> _Built:
    """Consecutive parts of the given lengths; a change point where each part starts."""
    rows: list[Row] = []
    points: list[int] = []
    for stream, n in parts:
        if rows:
            points.append(len(rows))
        rows.extend(_take(stream, n))
    return _Built(rows, tuple(points))


# -- bundled data ---------------------------------------------------------------------


def _bundled(dataset: str) -> Callable[[int, int, random.Random], _Built]:
    def make(n: int, variant: int, rng: random.Random) -> _Built:
        from river import datasets

        rows = _take(getattr(datasets, dataset)(), 10**9)
        if variant:  # another order of the same rows
            rng.shuffle(rows)
        return _Built(rows[:n], (), {"order": "file" if not variant else "shuffled"})

    return make


@functools.cache
def _segments() -> tuple[tuple[Row, ...], dict[str, float]]:
    """ImageSegments rows and each feature's standard deviation."""
    from river import datasets

    rows = tuple(_take(datasets.ImageSegments(), 10**9))
    names = list(rows[0][0])
    std = {k: statistics.pstdev(float(r[0][k]) for r in rows) for k in names}
    return rows, std


def _segments_like(rng: random.Random, pool: list[Row], n: int) -> list[Row]:
    """``n`` rows resampled from ``pool`` (with replacement) with a little noise."""
    _, std = _segments()
    out: list[Row] = []
    for _ in range(n):
        features, label = pool[rng.randrange(len(pool))]
        noisy = {
            k: float(v) + rng.gauss(0.0, SEGMENT_JITTER * std[k]) if std[k] else v
            for k, v in features.items()
        }
        out.append((noisy, label))
    return out


def _segments_swap(n: int, variant: int, rng: random.Random) -> _Built:
    a, b = _pick(variant, ["sky", "grass"], lambda: rng.sample(CONFIDENT_SEGMENTS, 2), _same_set)
    at = _at(n, variant, rng, 0.5, 0.1)
    rows = _segments_like(rng, list(_segments()[0]), n)
    swap = {a: b, b: a}
    rows[at:] = [(x, swap.get(y, y)) for x, y in rows[at:]]
    return _Built(rows, (at,), {"swapped": [a, b], "jitter": SEGMENT_JITTER})


def _late_class(n: int, variant: int, rng: random.Random) -> _Built:
    segments = _segments()[0]
    late = _pick(variant, "cement", lambda: rng.choice(sorted({y for _, y in segments})))
    at = _at(n, variant, rng, 0.5, 0.1)
    before = _segments_like(rng, [r for r in segments if r[1] != late], at)
    after = _segments_like(rng, list(segments), n - at)
    return _Built(before + after, (at,), {"late_class": late, "jitter": SEGMENT_JITTER})


# -- synthetic: abrupt ----------------------------------------------------------------


def _hyperplane_drift(n: int, variant: int, rng: random.Random) -> _Built:
    # The separating hyperplane turns abruptly to a new random orientation.
    from river.datasets import synth

    first, second = (1, 5) if not variant else (_seed(rng), _seed(rng))
    at = _at(n, variant, rng, 0.5, 0.1)
    return _with(
        _concat(
            (synth.Hyperplane(seed=first, n_features=4, noise_percentage=0.0), at),
            (synth.Hyperplane(seed=second, n_features=4, noise_percentage=0.0), n - at),
        ),
        seeds=[first, second],
    )


def _sea_flip(n: int, variant: int, rng: random.Random) -> _Built:
    # SEA, then its exact opposite: every confident prediction turns wrong.
    from river.datasets import synth

    sea = _pick(variant, 0, lambda: rng.randrange(4))
    first, second = (7, 8) if not variant else (_seed(rng), _seed(rng))
    at = _at(n, variant, rng, 0.5, 0.1)
    flipped = ((x, not y) for x, y in synth.SEA(variant=sea, seed=second))
    return _with(
        _concat((synth.SEA(variant=sea, seed=first), at), (flipped, n - at)),
        sea_variant=sea,
        seeds=[first, second],
    )


def _led_swap(n: int, variant: int, rng: random.Random) -> _Built:
    from river.datasets import synth

    a, b = _pick(variant, [2, 6], lambda: rng.sample(range(10), 2), _same_set)
    seed = _seed(rng)
    at = _at(n, variant, rng, 0.5, 0.1)
    led = synth.LED(seed=seed, noise_percentage=LED_NOISE, irrelevant_features=True)
    swap = {a: b, b: a}
    rows = [
        (x, swap.get(y, y) if i >= at else y) for i, (x, y) in enumerate(itertools.islice(led, n))
    ]
    return _with(_concat((rows, n)), swapped=[str(a), str(b)], seed=seed, change=at)


AGRAWAL_SWITCHES = ((8, 1), (6, 4), (1, 8), (2, 6), (3, 8), (4, 6), (5, 8), (0, 6))
"""Pairs of Agrawal functions whose labels disagree on 42-52% of the rows (functions 7
and 9 are left out: almost all their labels are one class)."""


def _agrawal(n: int, variant: int, rng: random.Random) -> _Built:
    from river.datasets import synth

    first, second = _pick(variant, AGRAWAL_SWITCHES[0], lambda: rng.choice(AGRAWAL_SWITCHES))
    seed = _seed(rng)
    at = _at(n, variant, rng, 0.5, 0.1)
    return _with(
        _concat(
            (synth.Agrawal(classification_function=first, seed=seed), at),
            (synth.Agrawal(classification_function=second, seed=seed + 1), n - at),
        ),
        functions=[first, second],
        seed=seed,
    )


def _led_drift(n: int, variant: int, rng: random.Random) -> _Built:
    from river.datasets import synth

    drifted = _pick(variant, 4, lambda: rng.randint(3, 7))
    seed = _seed(rng)
    at = _at(n, variant, rng, 0.5, 0.1)

    def led(seed: int, n_drift: int) -> synth.LEDDrift:
        return synth.LEDDrift(
            seed=seed,
            noise_percentage=LED_NOISE,
            irrelevant_features=True,
            n_drift_features=n_drift,
        )

    return _with(
        _concat((led(seed, 0), at), (led(seed + 1, drifted), n - at)),
        drifted_attributes=drifted,
        seed=seed,
    )


def _stagger_rows(function: int, seed: int) -> Iterator[tuple[Features, int]]:
    from river.datasets import synth

    gen = synth.STAGGER(classification_function=function, seed=seed)
    names = {"size": gen.size_labels, "color": gen.color_labels, "shape": gen.shape_labels}
    for x, y in gen:  # categories as strings: one-hot encoded by the service
        yield {k: names[k][v] for k, v in x.items()}, y


def _three_parts(n: int, variant: int, rng: random.Random) -> tuple[int, int]:
    if not variant:
        return n // 3, 2 * n // 3
    return round(n * rng.uniform(0.25, 0.4)), round(n * rng.uniform(0.6, 0.75))


def _stagger(n: int, variant: int, rng: random.Random) -> _Built:
    functions = _pick(variant, [0, 1, 2], lambda: rng.sample([0, 1, 2], 3))
    seed = _seed(rng)
    a, b = _three_parts(n, variant, rng)
    return _with(
        _concat(
            (_stagger_rows(functions[0], seed), a),
            (_stagger_rows(functions[1], seed + 1), b - a),
            (_stagger_rows(functions[2], seed + 2), n - b),
        ),
        functions=functions,
        seed=seed,
    )


def _sea_variants(n: int, variant: int, rng: random.Random) -> _Built:
    from river.datasets import synth

    def draw() -> list[int]:
        variants = [rng.randrange(4)]
        while len(variants) < 3:
            variants.append(rng.choice([v for v in range(4) if v != variants[-1]]))
        return variants

    variants = _pick(variant, [0, 3, 2], draw)  # thresholds 8 → 9.5 → 7
    seed = _seed(rng)
    a, b = _three_parts(n, variant, rng)
    return _with(
        _concat(
            (synth.SEA(variant=variants[0], seed=seed), a),
            (synth.SEA(variant=variants[1], seed=seed + 1), b - a),
            (synth.SEA(variant=variants[2], seed=seed + 2), n - b),
        ),
        sea_variants=variants,
        seed=seed,
    )


# -- synthetic: gradual ---------------------------------------------------------------


def _rbf(seed: int, n_classes: int = 3, n_features: int = 5) -> synth.RandomRBFDrift:
    """RandomRBFDrift with one centroid per class: the first model seed from ``seed`` on
    whose centroids cover every class (so each class is one learnable blob)."""
    from river.datasets import synth

    for model_seed in itertools.count(seed):
        gen = synth.RandomRBFDrift(
            seed_model=model_seed,
            seed_sample=seed,
            n_classes=n_classes,
            n_features=n_features,
            n_centroids=n_classes,
            change_speed=0.0,
            n_drift_centroids=n_classes,
        )
        next(iter(gen))  # generates the centroids
        if len({c.class_label for c in gen.centroids}) == n_classes:
            return synth.RandomRBFDrift(
                seed_model=model_seed,
                seed_sample=seed,
                n_classes=n_classes,
                n_features=n_features,
                n_centroids=n_classes,
                change_speed=0.0,
                n_drift_centroids=n_classes,
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _start_drift(
    gen: Any, at: int, attribute: str, value: float
) -> Iterator[tuple[Mapping[Any, Any], Any]]:
    """The generator's rows, with ``attribute`` (read at every row) set at row ``at``."""
    for i, row in enumerate(gen):
        if i == at:
            setattr(gen, attribute, value)
        yield row


RBF_SPEED = 0.0002
HYPERPLANE_MAG = 0.001


def _rbf_gradual(n: int, variant: int, rng: random.Random) -> _Built:
    seed = 11 if not variant else _seed(rng)
    at = _at(n, variant, rng, 0.375, 0.075)
    gen = _rbf(seed)
    built = _concat((_start_drift(gen, at, "change_speed", RBF_SPEED), n))
    return _Built(
        built.rows,
        (at,),
        {"seed_sample": seed, "seed_model": gen.seed_model, "change_speed": RBF_SPEED},
    )


def _hyperplane_gradual(n: int, variant: int, rng: random.Random) -> _Built:
    from river.datasets import synth

    seed = 3 if not variant else _seed(rng)
    at = _at(n, variant, rng, 1 / 3, 0.075)
    gen = synth.Hyperplane(
        seed=seed, n_features=5, n_drift_features=3, mag_change=0.0, noise_percentage=0.0
    )
    built = _concat((_start_drift(gen, at, "mag_change", HYPERPLANE_MAG), n))
    return _Built(built.rows, (at,), {"seed": seed, "mag_change": HYPERPLANE_MAG, "sigma": 0.1})


# -- stationary with a twist ----------------------------------------------------------


def _minority(n: int, variant: int, rng: random.Random) -> _Built:
    """LED digits, one of them exactly 2% of the rows (at random places)."""
    from river.datasets import synth

    rare = _pick(variant, 5, lambda: rng.randrange(10))
    seed = _seed(rng)
    places = set(rng.sample(range(n), round(0.02 * n)))
    led = iter(synth.LED(seed=seed, noise_percentage=LED_NOISE, irrelevant_features=True))
    rows: list[tuple[Mapping[Any, Any], Any]] = []
    for i in range(n):
        want_rare = i in places
        x, y = next(led)
        while (y == rare) != want_rare:
            x, y = next(led)
        rows.append((x, y))
    return _with(_concat((rows, n)), minority_class=str(rare), share=0.02, seed=seed)


def _label_noise(n: int, variant: int, rng: random.Random) -> _Built:
    """A stationary 3-class RBF stream; exactly 10% of the labels replaced by another
    class drawn uniformly (the simulated reviewer answers the noisy label)."""
    seed = 21 if not variant else _seed(rng)
    clean = _take(_rbf(seed), n)
    classes = sorted({y for _, y in clean})
    flipped = set(rng.sample(range(n), round(0.1 * n)))
    rows = [
        (x, rng.choice([c for c in classes if c != y]) if i in flipped else y)
        for i, (x, y) in enumerate(clean)
    ]
    return _Built(rows, (), {"noise": 0.1, "seed": seed}, [y for _, y in clean])


def _covariate_shift(n: int, variant: int, rng: random.Random) -> _Built:
    """One hyperplane labels every row; the inputs come from one half of the space, then
    from the other half (feature ``x{j}`` below 0.5, then above)."""
    from river.datasets import synth

    seed = 13 if not variant else _seed(rng)
    j, low_first = _pick(variant, (0, True), lambda: (rng.randrange(4), rng.random() < 0.5))
    at = _at(n, variant, rng, 0.5, 0.1)
    gen = iter(synth.Hyperplane(seed=seed, n_features=4, noise_percentage=0.0))

    def region(low: bool) -> Iterator[tuple[Mapping[Any, Any], Any]]:
        return ((x, y) for x, y in gen if (x[j] < 0.5) == low)

    return _with(
        _concat((region(low_first), at), (region(not low_first), n - at)),
        seed=seed,
        shifted_feature=f"x{j}",
        regions=["< 0.5", "≥ 0.5"] if low_first else ["≥ 0.5", "< 0.5"],
    )


def _with(built: _Built, change: int | None = None, **details: Any) -> _Built:
    points = built.change_points if change is None else (change,)
    return _Built(built.rows, points, {**built.details, **details}, built.clean_labels)


SPECS: dict[str, _Spec] = {
    "image_segments": _Spec(
        2310, "stationary", "real tabular data, 7 classes", _bundled("ImageSegments")
    ),
    "phishing": _Spec(1250, "stationary", "a short real stream, 2 classes", _bundled("Phishing")),
    "hyperplane_drift": _Spec(
        10_000, "abrupt", "a hyperplane turns abruptly (4 features)", _hyperplane_drift
    ),
    "sea_flip_drift": _Spec(
        10_000,
        "abrupt",
        "SEA's labels flip: every confident prediction turns wrong",
        _sea_flip,
        swap=True,
    ),
    "segments_swap": _Spec(
        6000,
        "abrupt",
        "two confidently predicted ImageSegments classes swap labels",
        _segments_swap,
        swap=True,
    ),
    "led_swap": _Spec(
        8000, "abrupt", "two LED digits swap labels (10 classes)", _led_swap, swap=True
    ),
    "agrawal_switch": _Spec(8000, "abrupt", "Agrawal's labeling function switches", _agrawal),
    "led_drift": _Spec(
        8000, "abrupt", "LED: relevant attributes trade places with irrelevant ones", _led_drift
    ),
    "stagger_changes": _Spec(
        9000, "abrupt", "STAGGER's concept changes twice (categorical)", _stagger
    ),
    "sea_variants": _Spec(9000, "abrupt", "SEA's threshold changes twice", _sea_variants),
    "rbf_gradual": _Spec(
        8000, "gradual", "RBF class centroids start moving (3 classes)", _rbf_gradual
    ),
    "hyperplane_gradual": _Spec(
        9000, "gradual", "a hyperplane starts to rotate slowly (mag_change)", _hyperplane_gradual
    ),
    "late_class": _Spec(
        6000, "abrupt", "an ImageSegments class absent from the first part", _late_class
    ),
    "minority_2pct": _Spec(8000, "stationary", "one LED digit is 2% of the stream", _minority),
    "label_noise_10pct": _Spec(
        6000, "stationary", "10% of labels flipped uniformly (3-class RBF)", _label_noise
    ),
    "covariate_shift": _Spec(
        8000,
        "covariate_shift",
        "inputs move to another region, same labeling rule: no alarm due",
        _covariate_shift,
    ),
}
NAMES = tuple(SPECS)


def flip_share(stream: SuiteStream) -> float:
    """Share of rows whose label differs from the clean label (label-noise streams)."""
    if stream.clean_labels is None:
        return 0.0
    flips = sum(y != c for (_, y), c in zip(stream.rows, stream.clean_labels, strict=True))
    return flips / len(stream.rows) if stream.rows else math.nan
