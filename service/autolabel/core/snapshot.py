"""Signed model snapshots: the learner's whole state as one message on ``autolabel.models``.

A snapshot is the :class:`~autolabel.trust.controller.TrustController` (models, evidence,
certificate, drift detectors, holdout, candidate, answered requests, counters and the
offsets of the feedback and signals it absorbed), pickled and compressed, behind a JSON
header that says what it holds, all authenticated with HMAC-SHA256 under the key derived
for snapshots from ``AUTOLABEL_SNAPSHOT__KEY``::

    b"ALSNAP1\\n" | HMAC-SHA256 (32 bytes) | header length (4 bytes, big-endian)
                | header (JSON) | zlib(pickle(controller))

The MAC covers everything after it and is checked before anything is parsed, so an
unsigned or tampered snapshot is refused without being deserialized. Pickle is what River
models serialize with; as a second line of defence the unpickler only resolves classes
and functions from an allow-list of modules (River, numpy, autolabel, a few stdlib ones)
and refuses attribute lookups of dunder names.

>>> from autolabel.settings import ModelSettings, PolicySettings
>>> from autolabel.trust.controller import ControllerConfig, TrustController
>>> signer = Signer(b"k" * 32, SNAPSHOT_PURPOSE)
>>> ctl = TrustController(ControllerConfig(ModelSettings(), PolicySettings()))
>>> raw = encode_snapshot(ctl, signer, writer="w1")
>>> decode_snapshot(raw, signer).header.writer
'w1'
>>> decode_snapshot(raw[:-1] + bytes([raw[-1] ^ 1]), signer)
Traceback (most recent call last):
...
autolabel.core.snapshot.SnapshotRejected: bad_signature: tampered, or signed with another key
"""

from __future__ import annotations

import builtins
import io
import math
import pickle
import struct
import zlib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import orjson

from autolabel.core.messages import utc_now
from autolabel.core.signing import Signer
from autolabel.trust.controller import TrustController

MAGIC = b"ALSNAP1\n"
SNAPSHOT_PURPOSE = "snapshot"
FORMAT = 1
_LENGTH = struct.Struct(">I")
_PREFIX = len(MAGIC) + Signer.MAC_BYTES

RejectReason = Literal["unsigned", "bad_signature", "malformed", "unreadable", "oversized"]


class SnapshotRejected(Exception):
    """A snapshot that must not be used; ``reason`` is a fixed code (a metric label)."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SnapshotHeader:
    """What a snapshot holds, readable without unpickling it (after the MAC check)."""

    writer: str
    created_at: str
    model_version: int
    learned: int
    epoch: int
    feedback_offset: int
    signals_offset: int | None
    certified: bool
    fallback: bool
    threshold: float | None
    learned_by_source: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    pickle_bytes: int = 0
    format: int = FORMAT

    @classmethod
    def of(cls, controller: TrustController, writer: str, at: datetime) -> SnapshotHeader:
        status = controller.status()
        threshold = status.certificate.global_threshold
        return cls(
            writer=writer,
            created_at=at.isoformat(),
            model_version=status.model_version,
            learned=status.learned,
            epoch=status.epoch,
            feedback_offset=status.feedback_offset,
            signals_offset=controller.signals_offset,
            certified=status.certificate.certified,
            fallback=status.fallback,
            threshold=threshold if math.isfinite(threshold) else None,
            learned_by_source=status.learned_by_source,
            duplicates=status.duplicates,
            rejected=status.rejected,
        )

    @property
    def learned_total(self) -> int:
        """Feedback messages learned (every source)."""
        return sum(self.learned_by_source.values())


@dataclass(frozen=True, slots=True)
class Snapshot:
    header: SnapshotHeader
    controller: TrustController
    size: int  # bytes on the wire


@dataclass(frozen=True, slots=True)
class Frozen:
    """A controller's state at one moment, pickled, and its header: what a snapshot of
    it holds, before it is compressed and signed (:func:`seal_snapshot`)."""

    header: SnapshotHeader
    body: bytes


def freeze_snapshot(
    controller: TrustController, *, writer: str, at: datetime | None = None
) -> Frozen:
    """Pickle ``controller`` and describe it: the part of encoding a snapshot that reads
    the controller (nothing may change it meanwhile). The rest, :func:`seal_snapshot`,
    works on bytes only, so it may run while the controller learns on."""
    body = pickle.dumps(controller, protocol=5)
    header = SnapshotHeader.of(controller, writer, at or utc_now())
    return Frozen(replace(header, pickle_bytes=len(body)), body)


def seal_snapshot(frozen: Frozen, signer: Signer, *, level: int = 1) -> bytes:
    """The signed wire form of a frozen controller (see the module docstring)."""
    header_json = orjson.dumps(asdict(frozen.header))
    signed = _LENGTH.pack(len(header_json)) + header_json + zlib.compress(frozen.body, level)
    return MAGIC + signer.sign(signed) + signed


def encode_snapshot(
    controller: TrustController,
    signer: Signer,
    *,
    writer: str,
    at: datetime | None = None,
    level: int = 1,
) -> bytes:
    """The signed wire form of ``controller`` (see the module docstring)."""
    return seal_snapshot(freeze_snapshot(controller, writer=writer, at=at), signer, level=level)


def verify_header(raw: bytes, signer: Signer) -> tuple[SnapshotHeader, memoryview]:
    """Check the MAC, then read the header; returns it and the compressed body."""
    if not raw.startswith(MAGIC):
        raise SnapshotRejected("unsigned", "not a signed autolabel snapshot (wrong magic bytes)")
    if len(raw) < _PREFIX + _LENGTH.size:
        raise SnapshotRejected("malformed", f"a snapshot of {len(raw)} bytes is truncated")
    mac, signed = raw[len(MAGIC) : _PREFIX], memoryview(raw)[_PREFIX:]
    if not signer.verify(bytes(signed), mac):
        raise SnapshotRejected(
            "bad_signature",
            "tampered, or signed with another key",
        )
    (length,) = _LENGTH.unpack_from(signed)
    try:
        data = orjson.loads(bytes(signed[_LENGTH.size : _LENGTH.size + length]))
        header = SnapshotHeader(**data)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise SnapshotRejected("malformed", f"unreadable header: {exc}") from None
    if header.format != FORMAT:
        raise SnapshotRejected("malformed", f"snapshot format {header.format}, expected {FORMAT}")
    return header, signed[_LENGTH.size + length :]


def decode_snapshot(raw: bytes, signer: Signer, *, max_pickle_bytes: int = 1 << 30) -> Snapshot:
    """Verify, then decompress and unpickle a snapshot; :class:`SnapshotRejected` if not."""
    header, body = verify_header(raw, signer)
    if header.pickle_bytes > max_pickle_bytes:
        raise SnapshotRejected(
            "oversized", f"{header.pickle_bytes} bytes unpacked, over {max_pickle_bytes}"
        )
    try:
        decompressor = zlib.decompressobj()
        data = decompressor.decompress(body, max_pickle_bytes + 1)
        controller = _RestrictedUnpickler(io.BytesIO(data)).load()
    except SnapshotRejected:
        raise
    except Exception as exc:  # a signed snapshot from an incompatible build
        raise SnapshotRejected("unreadable", f"cannot load the snapshot: {exc!r}") from None
    if not isinstance(controller, TrustController):
        raise SnapshotRejected("unreadable", f"holds a {type(controller).__name__}")
    return Snapshot(header, controller, len(raw))


_ALLOWED_MODULES = ("river.", "numpy.", "autolabel.", "scipy.")
_ALLOWED_EXACT = {
    "numpy": None,
    "collections": None,
    "datetime": None,
    "numbers": {"Number", "Real", "Integral"},
    "random": {"Random"},
    "copy": {"deepcopy", "copy"},
    "functools": {"partial"},
    "operator": {"itemgetter", "attrgetter"},
    "copyreg": {"_reconstructor"},
    "math": None,
    "re": {"_compile"},
    "uuid": {"UUID"},
    "builtins": {
        "bool", "bytearray", "bytes", "complex", "dict", "float", "frozenset", "int", "list",
        "object", "range", "set", "slice", "str", "tuple", "getattr",
    },
}  # fmt: skip


def _safe_getattr(obj: Any, name: str) -> Any:
    if name.startswith("__"):
        raise SnapshotRejected("unreadable", f"refused attribute lookup {name!r}")
    return getattr(obj, name)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only globals a model snapshot legitimately holds."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = module.startswith(_ALLOWED_MODULES) or (
            module in _ALLOWED_EXACT
            and (_ALLOWED_EXACT[module] is None or name in (_ALLOWED_EXACT[module] or ()))
        )
        if not allowed or name.startswith("__"):
            raise SnapshotRejected("unreadable", f"refused global {module}.{name}")
        if module == "builtins" and name == "getattr":
            return _safe_getattr
        if module == "builtins":
            return getattr(builtins, name)
        return super().find_class(module, name)
