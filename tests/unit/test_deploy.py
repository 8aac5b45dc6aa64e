"""The alert rules and the dashboard only use metrics the worker really exports."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from autolabel.worker.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bautolabel_[a-z_]+\b")


def exported() -> set[str]:
    metrics = Metrics(CollectorRegistry())
    metrics.confidence.observe_many([0.5])
    metrics.consumer_lag.labels(partition="0").set(0)
    text = generate_latest(metrics.registry).decode()
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}


@pytest.mark.parametrize(
    "path",
    ["deploy/prometheus/rules.yml", "deploy/grafana/autolabel.json"],
)
def test_every_metric_referenced_is_exported(path: str) -> None:
    referenced = set(NAME.findall((ROOT / path).read_text()))
    assert referenced, f"{path} references no autolabel metric"
    missing = referenced - exported()
    assert not missing, f"{path} uses metrics the worker does not export: {sorted(missing)}"
