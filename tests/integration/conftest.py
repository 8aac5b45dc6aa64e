"""Integration fixtures: a real Kafka-compatible broker (Tansu) and real worker processes.

* ``broker`` — one :class:`~autolabel.tools.local_broker.LocalBroker` for the session.
* ``make_settings`` — a :class:`~autolabel.settings.Settings` with a fresh topic set and
  app id (a uuid prefix), so tests never see each other's messages.
* ``start_worker`` — runs ``python -m autolabel worker`` as a subprocess, configured only
  through ``AUTOLABEL_*`` variables built from those settings, waits for ``/readyz`` = 200
  and stops it (SIGTERM, then kill) at the end of the module. When a test fails, the tail
  of every running worker's log is attached to its report.

Helpers live in ``kafka_support.py``: ``produce`` writes raw messages, ``collect`` reads
labels / review / dead-letter back until a condition holds, ``Metrics`` parses ``/metrics``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka_support import RUNNING, WorkerProcess, settings_for

from autolabel.settings import Settings
from autolabel.tools.local_broker import LocalBroker

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
    started: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        log_path = tmp_path_factory.mktemp("worker") / f"{settings.app_id}.log"
        worker = WorkerProcess(settings, log_path)
        started.append(worker)
        RUNNING[id(worker)] = worker
        return worker.start()

    yield start
    for worker in started:
        worker.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for worker in list(RUNNING.values()):
            state = "running" if worker.alive() else f"exited {worker.process.returncode}"
            report.sections.append(
                (f"worker {worker.settings.app_id} log ({state})", worker.log_tail())
            )
