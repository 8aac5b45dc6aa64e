"""The window of answered review requests: dedupe across restarts, compact snapshots."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict

from autolabel.core.messages import Feedback, FeedbackSource, Record, ReviewReason
from autolabel.core.requests import RequestIssuer, admit
from autolabel.settings import ModelSettings, PolicySettings
from autolabel.trust.answered import KEY_BYTES, AnsweredRequests
from autolabel.trust.controller import ControllerConfig, TrustController


def test_the_window_keeps_the_newest_keys_and_forgets_the_oldest() -> None:
    macs = [os.urandom(16) for _ in range(10)]
    answered = AnsweredRequests(window=4)
    for mac in macs:
        answered.add(mac)
    assert [mac in answered for mac in macs] == [False] * 6 + [True] * 4
    assert len(answered) == 4
    off = AnsweredRequests(window=0)
    off.add(macs[0])
    assert macs[0] not in off and len(off) == 0


def test_a_full_window_pickles_as_one_string_of_its_keys() -> None:
    answered = AnsweredRequests.of((os.urandom(16) for _ in range(100_000)), 100_000)
    raw = pickle.dumps(answered, protocol=5)
    assert len(raw) < 100_000 * KEY_BYTES + 200  # not a pickled object per key
    restored = pickle.loads(raw)
    assert restored == answered and len(restored) == 100_000


def answer(issuer: RequestIssuer, i: int) -> Feedback:
    record = Record(id=f"r{i}", features={"x": float(i)})
    rid = issuer.issue(record, ReviewReason.UNCERTAIN, audit_rate=0.05, model_version=1, epoch=0)
    return Feedback(
        id=record.id, record=record, label="a", source=FeedbackSource.REVIEW, request_id=rid
    )


def test_a_controller_from_an_older_snapshot_still_knows_what_it_answered() -> None:
    issuer = RequestIssuer(b"k" * 32)
    old = TrustController(ControllerConfig(ModelSettings(), PolicySettings()))
    sent = [answer(issuer, i) for i in range(5)]
    for offset, feedback in enumerate(sent):
        assert old.absorb(admit(feedback, issuer), offset).kind == "learned"
    # what an older release pickled: whole MACs in a dict, and the window apart
    state = old.__dict__.copy()
    state["_answered"] = OrderedDict.fromkeys(
        admit(f, issuer).request_key
        for f in sent  # type: ignore[misc]
    )
    state["_dedupe_window"] = 3
    restored = TrustController.__new__(TrustController)
    restored.__setstate__(state)
    resent = sent[::-1]  # newest first: the three kept are recognised before any is evicted
    outcomes = [restored.absorb(admit(f, issuer), 10 + i).kind for i, f in enumerate(resent)]
    assert outcomes == ["duplicate", "duplicate", "duplicate", "learned", "learned"]
    assert isinstance(restored._answered, AnsweredRequests) and len(restored._answered) == 3
