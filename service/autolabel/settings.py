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

import os
import re
import ssl
import typing
from collections.abc import Iterator
from enum import Enum
from pathlib import Path, PurePath
from typing import Literal

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
    client_id: str = "autolabel"
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
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    request_timeout_ms: int = Field(default=30_000, gt=0)
    session_timeout_s: float = Field(default=10.0, gt=0)
    rebalance_timeout_s: float = Field(default=10.0, gt=0)

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
        for broker in (b.strip() for b in value.split(",") if b.strip()):
            host, sep, port = broker.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{broker!r} is not host:port (e.g. localhost:9092)")
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


class _KeyIsEncrypted(Exception):
    """Raised by the password callback when no password is configured."""


def _kafka_var(name: str) -> str:
    return KAFKA_VAR + name.upper()


def _openssl_reason(exc: OSError) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else (exc.strerror or str(exc))


class TopicSettings(Section):
    records: str = "autolabel.records"
    labels: str = "autolabel.labels"
    review: str = "autolabel.review"
    feedback: str = "autolabel.feedback"
    dead_letter: str = "autolabel.dead-letter"
    models: str = "autolabel.models"
    signals: str = "autolabel.signals"
    partitions: int = Field(default=3, ge=1, description="Partitions of records/labels/review.")
    replication_factor: int = Field(default=1, ge=1)
    create: bool = Field(default=True, description="Create missing topics at start.")


class HttpSettings(Section):
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)


class LabelerSettings(Section):
    batch_max_records: int = Field(default=1000, ge=1)
    batch_timeout_ms: int = Field(default=20, ge=0)
    max_message_bytes: int = Field(default=1_000_000, ge=64)
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
    top_k: int = Field(default=3, ge=1)
    linger_ms: int = Field(default=5, ge=0)
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


class SnapshotSettings(Section):
    key: SecretStr | None = Field(
        default=None,
        description="HMAC-SHA256 key (at least 32 bytes) that signs model snapshots and review"
        " request ids; every worker of a deployment needs the same key. Required by `worker`.",
    )
    every_examples: int = Field(
        default=1000, ge=1, description="Publish after this many examples learned, at the latest."
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


class ModelSettings(Section):
    tabular: TabularModel | Literal["auto"] = Field(
        default="auto",
        description="auto: train every model of auto_tabular and label with the one the"
        " evidence certifies for the most automation; or one model by name.",
    )
    text: TextModel | Literal["auto"] = "auto"
    embedding: EmbeddingModel | Literal["auto"] = "auto"
    auto_tabular: str = Field(
        default="softmax,hoeffding_adaptive_tree",
        description="Candidates when tabular=auto; each costs learner time and a share of"
        " delta (naive_bayes is slow to predict and overconfident, arf ~40x slower to learn).",
    )
    auto_text: str = "tfidf_nb,bow_nb"
    auto_embedding: str = "softmax,naive_bayes"
    seed: int = 42
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
    target_precision: float = Field(default=0.95, gt=0.5, lt=1.0)
    delta: float = Field(default=0.05, gt=0.0, lt=0.5, description="Allowed failure probability.")
    audit_rate: float = Field(default=0.05, gt=0.0, le=1.0)
    drift_audit_rate: float = Field(default=0.2, gt=0.0, le=1.0)
    boost_audits: int = Field(
        default=50, ge=0, description="Audits at the raised rate after drift."
    )
    evidence_window: int = Field(default=1000, ge=100, description="Scored examples kept.")
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
        default=200.0, gt=0, description="Effective sample size where a test sequence may start."
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
    listen_port: int = Field(default=8091, ge=1, le=65535)
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
    request_timeout_s: float = Field(default=30.0, gt=0)

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

    app_id: str = Field(default="autolabel", pattern=r"^[A-Za-z0-9._-]+$")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    http: HttpSettings = HttpSettings()
    labeler: LabelerSettings = LabelerSettings()
    learner: LearnerSettings = LearnerSettings()
    model: ModelSettings = ModelSettings()
    policy: PolicySettings = PolicySettings()
    snapshot: SnapshotSettings = SnapshotSettings()
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


class SettingsError(ValueError):
    """The environment does not describe a valid configuration; says what to fix."""


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; turn validation errors into instructions.

    One line per problem, naming the variable; a value is shown unless its name says
    it may be secret (or the name is not a setting at all: it may be a misspelled one).

    >>> load_settings(http={"port": 70000})
    Traceback (most recent call last):
    ...
    autolabel.settings.SettingsError: invalid configuration:
      AUTOLABEL_HTTP__PORT: Input should be less than or equal to 65535 (got 70000)
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            var = ENV_PREFIX + "__".join(str(p).upper() for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "not a setting (check the spelling; see the README's configuration table)"
            shown = (
                "input" in err
                and not isinstance(err["input"], dict)
                and err["type"] != "extra_forbidden"  # a misspelled name may hold a secret
                and not SECRET_NAME.search(str(err["loc"][-1]) if err["loc"] else "")
            )
            got = f" (got {err['input']!r})" if shown else ""
            for line in msg.splitlines():  # a cross-field rule names its own variables
                named = line.startswith(ENV_PREFIX)
                lines.append(f"  {line}" if named else f"  {var}: {line}{got}")
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None
