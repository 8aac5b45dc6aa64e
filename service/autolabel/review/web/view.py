"""What the review page shows of a review request: plain JSON, built here, rendered by the page.

:func:`request_view` turns a :class:`~autolabel.core.messages.ReviewRequest` into the
object ``GET /api/next`` returns. The page puts every value into the document as text
(never as HTML), so nothing a producer writes into a record can run in a reviewer's
browser.

**What the record looks like.** Features become rows (name, value); text stays text;
an embedding is summarised (its size and first values). A producer can add a
rendering for people in the record's metadata, under ``display``:

* a string that is an image address (``https://…`` or ``http://…`` ending in an image
  extension, or a ``data:image/png|jpeg|gif|webp;base64,…`` URI): shown as an image;
* any other string: shown as text above the record (e.g. a short summary);
* an object ``{"image": address, "alt": "...", "caption": "..."}`` or
  ``{"text": "...", "caption": "..."}``: the same, with alternative text or a caption.

Other metadata is listed under the record (values longer than 200 characters are cut).

>>> from autolabel.core.messages import LabelProbability, Record, ReviewReason, ReviewRequest
>>> r = ReviewRequest(id="r1", request_id="q1", reason=ReviewReason.UNCERTAIN, priority=0.8,
...     model_version=7, predicted_label="cat",
...     probabilities=[LabelProbability(label="cat", probability=0.6),
...                    LabelProbability(label="dog", probability=0.4)],
...     record=Record(id="r1", features={"w": 3.25, "fur": "long"},
...                   metadata={"display": "https://example.org/r1.jpg", "source": "cam 2"}))
>>> v = request_view(r)
>>> v["features"], v["metadata"]
([['w', '3.25'], ['fur', 'long']], [['source', 'cam 2']])
>>> v["display"]["kind"], v["display"]["src"], v["display"]["alt"]
('image', 'https://example.org/r1.jpg', 'record r1')
>>> [(p["key"], p["label"], p["probability"]) for p in v["choices"]]
[('1', 'cat', 0.6), ('2', 'dog', 0.4)]
"""

from __future__ import annotations

import json
import re
from typing import Any

from autolabel.core.messages import ReviewRequest

MAX_CHOICES = 9
"""Top-k labels offered on the number keys 1 to 9."""
METADATA_VALUE_CHARS = 200
EMBEDDING_HEAD = 8
IMAGE_URL = re.compile(
    r"^https?://[^\s\"'<>]+\.(?:png|jpe?g|gif|webp|avif|svg)(?:[?#][^\s\"'<>]*)?$", re.I
)
IMAGE_DATA = re.compile(r"^data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=]+$")


def request_view(request: ReviewRequest) -> dict[str, Any]:
    """The JSON the page renders for ``request`` (see the module's docstring)."""
    record = request.record
    metadata = dict(record.metadata or {})
    display = display_view(metadata.pop("display", None), record.id)
    view: dict[str, Any] = {
        "id": request.id,
        "kind": record.kind,
        "reason": request.reason.value,
        "priority": request.priority,
        "model_version": request.model_version,
        "requested_at": request.requested_at.isoformat(),
        "sample_weight": request.sample_weight,
        "predicted_label": request.predicted_label,
        "choices": [
            {"key": str(i), "label": p.label, "probability": p.probability}
            for i, p in enumerate(request.probabilities[:MAX_CHOICES], start=1)
        ],
        "features": None,
        "text": None,
        "embedding": None,
        "display": display,
        "metadata": [[key, _short(value)] for key, value in metadata.items()],
    }
    if record.features is not None:
        view["features"] = [[name, _value(v)] for name, v in record.features.items()]
    elif record.text is not None:
        view["text"] = record.text
    elif record.embedding is not None:
        view["embedding"] = {
            "size": len(record.embedding),
            "head": [_value(v) for v in record.embedding[:EMBEDDING_HEAD]],
        }
    return view


def display_view(value: object, record_id: str) -> dict[str, Any] | None:
    """How to show a record's ``metadata["display"]``; None when there is nothing usable.

    >>> display_view("A tabby cat on a sofa", "r1")
    {'kind': 'text', 'text': 'A tabby cat on a sofa', 'caption': None}
    >>> display_view({"image": "javascript:alert(1)"}, "r1") is None  # not an image address
    True
    >>> display_view({"image": "data:image/png;base64,iVBORw0KGgo=", "alt": "scan"}, "r1")["alt"]
    'scan'
    """
    caption: str | None = None
    alt: str | None = None
    if isinstance(value, dict):
        caption = _optional_text(value.get("caption"))
        alt = _optional_text(value.get("alt"))
        if "image" in value:
            value = value["image"]
            if not (isinstance(value, str) and _is_image(value)):
                return None
        else:
            value = value.get("text")
            if not isinstance(value, str) or not value.strip():
                return None
            return {"kind": "text", "text": value, "caption": caption}
    if not isinstance(value, str) or not value.strip():
        return None
    if _is_image(value):
        return {
            "kind": "image",
            "src": value,
            "alt": alt or caption or f"record {record_id}",
            "caption": caption,
        }
    return {"kind": "text", "text": value, "caption": caption}


def _is_image(value: str) -> bool:
    return bool(IMAGE_URL.match(value) or IMAGE_DATA.match(value))


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _value(value: object) -> str:
    """A feature value as text: numbers to 6 significant digits, booleans as true/false.

    >>> [_value(v) for v in (3, 0.1 + 0.2, 1234567.891, True, "red")]
    ['3', '0.3', '1.23457e+06', 'true', 'red']
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) > METADATA_VALUE_CHARS:
        return text[: METADATA_VALUE_CHARS - 1] + "…"
    return text
