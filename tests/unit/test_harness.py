"""autolabel.tools.harness: process groups, log tails and readiness, without a broker.

The worker itself runs end to end in tests/integration and tests/e2e; here the
process is a small Python script and ``/readyz`` a server in this process.
"""

from __future__ import annotations

import asyncio
import http.server
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from autolabel.settings import Settings
from autolabel.tools.harness import (
    ChildProcess,
    WorkerProcess,
    WorkerProcessError,
    http_get,
    worker_environment,
)
from autolabel.tools.local_broker import free_port

SLEEPER = "import time; print('started', flush=True); time.sleep(60)"
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
    " print('ignoring SIGTERM', flush=True); time.sleep(60)"
)


def python(tmp_path: Path, script: str) -> ChildProcess:
    return ChildProcess([sys.executable, "-c", script], tmp_path / "child.log")


def wait_for_log(child: ChildProcess, text: str) -> None:
    for _ in range(200):
        if text in child.log_tail():
            return
        threading.Event().wait(0.025)
    raise AssertionError(f"{text!r} not in the log: {child.log_tail()}")


def test_environment_drops_inherited_autolabel_variables_and_adds_the_settings() -> None:
    settings = Settings(app_id="mine", topics={"create": False})
    env = worker_environment(
        settings,
        {"HOME": "/h", "AUTOLABEL_APP_ID": "theirs", "AUTOLABEL_HTTP__PROT": "1"},
        {"AUTOLABEL_LOG_LEVEL": "debug"},
    )
    assert env["HOME"] == "/h" and env["PYTHONUNBUFFERED"] == "1"
    assert env["AUTOLABEL_APP_ID"] == "mine"
    assert "AUTOLABEL_HTTP__PROT" not in env  # a stale typo would make the worker refuse
    assert env["AUTOLABEL_TOPICS__CREATE"] == "false"
    assert env["AUTOLABEL_LOG_LEVEL"] == "debug"  # extra wins


def test_a_child_is_stopped_with_sigterm_and_its_log_is_readable(tmp_path: Path) -> None:
    child = python(tmp_path, SLEEPER).spawn()
    try:
        assert child.alive() and child.pid > 0
        wait_for_log(child, "started")
        assert child.log_tail(indent="  ") == "  started"
    finally:
        code = child.stop(timeout_s=10)
    assert code == -signal.SIGTERM and not child.alive()
    assert child.stop() == code  # again: nothing more to do


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    child = python(tmp_path, STUBBORN).spawn()
    wait_for_log(child, "ignoring SIGTERM")
    assert child.stop(timeout_s=0.3) == -signal.SIGKILL


def test_kill_is_immediate_and_a_child_starts_once(tmp_path: Path) -> None:
    child = python(tmp_path, SLEEPER).spawn()
    with pytest.raises(RuntimeError, match="already started"):
        child.spawn()
    assert child.kill() == -signal.SIGKILL
    assert child.returncode == -signal.SIGKILL


def test_nothing_started_nothing_to_stop(tmp_path: Path) -> None:
    child = python(tmp_path, SLEEPER)
    assert child.stop() is None and child.kill() is None and not child.alive()
    assert child.log_tail() == "(no log)"


def test_a_worker_that_exits_says_so_with_its_log(tmp_path: Path) -> None:
    """The real worker, without a broker to go to: it exits 2 and says what to set."""
    log_path = tmp_path / "worker.log"
    worker = WorkerProcess(Settings(http={"port": free_port()}), log_path)
    with pytest.raises(WorkerProcessError) as info:
        worker.start(timeout_s=60)
    message = str(info.value)
    assert "exited with code 2 before it was ready" in message
    assert str(log_path) in message
    assert "AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS" in message  # from the log's tail


class _Ready(http.server.BaseHTTPRequestHandler):
    status = 503

    def do_GET(self) -> None:
        code = type(self).status if self.path == "/readyz" else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b'{"ready": %s}' % (b"true" if code == 200 else b"false"))

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def readyz() -> Iterator[tuple[int, type[_Ready]]]:
    """A ``/readyz`` on a free port, 503 until the test flips it to 200."""
    handler = type("Handler", (_Ready,), {"status": 503})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], handler
    server.shutdown()
    server.server_close()


def sleeping_worker(tmp_path: Path, port: int) -> WorkerProcess:
    """A WorkerProcess whose process only sleeps (``-c`` runs before ``-m autolabel``)."""
    settings = Settings(http={"host": "127.0.0.1", "port": port})
    return WorkerProcess(settings, tmp_path / "w.log", python_args=("-c", SLEEPER))


def test_readiness_waits_for_200_and_get_returns_error_bodies(
    tmp_path: Path, readyz: tuple[int, type[_Ready]]
) -> None:
    port, handler = readyz
    worker = sleeping_worker(tmp_path, port).spawn()
    try:
        assert worker.get("/readyz") == (503, b'{"ready": false}')
        threading.Timer(0.5, lambda: setattr(handler, "status", 200)).start()
        assert 0.3 < worker.wait_ready(timeout_s=10) < 5
        assert worker.get("/readyz")[0] == 200
    finally:
        worker.stop()


def test_readiness_times_out_with_what_it_saw(
    tmp_path: Path, readyz: tuple[int, type[_Ready]]
) -> None:
    port, _ = readyz
    worker = sleeping_worker(tmp_path, port)
    expected = r"not ready after 1 s \(GET .*/readyz answered 503"
    with pytest.raises(WorkerProcessError, match=expected):
        worker.start(timeout_s=1.0)
    assert not worker.alive()  # start() stops what it could not get ready


async def test_async_readiness_does_not_block_the_loop(
    tmp_path: Path, readyz: tuple[int, type[_Ready]]
) -> None:
    port, handler = readyz
    worker = sleeping_worker(tmp_path, port).spawn()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.05)
            if ticks == 10:
                handler.status = 200

    ticker = asyncio.create_task(tick())
    try:
        await worker.wait_ready_async(timeout_s=10)
    finally:
        ticker.cancel()
        worker.stop()
    assert ticks >= 10


def test_nothing_answering_is_status_zero() -> None:
    assert http_get(f"http://127.0.0.1:{free_port()}/readyz", timeout_s=1) == (0, b"")
