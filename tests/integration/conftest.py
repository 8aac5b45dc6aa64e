"""Integration fixtures: a real Kafka-compatible broker (Tansu) and real worker processes.

* ``broker`` — one :class:`~autolabel.tools.local_broker.LocalBroker` for the session.
* ``make_settings`` — a :class:`~autolabel.settings.Settings` with a fresh topic set and
  app id (a uuid prefix), so tests never see each other's messages.
* ``start_worker`` — runs ``python -m autolabel worker`` as a subprocess with
  :class:`~autolabel.tools.harness.WorkerProcess`, configured only through the
  ``AUTOLABEL_*`` variables of ``settings.to_env()``, waits for ``/readyz`` = 200 and
  stops it (SIGTERM, then kill) at the end of the module. When a test fails, the tail
  of the log of every worker the module started is attached to its report.

Helpers live in ``kafka_support.py``: ``produce`` writes raw messages, ``collect`` reads
labels / review / dead-letter back until a condition holds, ``Metrics`` parses ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_support import LOG_TAIL_LINES, READY_TIMEOUT_S, STOP_TIMEOUT_S, settings_for

from autolabel.settings import Settings
from autolabel.tools.harness import WorkerProcess
from autolabel.tools.local_broker import LocalBroker

STARTED: list[WorkerProcess] = []
"""Workers of the current module (their logs go into failing test reports)."""

# --------------------------------------------------------------------------- broker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with LocalBroker(log_path=log_path) as running:
        yield running


@pytest.fixture(scope="session")
def make_settings(broker: LocalBroker) -> Callable[..., Settings]:
    def make(**sections: Any) -> Settings:
        return settings_for(broker.bootstrap_servers, **sections)

    return make


@pytest.fixture(scope="module")
def start_worker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[Settings], WorkerProcess]]:
    """Start workers for this module; all are stopped when the module ends."""

    def start(settings: Settings) -> WorkerProcess:
        log_path = tmp_path_factory.mktemp("worker") / f"{settings.app_id}.log"
        worker = WorkerProcess(settings, log_path)
        STARTED.append(worker)
        return worker.start(READY_TIMEOUT_S)

    yield start
    try:
        for worker in STARTED:
            worker.stop(STOP_TIMEOUT_S)
    finally:
        STARTED.clear()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[Settings], WorkerProcess]]:
    """Start workers for one test (several may share a deployment); all stop after it."""
    mine: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(mine)}.log")
        mine.append(worker)
        STARTED.append(worker)
        return worker.start(READY_TIMEOUT_S)

    yield start
    for worker in mine:
        worker.stop(STOP_TIMEOUT_S)
        STARTED.remove(worker)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for worker in STARTED:
            state = "running" if worker.alive() else f"exited {worker.returncode}"
            report.sections.append(
                (f"worker {worker.settings.app_id} log ({state})", worker.log_tail(LOG_TAIL_LINES))
            )
