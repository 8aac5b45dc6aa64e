"""Faults with real processes on the real broker: nothing lost, nothing learned twice, no
worker without the learned state.

Each scenario streams records while a reviewer answers every review request, does its
fault (kill -9 a worker, kill the active learner, pause the broker, grow and shrink the
group), then checks on the topics and in the newest snapshot that:

- every record id came out (on labels, review or dead-letter): 0 lost; duplicates
  (at-least-once redelivery) are counted and printed;
- the corrections learned, as counted inside the newest snapshot, equal the corrections
  sent: each learned exactly once across crashes and failovers;
- no record was sent to review as ``cold_start`` by a model at least as new as the first
  certified one: restarted and new workers label with the learned state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka_support import blobs, readyz
from streams import Scenario, Tally

from autolabel.settings import Settings
from autolabel.tools.local_broker import LocalBroker, free_port

pytestmark = pytest.mark.integration

# These scenarios test that learned state survives faults, so they need a certificate
# early in a 10-second stream: each test at the full delta (per_test) certifies within
# a few hundred answers whatever the timing of the fault; the stream-wide spending
# schedule, tested elsewhere, may need ~800 and then certify after the stream.
POLICY = {
    "cold_start_examples": 20,
    "audit_rate": 0.1,
    "min_evidence": 100.0,
    "guarantee": "per_test",
}
RATE = 250.0  # records per second


def replica(settings: Settings) -> Settings:
    """The same deployment (topics, groups, key) on another HTTP port."""
    return settings.model_copy(
        update={"http": settings.http.model_copy(update={"port": free_port()})}
    )


def report(name: str, tally: Tally, sent: int, learned: int, **extra: object) -> None:
    figures = ", ".join(f"{k}={v}" for k, v in extra.items())
    line = (
        f"[fault] {name}: records={sent} lost=0 duplicates={tally.duplicates}"
        f" answers_sent={tally.answers_sent} learned_in_snapshot={learned}"
        f" reasons={dict(tally.reasons())}" + (f" {figures}" if figures else "")
    )
    print(line)
    path = Path(".artifacts")
    path.mkdir(exist_ok=True)
    with (path / "fault-report.txt").open("a") as out:
        out.write(line + "\n")


def check(tally: Tally, ids: list[str], learned: int) -> None:
    assert tally.missing(ids) == [], "records lost"
    assert tally.unreadable == 0
    assert learned == tally.answers_sent, "corrections learned != corrections sent"
    late = tally.cold_start_after_certificate()
    assert late == [], f"labeled without learned state: {[(r, tally.outputs[r]) for r in late[:3]]}"
    assert any(s.reason == "certified" for v in tally.outputs.values() for s in v), (
        "never certified: the scenario did not exercise the learned state"
    )


async def until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.2)


def certified_seen(tally: Tally) -> bool:
    return any(s.reason == "certified" for v in tally.outputs.values() for s in v)


async def test_kill_9_mid_stream_and_restart(make_settings, workers) -> None:
    settings = make_settings(policy=POLICY)
    data = blobs("k9", 2400, seed=11)
    truth = {r.id: y for r, y in data}
    ids = list(truth)
    first = workers(settings)
    async with Scenario(settings, truth) as run:
        run.start_stream([r for r, _ in data], RATE)
        await until(lambda: certified_seen(run.tally), 60, "a first certificate")
        await asyncio.to_thread(first.kill)
        restarted = await asyncio.to_thread(workers, replica(settings))
        status, body = readyz(restarted)
        assert status == 200 and body["model_version"] > 0 and body["certified"], body
        await run.streaming()
        header = await run.settle(ids)
    check(run.tally, ids, header.learned_total)
    report("kill -9 and restart", run.tally, len(ids), header.learned_total)


async def test_kill_the_active_learner_mid_feedback(make_settings, workers) -> None:
    settings = make_settings(policy=POLICY)
    data = blobs("kl", 2400, seed=12)
    truth = {r.id: y for r, y in data}
    ids = list(truth)
    a = workers(settings)
    b = workers(replica(settings))
    async with Scenario(settings, truth) as run:
        run.start_stream([r for r, _ in data], RATE)
        await until(lambda: run.tally.answers_sent > 400, 60, "feedback flowing")
        active = [w for w in (a, b) if readyz(w)[1]["learner_active"]]
        assert len(active) == 1, "exactly one learner is active"
        victim = active[0]
        standby = b if victim is a else a
        await asyncio.to_thread(victim.kill)
        killed_at = time.monotonic()
        await until(lambda: readyz(standby)[1]["learner_active"], 60, "the standby taking over")
        takeover_s = time.monotonic() - killed_at
        await run.streaming()
        header = await run.settle(ids)
    check(run.tally, ids, header.learned_total)
    report(
        "kill the active learner",
        run.tally,
        len(ids),
        header.learned_total,
        takeover_s=f"{takeover_s:.1f}",
    )


async def test_pause_the_broker_for_20_seconds(make_settings, broker: LocalBroker, workers) -> None:
    settings = make_settings(policy=POLICY)
    data = blobs("bp", 2000, seed=13)
    truth = {r.id: y for r, y in data}
    ids = list(truth)
    worker = workers(settings)
    async with Scenario(settings, truth) as run:
        await run.stream([r for r, _ in data[:1000]], RATE)
        lines_before = len(worker.log_path.read_text().splitlines())
        broker.pause()
        try:
            saw_503 = False
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                status, _ = await asyncio.to_thread(worker.get, "/readyz")
                saw_503 |= status == 503
                await asyncio.sleep(1.0)
        finally:
            broker.resume()
        log_lines = len(worker.log_path.read_text().splitlines()) - lines_before
        await until(lambda: worker.get("/readyz")[0] == 200, 60, "/readyz back to 200")
        await run.stream([r for r, _ in data[1000:]], RATE)
        header = await run.settle(ids)
    assert saw_503, "/readyz stayed 200 while the broker was unreachable"
    assert worker.alive()
    assert log_lines < 400, f"{log_lines} log lines in a 20 s outage: not rate-limited"
    check(run.tally, ids, header.learned_total)
    report("broker paused 20 s", run.tally, len(ids), header.learned_total, log_lines=log_lines)


async def test_grow_from_one_to_three_workers_and_shrink_back(make_settings, workers) -> None:
    settings = make_settings(policy=POLICY)
    data = blobs("gs", 3600, seed=14)
    truth = {r.id: y for r, y in data}
    ids = list(truth)
    first = workers(settings)
    async with Scenario(settings, truth) as run:
        run.start_stream([r for r, _ in data], RATE)
        await until(lambda: certified_seen(run.tally), 60, "a first certificate")
        second = await asyncio.to_thread(workers, replica(settings))
        third = await asyncio.to_thread(workers, replica(settings))
        for new in (second, third):
            status, body = readyz(new)
            assert status == 200 and body["certified"], f"a new worker is not on the model: {body}"
        await asyncio.sleep(3)
        for leaving in (second, third):
            assert await asyncio.to_thread(leaving.stop) == 0
        await run.streaming()
        header = await run.settle(ids)
    assert first.alive()
    check(run.tally, ids, header.learned_total)
    report("grow 1 -> 3, shrink 3 -> 1", run.tally, len(ids), header.learned_total)


async def test_sigterm_with_the_broker_down_exits_0_within_10_seconds(
    make_settings, broker: LocalBroker, workers
) -> None:
    worker = workers(make_settings(policy=POLICY))
    broker.pause()
    try:
        await asyncio.sleep(3)  # let the clients notice
        started = time.monotonic()
        code = await asyncio.to_thread(worker.stop, 30.0)  # SIGTERM; SIGKILL only after 30 s
        took = time.monotonic() - started
    finally:
        broker.resume()
    assert code == 0, worker.log_tail()
    assert took < 10.0, f"took {took:.1f} s to exit"
    print(f"[fault] SIGTERM with the broker paused: exit 0 after {took:.1f} s")
