"""autolabel.settings: AUTOLABEL_ prefix, ``__`` nesting, errors that name the variable."""

from __future__ import annotations

import os
from typing import Any

import pydantic
import pytest
from pydantic import SecretStr

from autolabel.core.messages import DEFAULT_MAX_ABS_NUMBER
from autolabel.settings import Section, Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No AUTOLABEL_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("AUTOLABEL_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_defaults_describe_the_documented_topics_and_port() -> None:
    s = load_settings()
    assert s.app_id == "autolabel"
    assert s.topics.records == "autolabel.records"
    assert s.topics.dead_letter == "autolabel.dead-letter"
    assert s.http.port == 8080
    assert s.kafka.broker_list == []  # the worker refuses to start without one
    assert s.labeler_group == "autolabel-labeler"


def test_environment_is_read_with_prefix_and_nested_delimiter(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("AUTOLABEL_APP_ID", "svc-1")
    clean_env.setenv("AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS", "k1:9092, k2:9093")
    clean_env.setenv("AUTOLABEL_HTTP__PORT", "9100")
    clean_env.setenv("AUTOLABEL_TOPICS__RECORDS", "in.records")
    clean_env.setenv("AUTOLABEL_POLICY__COLD_START_EXAMPLES", "7")
    clean_env.setenv("AUTOLABEL_LABELER__MAX_MESSAGE_BYTES", "4096")
    clean_env.setenv("AUTOLABEL_LABELER__MAX_ABS_NUMBER", "1e9")
    clean_env.setenv("AUTOLABEL_TOPICS__CREATE", "false")
    s = load_settings()
    assert s.app_id == "svc-1" and s.labeler_group == "svc-1-labeler"
    assert s.kafka.broker_list == ["k1:9092", "k2:9093"]
    assert s.http.port == 9100
    assert s.topics.records == "in.records" and s.topics.labels == "autolabel.labels"
    assert s.policy.cold_start_examples == 7
    assert s.labeler.max_message_bytes == 4096
    assert s.labeler.max_abs_number == 1e9
    assert s.topics.create is False


def test_variables_without_the_prefix_are_ignored(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HTTP__PORT", "1")
    clean_env.setenv("APP_ID", "nope")
    s = load_settings()
    assert s.http.port == 8080 and s.app_id == "autolabel"


def test_constructor_arguments_need_no_environment() -> None:
    s = Settings(kafka={"bootstrap_servers": "h:1"}, labeler={"group_id": "g"})
    assert s.kafka.broker_list == ["h:1"] and s.labeler_group == "g"


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(pydantic.ValidationError):
        s.app_id = "other"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        s.http.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("AUTOLABEL_HTTP__PORT", "abc", "valid integer"),
        ("AUTOLABEL_HTTP__PORT", "0", "AUTOLABEL_HTTP__PORT must be in [1, 65535], got 0"),
        ("AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS", "kafka", "is not host:port"),
        ("AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS", "k:9092,broken:x", "'broken:x' is not host:port"),
        ("AUTOLABEL_APP_ID", "has space", "pattern"),
        ("AUTOLABEL_LOG_LEVEL", "loud", "'debug', 'info', 'warning' or 'error'"),
        ("AUTOLABEL_LABELER__MAX_MESSAGE_BYTES", "10", "must be at least 64, got 10"),
        ("AUTOLABEL_POLICY__MODE", "yolo", "'certified' or 'fixed'"),
        ("AUTOLABEL_SNAPSHOT__EVERY_EXAMPLES", "0", "must be at least 1, got 0"),
        ("AUTOLABEL_POLICY__TARGET_PRECISION", "95", "must be in (0.5, 1), got 95"),
        ("AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS", "kafka://k1:9092", "write 'k1:9092' (no scheme"),
    ],
)
def test_an_invalid_variable_is_named_with_what_is_wrong(
    clean_env: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert info.value.problems == [str(info.value)]  # one problem: one line
    line = str(info.value)
    assert line.startswith(variable)
    assert says in line
    assert value in line  # shows what it got


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTOLABEL_KAFKA__SASL_PASSWROD", "hunter2-secret"),  # misspelled: may hold a secret
        ("AUTOLABEL_SNAPSHOT__KEY", "too-short-secret"),
        ("AUTOLABEL_HTTP__PROT", "80"),
    ],
)
def test_errors_never_show_a_value_that_may_be_secret(
    clean_env: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert variable in str(info.value)
    assert value not in str(info.value)


def test_every_invalid_variable_is_reported_at_once(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AUTOLABEL_HTTP__PORT", "abc")
    clean_env.setenv("AUTOLABEL_LABELER__TOP_K", "0")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "AUTOLABEL_HTTP__PORT" in str(info.value)
    assert "AUTOLABEL_LABELER__TOP_K" in str(info.value)


def test_a_cross_field_rule_names_its_section(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AUTOLABEL_POLICY__EVIDENCE_WINDOW", "200")
    clean_env.setenv("AUTOLABEL_POLICY__RECENT_WINDOW", "300")
    with pytest.raises(SettingsError, match="AUTOLABEL_POLICY: recent_window must be smaller"):
        load_settings()


def test_overrides_are_validated_like_the_environment() -> None:
    with pytest.raises(SettingsError, match="AUTOLABEL_HTTP__PORT"):
        load_settings(http={"port": 70000})


def test_the_number_bound_defaults_to_the_contract_default() -> None:
    assert Settings().labeler.max_abs_number == DEFAULT_MAX_ABS_NUMBER
    with pytest.raises(pydantic.ValidationError):
        Settings(labeler={"max_abs_number": 0})


# --------------------------------------------------------------------------- to_env


KEY = "a-snapshot-key-of-at-least-32-bytes-0123"


class ExtraSection(Section):
    """A section this module adds: a secret, an optional float and a list."""

    token: SecretStr = SecretStr("")
    every_s: float | None = None
    names: list[str] = []


class WithExtra(Settings):
    extra: ExtraSection = ExtraSection()


class Strict(Section):
    retries: int | None = 3  # None here has no spelling in the environment


class WithStrict(Settings):
    strict: Strict = Strict()


def rebuilt(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, dict[str, str]]:
    """``type(settings)()`` built from ``settings.to_env()`` and no other variable."""
    env = settings.to_env()
    for name in list(os.environ):
        if name.startswith("AUTOLABEL_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return type(settings)(), env


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        dict(
            app_id="svc-7",
            log_level="debug",
            kafka={
                "bootstrap_servers": "k1:9092,k2:9093",
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "SCRAM-SHA-512",
                "sasl_username": "user",
                "sasl_password": "p@ss word=;'\"",
                "session_timeout_s": 12.5,
            },
            topics={"records": "in.records", "partitions": 5, "create": False},
            http={"host": "127.0.0.1", "port": 9100},
            labeler={"group_id": "g-1", "batch_timeout_ms": 0, "top_k": 1},
            learner={"accuracy_window": 7},
            model={"tabular": "arf", "text": "bow_nb", "embedding": "naive_bayes", "seed": -3},
            snapshot={"key": KEY, "every_examples": 5, "interval_s": 0.25},
        ),
        dict(
            policy={
                "mode": "fixed",
                "target_precision": 0.9123456789012345,
                "delta": 1e-05,
                "audit_rate": 1.0,
                "recent_window": 100,
                "per_class": True,
                "holdout_share": 0.1,
                "min_evidence": 0.5,
                "confidence_threshold": 0.3333333333333333,
            }
        ),
    ],
    ids=["defaults", "every-section", "policy-floats"],
)
def test_to_env_rebuilds_the_same_settings(
    arguments: dict[str, Any], clean_env: pytest.MonkeyPatch
) -> None:
    settings = Settings(**arguments)  # built here, after the fixture cleared our variables
    again, env = rebuilt(settings, clean_env)
    assert again == settings
    assert all(name.startswith("AUTOLABEL_") for name in env)


def test_to_env_reveals_secrets_into_the_mapping_only(clean_env: pytest.MonkeyPatch) -> None:
    sasl = {"mechanism": "SCRAM-SHA-256", "username": "svc", "password": "hunter2"}
    kafka = {"security_protocol": "SASL_PLAINTEXT", **{f"sasl_{k}": v for k, v in sasl.items()}}
    settings = Settings(kafka=kafka, snapshot={"key": KEY})
    env = settings.to_env()
    assert env["AUTOLABEL_KAFKA__SASL_PASSWORD"] == "hunter2"
    assert env["AUTOLABEL_SNAPSHOT__KEY"] == KEY
    assert "hunter2" not in repr(settings) and KEY not in repr(settings)
    again, _ = rebuilt(settings, clean_env)
    assert again.kafka.sasl_password is not None
    assert again.kafka.sasl_password.get_secret_value() == "hunter2"
    assert again.snapshot.key_bytes() == KEY.encode()


def test_to_env_spells_booleans_in_lower_case_and_leaves_none_out() -> None:
    env = Settings(topics={"create": False}, policy={"per_class": True}).to_env()
    assert env["AUTOLABEL_TOPICS__CREATE"] == "false"
    assert env["AUTOLABEL_POLICY__PER_CLASS"] == "true"
    assert "AUTOLABEL_LABELER__GROUP_ID" not in env  # None, the default
    assert "AUTOLABEL_POLICY__RECENT_WINDOW" not in env
    assert "AUTOLABEL_SNAPSHOT__KEY" not in env  # no key: the worker will say to set one


def test_to_env_covers_a_section_it_has_never_seen(clean_env: pytest.MonkeyPatch) -> None:
    defaults = WithExtra()  # built while no AUTOLABEL_* variable is set
    settings = WithExtra(
        extra={"token": "t0k3n", "every_s": 2.5, "names": ["a", "b"]}, http={"port": 9000}
    )
    env = settings.to_env()
    assert env["AUTOLABEL_EXTRA__TOKEN"] == "t0k3n"
    assert env["AUTOLABEL_EXTRA__NAMES"] == '["a","b"]'
    again, _ = rebuilt(settings, clean_env)
    assert again == settings
    again, _ = rebuilt(defaults, clean_env)  # clears what the first round set
    assert again == defaults and again.extra.every_s is None


def test_to_env_refuses_a_none_the_environment_cannot_express() -> None:
    assert WithStrict().to_env()["AUTOLABEL_STRICT__RETRIES"] == "3"
    with pytest.raises(ValueError, match="AUTOLABEL_STRICT__RETRIES: None cannot be expressed"):
        WithStrict(strict={"retries": None}).to_env()


# --------------------------------------------------------------------------- unknown variables


@pytest.mark.parametrize(
    ("variable", "hint"),
    [
        ("AUTOLABEL_BOOTSTRAP_SERVERS", "did you mean AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS?"),
        ("AUTOLABEL_KAFKA_BOOTSTRAP_SERVERS", "did you mean AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS?"),
        ("AUTOLABEL_TARGET_PRECISION", "did you mean AUTOLABEL_POLICY__TARGET_PRECISION?"),
        ("AUTOLABEL_HTTP__PROT", "did you mean AUTOLABEL_HTTP__PORT?"),  # inside a section
        ("AUTOLABEL_SASL_PASSWORD", "did you mean AUTOLABEL_KAFKA__SASL_PASSWORD?"),
        ("autolabel_app_idd", "did you mean AUTOLABEL_APP_ID?"),
        ("AUTOLABEL_NOTHING_LIKE_IT", "check the spelling"),
    ],
)
def test_an_unknown_variable_is_an_error_with_a_suggestion_never_its_value(
    clean_env: pytest.MonkeyPatch, variable: str, hint: str
) -> None:
    clean_env.setenv(variable, "hunter2-secret-value")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == info.value.problems[0]  # one problem, one line
    assert str(info.value).startswith(f"{variable.upper()}: not a setting")
    assert hint in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_section_as_json_is_a_known_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("AUTOLABEL_HTTP", '{"port": 9100}')
    assert load_settings().http.port == 9100


def test_unknown_variables_are_reported_with_the_other_problems(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("AUTOLABEL_BOOTSTRAP_SERVERS", "k:9092")
    clean_env.setenv("AUTOLABEL_HTTP__PORT", "0")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert len(info.value.problems) == 2
    assert str(info.value).startswith("invalid configuration:\n  AUTOLABEL_BOOTSTRAP_SERVERS")
