"""autolabel.settings: AUTOLABEL_ prefix, ``__`` nesting, errors that name the variable."""

from __future__ import annotations

import os

import pydantic
import pytest

from autolabel.core.messages import DEFAULT_MAX_ABS_NUMBER
from autolabel.settings import Settings, SettingsError, load_settings


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
        ("AUTOLABEL_HTTP__PORT", "0", "greater than or equal to 1"),
        ("AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS", "kafka", "is not host:port"),
        ("AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS", "k:9092,broken:x", "'broken:x' is not host:port"),
        ("AUTOLABEL_APP_ID", "has space", "pattern"),
        ("AUTOLABEL_LOG_LEVEL", "loud", "'debug', 'info', 'warning' or 'error'"),
        ("AUTOLABEL_LABELER__MAX_MESSAGE_BYTES", "10", "64"),
        ("AUTOLABEL_POLICY__MODE", "yolo", "'certified' or 'fixed'"),
        ("AUTOLABEL_SNAPSHOT__EVERY_EXAMPLES", "0", "greater than or equal to 1"),
    ],
)
def test_an_invalid_variable_is_named_with_what_is_wrong(
    clean_env: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    clean_env.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("invalid configuration:")
    line = next(line for line in message.splitlines() if variable in line)
    assert says in line
    assert repr(value) in line  # shows what it got


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
