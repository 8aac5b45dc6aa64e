"""The command line against a real broker: ``autolabel topics`` and start-up errors.

Every command runs as a subprocess configured only by ``AUTOLABEL_*`` variables.
"""

from __future__ import annotations

import os

import pytest
from aiokafka.admin import NewTopic
from kafka_support import run_cli

from autolabel.kafka.clients import make_admin
from autolabel.kafka.topics import topic_specs
from autolabel.settings import Settings, load_settings

pytestmark = pytest.mark.integration

PARTITIONS = 4  # not the default 3: proves the setting is honoured


async def describe(settings: Settings) -> dict[str, int]:
    """Topic name → partition count, for this settings' topics that exist."""
    admin = make_admin(settings.kafka)
    await admin.start()
    try:
        names = [spec.name for spec in topic_specs(settings)]
        present = [n for n in names if n in set(await admin.list_topics())]
        described = await admin.describe_topics(present) if present else []
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


async def test_topics_creates_every_topic_and_check_passes_after(make_settings) -> None:
    settings = make_settings(topics={"partitions": PARTITIONS})
    env = settings.to_env()
    t = settings.topics

    check = run_cli("topics", "--check", env=env)
    assert check.returncode != 0, "nothing exists yet: --check must fail"
    assert await describe(settings) == {}, "--check must not create anything"

    created = run_cli("topics", env=env)
    assert created.returncode == 0, created.stdout + created.stderr
    assert await describe(settings) == {
        t.records: PARTITIONS,
        t.labels: PARTITIONS,
        t.review: PARTITIONS,
        t.dead_letter: PARTITIONS,
        t.feedback: 1,
        t.signals: 1,
        t.models: 1,
    }
    for name in (t.records, t.labels, t.review, t.dead_letter, t.feedback, t.signals, t.models):
        assert name in created.stdout

    check = run_cli("topics", "--check", env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "PROBLEM" not in check.stdout


async def test_topics_check_names_a_topic_with_the_wrong_partition_count(make_settings) -> None:
    settings = make_settings(topics={"partitions": PARTITIONS})
    env = settings.to_env()
    t = settings.topics
    admin = make_admin(settings.kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t.review, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()

    created = run_cli("topics", env=env)  # creates the missing five, cannot fix review
    assert created.returncode != 0
    check = run_cli("topics", "--check", env=env)
    assert check.returncode != 0
    problems = [line for line in check.stdout.splitlines() if "PROBLEM" in line]
    assert len(problems) == 1 and t.review in problems[0], check.stdout
    assert "partitions=2" in problems[0]
    assert (await describe(settings))[t.review] == 2  # reported, never altered


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("AUTOLABEL_HTTP__PORT", "abc", "valid integer"),
        ("AUTOLABEL_HTTP__PORT", "70000", "65535"),
        ("AUTOLABEL_HTTP__PROT", "8080", "not a setting"),  # a typo in a nested name
        ("AUTOLABEL_SNAPSHOT__KEY", "short", "at least 32 bytes"),
        ("AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS", "localhost", "host:port"),
        ("AUTOLABEL_POLICY__MODE", "magic", "'certified' or 'fixed'"),
    ],
)
def test_worker_exits_2_naming_the_bad_variable(
    make_settings, variable: str, value: str, says: str
) -> None:
    env = make_settings().to_env()
    env[variable] = value
    result = run_cli("worker", env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert variable in result.stderr and says in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_without_a_broker_says_which_variable_to_set(make_settings) -> None:
    env = make_settings().to_env()
    del env["AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS"]
    result = run_cli("worker", env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "set AUTOLABEL_KAFKA__BOOTSTRAP_SERVERS" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_without_a_snapshot_key_says_how_to_make_one(make_settings) -> None:
    env = make_settings().to_env()
    del env["AUTOLABEL_SNAPSHOT__KEY"]
    result = run_cli("worker", env=env, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "AUTOLABEL_SNAPSHOT__KEY" in result.stderr and "secrets" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_suite_configures_workers_exactly(
    make_settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Settings.to_env`` (how every worker here is configured) rebuilds the settings.

    Here for settings built the way this suite builds them: validated, then constructed.
    """
    settings = make_settings(
        policy={"mode": "fixed", "cold_start_examples": 3, "recent_window": 100},
        labeler={"max_message_bytes": 4096},
        topics={"partitions": 5, "create": False},
    )
    for name in [n for n in os.environ if n.startswith("AUTOLABEL_")]:
        monkeypatch.delenv(name)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert load_settings() == settings
