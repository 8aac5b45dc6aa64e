"""Review requests as Label Studio tasks, and annotations back as labels (pure).

A task shows the record (features as a table, text as text, an image URL from the
record's metadata as an image), a header with the model's opinion, and the model's
predicted label as a pre-annotation. What the bridge needs to find its way back lives in
the task too, so that Label Studio holds the whole state of the bridge:

* ``data.request_id``, ``data.record_id``, ``data.reason``, ``data.priority``,
  ``data.partition``, ``data.offset``: which review request this is (visible as columns
  in Label Studio's data manager, and filterable);
* ``data.status``: ``open`` until the bridge acts on the task, then ``sent`` (this
  bridge sent the feedback) or ``answered elsewhere`` (another reviewer answered the
  request first); the bridge only polls ``open`` tasks;
* ``meta.autolabel``: the review request itself (to answer it after a restart) and
  where the feedback topic ended when the task was made (``feedback_from``).

>>> from autolabel.core.messages import LabelProbability, Record, ReviewReason, ReviewRequest
>>> request = ReviewRequest(
...     id="r1", request_id="r1AAA", record=Record(id="r1", features={"x": 1.5, "colour": "red"}),
...     predicted_label="cat", probabilities=[LabelProbability(label="cat", probability=0.8),
...     LabelProbability(label="dog", probability=0.2)], reason=ReviewReason.AUDIT,
...     priority=0.4, model_version=7)
>>> view = LabelingView.for_requests([request], labels=["dog"])
>>> print(view.config())  # doctest: +NORMALIZE_WHITESPACE
<View>
  <Header value="$summary" size="5"/>
  <Table name="features" value="$features"/>
  <Choices name="label" toName="features" choice="single-radio" showInline="true">
    <Choice value="cat"/>
    <Choice value="dog"/>
  </Choices>
  <TextArea name="new_label" toName="features" maxSubmissions="1" rows="1"
            placeholder="or type a label that is not listed"/>
</View>
>>> task = task_for(request, view, partition=2, offset=40, feedback_from={0: 118})
>>> task["data"]["summary"]
'model: cat 80% (then dog 20%) · why: audit · priority 0.40 · model v7'
>>> task["predictions"][0]["result"][0]["value"]
{'choices': ['cat']}
>>> label_of({"result": [{"from_name": "label", "type": "choices",
...                       "value": {"choices": ["dog"]}}]})
'dog'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import quoteattr

import orjson
from pydantic import ValidationError

from autolabel.core.messages import Record, ReviewRequest

CHOICES = "label"
"""Name of the ``<Choices>`` control: the label a reviewer picks."""
NEW_LABEL = "new_label"
"""Name of the ``<TextArea>`` control for a label that is not among the choices."""
OBJECTS = ("image", "text", "features")
"""Object tags a view may show, in order; the first one present is what the controls name."""
IMAGE_KEYS = ("image_url", "image", "display")
"""Metadata keys searched, in order, for an image URL to show."""
DISPLAY_KEY = "display"
"""Metadata key of a short rendering of the record (shown as text when it is not a URL)."""
NO_IMAGE = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' width='160' height='24'>"
    "<text x='4' y='16' font-size='12'>(no image)</text></svg>"
)
"""What an image view shows for a record without an image (the field must be set)."""
EMBEDDING_SHOWN = 8
MAX_LABEL_CHARS = 256


class TaskStatus(StrEnum):
    """``data.status`` of a task made by the bridge."""

    OPEN = "open"
    SENT = "sent"
    ANSWERED_ELSEWHERE = "answered elsewhere"


def image_url(record: Record) -> str | None:
    """An image to show for the record: the first metadata value under
    :data:`IMAGE_KEYS` that is an http(s) or ``data:image/`` URL.

    >>> image_url(Record(id="a", text="t", metadata={"image_url": "https://x/1.png"}))
    'https://x/1.png'
    >>> image_url(Record(id="a", text="t", metadata={"display": "a short note"})) is None
    True
    """
    for key in IMAGE_KEYS:
        value = (record.metadata or {}).get(key)
        if isinstance(value, str) and value.startswith(("http://", "https://", "data:image/")):
            return value
    return None


def display_text(record: Record) -> str:
    """The text shown for a record: its text, else a short rendering the producer put in
    ``metadata.display``, else a summary of its embedding; empty for plain features.

    >>> display_text(Record(id="a", embedding=[0.123456, 2.0, -1.0]))
    'embedding of 3 numbers: 0.1235, 2, -1'
    """
    if record.text is not None:
        return record.text
    shown = (record.metadata or {}).get(DISPLAY_KEY)
    if isinstance(shown, str) and image_url(record) != shown:
        return shown
    if record.embedding is not None:
        head = ", ".join(f"{v:.4g}" for v in record.embedding[:EMBEDDING_SHOWN])
        more = ", ..." if len(record.embedding) > EMBEDDING_SHOWN else ""
        return f"embedding of {len(record.embedding)} numbers: {head}{more}"
    return ""


def display_kinds(record: Record) -> frozenset[str]:
    """The object tags a record needs (a subset of :data:`OBJECTS`).

    >>> sorted(display_kinds(Record(id="a", features={"x": 1}, metadata={"display": "n"})))
    ['features', 'text']
    """
    kinds = set()
    if image_url(record) is not None:
        kinds.add("image")
    if display_text(record):
        kinds.add("text")
    if record.features is not None:
        kinds.add("features")
    return frozenset(kinds)


@dataclass(frozen=True)
class LabelingView:
    """What a project's labeling config shows: which objects, which labels, and whether a
    reviewer may type a label that is not listed (``free_labels``)."""

    kinds: frozenset[str] = frozenset({"text"})
    labels: tuple[str, ...] = ()
    free_labels: bool = True
    anchor: str | None = None
    """The object the controls name, once annotations exist (it may not change then);
    None: the first of :data:`OBJECTS` shown."""

    @classmethod
    def for_requests(
        cls,
        requests: Iterable[ReviewRequest],
        labels: Iterable[str] = (),
        *,
        free_labels: bool = True,
        base: LabelingView | None = None,
    ) -> LabelingView:
        """A view that shows every request, with every label known; what ``base`` shows
        too, attached to the same object."""
        kinds = set(base.kinds) if base is not None else set()
        known = set(base.labels) if base is not None else set()
        known.update(labels)
        for request in requests:
            kinds |= display_kinds(request.record)
            if request.predicted_label is not None:
                known.add(request.predicted_label)
            known.update(p.label for p in request.probabilities)
        return cls(
            frozenset(kinds) if kinds else frozenset({"text"}),
            tuple(sorted(label for label in known if _usable(label))),
            free_labels or (base is not None and base.free_labels),
            base.target if base is not None else None,
        )

    @property
    def target(self) -> str:
        """The object the controls are attached to."""
        if self.anchor is not None and self.anchor in self.kinds:
            return self.anchor
        return next(kind for kind in OBJECTS if kind in self.kinds)

    def covers(self, other: LabelingView) -> bool:
        """Whether this view already shows everything ``other`` does."""
        return (
            other.kinds <= self.kinds
            and set(other.labels) <= set(self.labels)
            and (self.free_labels or not other.free_labels)
        )

    def config(self) -> str:
        """The labeling config (Label Studio's XML)."""
        lines = ["<View>", '  <Header value="$summary" size="5"/>']
        if "image" in self.kinds:
            lines.append('  <Image name="image" value="$image" maxWidth="640px"/>')
        if "text" in self.kinds:
            lines.append('  <Text name="text" value="$text"/>')
        if "features" in self.kinds:
            lines.append('  <Table name="features" value="$features"/>')
        target = quoteattr(self.target)
        if self.labels:  # Label Studio refuses a <Choices> without a <Choice>
            lines.append(
                f'  <Choices name="{CHOICES}" toName={target} choice="single-radio"'
                ' showInline="true">'
            )
            lines += [f"    <Choice value={quoteattr(label)}/>" for label in self.labels]
            lines.append("  </Choices>")
        if self.free_labels or not self.labels:
            lines.append(
                f'  <TextArea name="{NEW_LABEL}" toName={target} maxSubmissions="1" rows="1"'
                ' placeholder="or type a label that is not listed"/>'
            )
        lines.append("</View>")
        return "\n".join(lines)


def parse_config(config: str) -> LabelingView | None:
    """The view an existing project's config shows; None when the bridge did not write it
    (no object tag it knows).

    >>> view = LabelingView(frozenset({"text", "image"}), ("a", "b & c"), False, "text")
    >>> parse_config(view.config()) == view
    True
    >>> parse_config("<View><Text name='t' value='$x'/></View>") is None
    True
    """
    try:
        root = ElementTree.fromstring(config)
    except ElementTree.ParseError:
        return None
    kinds = {
        el.get("name", "")
        for el in root.iter()
        if el.tag in ("Image", "Text", "Table") and el.get("name") in OBJECTS
    }
    if not kinds:
        return None
    labels = tuple(
        choice.get("value", "")
        for choices in root.iter("Choices")
        if choices.get("name") == CHOICES
        for choice in choices.iter("Choice")
    )
    free = any(el.get("name") == NEW_LABEL for el in root.iter("TextArea"))
    anchors = [
        el.get("toName")
        for el in root.iter()
        if el.tag in ("Choices", "TextArea") and el.get("name") in (CHOICES, NEW_LABEL)
    ]
    anchor = next((a for a in anchors if a in kinds), None)
    return LabelingView(frozenset(kinds), labels, free, anchor)


def summary(request: ReviewRequest) -> str:
    """One line on what the model thinks and why the request was sent.

    >>> from autolabel.core.messages import ReviewReason
    >>> summary(ReviewRequest(id="a", request_id="q", record=Record(id="a", text="t"),
    ...                       reason=ReviewReason.COLD_START, priority=1.0, model_version=0))
    'model: no prediction yet · why: cold_start · priority 1.00 · model v0'
    """
    top = request.probabilities
    if request.predicted_label is None:
        opinion = "no prediction yet"
    else:
        p = next((t.probability for t in top if t.label == request.predicted_label), None)
        opinion = request.predicted_label + (f" {p:.0%}" if p is not None else "")
        others = [t for t in top if t.label != request.predicted_label][:2]
        if others:
            opinion += " (then " + ", ".join(f"{t.label} {t.probability:.0%}" for t in others) + ")"
    return (
        f"model: {opinion} · why: {request.reason.value} · priority {request.priority:.2f}"
        f" · model v{request.model_version}"
    )


def task_for(
    request: ReviewRequest,
    view: LabelingView,
    *,
    partition: int,
    offset: int,
    feedback_from: Mapping[int, int],
) -> dict[str, Any]:
    """The task to import for a review request read at ``partition``/``offset``.

    Every object of ``view`` gets a value (empty when the record has none), so one project
    can show records of several kinds. The model's predicted label becomes a prediction
    (a pre-annotation) when the view lists it.
    """
    record = request.record
    top = max((p.probability for p in request.probabilities), default=None)
    data: dict[str, Any] = {
        "summary": summary(request),
        "text": display_text(record),
        "features": dict(record.features or {}),
        "image": image_url(record) or NO_IMAGE,
        "request_id": request.request_id,
        "record_id": request.id,
        "reason": request.reason.value,
        "priority": request.priority,
        "predicted": request.predicted_label or "",
        "partition": partition,
        "offset": offset,
        "status": TaskStatus.OPEN.value,
    }
    task: dict[str, Any] = {
        "data": data,
        "meta": {
            "autolabel": {
                "request": request.model_dump(mode="json", exclude_none=True),
                "feedback_from": {str(p): o for p, o in feedback_from.items()},
            }
        },
    }
    if request.predicted_label is not None and request.predicted_label in view.labels:
        task["predictions"] = [
            {
                "model_version": str(request.model_version),
                "score": top if top is not None and math.isfinite(top) else 0.0,
                "result": [
                    {
                        "from_name": CHOICES,
                        "to_name": view.target,
                        "type": "choices",
                        "value": {"choices": [request.predicted_label]},
                    }
                ],
            }
        ]
    return task


def label_of(annotation: Mapping[str, Any]) -> str | None:
    """The label an annotation gives, or None (skipped, empty, or not a usable label).

    A label typed into the text box wins over a picked choice: the model's prediction is
    pre-selected, and a reviewer who types a new label may leave it selected.

    >>> picked = {"from_name": "label", "type": "choices", "value": {"choices": ["cat"]}}
    >>> typed = {"from_name": "new_label", "type": "textarea", "value": {"text": [" lynx "]}}
    >>> label_of({"result": [picked, typed]})
    'lynx'
    >>> label_of({"was_cancelled": True, "result": []}) is None
    True
    """
    if annotation.get("was_cancelled"):
        return None
    results = [r for r in annotation.get("result") or [] if isinstance(r, Mapping)]
    for name, kind, key in ((NEW_LABEL, "textarea", "text"), (CHOICES, "choices", "choices")):
        for result in results:
            if result.get("from_name") != name or result.get("type") != kind:
                continue
            values = (result.get("value") or {}).get(key) or []
            for value in values if isinstance(values, list) else [values]:
                if isinstance(value, str) and _usable(value.strip()):
                    return value.strip()
    return None


def _usable(label: str) -> bool:
    return 0 < len(label) <= MAX_LABEL_CHARS


@dataclass
class TaskRef:
    """A bridge's task as read back from Label Studio."""

    id: int
    request_id: str
    status: str
    partition: int
    offset: int
    data: dict[str, Any]
    request: ReviewRequest | None
    feedback_from: dict[int, int] = field(default_factory=dict)
    annotations: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, task: Mapping[str, Any]) -> TaskRef | None:
        """Read a task from the API; None when it is not one of the bridge's.

        >>> ref = TaskRef.from_json({"id": 3, "data": {"request_id": "q", "status": "open",
        ...     "partition": 1, "offset": 9}, "meta": {}, "annotations": []})
        >>> ref.id, ref.status, ref.partition, ref.offset, ref.request
        (3, 'open', 1, 9, None)
        """
        data = task.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("request_id"), str):
            return None
        meta = task.get("meta") or {}
        ours = meta.get("autolabel") if isinstance(meta, dict) else None
        ours = ours if isinstance(ours, dict) else {}
        request = None
        if isinstance(ours.get("request"), dict):
            try:
                request = ReviewRequest.model_validate_json(orjson.dumps(ours["request"]))
            except ValidationError:
                request = None
        feedback_from: dict[int, int] = {}
        raw_from = ours.get("feedback_from")
        if isinstance(raw_from, dict):
            for p, o in raw_from.items():
                if str(p).isdigit() and isinstance(o, int):
                    feedback_from[int(p)] = o
        annotations = task.get("annotations") or []
        return cls(
            id=int(task["id"]),
            request_id=data["request_id"],
            status=str(data.get("status", "")),
            partition=_int(data.get("partition")),
            offset=_int(data.get("offset")),
            data=dict(data),
            request=request,
            feedback_from=feedback_from,
            annotations=[a for a in annotations if isinstance(a, dict)],
        )

    def answer(self) -> tuple[int, str] | None:
        """The first submitted annotation that gives a label: ``(annotation id, label)``."""
        for annotation in sorted(self.annotations, key=lambda a: _int(a.get("id"))):
            label = label_of(annotation)
            if label is not None:
                return _int(annotation.get("id")), label
        return None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1
