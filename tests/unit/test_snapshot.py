"""autolabel.core.snapshot: signed, verified before anything is deserialized, complete."""

from __future__ import annotations

import io
import pickle
import random
import zlib

import pytest

from autolabel.core.messages import Feedback, FeedbackSource, Record
from autolabel.core.requests import Admitted
from autolabel.core.signing import Signer
from autolabel.core.snapshot import (
    _LENGTH,
    MAGIC,
    SNAPSHOT_PURPOSE,
    SnapshotRejected,
    decode_snapshot,
    encode_snapshot,
    verify_header,
)
from autolabel.settings import ModelSettings, PolicySettings
from autolabel.trust.controller import ControllerConfig, TrustController

SIGNER = Signer(b"k" * 32, SNAPSHOT_PURPOSE)


def trained(
    model: ModelSettings | None = None, n: int = 300, kind: str = "features"
) -> TrustController:
    rng = random.Random(0)
    ctl = TrustController(ControllerConfig(model or ModelSettings(), PolicySettings()))
    for i in range(n):
        label = "ab"[i % 2]
        if kind == "features":
            record = Record(id=f"r{i}", features={"x": rng.gauss(i % 2, 0.3), "c": "xy"[i % 2]})
        elif kind == "text":
            record = Record(id=f"r{i}", text=("good fine" if i % 2 else "bad awful") + f" {i}")
        else:
            record = Record(id=f"r{i}", embedding=[rng.gauss(i % 2, 0.3) for _ in range(4)])
        fb = Feedback(id=record.id, record=record, label=label, source=FeedbackSource.REVIEW)
        ctl.absorb(
            Admitted(fb, FeedbackSource.REVIEW, 1.0, bytes([i % 256, i // 256]) * 8, None), i
        )
    return ctl


@pytest.mark.parametrize(
    ("model", "kind"),
    [
        (ModelSettings(), "features"),
        (ModelSettings(tabular="hoeffding_adaptive_tree"), "features"),
        (ModelSettings(tabular="arf"), "features"),
        (ModelSettings(tabular="naive_bayes"), "features"),
        (ModelSettings(text="tfidf_nb"), "text"),
        (ModelSettings(text="bow_nb"), "text"),
        (ModelSettings(text="tfidf_linear"), "text"),
        (ModelSettings(embedding="softmax"), "embedding"),
        (ModelSettings(embedding="naive_bayes"), "embedding"),
    ],
)
def test_every_model_kind_round_trips_and_predicts_alike(model: ModelSettings, kind: str) -> None:
    ctl = trained(model, 200, kind)
    ctl.classifier.predict([Record(id="p", features={"x": 0.0, "c": "x"})])  # caches compile
    snap = decode_snapshot(encode_snapshot(ctl, SIGNER, writer="w"), SIGNER)
    restored = snap.controller
    probe = (
        Record(id="p", features={"x": 0.4, "c": "y"})
        if kind == "features"
        else Record(id="p", text="good fine")
        if kind == "text"
        else Record(id="p", embedding=[0.4] * 4)
    )
    assert restored.classifier.predict_one(probe) == ctl.classifier.predict_one(probe)
    assert snap.header.model_version == ctl.classifier.version
    assert snap.header.feedback_offset == ctl.feedback_offset == 200


def test_a_restored_controller_goes_on_exactly_like_the_original() -> None:
    """Resuming from a snapshot and learning the rest equals never having stopped."""
    rng = random.Random(0)
    stream = [
        Admitted(
            Feedback(
                id=f"r{i}",
                record=Record(id=f"r{i}", features={"x": rng.gauss(i % 3, 0.5)}),
                label="abc"[i % 3],
                source=FeedbackSource.REVIEW,
            ),
            FeedbackSource.REVIEW,
            1.0,
            i.to_bytes(16, "big"),
            None,
        )
        for i in range(600)
    ]
    whole = TrustController(ControllerConfig(ModelSettings(), PolicySettings()))
    half = TrustController(ControllerConfig(ModelSettings(), PolicySettings()))
    for i, item in enumerate(stream):
        whole.absorb(item, i)
        if i < 300:
            half.absorb(item, i)
    resumed = decode_snapshot(encode_snapshot(half, SIGNER, writer="w"), SIGNER).controller
    for i in range(resumed.feedback_offset, 600):
        resumed.absorb(stream[i], i)
    probes = [Record(id="p", features={"x": x / 10}) for x in range(-10, 40)]
    assert [resumed.classifier.predict_one(p) for p in probes] == [
        whole.classifier.predict_one(p) for p in probes
    ]
    assert resumed.status() == whole.status()
    assert resumed.absorb(stream[5], 600).kind == "duplicate"  # remembers answered requests


def test_the_header_counts_what_was_absorbed() -> None:
    ctl = trained(n=50)
    header, _ = verify_header(encode_snapshot(ctl, SIGNER, writer="w9"), SIGNER)
    assert header.writer == "w9" and header.learned_total == 50 and header.feedback_offset == 50
    assert header.learned_by_source == {"review": 50} and header.duplicates == 0


def test_any_flipped_byte_is_refused_before_unpickling() -> None:
    raw = encode_snapshot(trained(n=20), SIGNER, writer="w")
    rng = random.Random(1)
    for _ in range(50):
        i = rng.randrange(len(MAGIC), len(raw))
        broken = raw[:i] + bytes([raw[i] ^ (1 << rng.randrange(8))]) + raw[i + 1 :]
        with pytest.raises(SnapshotRejected) as info:
            decode_snapshot(broken, SIGNER)
        assert info.value.reason in {"bad_signature", "malformed"}


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "unsigned"),
        (b"\x80\x04K\x01.", "unsigned"),  # a bare pickle
        (MAGIC + b"x" * 10, "malformed"),
    ],
)
def test_unsigned_or_truncated_bytes_are_refused(raw: bytes, reason: str) -> None:
    with pytest.raises(SnapshotRejected) as info:
        decode_snapshot(raw, SIGNER)
    assert info.value.reason == reason


def test_another_key_is_refused() -> None:
    raw = encode_snapshot(trained(n=20), SIGNER, writer="w")
    with pytest.raises(SnapshotRejected) as info:
        decode_snapshot(raw, Signer(b"j" * 32, SNAPSHOT_PURPOSE))
    assert info.value.reason == "bad_signature"
    with pytest.raises(SnapshotRejected):  # the same secret for another purpose
        decode_snapshot(raw, Signer(b"k" * 32, "review-request"))


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned",))


def _signed(payload: bytes) -> bytes:
    header = (
        b'{"writer":"x","created_at":"t","model_version":0,"learned":0,"epoch":0,'
        b'"feedback_offset":0,"signals_offset":null,"certified":false,"fallback":false,'
        b'"threshold":null}'
    )
    signed = _LENGTH.pack(len(header)) + header + zlib.compress(payload)
    return MAGIC + SIGNER.sign(signed) + signed


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps(_Evil()),
        pickle.dumps(io.BytesIO),  # a global outside the allow-list
        pickle.dumps({"not": "a controller"}),
        b"garbage that is not a pickle",
    ],
)
def test_even_a_signed_snapshot_cannot_run_code_or_smuggle_objects(payload: bytes) -> None:
    with pytest.raises(SnapshotRejected) as info:
        decode_snapshot(_signed(payload), SIGNER)
    assert info.value.reason == "unreadable"


def test_a_snapshot_claiming_a_huge_body_is_refused() -> None:
    with pytest.raises(SnapshotRejected) as info:
        decode_snapshot(
            encode_snapshot(trained(n=10), SIGNER, writer="w"), SIGNER, max_pickle_bytes=10
        )
    assert info.value.reason == "oversized"
