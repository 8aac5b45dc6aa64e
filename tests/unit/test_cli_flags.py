"""Every setting is a flag, generated from the Settings model; flags win over variables."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from autolabel import cli
from autolabel.flags import add_setting_flags, given_flags
from autolabel.settings import Settings, SettingsError, load_settings, setting_fields


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("AUTOLABEL_"):
            monkeypatch.delenv(name)
    return monkeypatch


def parse(*argv: str) -> argparse.Namespace:
    return cli.build_parser().parse_args(["worker", *argv])


def settings_from(*argv: str) -> Settings:
    return load_settings(given_flags(parse(*argv)))


def test_every_setting_but_a_secret_is_a_flag_of_the_commands_that_use_settings() -> None:
    fields = list(setting_fields())
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    flags = set(parser._option_string_actions)
    for field in fields:
        assert (field.flag in flags) is not field.secret, field.flag
    assert {"--snapshot.key", "--kafka.sasl-password", "--kafka.ssl-keyfile-password"}.isdisjoint(
        flags
    )
    sub = cli.build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in ("worker", "topics", "produce", "demo", "evaluate", "suite", "seed"):
        assert "--kafka.bootstrap-servers" in sub[name]._option_string_actions, name
    for name in ("dataset", "schemas"):
        assert "--kafka.bootstrap-servers" not in sub[name]._option_string_actions, name


def test_every_setting_has_a_description() -> None:
    missing = [f.variable for f in setting_fields() if not (f.info.description or "").strip()]
    assert missing == []


def test_flags_are_generated_from_the_model_not_listed() -> None:
    """A field the CLI never heard of gets a flag: the model is the only list."""

    class Extra(BaseModel):
        window_ms: int = 5

    fields = list(setting_fields(Extra, ("extra",)))
    assert [(f.flag, f.variable, f.unit) for f in fields] == [
        ("--extra.window-ms", "AUTOLABEL_EXTRA__WINDOW_MS", "milliseconds")
    ]


def test_flags_take_the_text_their_variable_would() -> None:
    s = settings_from(
        "--kafka.bootstrap-servers", "k1:9092,k2:9092",
        "--policy.target-precision", "0.97",
        "--topics.create", "false",
        "--policy.recent-window", "300",
        "--model.tabular", "arf",
        "--labeler.batch-timeout-ms", "50",
        "--app-id", "svc",
    )  # fmt: skip
    assert s.kafka.broker_list == ["k1:9092", "k2:9092"]
    assert s.policy.target_precision == 0.97 and s.policy.recent_window == 300
    assert s.topics.create is False and s.model.tabular == "arf"
    assert s.labeler.batch_timeout_ms == 50 and s.app_id == "svc"


def test_a_flag_wins_over_its_variable_and_leaves_the_others(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("AUTOLABEL_POLICY__TARGET_PRECISION", "0.9")
    clean_env.setenv("AUTOLABEL_POLICY__AUDIT_RATE", "0.1")
    clean_env.setenv("AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    s = settings_from("--policy.target-precision", "0.97")
    assert s.policy.target_precision == 0.97  # the flag
    assert s.policy.audit_rate == 0.1  # same section, from the environment
    assert s.kafka.bootstrap_servers == "env:9092"
    assert load_settings().policy.target_precision == 0.9  # no flag: the variable


def test_flag_settings_reach_child_processes_through_to_env() -> None:
    env = settings_from("--http.port", "9100").to_env()
    assert env["AUTOLABEL_HTTP__PORT"] == "9100"


def test_an_invalid_flag_value_names_the_flag_not_the_variable() -> None:
    with pytest.raises(SettingsError) as info:
        settings_from("--policy.target-precision", "95")
    assert str(info.value) == "--policy.target-precision must be in (0.5, 1), got 95"
    with pytest.raises(SettingsError) as info:
        settings_from("--http.port", "abc", "--kafka.bootstrap-servers", "kafka://h:9092")
    assert info.value.problems[0].startswith("--kafka.bootstrap-servers: 'kafka://h:9092' is not")
    assert info.value.problems[1].startswith("--http.port: Input should be a valid integer")


def test_a_command_alias_is_named_as_typed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = cli.main(["evaluate", "--data", str(tmp_path / "x.csv"), "--target-precision", "95"])
    assert code == 2
    assert capsys.readouterr().err == (
        "autolabel evaluate: --target-precision must be in (0.5, 1), got 95\n"
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--reviewer-error-rate", "2"], "--reviewer-error-rate: must be in [0, 1), got 2"),
        (["--reviewer-error-rate", "1"], "--reviewer-error-rate: must be in [0, 1), got 1"),
        (["--review-delay", "-5"], "--review-delay: must be at least 0, got -5"),
        (["--orders", "x"], "--orders: must be a whole number, got 'x'"),
        (["--scale", "0"], "--scale: must be in (0, 1], got 0"),
    ],
)
def test_evaluate_checks_its_own_flags(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["evaluate", "--data", "x.csv", "--label-column", "y", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1  # one line


def test_a_misspelled_flag_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["worker", "--kafka.bootstrap-server", "h:9092"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "did you mean --kafka.bootstrap-servers?" in err and err.count("\n") == 1


def test_help_shows_descriptions_units_defaults_and_variables(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        cli.main(["worker", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert (
        "--labeler.batch-timeout-ms MS Longest wait for a micro-batch to fill. In milliseconds;"
        " default 20; AUTOLABEL_LABELER__BATCH_TIMEOUT_MS"
    ) in text
    assert "--snapshot.interval-s SECONDS" in text and "In seconds; default 0.5" in text
    assert "--snapshot.max-bytes BYTES" in text and "In bytes; default 33554432" in text
    assert "--policy.mode {certified,fixed}" in text
    assert "secrets, from the environment only: AUTOLABEL_SNAPSHOT__KEY" in text
    assert "usage: autolabel worker [-h] [--SETTING VALUE ...]" in text


def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("autolabel 0.") and "(Python 3." in out
