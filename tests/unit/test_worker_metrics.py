"""What a worker shows an operator before it touches a broker: its metrics (NaN for what
does not exist yet, the process and Python collectors, build info, renamed ratios) and
its HTTP routes."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from autolabel import __version__
from autolabel.core.messages import ReviewReason
from autolabel.settings import Settings
from autolabel.worker.app import create_app
from autolabel.worker.metrics import DEPRECATED_NAMES, Metrics, ReviewAnswer, build_labels

KEY = "k" * 32
NOT_YET = {
    "autolabel_broker_reachable": "no probe yet",
    "autolabel_snapshot_created_timestamp_seconds": "no snapshot loaded",
    "autolabel_certified_precision_lower_bound_ratio": "nothing certified",
    "autolabel_prequential_accuracy_ratio": "nothing scored (and not the active learner)",
    "autolabel_audit_error_ratio": "no audit (and not the active learner)",
    "autolabel_model_examples_learned": "not the active learner",
    "autolabel_snapshot_bytes": "no snapshot published",
}
"""Gauges a fresh worker has no value for: NaN, never a 0 that looks measured."""
REAL_ZEROS = {
    "autolabel_model_version": "the cold view's version (0: no model yet, as alerts expect)",
    "autolabel_snapshot_feedback_offset": "the cold view absorbed no feedback",
    "autolabel_policy_certified_classes": "no class has a threshold of its own",
    "autolabel_drift_fallback_active": "not in fallback",
    "autolabel_labeler_hold_active": "not holding",
    "autolabel_learner_active": "not the active learner",
}
"""Gauges whose 0 on a fresh worker is a true statement."""


@pytest.fixture(scope="module")
def fresh() -> Iterator[tuple[Any, Any]]:
    """A worker as ``autolabel worker`` builds it, before anything runs."""
    settings = Settings(snapshot={"key": KEY}, kafka={"bootstrap_servers": "localhost:1"})  # type: ignore[arg-type]
    yield create_app(settings)


def gauges(registry: CollectorRegistry) -> dict[str, float]:
    """Every unlabelled autolabel gauge's value."""
    text = generate_latest(registry).decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        if family.type == "gauge" and family.name.startswith("autolabel_")
        for sample in family.samples
        if not sample.labels and not sample.name.endswith("_created")
    }


# ------------------------------------------------------------------------------ metrics


def test_a_fresh_worker_exports_nan_not_zero_for_what_does_not_exist_yet(fresh) -> None:
    _, worker = fresh
    values = gauges(worker.metrics.registry)
    for name, why in NOT_YET.items():
        assert math.isnan(values[name]), f"{name} reads {values[name]} ({why}): want NaN"
    for old, new in DEPRECATED_NAMES.items():  # the old names say the same
        assert (math.isnan(values[old]) and math.isnan(values[new])) or values[old] == values[new]
    zeros = {name for name, value in values.items() if value == 0}
    unexplained = zeros - set(REAL_ZEROS)
    assert not unexplained, f"0 on a fresh worker, NaN or a reason in REAL_ZEROS: {unexplained}"


def test_the_policy_in_force_is_exported_from_the_start(fresh) -> None:
    _, worker = fresh
    values = gauges(worker.metrics.registry)
    assert values["autolabel_target_precision_ratio"] == worker.settings.policy.target_precision
    assert values["autolabel_audit_ratio"] == worker.settings.policy.audit_rate


def test_without_a_view_the_policy_gauges_are_nan_too() -> None:
    values = gauges(Metrics(CollectorRegistry()).registry)
    assert math.isnan(values["autolabel_target_precision_ratio"])
    assert math.isnan(values["autolabel_audit_ratio"])


def test_process_and_python_collectors_and_build_info_are_on_the_registry() -> None:
    registry = Metrics(CollectorRegistry()).registry
    value = registry.get_sample_value
    assert value("process_cpu_seconds_total") is not None
    assert value("process_resident_memory_bytes", {}) > 0
    assert value("process_start_time_seconds") > 0
    assert value("python_gc_collections_total", {"generation": "0"}) is not None
    python_info = [s for f in registry.collect() if f.name == "python_info" for s in f.samples]
    assert len(python_info) == 1
    labels = build_labels()
    assert labels["version"] == __version__
    assert set(labels) == {"version", "python", "river", "aiokafka", "faust"}
    assert value("autolabel_build_info", labels) == 1.0
    (family,) = [f for f in registry.collect() if f.name == "autolabel_build_info"]
    assert len(family.samples) == 1  # one series: bounded labels


def test_renamed_gauges_are_exported_under_both_names_the_old_one_deprecated() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.audit_rate.set(0.2)
    metrics.target_precision.set(0.9)
    metrics.precision_lower_bound.set(0.93)
    metrics.prequential_accuracy.set(0.8)
    metrics.audit_error_rate.set(0.01)
    families = {f.name: f for f in metrics.registry.collect()}
    for old, new in DEPRECATED_NAMES.items():
        assert new.endswith("_ratio")
        assert families[old].samples[0].value == families[new].samples[0].value, old
        assert families[old].documentation.startswith(f"Deprecated, use {new} "), old
        assert "Deprecated" not in families[new].documentation, new
        assert 0.0 <= families[new].samples[0].value <= 1.0


# ------------------------------------------------------------------------------ HTTP


def test_the_http_port_serves_the_ops_pages_and_nothing_of_faust(fresh) -> None:
    app, _ = fresh
    app.web.init_server()
    paths = {route.resource.canonical for route in app.web.web_app.router.routes()}
    assert paths == {"/metrics", "/healthz", "/readyz"}


def test_faust_reads_no_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kubernetes injects ``<SERVICE>_PORT=tcp://...`` for every service in the namespace:
    a service named ``web`` used to crash the worker through Faust's ``WEB_PORT``."""
    monkeypatch.setenv("WEB_PORT", "tcp://10.0.0.1:80")
    monkeypatch.setenv("APP_WEB_ROUTER_ENABLED", "true")
    settings = Settings(
        snapshot={"key": KEY},  # type: ignore[arg-type]
        kafka={"bootstrap_servers": "localhost:1"},  # type: ignore[arg-type]
        http={"port": 9123},  # type: ignore[arg-type]
    )
    app, _ = create_app(settings)
    assert app.conf.web_port == 9123


def test_a_polls_review_answers_are_counted_by_reason_reviewer_wait_and_disagreement() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, max_reviewers=2)
    now = 1_000_000.0
    issued = int((now - 10) * 1000)  # answered 10 s after the request
    metrics.count_review_answers(
        [
            ReviewAnswer(ReviewReason.AUDIT, issued, "ada", True),
            ReviewAnswer(ReviewReason.AUDIT, issued, "ada", False),
            ReviewAnswer(ReviewReason.UNCERTAIN, issued, "bob", True),  # not an audit
            ReviewAnswer(ReviewReason.COLD_START, int(now * 1000) + 5, "cy", None),  # clock skew
        ],
        now,
    )
    metrics.count_review_answers([], now)  # a poll without answers changes nothing

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("autolabel_review_answers_total", reason="audit") == 2
    assert value("autolabel_review_answers_total", reason="uncertain") == 1
    assert value("autolabel_review_answers_total", reason="cold_start") == 1
    assert value("autolabel_review_answers_by_reviewer_total", reviewer="ada") == 2
    assert value("autolabel_review_answers_by_reviewer_total", reviewer="bob") == 1
    assert value("autolabel_review_answers_by_reviewer_total", reviewer="other") == 1  # 3rd name
    assert value("autolabel_audit_disagreements_total") == 1
    assert value("autolabel_review_answer_seconds_count") == 4
    assert value("autolabel_review_answer_seconds_bucket", le="1.0") == 1  # the skewed one: 0 s
    assert value("autolabel_review_answer_seconds_bucket", le="15.0") == 4
    assert value("autolabel_review_answer_seconds_sum") == 30.0
