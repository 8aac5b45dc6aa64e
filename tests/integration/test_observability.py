"""What an operator sees of a live worker: its HTTP surface, a real Prometheus scraping
it, and its JSON logs.

One worker (JSON logs) serves the module. A real Prometheus server (Debian's
``prometheus``) scrapes it every second with the deploy rule file loaded; the test asks
Prometheus' HTTP API whether every series the worker exports arrived (the process and
Python collectors and ``autolabel_build_info`` included), whether counters move as
records and feedback flow, whether the alert and recording rules loaded and evaluate,
and whether the review backlog is recorded. Without the ``prometheus`` binary the
Prometheus test is skipped on a development machine and fails in CI (``CI`` set;
``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka_support import blobs, feedback_for, keyed, produce, run_cli, scrape, wait_for_metric

from autolabel import __version__
from autolabel.core.messages import FeedbackSource
from autolabel.tools.harness import ChildProcess, WorkerProcess, http_get
from autolabel.tools.local_broker import free_port
from autolabel.worker.metrics import DEPRECATED_NAMES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/rules.yml"
SCRAPE_S = 1
PROMETHEUS_WAIT_S = 60.0
RECORDS = blobs("obs", 200, seed=11)
FEEDBACK = 60


@pytest.fixture(scope="module")
def worker(make_settings, start_worker) -> WorkerProcess:
    return start_worker(make_settings(log_format="json"))


# ------------------------------------------------------------------------------ HTTP


@pytest.mark.parametrize(
    "path", ["/", "/router/", "/table/", "/stats/", "/graph/", "/performance/", "/assignment/"]
)
def test_faust_pages_are_not_served(worker: WorkerProcess, path: str) -> None:
    status, _ = worker.get(path)
    assert status == 404, f"GET {path} answered {status}"


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz"])
def test_the_ops_pages_are_served(worker: WorkerProcess, path: str) -> None:
    status, _ = worker.get(path)
    assert status == 200, f"GET {path} answered {status}"


# ------------------------------------------------------------------------------ Prometheus


class Prometheus:
    """A Prometheus server in a child process, and its query API."""

    def __init__(self, process: ChildProcess, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = http_get(f"{self.url}/api/v1/{path}{query}")
        assert status == 200, f"Prometheus /api/v1/{path} answered {status}: {body[:300]!r}"
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector ``promql`` evaluates to now."""
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def value(self, promql: str) -> float | None:
        """The value of a query that yields at most one sample (None: no sample)."""
        result = self.query(promql)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + PROMETHEUS_WAIT_S
        while not check():
            if not self.process.alive():
                raise AssertionError(f"Prometheus exited:\n{self.process.log_tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus never saw {what}:\n{self.process.log_tail()}")
            time.sleep(0.5)


def prometheus_binary() -> str:
    """The ``prometheus`` server's path; without it, skip on a development machine but
    fail in CI."""
    path = shutil.which("prometheus")
    if path is None:
        if "CI" in os.environ:
            pytest.fail("prometheus is missing (.ci/run installs it: apt-get install prometheus)")
        pytest.skip("prometheus is not installed (apt-get install prometheus); CI fails here")
    return path


@pytest.fixture(scope="module")
def prometheus(
    worker: WorkerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    binary = prometheus_binary()
    folder = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {
            "scrape_interval": f"{SCRAPE_S}s",
            "scrape_timeout": f"{SCRAPE_S}s",
            "evaluation_interval": f"{SCRAPE_S}s",
        },
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": "autolabel",
                "static_configs": [{"targets": [worker.base_url.removeprefix("http://")]}],
            }
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = ChildProcess(
        [
            binary,
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        folder / "prometheus.log",
        name="prometheus",
    ).spawn()
    server = Prometheus(process, port)
    try:
        server.wait(lambda: http_get(f"{server.url}/-/ready")[0] == 200, "itself ready")
        yield server
    finally:
        process.stop()


async def test_prometheus_scrapes_every_series_and_sees_counters_move(
    worker: WorkerProcess, prometheus: Prometheus
) -> None:
    started = time.monotonic()
    prometheus.wait(lambda: prometheus.value('up{job="autolabel"}') == 1.0, "the worker up")

    exported = (await scrape(worker)).names()
    assert {"process_cpu_seconds_total", "python_info", "autolabel_build_info"} <= exported
    assert set(DEPRECATED_NAMES.values()) <= exported
    for name in ("process_resident_memory_bytes", "python_gc_collections_total"):
        assert name in exported, name

    def stored() -> set[str]:
        return set(prometheus.api("label/__name__/values", **{"match[]": '{job="autolabel"}'}))

    prometheus.wait(lambda: exported <= stored(), "every series the worker exports")
    (build,) = prometheus.query("autolabel_build_info")
    assert build["metric"]["version"] == __version__
    assert build["metric"]["python"] == platform.python_version()
    assert {"river", "aiokafka", "faust"} <= set(build["metric"])

    # Counters move as records and feedback flow.
    assert prometheus.value("autolabel_records_consumed_total") == 0.0
    s = worker.settings
    await produce(s.kafka.bootstrap_servers, s.topics.records, keyed([r for r, _ in RECORDS]))
    prometheus.wait(
        lambda: prometheus.value("autolabel_records_consumed_total") == len(RECORDS),
        f"{len(RECORDS)} records consumed",
    )
    assert prometheus.value("increase(autolabel_records_consumed_total[1m]) > 0") is not None
    assert prometheus.value('sum(autolabel_decisions_total{outcome="review"})') == len(RECORDS)

    before = prometheus.value("autolabel_prequential_accuracy_ratio")
    assert before is not None and math.isnan(before)  # stored as NaN: no accuracy yet, not 0
    feedback = feedback_for(RECORDS[:FEEDBACK], FeedbackSource.REVIEW, reviewer="ops")
    await produce(s.kafka.bootstrap_servers, s.topics.feedback, keyed(feedback))
    await wait_for_metric(
        worker, lambda m: m.get("autolabel_model_examples_learned") >= FEEDBACK, what="learned"
    )
    prometheus.wait(
        lambda: prometheus.value("sum(autolabel_feedback_learned_total)") == FEEDBACK,
        f"{FEEDBACK} feedback examples learned",
    )
    prometheus.wait(
        lambda: prometheus.value("autolabel_prequential_accuracy_ratio >= 0") is not None,
        "a prequential accuracy",
    )
    assert prometheus.value("autolabel_prequential_accuracy_ratio") == prometheus.value(
        "autolabel_prequential_accuracy"
    )  # the deprecated name, still exported, says the same

    # The deploy alert and recording rules loaded, and every one evaluates without error.
    names = {
        rule.get("alert") or rule["record"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }

    def rules() -> dict[str, dict[str, Any]]:
        groups = prometheus.api("rules")["groups"]
        return {rule["name"]: rule for group in groups for rule in group["rules"]}

    prometheus.wait(
        lambda: all(rule["health"] == "ok" for rule in rules().values()), "every rule evaluated"
    )
    loaded = rules()
    assert set(loaded) == names
    assert all(not rule.get("lastError") for rule in loaded.values())

    # The recorded review backlog: every record went to review, and the feedback above
    # answers no request (no ticket), so nothing is subtracted. increase() extrapolates a
    # young series towards the window's end, so on a busy machine (few scrapes) it can
    # read up to about twice the true count, never less.
    backlog = 'sum(autolabel:review_backlog_requests:by_reason{job="autolabel"})'
    prometheus.wait(
        lambda: (prometheus.value(backlog) or 0.0) >= len(RECORDS), "the review backlog recorded"
    )
    assert (prometheus.value(backlog) or 0.0) <= 3 * len(RECORDS)
    took = time.monotonic() - started
    print(f"Prometheus saw the worker's series, counters and rules in {took:.1f} s")


# ------------------------------------------------------------------------------ logs


def test_a_command_logs_json_lines_too(worker: WorkerProcess) -> None:
    env = worker.settings.to_env() | {"AUTOLABEL_LOG_LEVEL": "debug"}
    result = run_cli("topics", "--check", env=env)
    assert result.returncode == 0, result.stderr
    assert worker.settings.topics.records in result.stdout  # the table; logs went to stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "nothing logged at debug level"
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(json.loads(line)), line


def test_the_worker_logs_one_json_object_per_line(worker: WorkerProcess) -> None:
    """Runs last: stops the worker, so its shutdown is in the log too."""
    assert worker.stop() == 0
    lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]
    assert lines, "the worker logged nothing"
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= set(record), line
        records.append(record)
    loggers = {record["logger"].split(".")[0] for record in records}
    assert "autolabel" in loggers
    assert loggers & {"faust", "mode", "aiokafka"}, f"no Faust/mode/aiokafka record: {loggers}"
    assert worker.settings.snapshot.key is not None
    key = worker.settings.snapshot.key.get_secret_value()
    assert not any(key in line for line in lines), "the snapshot key was logged"
