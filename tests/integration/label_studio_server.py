"""A real Label Studio server for the bridge's tests: installed from PyPI into a venv of
its own, started headless on SQLite as a subprocess.

* :func:`ensure_venv` runs ``.ci/label-studio-venv`` (reuses the venv when present;
  ~35 s to install on an idle machine, ~1 GB under the ignored ``.artifacts/``).
* :func:`ensure_template` builds, once, a data dir that a server has migrated and in which
  it created the test user with :data:`TOKEN`; every test run starts from a copy
  (3-7 s to ready instead of ~25-80 s of migrations).
* :class:`LabelStudioServer` starts ``label-studio start`` with no prompts and no
  outbound traffic (analytics, version check and Sentry off), waits for ``GET /health``
  and stops the whole process group.

Label Studio moves to the next port by itself when the one asked for is busy; the
server here is checked to answer on the port it was given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from autolabel.tools.harness import ChildProcess, http_get, tail_lines
from autolabel.tools.local_broker import free_port

VERSION = "1.23.2"
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".ci" / "label-studio-venv"
VENV = Path(os.environ.get("LABEL_STUDIO_VENV", REPO / ".artifacts" / "label-studio-venv"))
TEMPLATE = REPO / ".artifacts" / f"label-studio-data-{VERSION}"
USERNAME = "reviewer@example.com"
PASSWORD = "autolabel-tests-only"
TOKEN = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
"""The test user's legacy API token (40 hex digits): a local test server's, not a secret."""
INSTALL_TIMEOUT_S = 1200.0
READY_TIMEOUT_S = 240.0


class LabelStudioUnavailable(RuntimeError):
    """Label Studio could not be installed or started; the message says why."""


def ensure_venv() -> Path:
    """Label Studio's venv, installed by ``.ci/label-studio-venv`` when missing."""
    if (VENV / f".installed-label-studio-{VERSION}").exists():
        return VENV
    env = {**os.environ, "LABEL_STUDIO_VENV": str(VENV)}
    try:
        done = subprocess.run(
            ["bash", str(SCRIPT)],
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabelStudioUnavailable(f"{SCRIPT} failed: {exc!r}") from None
    if done.returncode != 0:
        raise LabelStudioUnavailable(
            f"{SCRIPT} exited {done.returncode}:\n{tail_lines(done.stderr, 20, '    ')}"
        )
    return VENV


def headless_environment(
    data_dir: Path, *, loopback_webhooks: bool = True, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The variables that start Label Studio with no prompt and no outbound traffic, the
    test user and its token; ``loopback_webhooks`` lifts the guard that refuses webhooks
    to 127.0.0.1 (Label Studio's SSRF protection)."""
    env = dict(os.environ if base is None else base)
    env.update(
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        LABEL_STUDIO_USERNAME=USERNAME,
        LABEL_STUDIO_PASSWORD=PASSWORD,
        LABEL_STUDIO_USER_TOKEN=TOKEN,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        COLLECT_ANALYTICS="false",
        LATEST_VERSION_CHECK="false",
        SENTRY_DSN="",
        FRONTEND_SENTRY_DSN="",
        PYTHONUNBUFFERED="1",
    )
    if loopback_webhooks:
        env["USE_DEFAULT_BANNED_SUBNETS"] = "false"
    return {k: v for k, v in env.items() if not k.startswith("AUTOLABEL_")}


class LabelStudioServer:
    """``label-studio start`` on a loopback port, from ``data_dir``.

    Parameters
    ----------
    venv
        Label Studio's virtualenv.
    data_dir
        Its data (SQLite database, media); a copy of the template, usually.
    log_path
        Where its output goes.
    loopback_webhooks
        Let it send webhooks to 127.0.0.1.
    """

    def __init__(
        self, venv: Path, data_dir: Path, log_path: Path, *, loopback_webhooks: bool = True
    ) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.process = ChildProcess(
            [
                str(venv / "bin" / "label-studio"),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            log_path,
            env=headless_environment(data_dir, loopback_webhooks=loopback_webhooks),
            cwd=data_dir,
            name="label-studio",
        )
        self.started_s = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> Self:
        """Start it and wait until ``/health`` answers on its port."""
        began = time.monotonic()
        self.process.spawn()
        deadline = began + timeout_s
        while time.monotonic() < deadline:
            status, _ = http_get(self.url + "/health", timeout_s=2.0)
            if status == 200:
                self.started_s = time.monotonic() - began
                return self
            if not self.process.alive():
                raise LabelStudioUnavailable(
                    f"label-studio exited ({self.process.returncode}) before it was ready:\n"
                    + self.log_tail()
                )
            time.sleep(0.25)
        self.stop()
        raise LabelStudioUnavailable(
            f"label-studio did not answer on {self.url} within {timeout_s:.0f}s:\n"
            + self.log_tail()
        )

    def stop(self, timeout_s: float = 20.0) -> None:
        self.process.stop(timeout_s)

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines, "    ")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def ensure_template(venv: Path) -> Path:
    """A data dir migrated by Label Studio with the test user in it (built once)."""
    ready = TEMPLATE / ".ready"
    if ready.exists():
        return TEMPLATE
    TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix="label-studio-data-", dir=TEMPLATE.parent))
    data = building / "data"
    data.mkdir()
    log_path = building / "label-studio.log"
    with LabelStudioServer(venv, data, log_path):
        pass  # ready means migrated, with the user and its token created
    log_path.unlink()
    (data / ".ready").touch()
    shutil.rmtree(TEMPLATE, ignore_errors=True)
    data.rename(TEMPLATE)
    shutil.rmtree(building, ignore_errors=True)
    return TEMPLATE


def fresh_data_dir(template: Path, where: Path) -> Path:
    """A copy of the template data dir for one server."""
    target = where / "label-studio-data"
    shutil.copytree(template, target)
    return target
