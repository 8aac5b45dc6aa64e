"""autolabel.tools.review_screen: what a reviewer sees, and what a key or typed label means."""

from __future__ import annotations

import io

from rich.console import Console

from autolabel.core.messages import LabelProbability, Record, ReviewReason, ReviewRequest
from autolabel.tools.review_screen import choose_label, keys_help, request_view


def request(record: Record, predicted: str | None = "cat") -> ReviewRequest:
    probabilities = (
        [
            LabelProbability(label="cat", probability=0.5),
            LabelProbability(label="dog", probability=0.3),
            LabelProbability(label="sky", probability=0.2),
        ]
        if predicted
        else []
    )
    return ReviewRequest(
        id=record.id,
        request_id="q",
        record=record,
        reason=ReviewReason.UNCERTAIN,
        priority=0.4,
        model_version=2,
        predicted_label=predicted,
        probabilities=probabilities,
    )


def shown(req: ReviewRequest, width: int = 100) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, no_color=True, highlight=False)
    console.print(request_view(req, subtitle="backlog 3 · answered 1 · audits 0"))
    return out.getvalue()


def test_features_show_as_a_table_in_two_column_pairs_when_many() -> None:
    features: dict[str, bool | int | float | str] = {f"f{i:02d}": i * 1.5 for i in range(19)}
    features["colour"] = "red"
    text = shown(request(Record(id="seg-1", features=features)))
    assert "record seg-1 · uncertain" in text
    assert "f00" in text and "f19" not in text and "colour" in text and "red" in text
    assert "backlog 3 · answered 1" in text
    rows = [line for line in text.splitlines() if "f00" in line]
    assert len(rows) == 1 and "f10" in rows[0], "20 features: two pairs of columns"


def test_a_display_field_and_text_are_shown_and_long_text_is_clipped() -> None:
    url = "https://example.org/images/42.png"
    text = shown(request(Record(id="img", embedding=[0.1] * 512, metadata={"display": url})))
    assert f"view: {url}" in text and "embedding of 512 numbers" in text
    long = "\n".join(f"line {i}" for i in range(50))
    text = shown(request(Record(id="t", text=long)))
    assert "line 19" in text and "line 20" not in text and "30 more lines" in text
    rendering = {"display": {"caption": "a cat on a mat", "size": [640, 480]}}
    text = shown(request(Record(id="m", text="x", metadata=rendering)))
    assert "a cat on a mat" in text


def test_without_a_prediction_the_label_must_be_typed() -> None:
    req = request(Record(id="c", text="hello"), predicted=None)
    assert "no prediction yet" in shown(req)
    assert choose_label("", req, {"cat"}).problem == "no prediction to accept: type the label"
    assert choose_label("1", req, {"cat"}).problem == "no label 1 in the top 0"


def test_typed_labels() -> None:
    req = request(Record(id="c", text="hello"))
    known = {"cat", "dog", "sky", "skunk"}
    assert choose_label("3", req, known).label == "sky"
    assert choose_label("  Do ", req, known).label == "dog"  # a prefix, any case
    assert choose_label("sk", req, known).problem == "'sk' could be skunk, sky"
    assert choose_label("/", req, known).problem == "type a label after /"
    assert choose_label("/s", req, known).problem == "'s' could be skunk, sky"
    new = choose_label("bird", req, known)
    assert (new.label, new.new) == ("bird", True)
    assert choose_label("sk", req, known, classes={"sky", "cat"}).label == "sky"


def test_the_keys_say_how_long_an_answer_is_held() -> None:
    assert "held 5 s, or until you answer the next request" in keys_help(5.0)
