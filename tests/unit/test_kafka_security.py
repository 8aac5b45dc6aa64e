"""TLS and SASL settings: checked at start, one line per variable, secrets never shown.

The certificates are made with the ``openssl`` command (EC keys: fast). No broker here:
the integration suite (``tests/integration/test_secured_kafka.py``) connects for real.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import pydantic
import pytest

from autolabel.kafka.clients import client_options, connection_problem
from autolabel.settings import KafkaSettings, Settings, SettingsError, load_settings
from autolabel.tools.local_broker import free_port
from autolabel.worker.app import broker_credentials

V = "AUTOLABEL_KAFKA__"
PASSWORD = "hunter2-key-password"
SASL_PASSWORD = "hunter2-sasl-password"
SASL = {"sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "svc", "sasl_password": SASL_PASSWORD}


@dataclass(frozen=True)
class Files:
    ca: Path  # a self-signed certificate: a CA as far as a client is concerned
    cert: Path
    key: Path
    encrypted_key: Path  # ``key`` under PASSWORD
    other_key: Path  # not the key of ``cert``
    combined: Path  # cert and key in one file
    not_pem: Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    if shutil.which("openssl") is None:  # skip on a development machine, fail in CI
        if "CI" in os.environ:
            pytest.fail("openssl is missing (.ci/run installs it: apt-get install openssl)")
        pytest.skip("openssl is not installed (apt-get install openssl); CI fails here")
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name in ("cert", "other"):
        out = ["-keyout", f"{d}/{name}.key", "-out", f"{d}/{name}.crt"]
        openssl("req", "-x509", *ec, *out, "-subj", f"/CN={name}", "-days", "2")
    encrypt = ["-aes256", "-passout", f"pass:{PASSWORD}"]
    openssl("pkey", "-in", f"{d}/cert.key", *encrypt, "-out", f"{d}/encrypted.key")
    (d / "combined.pem").write_text((d / "cert.crt").read_text() + (d / "cert.key").read_text())
    (d / "notes.txt").write_text("not a certificate\n")
    return Files(
        ca=d / "other.crt",
        cert=d / "cert.crt",
        key=d / "cert.key",
        encrypted_key=d / "encrypted.key",
        other_key=d / "other.key",
        combined=d / "combined.pem",
        not_pem=d / "notes.txt",
    )


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("AUTOLABEL_"):
            monkeypatch.delenv(name)
    return monkeypatch


def problems(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The lines of the error ``load_settings`` raises with ``env`` set."""
    for name, value in env.items():
        monkeypatch.setenv(V + name.upper(), str(value))
    with pytest.raises(SettingsError) as info:
        load_settings()
    return info.value.problems


# --------------------------------------------------------------------------- TLS context


def test_ssl_verifies_the_broker_with_the_configured_ca(files: Files) -> None:
    kafka = KafkaSettings(bootstrap_servers="k:9093", security_protocol="SSL", ssl_cafile=files.ca)
    options = client_options(kafka)
    context = options["ssl_context"]
    assert options["security_protocol"] == "SSL" and "sasl_mechanism" not in options
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [dict(c["subject"][0])["commonName"] for c in context.get_ca_certs()] == ["other"]


def test_ssl_without_a_cafile_uses_the_system_cas_and_may_skip_the_host_name() -> None:
    kafka = KafkaSettings(security_protocol="SSL", ssl_check_hostname=False)
    context = kafka.ssl_context()
    assert context.verify_mode == ssl.CERT_REQUIRED  # the chain is still verified
    assert not context.check_hostname


@pytest.mark.parametrize("kind", ["plain key", "encrypted key", "combined file"])
def test_a_client_certificate_is_loaded(files: Files, kind: str) -> None:
    tls: dict[str, Any] = {
        "plain key": {"ssl_certfile": files.cert, "ssl_keyfile": files.key},
        "encrypted key": {
            "ssl_certfile": files.cert,
            "ssl_keyfile": files.encrypted_key,
            "ssl_keyfile_password": PASSWORD,
        },
        "combined file": {"ssl_certfile": files.combined},
    }[kind]
    kafka = KafkaSettings(security_protocol="SSL", ssl_cafile=files.ca, **tls)
    assert isinstance(kafka.ssl_context(), ssl.SSLContext)


def test_a_bad_cafile_path_names_the_variable_and_the_path(
    files: Files, clean_env: pytest.MonkeyPatch
) -> None:
    missing = files.ca.parent / "nope.pem"
    env = {"security_protocol": "SSL", "ssl_cafile": str(missing)}
    assert problems(env, clean_env) == [f"{V}SSL_CAFILE: no such file (got '{missing}')"]
    env["ssl_cafile"] = str(files.ca.parent)
    assert problems(env, clean_env) == [f"{V}SSL_CAFILE: not a file (got '{files.ca.parent}')"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_keyfile_is_named(files: Files, tmp_path: Path, clean_env: Any) -> None:
    locked = tmp_path / "locked.key"
    locked.write_bytes(files.key.read_bytes())
    locked.chmod(0)
    env = {"security_protocol": "SSL", "ssl_certfile": str(files.cert), "ssl_keyfile": str(locked)}
    [line] = problems(env, clean_env)
    assert line.startswith(f"{V}SSL_KEYFILE: not readable by this process")


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("cafile not pem", f"{V}SSL_CAFILE: no PEM CA certificate in"),
        ("encrypted, no password", f"{V}SSL_KEYFILE_PASSWORD: required: the private key in"),
        ("wrong password", f"{V}SSL_KEYFILE_PASSWORD: does not decrypt the private key in"),
        ("mismatched key", f"{V}SSL_KEYFILE: not the private key of {V}SSL_CERTFILE"),
        ("cert without key", f"{V}SSL_CERTFILE: no PEM certificate and private key in"),
        ("key not pem", f"{V}SSL_CERTFILE, {V}SSL_KEYFILE: not a PEM certificate"),
    ],
)
def test_files_that_do_not_load_are_named_at_start(
    files: Files, clean_env: pytest.MonkeyPatch, kind: str, says: str
) -> None:
    env = {
        "cafile not pem": {"ssl_cafile": files.not_pem},
        "encrypted, no password": {"ssl_certfile": files.cert, "ssl_keyfile": files.encrypted_key},
        "wrong password": {
            "ssl_certfile": files.cert,
            "ssl_keyfile": files.encrypted_key,
            "ssl_keyfile_password": "wrong-" + PASSWORD,
        },
        "mismatched key": {"ssl_certfile": files.cert, "ssl_keyfile": files.other_key},
        "cert without key": {"ssl_certfile": files.cert},
        "key not pem": {"ssl_certfile": files.cert, "ssl_keyfile": files.not_pem},
    }[kind]
    [line] = problems({"security_protocol": "SASL_SSL", **SASL, **env}, clean_env)
    assert line.startswith(says), line
    assert PASSWORD not in line and SASL_PASSWORD not in line


# --------------------------------------------------------------------------- combinations


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"security_protocol": "SASL_SSL"},
            [
                f"{V}SASL_MECHANISM: required by security_protocol SASL_SSL"
                " (one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)",
                f"{V}SASL_USERNAME: required by security_protocol SASL_SSL",
                f"{V}SASL_PASSWORD: required by security_protocol SASL_SSL",
            ],
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": ""},
            [
                f"{V}SASL_USERNAME: required by security_protocol SASL_PLAINTEXT",
                f"{V}SASL_PASSWORD: required by security_protocol SASL_PLAINTEXT",
            ],
        ),
        (
            {"sasl_mechanism": "PLAIN"},
            [
                f"{V}SASL_MECHANISM: set, but {V}SECURITY_PROTOCOL is PLAINTEXT"
                " (use SASL_SSL or SASL_PLAINTEXT, or unset it)"
            ],
        ),
        (
            {"security_protocol": "SSL", "sasl_username": "svc", "sasl_password": SASL_PASSWORD},
            [
                f"{V}SASL_USERNAME: set, but {V}SECURITY_PROTOCOL is SSL"
                " (use SASL_SSL or SASL_PLAINTEXT, or unset it)",
                f"{V}SASL_PASSWORD: set, but {V}SECURITY_PROTOCOL is SSL"
                " (use SASL_SSL or SASL_PLAINTEXT, or unset it)",
            ],
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", **SASL, "ssl_check_hostname": "false"},
            [
                f"{V}SSL_CHECK_HOSTNAME: set, but {V}SECURITY_PROTOCOL is SASL_PLAINTEXT"
                " (use SSL or SASL_SSL, or unset it)"
            ],
        ),
        (
            {"security_protocol": "SSL", "ssl_keyfile_password": PASSWORD},
            [
                f"{V}SSL_KEYFILE_PASSWORD: set without {V}SSL_CERTFILE"
                " (the client certificate it belongs to)"
            ],
        ),
    ],
    ids=[
        "sasl-without-credentials",
        "empty-username",
        "mechanism-without-sasl",
        "credentials-without-sasl",
        "tls-option-without-tls",
        "password-without-certificate",
    ],
)
def test_an_inconsistent_combination_names_each_variable_on_one_line(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], expected: list[str]
) -> None:
    lines = problems(env, clean_env)
    assert lines == expected
    assert all(SASL_PASSWORD not in line and PASSWORD not in line for line in lines)


def test_tls_files_without_tls_are_refused(files: Files, clean_env: pytest.MonkeyPatch) -> None:
    env = {"ssl_cafile": str(files.ca), "ssl_keyfile": str(files.key)}
    unused = f"set, but {V}SECURITY_PROTOCOL is PLAINTEXT (use SSL or SASL_SSL, or unset it)"
    assert problems(env, clean_env) == [f"{V}SSL_CAFILE: {unused}", f"{V}SSL_KEYFILE: {unused}"]


def test_a_key_without_its_certificate_is_refused(
    files: Files, clean_env: pytest.MonkeyPatch
) -> None:
    env = {"security_protocol": "SSL", "ssl_keyfile": str(files.key)}
    assert problems(env, clean_env) == [
        f"{V}SSL_KEYFILE: set without {V}SSL_CERTFILE (the client certificate it belongs to)"
    ]


def test_an_unknown_mechanism_lists_the_known_ones(clean_env: pytest.MonkeyPatch) -> None:
    env = {"security_protocol": "SASL_SSL", **SASL, "sasl_mechanism": "GSSAPI"}
    [line] = problems(env, clean_env)
    assert line.startswith(f"{V}SASL_MECHANISM: Input should be 'PLAIN', 'SCRAM-SHA-256'")


def test_a_complete_sasl_ssl_configuration_loads(files: Files, clean_env: Any) -> None:
    env = {"bootstrap_servers": "k:9096", "security_protocol": "SASL_SSL", "ssl_cafile": files.ca}
    for name, value in {**env, **SASL}.items():
        clean_env.setenv(V + name.upper(), str(value))
    kafka = load_settings().kafka
    assert kafka.uses_tls and kafka.uses_sasl and kafka.ssl_cafile == files.ca
    options = client_options(kafka)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "svc"
    assert options["sasl_plain_password"] == SASL_PASSWORD
    assert isinstance(options["ssl_context"], ssl.SSLContext)


# --------------------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SASL_PASSWROD", "hunter2"),  # misspelled: the value may be the secret
        ("SASL_PASSWORD", "hunter2"),  # set, but the protocol is PLAINTEXT
        ("SSL_KEYFILE_PASSWORD", "hunter2"),  # set without a certificate
    ],
)
def test_errors_never_show_a_secret(
    clean_env: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    clean_env.setenv(V + variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert V + variable in str(info.value)
    assert value not in str(info.value)


def test_a_direct_validation_error_hides_its_input_too() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        Settings(kafka={"sasl_password": "hunter2", "request_timeout_ms": "x"})  # type: ignore[arg-type]
    assert "hunter2" not in str(info.value)


def test_repr_and_faust_credentials_never_show_secrets(files: Files) -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_SSL",
        ssl_cafile=files.ca,
        ssl_certfile=files.cert,
        ssl_keyfile=files.encrypted_key,
        ssl_keyfile_password=PASSWORD,
        **SASL,
    )
    settings = Settings(kafka=kafka.model_dump())
    for text in (repr(settings), str(settings), repr(broker_credentials(kafka))):
        assert PASSWORD not in text and SASL_PASSWORD not in text
    env = settings.to_env()  # revealed into the child's environment only
    assert env[V + "SASL_PASSWORD"] == SASL_PASSWORD
    assert env[V + "SSL_KEYFILE_PASSWORD"] == PASSWORD
    assert env[V + "SSL_KEYFILE"] == str(files.encrypted_key)  # a path, not JSON


def test_to_env_rebuilds_tls_settings(files: Files, clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings(
        kafka={
            "security_protocol": "SSL",
            "ssl_cafile": files.ca,
            "ssl_certfile": files.cert,
            "ssl_keyfile": files.key,
            "ssl_check_hostname": False,
        }
    )
    for name, value in settings.to_env().items():
        clean_env.setenv(name, value)
    assert load_settings() == settings


# --------------------------------------------------------------------------- Faust


def test_the_faust_app_gets_the_same_tls_context_and_login(files: Files) -> None:
    ssl_only = broker_credentials(KafkaSettings(security_protocol="SSL", ssl_cafile=files.ca))
    assert isinstance(ssl_only, faust.SSLCredentials)
    assert [dict(c["subject"][0])["commonName"] for c in ssl_only.context.get_ca_certs()] == [
        "other"
    ]
    sasl_ssl = broker_credentials(
        KafkaSettings(security_protocol="SASL_SSL", ssl_cafile=files.ca, **SASL)
    )
    assert isinstance(sasl_ssl, faust.SASLCredentials)
    assert sasl_ssl.protocol.value == "SASL_SSL" and sasl_ssl.mechanism.value == "SCRAM-SHA-512"
    assert (sasl_ssl.username, sasl_ssl.password) == ("svc", SASL_PASSWORD)
    assert sasl_ssl.ssl_context is not None and sasl_ssl.ssl_context.check_hostname
    sasl_plain = broker_credentials(KafkaSettings(security_protocol="SASL_PLAINTEXT", **SASL))
    assert sasl_plain.protocol.value == "SASL_PLAINTEXT" and sasl_plain.ssl_context is None


# --------------------------------------------------------------------------- diagnosis


async def test_a_refused_connection_is_explained_in_one_line() -> None:
    brokers = [f"127.0.0.1:{free_port()}" for _ in range(2)]  # nothing listens there
    refused = "connection refused (is a broker listening there?)"
    problem = await connection_problem(KafkaSettings(bootstrap_servers=brokers[0]))
    assert problem == refused
    problem = await connection_problem(KafkaSettings(bootstrap_servers=",".join(brokers)))
    assert problem == f"{brokers[0]}: {refused}; {brokers[1]}: {refused}"
