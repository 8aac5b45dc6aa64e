"""Review requests' identity: issue signed request ids, verify answers against them.

A review request's ``request_id`` is a signed ticket: it says, under the deployment's
key, for which record (a digest of its id and content) the request was issued, why
(``uncertain``, ``audit``, ...), at which audit rate, by which model version and when.
An answer (a :class:`~autolabel.core.messages.Feedback`) echoes it, and the learner
derives from the ticket, never from the answer's own claims, whether it is an audit and
how much it weighs; the ticket's MAC also names the request, so an answer re-sent for
the same request is learned once. :func:`admit` turns a decoded answer into what the
learner may learn, or a rejection with the reason it goes to dead-letter.

>>> from autolabel.core.messages import Feedback, FeedbackSource, Record, ReviewReason
>>> issuer = RequestIssuer(b"s" * 32)
>>> record = Record(id="r1", features={"x": 1.5})
>>> rid = issuer.issue(record, ReviewReason.AUDIT, audit_rate=0.05, model_version=7, epoch=0)
>>> answer = Feedback(id="r1", record=record, label="cat", source=FeedbackSource.AUDIT,
...                   request_id=rid)
>>> admitted = admit(answer, issuer)
>>> admitted.source.value, admitted.weight
('audit', 20.0)
>>> forged = answer.model_copy(update={"request_id": rid[:-4] + "AAAA"})
>>> admit(forged, issuer).reason.value
'unverified_request'
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import struct
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import NamedTuple

import orjson

from autolabel.core.codec import Rejected
from autolabel.core.messages import (
    DeadLetterReason,
    Feedback,
    FeedbackSource,
    RecordLike,
    ReviewReason,
)
from autolabel.core.signing import derive_key
from autolabel.core.tuples import new_tuple

REQUEST_ID_PREFIX = "r1"
_REASONS: tuple[ReviewReason, ...] = tuple(ReviewReason)
_REASON_INDEX = {reason: i for i, reason in enumerate(_REASONS)}
_URLSAFE = bytes.maketrans(b"+/", b"-_")  # base64.urlsafe_b64encode's alphabet
_PAYLOAD = struct.Struct(">8sBIQIQ")  # digest, reason, audit rate ppm, version, epoch, ms
_TAIL = struct.Struct(">BIQIQ")  # the payload after the digest ('>': no padding in between)
_MAC_BYTES = 16
_ENCODED_BYTES = _PAYLOAD.size + _MAC_BYTES
_TOKEN_CHARS = (_ENCODED_BYTES * 4 + 2) // 3  # its base64 without the trailing '='
_PREFIX_BYTES = REQUEST_ID_PREFIX.encode()
_AUDIT = ReviewReason.AUDIT  # (an enum member read from its class costs an attribute lookup)
MAX_AUDIT_WEIGHT = 1000.0
"""No audit answer stands for more records than this, whatever rate issued it."""


class Ticket(NamedTuple):
    """What a verified request id says about the request it names (a tuple: the learner
    builds one per answer, and a frozen dataclass costs several times as much)."""

    digest: bytes  # of the record's id and content
    reason: ReviewReason
    audit_rate: float  # the rate the audit was drawn at; 0 for other reasons
    model_version: int
    epoch: int
    issued_at_ms: int
    mac: bytes  # unique per request: the dedupe key

    @property
    def weight(self) -> float:
        """Records this answer stands for: ``1 / audit_rate`` for audits, else 1."""
        if self.reason is ReviewReason.AUDIT and self.audit_rate > 0:
            return min(1.0 / self.audit_rate, MAX_AUDIT_WEIGHT)
        return 1.0


def record_digest(record: RecordLike) -> bytes:
    """8 bytes naming a record's id and content, stable across re-serialisation.

    Numbers count as floats (a JSON client may write ``1.0`` as ``1``), keys are sorted.

    >>> from autolabel.core.messages import Record
    >>> a = record_digest(Record(id="a", features={"x": 1, "y": "s"}))
    >>> a == record_digest(Record(id="a", features={"y": "s", "x": 1.0}))
    True
    >>> a == record_digest(Record(id="a", features={"x": 2, "y": "s"}))
    False
    """
    features = record.features
    if features is not None:
        if int in set(map(type, features.values())):  # else every value is as it will be
            features = {k: float(v) if type(v) is int else v for k, v in features.items()}
        content = orjson.dumps(features, option=orjson.OPT_SORT_KEYS)
    elif record.text is not None:
        content = b"t" + record.text.encode()
    else:
        content = orjson.dumps([float(v) for v in record.embedding or ()])
    digest = _RECORD_DIGEST.copy()  # cheaper than a new personalised hash per record
    digest.update(record.id.encode() + b"\x00" + content)
    return digest.digest()


_RECORD_DIGEST = hashlib.blake2b(digest_size=8, person=b"autolabel-rec")
_BLAKE2B = type(_RECORD_DIGEST)


class RequestIssuer:
    """Issues and verifies request ids, and draws audits, under the deployment's key."""

    __slots__ = ("_audit_key", "_ticket_key", "_ticket_mac")

    def __init__(self, secret: bytes) -> None:
        self._ticket_key = derive_key(secret, "review-request")[:32]
        self._audit_key = derive_key(secret, "audit-draw")[:32]
        # The keyed hash with the key absorbed: each MAC copies it (a keyed blake2b
        # costs a block of hashing to set up).
        self._ticket_mac = hashlib.blake2b(key=self._ticket_key, digest_size=_MAC_BYTES)

    def __repr__(self) -> str:
        return "RequestIssuer(<key hidden>)"

    def __getstate__(self) -> tuple[bytes, bytes]:  # hash objects do not pickle
        return self._ticket_key, self._audit_key

    def __setstate__(self, state: tuple[bytes, bytes]) -> None:
        self._ticket_key, self._audit_key = state
        self._ticket_mac = hashlib.blake2b(key=self._ticket_key, digest_size=_MAC_BYTES)

    def _mac(self, payload: bytes) -> bytes:
        mac = self._ticket_mac.copy()
        mac.update(payload)
        return mac.digest()

    def issue(
        self,
        record: RecordLike,
        reason: ReviewReason,
        *,
        audit_rate: float,
        model_version: int,
        epoch: int,
        now_ms: int | None = None,
    ) -> str:
        """The request id of a review request for ``record``."""
        writer = self.writer(
            audit_rate=audit_rate, model_version=model_version, epoch=epoch, now_ms=now_ms
        )
        return writer(record, reason).decode()

    def writer(
        self,
        *,
        audit_rate: float,
        model_version: int,
        epoch: int,
        now_ms: int | None = None,
    ) -> Callable[[RecordLike, ReviewReason], bytes]:
        """:meth:`issue` for the records of one batch: what they share (everything but
        the record's digest, per reason) is packed once, and each request id comes back
        as its ASCII bytes, ready to be written into JSON as it is (base64url needs no
        escaping)."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        tails: dict[ReviewReason, bytes] = {}
        base = self._ticket_mac
        translate = _URLSAFE

        def request_id(record: RecordLike, reason: ReviewReason) -> bytes:
            tail = tails.get(reason)
            if tail is None:
                tail = tails[reason] = _TAIL.pack(
                    _REASON_INDEX[reason],
                    round(audit_rate * 1_000_000) if reason is _AUDIT else 0,
                    model_version,
                    epoch & 0xFFFFFFFF,
                    now,
                )
            payload = record_digest(record) + tail
            mac = base.copy()
            mac.update(payload)
            token = binascii.b2a_base64(payload + mac.digest(), newline=False)
            return _PREFIX_BYTES + token.translate(translate)[:_TOKEN_CHARS]

        return request_id

    def verify(self, request_id: str) -> Ticket | None:
        """The ticket behind a request id, or ``None`` when this service did not issue it."""
        if not request_id.startswith(REQUEST_ID_PREFIX):
            return None
        try:
            raw = _unurlsafe(request_id[len(REQUEST_ID_PREFIX) :])
        except ValueError:  # binascii.Error and UnicodeEncodeError are ValueErrors
            return None
        if len(raw) != _ENCODED_BYTES:
            return None
        payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
        if not hmac.compare_digest(self._mac(payload), mac):
            return None
        digest, reason, rate_ppm, version, epoch, issued = _PAYLOAD.unpack(payload)
        if reason >= len(_REASONS):
            return None
        return new_tuple(
            Ticket, (digest, _REASONS[reason], rate_ppm / 1_000_000, version, epoch, issued, mac)
        )

    def audit_draws(self, record_ids: Sequence[str], epoch: int) -> list[float]:
        """One uniform draw in ``[0, 1)`` per record id: audit when below the audit rate.

        Keyed, so nobody without the key can pick ids that escape audits; deterministic,
        so a batch processed twice (at-least-once) routes its records the same way.
        """
        keyed = hashlib.blake2b(key=self._audit_key, salt=epoch.to_bytes(8, "big"), digest_size=8)
        scale = 1.0 / 2.0**64
        # Per id: a copy of ``keyed`` (the key and salt absorbed once per batch), the id's
        # UTF-8 bytes, the digest as a big-endian integer, times ``scale``; in C loops.
        hashes = list(map(_BLAKE2B.copy, repeat(keyed, len(record_ids))))
        deque(map(_BLAKE2B.update, hashes, map(str.encode, record_ids)), maxlen=0)
        return list(map(scale.__mul__, map(int.from_bytes, map(_BLAKE2B.digest, hashes))))


def _unurlsafe(token: str) -> bytes:
    """``base64.urlsafe_b64decode`` of ``token`` padded to a multiple of 4 characters, in
    the same steps without its three Python layers (a few tenths of a µs per answer):
    ASCII or ValueError, the URL-safe alphabet read as the standard one, then
    ``binascii.a2b_base64`` (not strict: bytes outside the alphabet are skipped).

    >>> _unurlsafe("-_8"), _unurlsafe("YWJj")
    (b'\\xfb\\xff', b'abc')
    """
    padded = token + "=" * (-len(token) % 4)
    return binascii.a2b_base64(padded.encode("ascii").translate(_FROM_URLSAFE))


_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


class Admitted(NamedTuple):
    """An answer the learner may learn: the source and weight derived from its ticket (a
    tuple, like :class:`Ticket`)."""

    feedback: Feedback
    source: FeedbackSource
    weight: float
    request_key: bytes | None  # names the review request answered (dedupe); None: no request
    ticket: Ticket | None


def admit(
    feedback: Feedback,
    issuer: RequestIssuer,
    classes: frozenset[str] | Mapping[str, object] = frozenset(),
) -> Admitted | Rejected:
    """Check an answer against the request it names; derive what it counts for.

    ``classes``: an allow-list of labels (empty: any label).
    """
    rid = feedback.id
    if classes and feedback.label not in classes:
        return Rejected(
            DeadLetterReason.UNKNOWN_CLASS,
            f"label {feedback.label!r} is not one of the configured classes"
            " (AUTOLABEL_MODEL__CLASSES)",
            rid,
        )
    source = feedback.source
    if feedback.request_id is None:
        if source is FeedbackSource.AUDIT:
            return Rejected(
                DeadLetterReason.UNVERIFIED_REQUEST,
                "an audit answer must carry the request_id of the review request it answers",
                rid,
            )
        return new_tuple(Admitted, (feedback, source, 1.0, None, None))
    if source in (FeedbackSource.SEED, FeedbackSource.EXTERNAL):
        return Rejected(
            DeadLetterReason.CONFLICTING_FEEDBACK,
            f"source {source.value!r} cannot answer a review request (request_id is set):"
            " use 'review' or 'audit'",
            rid,
        )
    ticket = issuer.verify(feedback.request_id)
    if ticket is None:
        return Rejected(
            DeadLetterReason.UNVERIFIED_REQUEST,
            "request_id was not issued by this service (malformed, or signed with another"
            " key): echo the request_id of the review request unchanged",
            rid,
        )
    if ticket.digest != record_digest(feedback.record):
        return Rejected(
            DeadLetterReason.CONFLICTING_FEEDBACK,
            "the record differs from the one the review request was issued for:"
            " echo the request's record unchanged",
            rid,
        )
    audit = ticket.reason is ReviewReason.AUDIT
    if source is FeedbackSource.AUDIT and not audit:
        return Rejected(
            DeadLetterReason.CONFLICTING_FEEDBACK,
            f"source 'audit' answers a request issued as {ticket.reason.value!r}:"
            " only audit requests are answered as audits",
            rid,
        )
    derived = FeedbackSource.AUDIT if audit else FeedbackSource.REVIEW
    return new_tuple(Admitted, (feedback, derived, ticket.weight, ticket.mac, ticket))
