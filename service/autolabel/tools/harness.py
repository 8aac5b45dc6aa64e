"""Run ``autolabel worker`` as a child process: start, wait for ``/readyz``, read its log, stop.

One harness for ``autolabel demo``, the integration tests and the benchmark.
:class:`WorkerProcess` runs ``sys.executable -m autolabel worker`` in its own
session (a Ctrl-C in the terminal reaches the parent only, which then stops the
worker in order), writes its output to a log file and configures it through the
environment only: the parent's environment minus every inherited ``AUTOLABEL_*``
variable, plus :meth:`Settings.to_env() <autolabel.settings.Settings.to_env>`,
plus any extra variables (:func:`worker_environment`; :func:`clean_environment` is
the same for other commands).

:class:`ChildProcess` is the process part alone (spawn, log tail, stop the whole
process group: SIGTERM, then SIGKILL after a timeout); the benchmark runs its two
baseline pipelines with it. :func:`tail_lines` formats a log's end for messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

from autolabel.settings import ENV_PREFIX, Settings

READY_PATH = "/readyz"
READY_POLL_S = 0.2
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 25
_ANY_ADDRESS = {"", "0.0.0.0", "::"}


class WorkerProcessError(RuntimeError):
    """The worker exited or did not get ready in time; the message ends with its log tail."""


def tail_lines(text: str | None, lines: int = LOG_TAIL_LINES, indent: str = "") -> str:
    """The last ``lines`` lines of a log, each indented; says so when there is none.

    >>> print(tail_lines("one\\ntwo\\nthree\\n", 2, indent="    "))
        two
        three
    >>> tail_lines(None), tail_lines("")
    ('(no log)', '(empty)')
    """
    if text is None:
        return indent + "(no log)"
    kept = text.splitlines()[-lines:] if lines > 0 else []
    return "\n".join(indent + line for line in kept) or indent + "(empty)"


def clean_environment(
    base: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``base`` without its ``AUTOLABEL_*`` variables, then ``extra``.

    >>> clean_environment({"PATH": "/bin", "AUTOLABEL_APP_ID": "x"}, {"AUTOLABEL_HTTP__PORT": "1"})
    {'PATH': '/bin', 'AUTOLABEL_HTTP__PORT': '1'}
    """
    env = {name: value for name, value in base.items() if not name.startswith(ENV_PREFIX)}
    env.update(extra or {})
    return env


def worker_environment(
    settings: Settings, base: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``base`` without its ``AUTOLABEL_*`` variables, then ``settings.to_env()``, then ``extra``.

    Output is unbuffered (``PYTHONUNBUFFERED=1``) so the log is current; ``extra`` may
    override that and anything else.

    >>> env = worker_environment(
    ...     Settings(http={"port": 9100}),
    ...     {"PATH": "/bin", "AUTOLABEL_HTTP__HOST": "h", "AUTOLABEL_TYPO": "x"},
    ...     {"TZ": "UTC"},
    ... )
    >>> env["PATH"], env["AUTOLABEL_HTTP__PORT"], env["AUTOLABEL_HTTP__HOST"], env["TZ"]
    ('/bin', '9100', '0.0.0.0', 'UTC')
    >>> "AUTOLABEL_TYPO" in env
    False
    """
    return clean_environment(base, {"PYTHONUNBUFFERED": "1", **settings.to_env(), **(extra or {})})


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """Status and body of a GET (error statuses too); ``(0, b"")`` when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        with contextlib.suppress(OSError):
            return int(exc.code), bytes(exc.read())
        return int(exc.code), b""
    except (OSError, ValueError):  # refused, reset, timed out, or not HTTP at all
        return 0, b""


class ChildProcess:
    """A command in its own session, stdout and stderr to ``log_path``, stopped as a group.

    Parameters
    ----------
    argv
        The command line.
    log_path
        Where its output goes (truncated at :meth:`spawn`).
    env
        Its whole environment; None: this process's.
    cwd
        Its working directory; None: this process's.
    name
        How messages call it.
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        name: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.name = name if name is not None else Path(self.argv[0]).name
        self.process: subprocess.Popen[bytes] | None = None
        self._group_reaped = False

    def spawn(self) -> Self:
        """Start the command without waiting for anything; once per object."""
        if self.process is not None:
            raise RuntimeError(f"{self.name} was already started (pid {self.process.pid})")
        with self.log_path.open("wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        return self._started().pid

    @property
    def returncode(self) -> int | None:
        """The exit code once it has exited (negative: killed by that signal), else None."""
        return self.process.poll() if self.process is not None else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES, indent: str = "") -> str:
        """The last lines of its log (see :func:`tail_lines`)."""
        try:
            text: str | None = self.log_path.read_text(errors="replace")
        except OSError:
            text = None
        return tail_lines(text, lines, indent)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM the process group, wait, SIGKILL it after ``timeout_s``; the exit code.

        Also resumes a stopped (SIGSTOP) group so it can act on the SIGTERM. An
        interrupt while waiting kills the group before it propagates. None if the
        command was never started; calling it again returns the same code.
        """
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            self._signal_group(signal.SIGTERM)
            self._signal_group(signal.SIGCONT)
            try:
                process.wait(timeout_s)
            except BaseException as exc:  # timeout, or a second Ctrl-C while waiting
                self._signal_group(signal.SIGKILL)
                process.wait()
                if not isinstance(exc, subprocess.TimeoutExpired):
                    raise
        elif not self._group_reaped:  # the leader is gone: so is anything it left behind
            self._signal_group(signal.SIGKILL)
        self._group_reaped = True
        return process.returncode

    def kill(self) -> int | None:
        """SIGKILL the process group at once (fault tests); the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None or not self._group_reaped:
            self._signal_group(signal.SIGKILL)
        process.wait()
        self._group_reaped = True
        return process.returncode

    def _signal_group(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signum)

    def _started(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self.process


class WorkerProcess(ChildProcess):
    """``autolabel worker`` configured by ``settings`` alone, reachable on its HTTP port.

    Parameters
    ----------
    settings
        What the worker is told, through :func:`worker_environment`.
    log_path
        Where its output goes.
    extra_env
        Variables on top (they win over ``settings``).
    python_args
        Interpreter arguments before ``-m autolabel worker`` (e.g. a profiler's).
    cwd
        Its working directory; None: this process's.
    name
        How messages call it.

    >>> worker = WorkerProcess(Settings(http={"port": 9100}), Path("worker.log"))
    >>> worker.argv[1:], worker.base_url
    (['-m', 'autolabel', 'worker'], 'http://127.0.0.1:9100')
    """

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        extra_env: Mapping[str, str] | None = None,
        python_args: Sequence[str] = (),
        cwd: Path | None = None,
        name: str = "the worker",
    ) -> None:
        super().__init__(
            [sys.executable, *python_args, "-m", "autolabel", "worker"],
            log_path,
            env=worker_environment(settings, os.environ, extra_env),
            cwd=cwd,
            name=name,
        )
        self.settings = settings

    @property
    def base_url(self) -> str:
        """Where its HTTP port answers (loopback when it listens on every address)."""
        host = self.settings.http.host
        host = "127.0.0.1" if host in _ANY_ADDRESS else host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.settings.http.port}"

    def get(self, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
        """Status and body of ``GET path``; status 0 when nothing answers."""
        return http_get(self.base_url + path, timeout_s)

    async def aget(self, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
        """:meth:`get` in a thread, for callers on an event loop."""
        return await asyncio.to_thread(self.get, path, timeout_s)

    def start(self, timeout_s: float = 60.0) -> Self:
        """Spawn it and wait until ``/readyz`` answers 200; on failure stop it and raise.

        Raises :class:`WorkerProcessError` (with the log's tail) when it exits first or is
        not ready within ``timeout_s``.
        """
        self.spawn()
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float) -> float:
        """Block until ``/readyz`` answers 200; the seconds it took (see :meth:`start`)."""
        started = time.monotonic()
        while not self._ready_now(started, timeout_s):
            time.sleep(READY_POLL_S)
        return time.monotonic() - started

    async def wait_ready_async(self, timeout_s: float) -> float:
        """:meth:`wait_ready` without blocking the event loop (HTTP in a thread)."""
        started = time.monotonic()
        while True:
            if await asyncio.to_thread(self._ready_now, started, timeout_s):
                return time.monotonic() - started
            await asyncio.sleep(READY_POLL_S)

    def exit_error(self, when: str) -> WorkerProcessError:
        """The error for a worker that exited ``when`` (e.g. "during the run"), with its log."""
        return WorkerProcessError(
            f"{self.name} exited with code {self.returncode} {when};"
            f" the end of {self.log_path}:\n{self.log_tail(indent='    ')}"
        )

    def _ready_now(self, started: float, timeout_s: float) -> bool:
        """One readiness check: True when ready, False to poll again; raises when it never will."""
        self._started()
        if not self.alive():
            raise self.exit_error("before it was ready")
        status, _ = self.get(READY_PATH, timeout_s=1.0)
        if status == 200:
            return True
        if time.monotonic() - started >= timeout_s:
            answer = f"answered {status}" if status else "did not answer"
            raise WorkerProcessError(
                f"{self.name} was not ready after {timeout_s:.0f} s"
                f" (GET {self.base_url}{READY_PATH} {answer}); the end of {self.log_path}:\n"
                + self.log_tail(indent="    ")
            )
        return False
