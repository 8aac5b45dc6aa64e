"""Secured clusters for the integration suite: TLS through socat, SASL through our own proxy.

The local broker (Tansu) speaks neither TLS nor SASL, so each secured cluster is a
broker of its own listening in the clear on a port no client is told about, with a
proxy in front, and the broker advertises the proxy's port only: every connection a
client opens after bootstrap goes through the proxy too.

* :func:`make_certificates` — a CA, a server certificate for ``127.0.0.1`` and
  ``localhost``, a client certificate (its key encrypted), and a second CA that signed
  nothing here; made with the ``openssl`` command.
* :class:`Socat` — ``socat OPENSSL-LISTEN`` → the broker (TLS, or mutual TLS).
* :class:`SecuredCluster` — broker + proxy + the ``kafka`` settings a client needs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka_support import settings_for
from sasl_proxy import SaslProxy

from autolabel.settings import Settings
from autolabel.tools.harness import ChildProcess
from autolabel.tools.local_broker import LocalBroker, free_port

KEY_PASSWORD = "client-key-password-of-the-tests"
SASL_USER = "autolabel-svc"
SASL_PASSWORD = "sasl-password-of-the-tests"
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
SERVER_NAMES = "IP:127.0.0.1,DNS:localhost"  # the clients check the host name by default


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path  # encrypted with KEY_PASSWORD
    other_ca: Path  # signed nothing here: a client trusting it must refuse the broker


def require(tool: str, package: str) -> None:
    """Skip without ``tool`` on a development machine; fail in CI (``.ci/run`` installs it)."""
    if shutil.which(tool) is None:
        if "CI" in os.environ:
            pytest.fail(f"{tool} is missing (.ci/run installs it: apt-get install {package})")
        pytest.skip(f"{tool} is not installed (apt-get install {package}); CI fails here")


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_certificates(d: Path) -> Certificates:
    """Certificates that pass Python's strict X.509 checks (3.13's default)."""
    require("openssl", "openssl")
    for ca in ("ca", "other-ca"):
        key_and_cert = ["-keyout", d / f"{ca}.key", "-out", d / f"{ca}.crt"]
        _openssl("req", "-x509", *EC, "-nodes", *key_and_cert, "-subj", f"/CN=test {ca}",
                 "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    leaf = [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid",
    ]
    extensions = {
        "server": [*leaf, "extendedKeyUsage=serverAuth", f"subjectAltName={SERVER_NAMES}"],
        "client": [*leaf, "extendedKeyUsage=clientAuth"],
    }
    signer = ["-CA", d / "ca.crt", "-CAkey", d / "ca.key", "-CAcreateserial", "-days", "2"]
    for name, lines in extensions.items():
        (d / f"{name}.ext").write_text("\n".join(lines) + "\n")
        csr = d / f"{name}.csr"
        _openssl("req", "-new", *EC, "-nodes", "-keyout", d / f"{name}.key", "-out", csr,
                 "-subj", f"/CN=test {name}")  # fmt: skip
        _openssl("x509", "-req", "-in", csr, *signer, "-extfile", d / f"{name}.ext",
                 "-out", d / f"{name}.crt")  # fmt: skip
    encrypt = ["-aes256", "-passout", f"pass:{KEY_PASSWORD}"]
    _openssl("pkey", "-in", d / "client.key", *encrypt, "-out", d / "client-encrypted.key")
    return Certificates(
        ca=d / "ca.crt",
        server_cert=d / "server.crt",
        server_key=d / "server.key",
        client_cert=d / "client.crt",
        client_key=d / "client-encrypted.key",
        other_ca=d / "other-ca.crt",
    )


def wait_listening(port: int, what: str, process: ChildProcess | None = None) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(f"{what} exited: {process.log_tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port}")


class Socat(ChildProcess):
    """TLS on ``port`` (loopback), in the clear to ``upstream_port``; ``-d -d`` logs each session.

    ``mutual``: require a client certificate signed by the test CA.
    """

    def __init__(
        self, port: int, upstream_port: int, certs: Certificates, log_path: Path, *, mutual: bool
    ) -> None:
        require("socat", "socat")
        verify = f"verify=1,cafile={certs.ca}" if mutual else "verify=0"
        listen = (
            f"OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,"
            f"cert={certs.server_cert},key={certs.server_key},{verify}"
        )
        super().__init__(["socat", "-d", "-d", listen, f"TCP:127.0.0.1:{upstream_port}"], log_path)
        self.port = port

    def sessions(self) -> int:
        """TLS sessions that completed their handshake so far."""
        return self.log_path.read_text(errors="replace").count("SSL connection using")


@dataclass
class SecuredCluster:
    """A broker reachable only through ``proxy`` on ``port``, and how a client reaches it."""

    broker: LocalBroker
    port: int
    kafka: dict[str, Any]  # the security settings (TLS files, SASL login)
    proxy: Socat | SaslProxy

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def settings(self, **sections: Any) -> Settings:
        """Settings of a fresh deployment on this cluster (see ``settings_for``)."""
        kafka = {**self.kafka, **sections.pop("kafka", {})}
        return settings_for(self.bootstrap_servers, kafka=kafka, **sections)


@contextlib.contextmanager
def tls_cluster(certs: Certificates, logs: Path, *, mutual: bool) -> Iterator[SecuredCluster]:
    """SSL through socat; ``mutual``: the client must present ``certs.client_cert``."""
    port = free_port()
    kafka: dict[str, Any] = {"security_protocol": "SSL", "ssl_cafile": certs.ca}
    if mutual:
        kafka |= {
            "ssl_certfile": certs.client_cert,
            "ssl_keyfile": certs.client_key,
            "ssl_keyfile_password": KEY_PASSWORD,
        }
    with LocalBroker(log_path=logs / "tansu.log", advertised_port=port) as broker:
        socat = Socat(port, broker.port, certs, logs / "socat.log", mutual=mutual).spawn()
        try:
            wait_listening(port, "socat", socat)
            yield SecuredCluster(broker, port, kafka, socat)
        finally:
            socat.stop(5)


@contextlib.contextmanager
def sasl_cluster(certs: Certificates, logs: Path, *, tls: bool) -> Iterator[SecuredCluster]:
    """SASL through :class:`SaslProxy` (one user), under TLS when ``tls`` (SASL_SSL)."""
    port = free_port()
    context = None
    kafka: dict[str, Any] = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": SASL_USER,
        "sasl_password": SASL_PASSWORD,
    }
    if tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certs.server_cert, certs.server_key)
        kafka |= {"security_protocol": "SASL_SSL", "ssl_cafile": certs.ca}
    with (
        LocalBroker(log_path=logs / "tansu.log", advertised_port=port) as broker,
        SaslProxy(port, broker.port, SASL_USER, SASL_PASSWORD, tls=context) as proxy,
    ):
        yield SecuredCluster(broker, port, kafka, proxy)
