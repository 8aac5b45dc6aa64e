"""autolabel.core.requests: request ids are signed tickets; answers are checked against them."""

from __future__ import annotations

import base64
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autolabel.core.codec import Rejected
from autolabel.core.messages import (
    DeadLetterReason,
    Feedback,
    FeedbackSource,
    Record,
    ReviewReason,
)
from autolabel.core.requests import (
    MAX_AUDIT_WEIGHT,
    Admitted,
    RequestIssuer,
    _unurlsafe,
    admit,
)

ISSUER = RequestIssuer(b"s" * 32)
RECORD = Record(id="r1", features={"x": 1.5, "colour": "red", "n": 3, "ok": True})


def request(reason: ReviewReason = ReviewReason.AUDIT, rate: float = 0.05) -> str:
    return ISSUER.issue(RECORD, reason, audit_rate=rate, model_version=12, epoch=3, now_ms=1_000)


def feedback(request_id: str | None, source: FeedbackSource, record: Record = RECORD) -> Feedback:
    return Feedback(id=record.id, record=record, label="cat", source=source, request_id=request_id)


def rejected(result: Admitted | Rejected) -> DeadLetterReason:
    assert isinstance(result, Rejected), result
    return result.reason


def test_a_ticket_says_what_the_request_was_issued_for() -> None:
    ticket = ISSUER.verify(request())
    assert ticket is not None
    assert (ticket.reason, ticket.model_version, ticket.epoch, ticket.issued_at_ms) == (
        ReviewReason.AUDIT,
        12,
        3,
        1_000,
    )
    assert ticket.audit_rate == pytest.approx(0.05) and ticket.weight == pytest.approx(20.0)
    assert ISSUER.verify(request(ReviewReason.UNCERTAIN)).weight == 1.0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda r: r[:-2] + ("AA" if r[-2:] != "AA" else "BB"),  # the MAC
        lambda r: r[:5] + ("A" if r[5] != "A" else "B") + r[6:],  # the payload
        lambda r: r[:-4],  # truncated
        lambda r: "r2" + r[2:],  # another format
        lambda r: "r1%%%%",  # not base64
        lambda r: "",
    ],
)
def test_a_mangled_request_id_does_not_verify(mangle) -> None:  # type: ignore[no-untyped-def]
    assert ISSUER.verify(mangle(request())) is None


def test_another_deployments_key_does_not_verify() -> None:
    assert RequestIssuer(b"t" * 32).verify(request()) is None


def test_an_audit_answer_weighs_what_the_service_issued() -> None:
    admitted = admit(feedback(request(rate=0.1), FeedbackSource.AUDIT), ISSUER)
    assert isinstance(admitted, Admitted)
    assert admitted.source is FeedbackSource.AUDIT and admitted.weight == pytest.approx(10.0)
    assert admitted.request_key is not None and len(admitted.request_key) == 16


def test_an_audit_answered_as_a_review_still_counts_as_the_audit_it_was() -> None:
    admitted = admit(feedback(request(), FeedbackSource.REVIEW), ISSUER)
    assert isinstance(admitted, Admitted) and admitted.source is FeedbackSource.AUDIT


def test_claiming_audit_for_a_non_audit_request_is_a_conflict() -> None:
    answer = feedback(request(ReviewReason.UNCERTAIN), FeedbackSource.AUDIT)
    assert rejected(admit(answer, ISSUER)) is DeadLetterReason.CONFLICTING_FEEDBACK


def test_an_audit_without_a_request_id_is_not_believed() -> None:
    assert rejected(admit(feedback(None, FeedbackSource.AUDIT), ISSUER)) is (
        DeadLetterReason.UNVERIFIED_REQUEST
    )


@pytest.mark.parametrize("source", [FeedbackSource.SEED, FeedbackSource.EXTERNAL])
def test_seed_and_external_labels_cannot_carry_a_request_id(source: FeedbackSource) -> None:
    assert rejected(admit(feedback(request(), source), ISSUER)) is (
        DeadLetterReason.CONFLICTING_FEEDBACK
    )
    plain = admit(feedback(None, source), ISSUER)
    assert isinstance(plain, Admitted) and plain.weight == 1.0 and plain.request_key is None


def test_a_ticket_moved_to_another_record_is_refused() -> None:
    other = Record(id="r1", features={"x": 99.0, "colour": "red", "n": 3, "ok": True})
    assert rejected(admit(feedback(request(), FeedbackSource.AUDIT, other), ISSUER)) is (
        DeadLetterReason.CONFLICTING_FEEDBACK
    )


def test_a_record_echoed_through_a_json_client_still_matches() -> None:
    # A JavaScript client writes 1.0 as 1 and may reorder keys: still the same record.
    echoed = Record(id="r1", features={"ok": True, "n": 3.0, "colour": "red", "x": 1.5})
    admitted = admit(feedback(request(), FeedbackSource.AUDIT, echoed), ISSUER)
    assert isinstance(admitted, Admitted)


def test_a_label_outside_the_allow_list_is_refused() -> None:
    answer = feedback(None, FeedbackSource.REVIEW)
    assert rejected(admit(answer, ISSUER, frozenset({"dog"}))) is DeadLetterReason.UNKNOWN_CLASS
    assert isinstance(admit(answer, ISSUER, frozenset({"cat", "dog"})), Admitted)


def test_the_weight_is_capped_whatever_rate_was_signed() -> None:
    admitted = admit(feedback(request(rate=1e-6), FeedbackSource.AUDIT), ISSUER)
    assert isinstance(admitted, Admitted) and admitted.weight == MAX_AUDIT_WEIGHT


def test_every_request_has_its_own_key() -> None:
    keys = {
        ISSUER.verify(
            ISSUER.issue(
                Record(id=f"r{i}", text="t"),
                ReviewReason.UNCERTAIN,
                audit_rate=0.05,
                model_version=1,
                epoch=0,
                now_ms=5,
            )
        ).mac  # type: ignore[union-attr]
        for i in range(500)
    }
    assert len(keys) == 500


def test_audit_draws_are_uniform_keyed_and_repeatable() -> None:
    ids = [f"rec-{i}" for i in range(20_000)]
    draws = ISSUER.audit_draws(ids, epoch=0)
    assert draws == ISSUER.audit_draws(ids, epoch=0)
    assert all(0.0 <= u < 1.0 for u in draws)
    assert statistics.fmean(draws) == pytest.approx(0.5, abs=0.01)
    assert sum(u < 0.05 for u in draws) / len(draws) == pytest.approx(0.05, abs=0.005)
    assert draws != ISSUER.audit_draws(ids, epoch=1)  # a new epoch, new draws
    assert draws != RequestIssuer(b"t" * 32).audit_draws(ids, epoch=0)  # unpredictable


def test_audit_draws_are_the_keyed_hash_of_each_id() -> None:
    """The draws' definition, written out: a labeler of another version draws the same."""
    import hashlib

    from autolabel.core.signing import derive_key

    ids = ["a", 'é"x', "rec-1", "\U0001f600" * 40]
    key = derive_key(b"s" * 32, "audit-draw")[:32]
    expected = [
        int.from_bytes(
            hashlib.blake2b(
                rid.encode(), key=key, salt=(7).to_bytes(8, "big"), digest_size=8
            ).digest(),
            "big",
        )
        / 2.0**64
        for rid in ids
    ]
    assert ISSUER.audit_draws(ids, epoch=7) == expected
    assert ISSUER.audit_draws([], epoch=7) == []


def test_a_batch_writer_issues_what_issue_does() -> None:
    writer = ISSUER.writer(audit_rate=0.05, model_version=12, epoch=3, now_ms=1_000)
    records = [RECORD, Record(id="r2", text="t"), Record(id="é", embedding=[0.5, 1.0])]
    for record in records:
        for reason in ReviewReason:
            rid = writer(record, reason)
            assert rid.decode() == ISSUER.issue(
                record, reason, audit_rate=0.05, model_version=12, epoch=3, now_ms=1_000
            )
            assert ISSUER.verify(rid.decode()) is not None


@settings(max_examples=500, deadline=None)
@given(
    st.text(max_size=40)
    | st.text(alphabet="ABCXYZabcxyz0189-_+/=", max_size=40)
    | st.text(alphabet="ABCXYZabcxyz0189-_+/= \n\x00é", max_size=40)
)
def test_the_ticket_decoding_is_urlsafe_b64decode(token: str) -> None:
    """verify's base64 step decodes (or refuses) exactly what the standard library does."""
    try:
        expected: bytes | type[Exception] = base64.urlsafe_b64decode(
            token + "=" * (-len(token) % 4)
        )
    except ValueError:
        expected = ValueError
    try:
        got: bytes | type[Exception] = _unurlsafe(token)
    except ValueError:
        got = ValueError
    assert got == expected
