"""When a worker says it is not ready, and why (no broker needed: the logic is pure)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from autolabel.core.requests import RequestIssuer
from autolabel.core.signing import Signer
from autolabel.settings import Settings
from autolabel.worker.health import readiness
from autolabel.worker.labeler import STALL_S, LabelerService
from autolabel.worker.metrics import Metrics
from autolabel.worker.model_sync import ModelSync
from autolabel.worker.shutdown import Deadline


def labeler() -> LabelerService:
    settings = Settings(snapshot={"key": "k" * 32})  # type: ignore[arg-type]
    metrics = Metrics(CollectorRegistry())
    sync = ModelSync(settings, Signer(b"k" * 32, "snapshot"), metrics)
    return LabelerService(settings, RequestIssuer(b"k" * 32), sync, metrics, "w1", Deadline())


def test_a_batch_in_flight_too_long_is_a_stall() -> None:
    service = labeler()
    now = 1000.0
    service.busy_since = now - STALL_S + 1
    assert not service.stalled(now)
    service.busy_since = now - STALL_S - 1
    assert service.stalled(now)


def test_records_waiting_with_no_progress_is_a_stall_idle_is_not() -> None:
    service = labeler()
    now = service.last_progress + STALL_S + 5
    service.lag = 0
    assert not service.stalled(now)  # idle, nothing to do
    service.lag = 120
    assert service.stalled(now)  # records wait and nothing moves
    service.last_progress = now - 1
    assert not service.stalled(now)


def test_readiness_lists_every_reason() -> None:
    state = readiness(loaded=False, broker_up=False, joined=False, stalled=True)
    assert not state.ready
    assert state.reasons == (
        "no snapshot loaded yet",
        "brokers unreachable",
        "labeler has not joined its group",
        "labeler stalled",
    )
    assert readiness(loaded=True, broker_up=True, joined=True, stalled=False).ready


def test_a_cold_worker_exports_nan_not_zero_for_what_does_not_exist_yet() -> None:
    service = labeler()
    text = service.metrics.registry.get_sample_value
    assert text("autolabel_certified_precision_lower_bound_ratio") != text(
        "autolabel_certified_precision_lower_bound_ratio"
    )  # NaN
    assert text("autolabel_policy_threshold", {"scope": "global"}) == float("inf")
    assert text("autolabel_model_version") == 0.0
