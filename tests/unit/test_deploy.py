"""The deploy files hold together: alert rules and the dashboard use only metrics the
worker exports and series the recording rules record, the rules are valid and pass their
promtool unit tests, every alert is tested firing and silent and says what to do, and
the manifests give every worker the snapshot key from a secret."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import ValidationError

from autolabel.settings import SnapshotSettings
from autolabel.worker.app import SHUTDOWN_BUDGET_S
from autolabel.worker.metrics import DEPRECATED_NAMES, Metrics

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bautolabel_[a-z_]+\b")
RECORDED = re.compile(r"\bautolabel:[a-z0-9_]+:[a-z0-9_]+\b")
RULES = ROOT / "deploy/prometheus/rules.yml"
RULE_TESTS = sorted((ROOT / "deploy/prometheus/tests").glob("*.yml"))
SCRAPE_CONFIG = ROOT / "deploy/prometheus/prometheus.yml"
DASHBOARD = ROOT / "deploy/grafana/autolabel.json"
K8S = ROOT / "deploy/k8s/autolabel.yaml"
K8S_SECRET = ROOT / "deploy/k8s/secret.yaml.example"
COMPOSE = ROOT / "docker-compose.yml"


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
    deprecated = sorted(referenced & set(DEPRECATED_NAMES))
    assert not deprecated, f"{path} uses deprecated names: {deprecated}; use their _ratio names"


def recorded() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


@pytest.mark.parametrize(
    "path",
    ["deploy/prometheus/rules.yml", "deploy/grafana/autolabel.json"],
)
def test_every_recorded_series_referenced_is_recorded(path: str) -> None:
    """Recording rules are named ``autolabel:<what>:<how>``, never like an exported metric."""
    names = recorded()
    assert all(RECORDED.fullmatch(name) for name in names), sorted(names)
    referenced = set(RECORDED.findall((ROOT / path).read_text())) - names
    assert not referenced, f"{path} uses series no rule records: {sorted(referenced)}"


@pytest.mark.parametrize("path", sorted(p.name for p in RULE_TESTS))
def test_rule_unit_tests_use_current_names(path: str) -> None:
    referenced = set(NAME.findall((ROOT / "deploy/prometheus/tests" / path).read_text()))
    deprecated = sorted(referenced & set(DEPRECATED_NAMES))
    assert not deprecated, f"{path} uses deprecated names: {deprecated}"


# ------------------------------------------------------------------------------ alert rules


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_alert_says_what_to_do() -> None:
    for rule in alerts():
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary", "").strip(), f"{name} has no summary"
        assert len(annotations.get("description", "")) > 80, f"{name}: say what to do"


def test_every_alert_has_a_firing_and_a_silent_unit_test() -> None:
    assert RULE_TESTS, "no promtool unit tests in deploy/prometheus/tests"
    fired: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        spec = yaml.safe_load(path.read_text())
        assert spec["rule_files"] == ["../rules.yml"], f"{path.name} must test rules.yml"
        for group in spec["tests"]:
            for case in group.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert not (fired | silent) - names, f"tests of unknown alerts: {(fired | silent) - names}"
    assert not names - fired, f"never tested firing: {sorted(names - fired)}"
    assert not names - silent, f"never tested silent: {sorted(names - silent)}"


def promtool() -> str:
    """promtool's path; without it, skip on a development machine but fail in CI."""
    path = shutil.which("promtool")
    if path is None:
        if "CI" in os.environ:
            pytest.fail("promtool is missing (.ci/run installs it: apt-get install prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus); CI fails here")
    return path


def run_promtool(*args: str) -> None:
    result = subprocess.run(
        [promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )


def test_promtool_check_rules() -> None:
    run_promtool("check", "rules", str(RULES))


def test_promtool_test_rules() -> None:
    run_promtool("test", "rules", *(str(path) for path in RULE_TESTS))


def test_promtool_check_scrape_config() -> None:
    run_promtool("check", "config", str(SCRAPE_CONFIG))


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each panel query, checked as the expression of a recording rule."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    assert queries
    rules = [{"record": f"dashboard:query_{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool("check", "rules", str(path))


# ------------------------------------------------------------------------------ manifests


def test_k8s_worker_key_from_a_secret_probes_and_grace_period() -> None:
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(K8S.read_text())}
    assert "AUTOLABEL_SNAPSHOT__KEY" not in docs["ConfigMap"]["data"], "a key is a secret"
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item for item in container["env"]}
    ref = env["AUTOLABEL_SNAPSHOT__KEY"]["valueFrom"]["secretKeyRef"]
    assert not ref.get("optional", False), "the worker cannot run without the key"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["terminationGracePeriodSeconds"] >= 2 * SHUTDOWN_BUDGET_S

    secret = yaml.safe_load(K8S_SECRET.read_text())
    assert (secret["kind"], secret["metadata"]["name"]) == ("Secret", ref["name"])
    placeholder = secret["stringData"][ref["key"]]
    with pytest.raises(ValidationError):  # applied as is, the worker refuses to start
        SnapshotSettings(key=placeholder)


def test_compose_refuses_to_start_without_a_snapshot_key() -> None:
    environment = yaml.safe_load(COMPOSE.read_text())["services"]["autolabel"]["environment"]
    assert environment["AUTOLABEL_SNAPSHOT__KEY"].startswith("${AUTOLABEL_SNAPSHOT__KEY:?")
