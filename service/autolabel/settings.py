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

import re
from collections.abc import Iterator
from enum import Enum
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
SECRET_NAME = re.compile(r"key|password|secret|token", re.IGNORECASE)
"""Settings whose values never appear in an error message."""
TabularModel = Literal["softmax", "hoeffding_adaptive_tree", "arf", "naive_bayes"]
TextModel = Literal["tfidf_nb", "bow_nb", "tfidf_linear"]
EmbeddingModel = Literal["softmax", "naive_bayes"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(Section):
    bootstrap_servers: str = Field(
        default="",
        description="Comma-separated host:port list. Empty means: the demo starts a local broker;"
        " the worker refuses to start.",
    )
    client_id: str = "autolabel"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    request_timeout_ms: int = Field(default=30_000, gt=0)
    session_timeout_s: float = Field(default=10.0, gt=0)
    rebalance_timeout_s: float = Field(default=10.0, gt=0)

    @property
    def broker_list(self) -> list[str]:
        return [b.strip() for b in self.bootstrap_servers.split(",") if b.strip()]

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, value: str) -> str:
        for broker in (b.strip() for b in value.split(",") if b.strip()):
            host, sep, port = broker.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"{broker!r} is not host:port (e.g. localhost:9092)")
        return value


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
    tabular: TabularModel = "softmax"
    text: TextModel = "tfidf_nb"
    embedding: EmbeddingModel = "softmax"
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


class Settings(BaseSettings):
    """Everything the service can be told, validated at start."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
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
        >>> Settings(kafka={"sasl_password": "s3cret"}).to_env()["AUTOLABEL_KAFKA__SASL_PASSWORD"]
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
    if isinstance(value, str | int | float):
        return str(value)
    return to_json(value).decode()  # complex fields are read back as JSON


class MissingKey(ValueError):
    """A command that signs or verifies needs ``AUTOLABEL_SNAPSHOT__KEY``."""


class SettingsError(ValueError):
    """The environment does not describe a valid configuration; says what to fix."""


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; turn validation errors into instructions.

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
            lines.append(f"  {var}: {msg}{got}")
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None
