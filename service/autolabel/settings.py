"""The one Settings object: environment variables prefixed ``AUTOLABEL_``.

Nested sections use ``__``: ``AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS``,
``AUTOLABEL_HTTP__PORT``, ``AUTOLABEL_POLICY__CONFIDENCE_THRESHOLD`` ...
Build it once in the entry point with :func:`load_settings` and pass it down;
nothing else reads the environment. :meth:`Settings.to_env` goes the other way: the
variables that configure a child process (``autolabel worker`` under the demo, the
tests and the benchmark) with exactly these settings.

>>> s = Settings(kafka={"bootstrap_servers": "k1:9092,k2:9092"})
>>> s.kafka.broker_list
['k1:9092', 'k2:9092']
>>> s.topics.dead_letter
'autolabel.dead-letter'
"""

from __future__ import annotations

import difflib
import json
import os
import re
import ssl
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePath
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import to_json
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "AUTOLABEL_"
MIN_KEY_BYTES = 32
SECRET_NAME = re.compile(r"key(?!file)|password|secret|token", re.IGNORECASE)
"""Settings whose values never appear in an error message (a key file's path may)."""
KAFKA_VAR = ENV_PREFIX + "KAFKA__"
SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
TabularModel = Literal["softmax", "hoeffding_adaptive_tree", "arf", "naive_bayes"]
TextModel = Literal["tfidf_nb", "bow_nb", "tfidf_linear"]
EmbeddingModel = Literal["softmax", "naive_bayes"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class KafkaSettings(Section):
    """How to reach the cluster: addresses, TLS and SASL.

    ``SSL`` and ``SASL_SSL`` encrypt with TLS; the broker's certificate is checked
    against ``ssl_cafile`` (default: the system's CAs) and, unless turned off, for the
    host name. ``ssl_certfile`` + ``ssl_keyfile`` add a client certificate (mutual
    TLS). ``SASL_*`` authenticate with ``sasl_mechanism``, ``sasl_username`` and
    ``sasl_password``. Every combination is checked here, and the TLS context is built
    once to prove the files load, so a bad configuration stops the process at start
    with one line per variable:

    >>> load_settings(kafka={"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"})
    Traceback (most recent call last):
    ...
    autolabel.settings.SettingsError: invalid configuration:
      AUTOLABEL_KAFKA__SASL_USERNAME: required by security_protocol SASL_SSL
      AUTOLABEL_KAFKA__SASL_PASSWORD: required by security_protocol SASL_SSL
    """

    bootstrap_servers: str = Field(
        default="",
        description="Comma-separated host:port list. Empty means: the demo starts a local broker;"
        " the worker refuses to start.",
    )
    client_id: str = Field(
        default="autolabel", description="Client id the brokers see in their logs and quotas."
    )
    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT",
        description="SSL and SASL_SSL encrypt (TLS); SASL_PLAINTEXT and SASL_SSL authenticate"
        " with sasl_mechanism, sasl_username and sasl_password.",
    )
    ssl_cafile: Path | None = Field(
        default=None,
        description="PEM file of the CA certificate(s) that signed the brokers' certificates."
        " Empty: the system's CAs (enough for most managed services).",
    )
    ssl_certfile: Path | None = Field(
        default=None,
        description="PEM client certificate, for clusters that require one (mutual TLS);"
        " may hold the private key too.",
    )
    ssl_keyfile: Path | None = Field(default=None, description="PEM private key of ssl_certfile.")
    ssl_keyfile_password: SecretStr | None = Field(
        default=None, description="Password of an encrypted private key."
    )
    ssl_check_hostname: bool = Field(
        default=True,
        description="Check that the broker's certificate names the host connected to. Turn off"
        " only for brokers reached by an address their certificate does not name.",
    )
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="SASL mechanism; required by SASL_SSL and SASL_PLAINTEXT."
    )
    sasl_username: str | None = Field(default=None, description="SASL login name.")
    sasl_password: SecretStr | None = Field(default=None, description="SASL password.")
    request_timeout_ms: int = Field(
        default=30_000, gt=0, description="How long a Kafka request may take before it fails."
    )
    session_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A consumer silent this long leaves its group (a standby learner takes"
        " over after it).",
    )
    rebalance_timeout_s: float = Field(
        default=10.0, gt=0, description="How long a consumer group waits for members to rejoin."
    )

    @property
    def broker_list(self) -> list[str]:
        return [b.strip() for b in self.bootstrap_servers.split(",") if b.strip()]

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, value: str) -> str:
        problems = [p for p in map(address_problem, value.split(",")) if p is not None]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        if not value.exists():
            raise ValueError("no such file")
        if not value.is_file():
            raise ValueError("not a file")
        if not os.access(value, os.R_OK):
            raise ValueError("not readable by this process (check its permissions)")
        return value

    @model_validator(mode="after")
    def _security(self) -> KafkaSettings:
        problems = self._security_problems()
        if not problems and self.uses_tls:
            try:
                self.ssl_context()
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _security_problems(self) -> list[str]:
        """What the security settings lack or set in vain: one line per variable."""
        protocol = self.security_protocol
        sasl = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_username": self.sasl_username,
            "sasl_password": self.sasl_password and self.sasl_password.get_secret_value(),
        }
        tls = {
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
            "ssl_keyfile_password": self.ssl_keyfile_password,
            "ssl_check_hostname": None if self.ssl_check_hostname else False,
        }
        problems = []
        if self.uses_sasl:
            for name, value in sasl.items():
                if not value:
                    choices = " (one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
                    problems.append(
                        f"{_kafka_var(name)}: required by security_protocol {protocol}"
                        + (choices if name == "sasl_mechanism" else "")
                    )
        else:
            problems += [
                f"{_kafka_var(name)}: set, but {_kafka_var('security_protocol')} is {protocol}"
                " (use SASL_SSL or SASL_PLAINTEXT, or unset it)"
                for name, value in sasl.items()
                if value is not None
            ]
        if not self.uses_tls:
            problems += [
                f"{_kafka_var(name)}: set, but {_kafka_var('security_protocol')} is {protocol}"
                " (use SSL or SASL_SSL, or unset it)"
                for name, value in tls.items()
                if value is not None
            ]
        elif self.ssl_certfile is None:
            problems += [
                f"{_kafka_var(name)}: set without {_kafka_var('ssl_certfile')}"
                " (the client certificate it belongs to)"
                for name in ("ssl_keyfile", "ssl_keyfile_password")
                if tls[name] is not None
            ]
        return problems

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of every Kafka client of this process (the one place it is built).

        Verifies the broker's certificate with ``ssl_cafile`` or the system's CAs, checks
        the host name unless ``ssl_check_hostname`` is off, and presents the client
        certificate when one is configured. Raises ValueError naming the variable when a
        file does not load; never prompts for a key's password.

        >>> KafkaSettings(security_protocol="SSL").ssl_context().check_hostname
        True
        """
        cafile = self.ssl_cafile
        try:
            context = ssl.create_default_context(cafile=cafile)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"{_kafka_var('ssl_cafile')}: no PEM CA certificate in {str(cafile)!r}"
                f" ({_openssl_reason(exc)})"
            ) from None
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile is not None:
            self._load_client_certificate(context, self.ssl_certfile)
        return context

    def _load_client_certificate(self, context: ssl.SSLContext, certfile: Path) -> None:
        key_var = _kafka_var("ssl_keyfile" if self.ssl_keyfile else "ssl_certfile")
        asked: list[bool] = []

        def password() -> str:
            asked.append(True)
            if self.ssl_keyfile_password is None:
                raise _KeyIsEncrypted
            return self.ssl_keyfile_password.get_secret_value()

        try:
            context.load_cert_chain(certfile, self.ssl_keyfile, password)
        except _KeyIsEncrypted:
            raise ValueError(
                f"{_kafka_var('ssl_keyfile_password')}: required: the private key in"
                f" {key_var} is encrypted"
            ) from None
        except (ssl.SSLError, OSError) as exc:
            if isinstance(exc, ssl.SSLError) and exc.reason == "KEY_VALUES_MISMATCH":
                problem = f"{key_var}: not the private key of {_kafka_var('ssl_certfile')}"
            elif asked:
                problem = (
                    f"{_kafka_var('ssl_keyfile_password')}: does not decrypt the private key"
                    f" in {key_var}"
                )
            elif self.ssl_keyfile is None:
                problem = (
                    f"{_kafka_var('ssl_certfile')}: no PEM certificate and private key in"
                    f" {str(certfile)!r} ({_openssl_reason(exc)}); if the key is in a file of"
                    f" its own, set {_kafka_var('ssl_keyfile')}"
                )
            else:
                problem = (
                    f"{_kafka_var('ssl_certfile')}, {_kafka_var('ssl_keyfile')}: not a PEM"
                    f" certificate and its private key ({_openssl_reason(exc)})"
                )
            raise ValueError(problem) from None


_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?")


def address_problem(broker: str) -> str | None:
    """Why one bootstrap address is not ``host:port``, with the fix; None when it is.

    >>> address_problem("k1.example.com:9092") is None, address_problem(" [::1]:9092") is None
    (True, True)
    >>> print(address_problem("kafka://k1:9092"))
    'kafka://k1:9092' is not host:port: write 'k1:9092' (no scheme; TLS and SASL are chosen \
by AUTOLABEL_KAFKA__SECURITY_PROTOCOL)
    >>> print(address_problem("k1"))
    'k1' is not host:port: the port is missing (e.g. k1:9092)
    >>> print(address_problem("k1:99999"))
    'k1:99999' is not host:port: the port must be 1-65535
    """
    broker = broker.strip()
    if not broker:
        return None
    _, sep, rest = broker.partition("://")
    if sep:
        fixed = rest.rstrip("/") or "host:9092"
        return (
            f"{broker!r} is not host:port: write {fixed!r} (no scheme; TLS and SASL are chosen"
            f" by {_kafka_var('security_protocol')})"
        )
    host, sep, port = broker.rpartition(":")
    if not sep or (not port.isdigit() and _HOST.fullmatch(broker)):
        return f"{broker!r} is not host:port: the port is missing (e.g. {broker}:9092)"
    if not port.isdigit():
        return f"{broker!r} is not host:port: the port {port!r} is not a number"
    if not 1 <= int(port) <= 65535:
        return f"{broker!r} is not host:port: the port must be 1-65535"
    if not host or not _HOST.fullmatch(host):
        return f"{broker!r} is not host:port: {host!r} is not a host name or IP address"
    return None


class _KeyIsEncrypted(Exception):
    """Raised by the password callback when no password is configured."""


def _kafka_var(name: str) -> str:
    return KAFKA_VAR + name.upper()


def _openssl_reason(exc: OSError) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else (exc.strerror or str(exc))


class TopicSettings(Section):
    records: str = Field(default="autolabel.records", description="Records to label (input).")
    labels: str = Field(default="autolabel.labels", description="Auto-accepted labels (output).")
    review: str = Field(
        default="autolabel.review", description="Review requests for people (output)."
    )
    feedback: str = Field(
        default="autolabel.feedback", description="Reviewers' answers and seed labels (input)."
    )
    dead_letter: str = Field(
        default="autolabel.dead-letter", description="Messages that could not be used, with why."
    )
    models: str = Field(
        default="autolabel.models", description="Signed model snapshots (compacted)."
    )
    signals: str = Field(
        default="autolabel.signals", description="Labelers' confidence signals for the learner."
    )
    partitions: int = Field(
        default=3, ge=1, description="Partitions of records, labels, review and dead-letter."
    )
    replication_factor: int = Field(
        default=1, ge=1, description="Replicas of each topic created (3 on a production cluster)."
    )
    create: bool = Field(default=True, description="Create missing topics at start.")


class HttpSettings(Section):
    host: str = Field(
        default="0.0.0.0",
        description="Address the worker's HTTP port binds: every interface by default (what a"
        " container needs to be scraped and probed); 127.0.0.1 keeps it on the host.",
    )
    port: int = Field(
        default=8080, ge=1, le=65535, description="Serves /metrics, /healthz and /readyz only."
    )


class LabelerSettings(Section):
    batch_max_records: int = Field(default=1000, ge=1, description="Records per micro-batch.")
    batch_timeout_ms: int = Field(
        default=20, ge=0, description="Longest wait for a micro-batch to fill."
    )
    max_message_bytes: int = Field(
        default=1_000_000,
        ge=64,
        description="Largest record read; a larger one is dead-lettered (oversized).",
    )
    max_output_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        description="Largest output the labeler sends (keep under the broker's message.max.bytes);"
        " a record whose label or review request would be larger is dead-lettered.",
    )
    max_abs_number: float = Field(
        default=1e15,  # autolabel.core.messages.DEFAULT_MAX_ABS_NUMBER
        gt=0,
        description="Largest magnitude of a record's feature or embedding value; a record with"
        " a larger one is dead-lettered (out_of_range) before it can reach a model.",
    )
    top_k: int = Field(
        default=3, ge=1, description="Most probable labels listed in a review request."
    )
    linger_ms: int = Field(default=5, ge=0, description="Producer wait to fill a batch of outputs.")
    group_id: str | None = Field(default=None, description="Default: '<app_id>-labeler'.")


class LearnerSettings(Section):
    accuracy_window: int = Field(default=500, ge=1, description="Rolling prequential window.")
    group_id: str | None = Field(default=None, description="Default: '<app_id>-learner'.")
    batch_max_records: int = Field(default=500, ge=1, description="Feedback read per poll.")
    dedupe_window: int = Field(
        default=100_000,
        ge=0,
        description="Answered review requests remembered, so a re-sent answer is learned once.",
    )
    backlog_share: float = Field(
        default=0.1,
        gt=0,
        lt=1,
        description="Behind a backlog (200+ answers waiting) the candidate models that do not"
        " label learn a subsample of the answers, sized from what answers cost so that they"
        " take at most this share of the learner's time; the labeling model learns all.",
    )
    max_reviewers: int = Field(
        default=20,
        ge=0,
        description="Reviewer names that get a series of their own in"
        " autolabel_review_answers_by_reviewer_total (the first seen by this process);"
        " answers of any other reviewer count as 'other'.",
    )


class SnapshotSettings(Section):
    key: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key (at least 32 bytes) that signs model snapshots and review"
        " request ids; every worker of a deployment needs the same key. Required by `worker`.",
    )
    every_examples: int = Field(
        default=5000, ge=1, description="Publish after this many examples learned, at the latest."
    )
    interval_s: float = Field(
        default=0.5,
        gt=0,
        description="Shortest time between two snapshots (a stop of acceptance is published"
        " at once); stretched to 10x the last publish time so snapshots stay under ~10% of"
        " the learner's time.",
    )
    max_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024 * 1024,
        description="Largest snapshot; the models topic's max.message.bytes is set from it.",
    )
    publish_timeout_s: float = Field(default=5.0, gt=0, description="Wait for the ack at most.")

    @field_validator("key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_KEY_BYTES:
            raise ValueError(
                f"must be at least {MIN_KEY_BYTES} bytes"
                " (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return value

    def key_bytes(self) -> bytes:
        """The signing key; :class:`MissingKey` when none is configured."""
        if self.key is None:
            raise MissingKey(
                "no snapshot key: set AUTOLABEL_SNAPSHOT__KEY to a secret of at least"
                f" {MIN_KEY_BYTES} bytes, the same on every worker"
                " (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        return self.key.get_secret_value().encode()


MIN_REVIEW_TOKEN_CHARS = 16


class ReviewSettings(Section):
    """The web review page (``autolabel review-server``): its port and who may use it.

    Reviewers sign in with ``token`` (shared by the team; never shown in errors or logs)
    and their own name, which every answer carries. The page is served on its own
    port, not the worker's ops port, so reviewers' traffic and credentials stay apart
    from ``/metrics`` and the probes.

    >>> load_settings(review={"token": "short"})
    Traceback (most recent call last):
    ...
    autolabel.settings.SettingsError: AUTOLABEL_REVIEW__TOKEN: must be at least 16 ...
    """

    token: SecretStr | None = Field(
        default=None,
        description="Sign-in secret of the review page, at least 16 characters. Required by"
        " `review-server`.",
    )
    host: str = Field(default="127.0.0.1", description="Address the review page listens on.")
    port: int = Field(default=8090, ge=1, le=65535, description="Port of the review page.")
    undo_window_s: float = Field(
        default=5.0,
        ge=0.0,
        le=300.0,
        description="An answer is held this long before it is sent, so it can be undone;"
        " 0 sends at once (no undo).",
    )
    idle_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description="A reviewer whose page made no request for this long leaves the review"
        " group: the requests held for them go back to the other reviewers.",
    )
    session_ttl_s: float = Field(default=12 * 3600.0, gt=0, description="How long a sign-in lasts.")
    secure_cookie: bool = Field(
        default=False,
        description="Mark the session cookie Secure (set it when reviewers reach the page"
        " over HTTPS, e.g. through an ingress).",
    )
    group_id: str | None = Field(
        default=None,
        description="Consumer group of the review topic; default '<app_id>-reviewers' (shared"
        " with every other reviewer tool).",
    )
    buffer_size: int = Field(
        default=200, ge=1, description="Review requests held per signed-in reviewer."
    )

    @field_validator("token")
    @classmethod
    def _long_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_REVIEW_TOKEN_CHARS:
            raise ValueError(
                f"must be at least {MIN_REVIEW_TOKEN_CHARS} characters"
                " (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`)"
            )
        return value

    def token_bytes(self) -> bytes:
        """The sign-in token; :class:`MissingToken` when none is configured."""
        if self.token is None:
            raise MissingToken(
                "no review token: set AUTOLABEL_REVIEW__TOKEN to a secret of at least"
                f" {MIN_REVIEW_TOKEN_CHARS} characters that reviewers sign in with"
                " (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`)"
            )
        return self.token.get_secret_value().encode()


class ModelSettings(Section):
    tabular: TabularModel | Literal["auto"] = Field(
        default="auto",
        description="auto: train every model of auto_tabular and label with the one the"
        " evidence certifies for the most automation; or one model by name.",
    )
    text: TextModel | Literal["auto"] = Field(
        default="auto", description="Text records: auto (the candidates of auto_text) or one model."
    )
    embedding: EmbeddingModel | Literal["auto"] = Field(
        default="auto",
        description="Embedding records: auto (the candidates of auto_embedding) or one model.",
    )
    auto_tabular: str = Field(
        default="softmax,hoeffding_adaptive_tree",
        description="Candidates when tabular=auto; each costs learner time and a share of"
        " delta (naive_bayes is slow to predict and overconfident, arf ~40x slower to learn).",
    )
    auto_text: str = Field(default="tfidf_nb,bow_nb", description="Candidates when text=auto.")
    auto_embedding: str = Field(
        default="softmax,naive_bayes", description="Candidates when embedding=auto."
    )
    seed: int = Field(default=42, description="Seed of the randomized models (trees, forests).")
    classes: str = Field(
        default="",
        description="Comma-separated allow-list of labels; feedback with any other label is"
        " dead-lettered. Empty: any label is learned.",
    )

    @property
    def class_set(self) -> frozenset[str]:
        """The allowed labels (empty: any).

        >>> sorted(ModelSettings(classes="cat, dog,,").class_set)
        ['cat', 'dog']
        """
        return frozenset(c.strip() for c in self.classes.split(",") if c.strip())

    def candidates(self) -> list[ModelSettings]:
        """One concrete setting per candidate model (a single one unless a kind is auto).

        Candidate ``i`` takes the ``i``-th model of each kind's list (the last one when a
        kind has fewer): most deployments label one kind of record, so candidate ``i`` is
        simply "the ``i``-th model" for it.

        >>> [c.tabular for c in ModelSettings().candidates()]
        ['softmax', 'hoeffding_adaptive_tree']
        >>> one = ModelSettings(tabular="arf", text="bow_nb", embedding="softmax")
        >>> [c.name for c in one.candidates()]
        ['arf/bow_nb/softmax']
        """
        kinds = [
            _choices(self.tabular, self.auto_tabular, "auto_tabular"),
            _choices(self.text, self.auto_text, "auto_text"),
            _choices(self.embedding, self.auto_embedding, "auto_embedding"),
        ]
        count = max(len(k) for k in kinds)
        return [
            self.model_copy(
                update={
                    "tabular": kinds[0][min(i, len(kinds[0]) - 1)],
                    "text": kinds[1][min(i, len(kinds[1]) - 1)],
                    "embedding": kinds[2][min(i, len(kinds[2]) - 1)],
                }
            )
            for i in range(count)
        ]

    @property
    def name(self) -> str:
        """A candidate's name: its model per kind (``tabular/text/embedding``)."""
        return f"{self.tabular}/{self.text}/{self.embedding}"

    @model_validator(mode="after")
    def _known_candidates(self) -> ModelSettings:
        self.candidates()  # names every unknown model in an auto list
        return self


def _choices(value: str, auto: str, field: str) -> list[str]:
    if value != "auto":
        return [value]
    names = [n.strip() for n in auto.split(",") if n.strip()]
    allowed = {
        "auto_tabular": typing.get_args(TabularModel),
        "auto_text": typing.get_args(TextModel),
        "auto_embedding": typing.get_args(EmbeddingModel),
    }[field]
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise ValueError(
            f"{field}: {', '.join(unknown) or 'empty'} (choose from {', '.join(allowed)})"
        )
    return names


class PolicySettings(Section):
    mode: Literal["certified", "fixed"] = Field(
        default="certified",
        description="certified: risk-controlled thresholds with audits and drift fallback;"
        " fixed: accept at confidence_threshold (a baseline, no guarantee).",
    )
    target_precision: float = Field(
        default=0.95,
        gt=0.5,
        lt=1.0,
        description="Precision the auto-accepted labels are certified to keep.",
    )
    delta: float = Field(default=0.05, gt=0.0, lt=0.5, description="Allowed failure probability.")
    guarantee: Literal["stream", "per_test"] = Field(
        default="stream",
        description="stream: delta is spent over every certification test of the whole stream"
        " (the guarantee holds across re-certifications); per_test: every test at the full"
        " delta, re-tested every 16 answers (more automation, valid per test only).",
    )
    audit_rate: float = Field(
        default=0.05, gt=0.0, le=1.0, description="Share of accepted records sent to review too."
    )
    drift_audit_rate: float = Field(
        default=0.2, gt=0.0, le=1.0, description="Audit share after a drift or a new certificate."
    )
    boost_audits: int = Field(
        default=50, ge=0, description="Audits at the raised rate after drift."
    )
    evidence_window: int = Field(
        default=2000,
        ge=100,
        description="Scored examples kept (they also age out by records). 2,000: after a"
        " drift, a model trained on post-change answers gathers enough evidence to be"
        " certified at the small level the spent budget leaves (1,000 often never did).",
    )
    recent_window: int | None = Field(default=None, ge=50, description="Short window; empty=off.")
    per_class: bool = Field(
        default=False, description="Per-class thresholds where evidence allows."
    )
    holdout_share: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="0: certify on prequential scores. >0: hold this share of feedback out of"
        " training and certify on it re-scored by the current model (safer while the model's"
        " confidence moves, slower to certify).",
    )
    holdout_size: int = Field(default=400, ge=50, description="Held-out examples kept.")
    min_evidence: float = Field(
        default=400.0,
        gt=0,
        description="Effective sample size where a test sequence may start. 400: a few"
        " overconfident errors of a young model at the very top of the confidence range"
        " cannot fail the first test of the sequence, and with it every looser threshold.",
    )
    confidence_threshold: float = Field(default=0.9, gt=0.0, le=1.0, description="fixed mode only.")
    cold_start_examples: int = Field(
        default=50, ge=0, description="Learned examples before anything is auto-accepted."
    )
    seed: int = Field(default=0, description="Seed of the audit sampler.")

    @model_validator(mode="after")
    def _windows(self) -> PolicySettings:
        if self.recent_window is not None and self.recent_window >= self.evidence_window:
            raise ValueError("recent_window must be smaller than evidence_window")
        return self


class LabelStudioSettings(Section):
    """The Label Studio bridge (``autolabel label-studio``): where Label Studio is, the
    project it fills, how often it polls, and where Label Studio's webhooks reach it.

    >>> LabelStudioSettings(url="http://ls:8080/", token="abc").api_url("/api/projects/")
    'http://ls:8080/api/projects/'
    """

    url: str = Field(
        default="http://localhost:8080",
        description="Label Studio's address as the bridge reaches it.",
    )
    token: SecretStr | None = Field(
        default=None,
        description="A Label Studio user's legacy API token (Account & Settings, or"
        " LABEL_STUDIO_USER_TOKEN when the server creates its first user). Required.",
    )
    project_title: str = Field(
        default="autolabel review",
        min_length=3,
        max_length=50,
        description="The project the bridge creates, or reuses when one has this title.",
    )
    poll_interval_s: float = Field(
        default=5.0, gt=0, description="How often submitted annotations are polled for."
    )
    webhook_url: str = Field(
        default="",
        description="The address of the bridge's /webhook as Label Studio reaches it (e.g."
        " http://autolabel-ls-bridge:8091/webhook); registered on the project so answers"
        " arrive at once. Empty: polling only.",
    )
    listen_host: str = Field(default="0.0.0.0", description="Where the webhook endpoint listens.")
    listen_port: int = Field(
        default=8091, ge=1, le=65535, description="Port of the bridge's webhook endpoint."
    )
    reviewer: str = Field(
        default="label-studio",
        min_length=1,
        max_length=256,
        description="The reviewer named in the feedback the bridge sends.",
    )
    group_id: str | None = Field(
        default=None,
        description="Consumer group on the review topic; default '<app_id>-reviewers', shared"
        " with the other reviewer tools so each request goes to one of them.",
    )
    max_open_tasks: int = Field(
        default=200,
        ge=1,
        description="Review requests held as open tasks at most (the bridge's review buffer).",
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="Seconds one call to Label Studio's API may take."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https:// (e.g. http://localhost:8080)")
        return value.rstrip("/")

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, or be empty (polling only)")
        return value

    def api_url(self, path: str) -> str:
        """The full URL of an API path."""
        return self.url + path

    def token_value(self) -> str:
        """The API token; :class:`SettingsError` naming the variable when none is set."""
        if self.token is None or not self.token.get_secret_value():
            raise SettingsError(
                "no Label Studio token: set AUTOLABEL_LABEL_STUDIO__TOKEN to a Label Studio"
                " user's legacy API token"
            )
        return self.token.get_secret_value()


class Settings(BaseSettings):
    """Everything the service can be told, validated at start."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,  # a ValidationError's text never shows a value
    )

    app_id: str = Field(
        default="autolabel",
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Names the deployment: Faust app id and consumer-group prefix.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severe log messages shown."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="text: one readable line per record; json: one JSON object per line (time,"
        " level, logger, message and the record's extras), for log collectors.",
    )
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    http: HttpSettings = HttpSettings()
    labeler: LabelerSettings = LabelerSettings()
    learner: LearnerSettings = LearnerSettings()
    model: ModelSettings = ModelSettings()
    policy: PolicySettings = PolicySettings()
    snapshot: SnapshotSettings = SnapshotSettings()
    review: ReviewSettings = ReviewSettings()
    label_studio: LabelStudioSettings = LabelStudioSettings()

    @property
    def labeler_group(self) -> str:
        return self.labeler.group_id or f"{self.app_id}-labeler"

    @property
    def learner_group(self) -> str:
        return self.learner.group_id or f"{self.app_id}-learner"

    def to_env(self) -> dict[str, str]:
        """The ``AUTOLABEL_*`` variables from which a fresh process builds exactly these settings.

        Every field is rendered, defaults included, walking the model's fields so a new
        section or field needs no change here. Nested sections join with ``__``, booleans
        are ``true``/``false``, secrets are revealed (into this mapping only: keep it out
        of logs), lists and dicts are JSON. A field that is None is left out, which means
        None only in a process whose environment holds no other ``AUTOLABEL_*`` variable;
        a None whose default is not None has no spelling and raises ValueError.

        >>> env = Settings(http={"port": 9100}, topics={"create": False}).to_env()
        >>> env["AUTOLABEL_HTTP__PORT"], env["AUTOLABEL_TOPICS__CREATE"]
        ('9100', 'false')
        >>> "AUTOLABEL_KAFKA__SASL_PASSWORD" in env  # None by default: left out
        False
        >>> sasl = {"mechanism": "PLAIN", "username": "svc", "password": "s3cret"}
        >>> kafka = {"security_protocol": "SASL_SSL"} | {f"sasl_{k}": v for k, v in sasl.items()}
        >>> Settings(kafka=kafka).to_env()["AUTOLABEL_KAFKA__SASL_PASSWORD"]
        's3cret'
        """
        return dict(_env_items(self, ENV_PREFIX))


def _env_items(model: BaseModel, prefix: str) -> Iterator[tuple[str, str]]:
    for name, spec in type(model).model_fields.items():
        variable = prefix + name.upper()
        value = getattr(model, name)
        if value is None:
            default = spec.get_default(call_default_factory=True)
            if default is not None:
                raise ValueError(
                    f"{variable}: None cannot be expressed as an environment variable (unset"
                    f" means the default, {default!r}); give the field a value instead"
                )
        elif isinstance(value, BaseModel):
            yield from _env_items(value, variable + "__")
        else:
            yield variable, _env_text(value)


def _env_text(value: object) -> str:
    """One value as pydantic-settings reads it back from a variable."""
    if isinstance(value, SecretStr | SecretBytes):
        value = value.get_secret_value()
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, str | int | float):
        return str(value)
    return to_json(value).decode()  # complex fields are read back as JSON


class MissingKey(ValueError):
    """A command that signs or verifies needs ``AUTOLABEL_SNAPSHOT__KEY``."""


class MissingToken(ValueError):
    """``autolabel review-server`` needs ``AUTOLABEL_REVIEW__TOKEN``."""


class SettingsError(ValueError):
    """The environment or the flags do not describe a valid configuration; says what to fix.

    ``problems`` holds one line per problem; the message is that line when there is one.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            self.problems[0]
            if len(self.problems) == 1
            else "invalid configuration:\n" + "\n".join(f"  {p}" for p in self.problems)
        )


# --------------------------------------------------------------------------- fields

UNITS = {"_ms": "milliseconds", "_s": "seconds", "_bytes": "bytes"}
"""A field's unit is the suffix of its name (``batch_timeout_ms``, ``interval_s``, ...)."""


@dataclass(frozen=True, slots=True)
class SettingField:
    """One leaf setting: where it sits in :class:`Settings` and how it is spelled outside."""

    path: tuple[str, ...]
    info: FieldInfo

    @property
    def variable(self) -> str:
        """``AUTOLABEL_POLICY__TARGET_PRECISION``."""
        return ENV_PREFIX + "__".join(p.upper() for p in self.path)

    @property
    def flag(self) -> str:
        """``--policy.target-precision``."""
        return "--" + ".".join(p.replace("_", "-") for p in self.path)

    @property
    def secret(self) -> bool:
        """Secrets come from the environment only (a command line is visible to `ps`)."""
        return any(
            isinstance(t, type) and issubclass(t, SecretStr | SecretBytes)
            for t in _flat_args(self.info.annotation)
        )

    @property
    def unit(self) -> str | None:
        """``milliseconds`` for ``*_ms`` and so on, from the name."""
        return next(
            (unit for suffix, unit in UNITS.items() if self.path[-1].endswith(suffix)), None
        )

    @property
    def choices(self) -> tuple[str, ...]:
        """The allowed values of a ``Literal`` field (empty for any other).

        >>> next(f for f in setting_fields() if f.path == ("policy", "mode")).choices
        ('certified', 'fixed')
        """
        values = []
        for arg in _flat_args(self.info.annotation):
            if typing.get_origin(arg) is Literal:
                values += [str(v) for v in typing.get_args(arg)]
        return tuple(values)

    @property
    def kinds(self) -> list[object]:
        """The types a value may take, ``None`` left out (``int | None`` -> ``[int]``)."""
        return [t for t in _flat_args(self.info.annotation) if t is not type(None)]

    @property
    def default_text(self) -> str | None:
        """The default as its variable would spell it; None when the default is None.

        >>> fields = {f.flag: f for f in setting_fields()}
        >>> fields["--topics.create"].default_text, fields["--labeler.group-id"].default_text
        ('true', None)
        """
        default = self.info.get_default(call_default_factory=True)
        return None if default is None else _env_text(default)

    @property
    def scalar(self) -> bool:
        """Whether a text value converts directly (else the text is JSON, as in a variable)."""
        return all(
            t is type(None)
            or typing.get_origin(t) is Literal
            or (isinstance(t, type) and issubclass(t, str | int | float | PurePath | Enum))
            or t in (SecretStr, SecretBytes)
            for t in _flat_args(self.info.annotation)
        )


def _flat_args(annotation: object) -> list[object]:
    """The members of a union (``X | None``), flattened; the annotation itself otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for arg in typing.get_args(annotation) for a in _flat_args(arg)]
    return [annotation]


def _section(annotation: object) -> type[BaseModel] | None:
    return (
        annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    )


def setting_fields(
    model: type[BaseModel] = Settings, prefix: tuple[str, ...] = ()
) -> Iterator[SettingField]:
    """Every leaf setting, section by section, in declaration order.

    The one list that flags, variable checks and suggestions are made from, so a new
    section or field needs no change anywhere else.

    >>> fields = {f.variable: f for f in setting_fields()}
    >>> fields["AUTOLABEL_LABELER__BATCH_TIMEOUT_MS"].flag
    '--labeler.batch-timeout-ms'
    >>> fields["AUTOLABEL_LABELER__BATCH_TIMEOUT_MS"].unit, fields["AUTOLABEL_SNAPSHOT__KEY"].secret
    ('milliseconds', True)
    """
    for name, info in model.model_fields.items():
        section = _section(info.annotation)
        if section is not None:
            yield from setting_fields(section, (*prefix, name))
        else:
            yield SettingField((*prefix, name), info)


def _known_variables() -> dict[str, SettingField | None]:
    """Every variable that configures something: leaves, and sections (a JSON object)."""
    known: dict[str, SettingField | None] = {}
    for field in setting_fields():
        known[field.variable] = field
        for depth in range(1, len(field.path)):
            known.setdefault(ENV_PREFIX + "__".join(p.upper() for p in field.path[:depth]), None)
    return known


def suggest_variable(name: str) -> str | None:
    """The setting variable a misspelled or misplaced ``AUTOLABEL_*`` name most likely means.

    >>> suggest_variable("AUTOLABEL_BOOTSTRAP_SERVERS")  # the section left out
    'AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS'
    >>> suggest_variable("AUTOLABEL_KAFKA_BOOTSTRAP_SERVERS")  # one underscore
    'AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS'
    >>> suggest_variable("AUTOLABEL_GROUP_ID")  # doctest: +NORMALIZE_WHITESPACE
    'AUTOLABEL_LABELER__GROUP_ID or AUTOLABEL_LEARNER__GROUP_ID or
     AUTOLABEL_REVIEW__GROUP_ID or AUTOLABEL_LABEL_STUDIO__GROUP_ID'
    >>> suggest_variable("AUTOLABEL_WHATEVER") is None
    True
    """
    upper = name.upper()
    leaves = [v for v, f in _known_variables().items() if f is not None]
    leaf = upper.removeprefix(ENV_PREFIX).rsplit("__", 1)[-1]
    same_leaf = [v for v in leaves if v.rsplit("__", 1)[-1].removeprefix(ENV_PREFIX) == leaf]
    if 0 < len(same_leaf) <= 4:
        return " or ".join(same_leaf)
    close = difflib.get_close_matches(upper, leaves, n=1, cutoff=0.8)
    return close[0] if close else None


def _unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """A line for every ``AUTOLABEL_*`` variable that is no setting; never shows its value.

    Variables inside a section (``AUTOLABEL_HTTP__PROT``) are refused by the model
    itself; this catches the ones the environment source would skip silently.
    """
    known = _known_variables()
    lines = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or "__" in upper.removeprefix(ENV_PREFIX):
            continue
        if upper not in known:
            lines.append(_not_a_setting(upper))
    return lines


def _not_a_setting(variable: str) -> str:
    hint = suggest_variable(variable)
    return f"{variable}: not a setting" + (
        f"; did you mean {hint}?"
        if hint
        else " (check the spelling; see the README's configuration table)"
    )


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True, slots=True)
class GivenFlag:
    """A setting given on the command line: the flag as typed and its text."""

    flag: str
    text: str


def load_settings(
    flags: Mapping[tuple[str, ...], GivenFlag] | None = None, /, **overrides: object
) -> Settings:
    """Read the environment once, apply ``flags`` over it; turn errors into instructions.

    ``flags`` maps a setting's path to the command-line text given for it; a flag's
    text is read exactly as its variable's would be, and a flag wins over the
    variable. ``overrides`` (sections as dicts, for tests and tools) win over both.

    Every problem is one line naming the flag or the variable; a value is shown unless
    its name says it may be secret (or the name is not a setting at all: it may be a
    misspelled one). An ``AUTOLABEL_*`` variable that is no setting is an error, with
    the setting it most likely means.

    >>> load_settings(http={"port": 70000})
    Traceback (most recent call last):
    ...
    autolabel.settings.SettingsError: AUTOLABEL_HTTP__PORT must be in [1, 65535], got 70000
    >>> flag = GivenFlag("--policy.target-precision", "95")
    >>> load_settings({("policy", "target_precision"): flag})
    Traceback (most recent call last):
    ...
    autolabel.settings.SettingsError: --policy.target-precision must be in (0.5, 1), got 95
    """
    flags = flags or {}
    values: dict[str, Any] = {}
    for path, given in flags.items():
        field = _field_at(path)
        text: object = given.text
        if field is not None and not field.scalar:
            try:
                text = json.loads(given.text)
            except json.JSONDecodeError:
                raise SettingsError([f"{given.flag}: not valid JSON"]) from None
        _nest(values, path, text)
    for section, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(values.get(section), dict):
            values[section] = {**values[section], **value}
        else:
            values[section] = value
    lines = _unknown_variables(os.environ)
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        lines += _error_lines(exc, flags)
    if lines:
        raise SettingsError(lines) from None
    return settings


def _nest(values: dict[str, Any], path: tuple[str, ...], value: object) -> None:
    for part in path[:-1]:
        values = values.setdefault(part, {})
    values[path[-1]] = value


def _field_at(path: Sequence[object]) -> SettingField | None:
    path = tuple(str(p) for p in path)
    return next((f for f in setting_fields() if f.path == path), None)


def _error_lines(exc: ValidationError, flags: Mapping[tuple[str, ...], GivenFlag]) -> list[str]:
    renamed = {_field_at(path): given.flag for path, given in flags.items()}
    rename = {f.variable: flag for f, flag in renamed.items() if f is not None}
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(str(p) for p in err["loc"])
        given = flags.get(loc)
        name = given.flag if given else ENV_PREFIX + "__".join(p.upper() for p in loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            lines.append(_not_a_setting(name))
            continue
        secret = bool(SECRET_NAME.search(loc[-1] if loc else ""))
        shown = "input" in err and not isinstance(err["input"], dict) and not secret
        got = given.text if given else err.get("input")
        interval = _interval(_field_at(loc)) if err["type"] in _BOUND_ERRORS else None
        if interval and shown:
            lines.append(f"{name} must be {interval}, got {got}")
            continue
        suffix = f" (got {got!r})" if shown and repr(got) not in msg else ""
        for line in msg.splitlines():  # a cross-field rule names its own variables
            for variable, flag in rename.items():
                line = re.sub(rf"\b{variable}\b", flag, line)
            named = line.startswith((ENV_PREFIX, "--"))
            lines.append(line if named else f"{name}: {line}{suffix}")
    return lines


_BOUND_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def _interval(field: SettingField | None) -> str | None:
    """A field's numeric bounds as words: ``in (0.5, 1)``, ``at least 1``, ...

    >>> _interval(_field_at(("policy", "audit_rate"))), _interval(_field_at(("http", "port")))
    ('in (0, 1]', 'in [1, 65535]')
    >>> _interval(_field_at(("labeler", "batch_timeout_ms")))
    'at least 0'
    """
    if field is None:
        return None
    low = high = None
    for rule in field.info.metadata:
        for attr, bracket in (("gt", "("), ("ge", "[")):
            if getattr(rule, attr, None) is not None:
                low = (bracket, getattr(rule, attr))
        for attr, bracket in (("lt", ")"), ("le", "]")):
            if getattr(rule, attr, None) is not None:
                high = (bracket, getattr(rule, attr))
    if low and high:
        return f"in {low[0]}{_number(low[1])}, {_number(high[1])}{high[0]}"
    if low:
        return f"{'at least' if low[0] == '[' else 'more than'} {_number(low[1])}"
    if high:
        return f"{'at most' if high[0] == ']' else 'less than'} {_number(high[1])}"
    return None


def _number(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
