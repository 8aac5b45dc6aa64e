"""autolabel.trust.controller: the single writer of the model and all trust state."""

from __future__ import annotations

import math
import pickle
import random
from dataclasses import replace

import pytest

from autolabel.core.codec import Rejected
from autolabel.core.messages import (
    ConfidenceSignal,
    DeadLetterReason,
    Feedback,
    FeedbackSource,
    Record,
)
from autolabel.core.requests import Admitted
from autolabel.model.classifier import NonFiniteOutput, OnlineClassifier, Prediction
from autolabel.model.remap import RemappedClassifier
from autolabel.settings import ModelSettings, PolicySettings
from autolabel.trust.controller import (
    PRESCORE_CHUNK,
    PRESCORE_MIN_LEARNED,
    ControllerConfig,
    ModelUpdateRefused,
    Scored,
    TrustConfig,
    TrustController,
    chunk_means,
)
from autolabel.trust.drift import DriftEvent, DriftSignal
from autolabel.trust.risk import RiskConfig


def answer(
    i: int,
    x: float,
    label: str,
    source: FeedbackSource = FeedbackSource.REVIEW,
    weight: float = 1.0,
    key: bytes | None = None,
) -> Admitted:
    # huge values pass only where a deployment raised AUTOLABEL_LABELER__MAX_ABS_NUMBER
    record = Record.model_validate(
        {"id": f"r{i}", "features": {"x": x}}, context={"max_abs_number": 1.8e308}
    )
    fb = Feedback(id=f"r{i}", record=record, label=label, source=source)
    return Admitted(fb, source, weight, key, None)


def controller(**policy: object) -> TrustController:
    return TrustController(ControllerConfig(ModelSettings(), PolicySettings(**policy)))  # type: ignore[arg-type]


def pred(label: str, confidence: float) -> Prediction:
    return Prediction(label, confidence, 2 * confidence - 1, ((label, confidence),))


# ---------------------------------------------------------------------- learning


def test_each_example_is_scored_before_it_is_learned() -> None:
    ctl = controller(mode="fixed")
    first = ctl.absorb(answer(0, 1.0, "a"), offset=0)
    assert first.kind == "learned" and first.correct is None  # no model yet
    assert ctl.classifier.learned() == 1 and ctl.classifier.version == 1
    second = ctl.absorb(answer(1, -1.0, "b"), offset=1)  # an unseen label cannot be predicted
    assert second.correct is False and second.scored and second.scored.prediction.label == "a"
    assert ctl.rolling_accuracy == 0.0  # the unscored first example does not count
    assert ctl.feedback_offset == 2


def test_each_kind_gets_its_own_model_and_all_are_counted() -> None:
    ctl = controller(mode="fixed")
    ctl.absorb(answer(0, 1.0, "a"), 0)
    text = Feedback(
        id="t", record=Record(id="t", text="hello world"), label="greet", source=FeedbackSource.SEED
    )
    outcome = ctl.absorb(Admitted(text, FeedbackSource.SEED, 1.0, None, None), 1)
    assert outcome.correct is None  # no text model existed yet, whatever the tabular one knows
    assert ctl.classifier.learned("features") == 1 and ctl.classifier.learned("text") == 1
    assert ctl.learned_by_source == {"review": 1, "seed": 1}


def test_an_answer_to_the_same_request_is_learned_once() -> None:
    ctl = controller(mode="fixed")
    assert ctl.absorb(answer(0, 1.0, "a", key=b"k" * 16), 0).kind == "learned"
    assert ctl.absorb(answer(0, 1.0, "a", key=b"k" * 16), 1).kind == "duplicate"
    assert ctl.absorb(answer(1, 1.0, "a", key=None), 2).kind == "learned"  # no request: no dedupe
    assert ctl.absorb(answer(1, 1.0, "a", key=None), 3).kind == "learned"
    assert ctl.classifier.learned() == 3 and ctl.duplicates == 1 and ctl.feedback_offset == 4


def test_the_dedupe_memory_is_bounded() -> None:
    ctl = TrustController(ControllerConfig(ModelSettings(), PolicySettings(), dedupe_window=2))
    for i in range(3):
        ctl.absorb(answer(i, 1.0, "a", key=bytes([i]) * 16), i)
    assert ctl.absorb(answer(0, 1.0, "a", key=bytes([0]) * 16), 3).kind == "learned"  # forgotten
    assert ctl.absorb(answer(2, 1.0, "a", key=bytes([2]) * 16), 4).kind == "duplicate"


def test_rejections_count_and_advance_the_offset() -> None:
    ctl = controller()
    rejected = Rejected(DeadLetterReason.INVALID_JSON, "bad")
    outcome = ctl.absorb(rejected, offset=7)
    assert outcome.kind == "rejected" and outcome.rejection is rejected
    assert ctl.feedback_offset == 8 and ctl.rejected == {"invalid_json": 1}
    assert ctl.classifier.learned() == 0


def test_a_record_the_model_cannot_score_is_refused_and_not_learned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctl = controller(mode="fixed")
    for i in range(5):
        ctl.absorb(answer(i, float(i), "a" if i % 2 else "b"), i)
    before = pickle.dumps(ctl.classifier)

    def nan(record: object) -> None:
        raise NonFiniteOutput("the model gave a non-finite probability")

    monkeypatch.setattr(ctl.classifier, "predict_one", nan)
    outcome = ctl.absorb(answer(9, 1.0, "a"), 5)
    assert outcome.kind == "rejected" and outcome.rejection is not None
    assert outcome.rejection.reason is DeadLetterReason.MODEL_UPDATE_REFUSED
    monkeypatch.undo()
    assert pickle.dumps(ctl.classifier) == before  # the model is unchanged
    assert ctl.feedback_offset == 6 and ctl.rejected == {"model_update_refused": 1}


@pytest.mark.parametrize("value", [1e308, -1e308, 1.7e308])
def test_an_update_that_makes_the_model_non_finite_raises(value: float) -> None:
    ctl = controller(mode="fixed")
    ctl.absorb(answer(0, 1.0, "a"), 0)
    ctl.absorb(answer(1, -1.0, "b"), 1)
    with pytest.raises(ModelUpdateRefused):  # finite to score, non-finite once learned
        ctl.absorb(answer(2, value, "a"), 2)


def test_under_thinning_the_others_skip_all_but_every_thin_th_answer_and_say_so() -> None:
    ctl = controller()  # auto: softmax labels, the tree is the other candidate
    assert len(ctl.candidates) == 2
    rng = random.Random(3)
    outcomes = [ctl.absorb(two_class(i, rng), i, thin=8) for i in range(64)]
    assert [o.thinned for o in outcomes] == [i % 8 != 0 for i in range(64)]
    chosen, other = ctl.candidates[ctl.chosen], ctl.candidates[1 - ctl.chosen]
    assert (chosen.thinned, other.thinned) == (0, 56)
    assert chosen.model.learned() == 64 and other.model.learned() == 8
    assert not any(ctl.absorb(two_class(64 + i, rng), 64 + i).thinned for i in range(8))
    assert other.model.learned() == 16


def text_answer(i: int, label: str) -> Admitted:
    record = Record(id=f"t{i}", text=f"words of {label} number {i}")
    fb = Feedback(id=record.id, record=record, label=label, source=FeedbackSource.REVIEW)
    return Admitted(fb, FeedbackSource.REVIEW, 1.0, None, None)


def test_a_candidate_that_would_repeat_an_earlier_one_sits_out_until_a_kind_differs() -> None:
    # One tabular model named, text and embeddings auto: two candidates, both softmax for
    # tabular records. The second learns nothing of them (the first learns that very
    # model), and starts from a copy of it when a text record shows where they differ.
    ctl = TrustController(
        ControllerConfig(ModelSettings(tabular="softmax"), PolicySettings())  # type: ignore[arg-type]
    )
    first, second = ctl.candidates
    assert first.settings.tabular == second.settings.tabular == "softmax"
    assert first.settings.text != second.settings.text
    rng = random.Random(4)
    for i in range(300):
        outcome = ctl.absorb(two_class(i, rng), i)
        assert outcome.kind == "learned"
    assert first.model.learned() == 300 and second.model.learned() == 0
    assert second.scored == 0 and len(second.evidence) == 0  # no evidence, no share of delta
    ctl.absorb(text_answer(0, "a"), 300)  # a kind where they differ: both learn it
    assert first.model.learned("text") == second.model.learned("text") == 1
    assert second.model.learned("features") == 300  # a copy of the first's tabular model
    record = two_class(301, rng).feedback.record
    assert second.model.predict_one(record) == first.model.predict_one(record)
    for i in range(302, 320):  # awake now: it learns every tabular answer itself
        ctl.absorb(two_class(i, rng), i)
    assert first.model.learned("features") == second.model.learned("features") == 318
    assert isinstance(first.model, OnlineClassifier) and isinstance(second.model, OnlineClassifier)
    assert first.model._models["features"] is not second.model._models["features"]


def test_in_a_recovery_the_fresh_twin_sits_out_too() -> None:
    ctl = TrustController(
        ControllerConfig(ModelSettings(tabular="softmax"), PolicySettings())  # type: ignore[arg-type]
    )
    rng = random.Random(9)
    for i in range(100):
        ctl.absorb(two_class(i, rng), i)
    ctl._enter_fallback(DriftEvent(DriftSignal.AUDIT_ERROR, 100, 0.05, 1.0, "a test"))
    current, fresh, twin = (
        c for c in ctl.candidates if not isinstance(c.model, RemappedClassifier)
    )
    for i in range(100, 160):
        ctl.absorb(two_class(i, rng), i)
    assert (current.model.learned(), fresh.model.learned(), twin.model.learned()) == (160, 60, 0)


def test_candidates_that_differ_where_it_matters_all_learn() -> None:
    ctl = controller()  # the default set: softmax and a tree for tabular records
    rng = random.Random(8)
    for i in range(50):
        ctl.absorb(two_class(i, rng), i)
    assert [c.model.learned() for c in ctl.candidates] == [50, 50]


# ---------------------------------------------------------------------- scoring a chunk at once


def two_class(i: int, rng: random.Random, **kw: object) -> Admitted:
    label = "ab"[i % 2]
    return answer(i, rng.gauss(1.0 if label == "a" else -1.0, 1.0), label, **kw)  # type: ignore[arg-type]


def warmed(n: int = PRESCORE_MIN_LEARNED, **policy: object) -> TrustController:
    ctl = controller(**policy)
    rng = random.Random(5)
    for i in range(n):
        ctl.absorb(two_class(i, rng), i)
    return ctl


def test_a_prescored_chunk_is_scored_by_the_model_before_it_and_learned_the_same() -> None:
    rng = random.Random(6)
    start = PRESCORE_MIN_LEARNED
    chunk = [(two_class(start + j, rng), start + j) for j in range(PRESCORE_CHUNK)]
    chunked, single = warmed(), warmed()
    before = pickle.loads(pickle.dumps(chunked.classifier))  # the model the chunk is scored by
    prescored = chunked.prescore(chunk)
    assert len(prescored) == 1
    for item, offset in chunk:
        got = chunked.absorb(item, offset, thin=4, prescored=prescored)
        single.absorb(item, offset, thin=4)
        assert got.scored is not None and got.scored.prediction is not None
        expected = before.predict_one(item.feedback.record)  # not the model that learned it
        assert expected is not None and got.scored.prediction.label == expected.label
        assert got.scored.prediction.confidence == pytest.approx(expected.confidence, abs=1e-12)
    # learning does not depend on how answers were scored
    assert pickle.dumps(chunked.classifier) == pickle.dumps(single.classifier)
    assert chunked.feedback_offset == single.feedback_offset == start + PRESCORE_CHUNK


def test_a_young_model_scores_one_answer_at_a_time() -> None:
    ctl = warmed(PRESCORE_MIN_LEARNED - 1)
    offset = PRESCORE_MIN_LEARNED - 1
    assert len(ctl.prescore([(answer(offset, 1.0, "a"), offset)])) == 0


def test_prescore_skips_rejected_and_absorbed_answers_and_bounds_the_chunk() -> None:
    ctl = warmed()
    offset = ctl.feedback_offset
    rejected = Rejected(DeadLetterReason.INVALID_JSON, "bad")
    prescored = ctl.prescore(
        [(answer(0, 1.0, "a"), offset - 1), (rejected, offset), (answer(1, 1.0, "a"), offset + 1)]
    )
    model = ctl.classifier
    assert prescored.get(model, offset - 1) is None  # already absorbed: never scored again
    assert prescored.get(model, offset) is None and prescored.get(model, offset + 1) is not None
    too_many = [(answer(i, 1.0, "a"), offset + i) for i in range(PRESCORE_CHUNK + 1)]
    with pytest.raises(ValueError):
        ctl.prescore(too_many)


def test_a_candidate_created_within_the_chunk_scores_for_itself() -> None:
    """A fallback mid-chunk: the fresh copies never use the old model's predictions."""
    ctl = warmed()
    rng = random.Random(7)
    start = ctl.feedback_offset
    chunk = [(two_class(start + j, rng), start + j) for j in range(8)]
    prescored = ctl.prescore(chunk)
    old = ctl.classifier
    ctl._enter_fallback(DriftEvent(DriftSignal.AUDIT_ERROR, 0, 0.05, 1.0, "test"))
    *fresh_ones, remapped = [c.model for c in ctl.candidates[1:]]
    assert isinstance(remapped, RemappedClassifier) and remapped.base is not old  # a copy
    fresh = [*fresh_ones, remapped]
    assert fresh_ones and all(prescored.get(m, start) is None for m in fresh)
    assert ctl.candidates[0].model is old and prescored.get(old, start) is not None
    for item, offset in chunk:
        ctl.absorb(item, offset, prescored=prescored)
    assert all(m.learned() == len(chunk) for m in fresh_ones)  # they scored and learned each
    assert remapped.learned() == old.learned() - len(chunk)  # frozen: never taught again
    assert ctl.candidates[1].scored == len(chunk) - 1  # the first answer found no model


def test_a_chunk_the_batch_cannot_score_is_scored_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A non-finite row makes the whole batch fail: every answer of the chunk is then
    scored on its own (so only one that cannot be scored would be refused)."""
    ctl = warmed(mode="fixed")
    start = ctl.feedback_offset
    chunk = [(answer(start + j, float(j), "ab"[j % 2]), start + j) for j in range(3)]

    def non_finite(records: object) -> None:
        raise NonFiniteOutput("the model gave a non-finite probability")

    monkeypatch.setattr(ctl.classifier, "predict_batch", non_finite)
    prescored = ctl.prescore(chunk)
    assert len(prescored) == 0
    outcomes = [ctl.absorb(item, offset, prescored=prescored) for item, offset in chunk]
    assert [o.kind for o in outcomes] == ["learned"] * 3
    assert all(o.scored is not None and o.scored.prediction is not None for o in outcomes)


# ---------------------------------------------------------------------- the view


def test_the_view_reflects_the_controller() -> None:
    ctl = controller(audit_rate=0.07, cold_start_examples=3)
    view = ctl.view()
    assert view.model is None and view.learned == 0 and not view.accepting
    for i in range(4):
        ctl.absorb(answer(i, float(i), "a"), i)
    view = ctl.view()
    assert view.model is ctl.classifier and view.learned == 4
    assert view.audit_rate == 0.07 and view.feedback_offset == 4 and view.mode == "certified"
    assert view.model_version == ctl.classifier.version


# ---------------------------------------------------------------------- trust

ONE = ModelSettings(tabular="softmax", text="tfidf_nb", embedding="softmax")
TWO = ModelSettings(auto_tabular="softmax,naive_bayes", text="tfidf_nb", embedding="softmax")


def trust(model: ModelSettings = ONE, **changes: object) -> TrustController:
    config = TrustConfig(
        cold_start_examples=0,
        audit_rate=0.05,
        drift_audit_rate=0.25,
        boost_audits=10,
        risk=RiskConfig(recent_window=None),
    )
    return TrustController(ControllerConfig(model, replace(config, **changes)))


def feed(ctl: TrustController, *scores: Scored | None) -> list:
    """The evidence path of absorb, with the scores given per candidate (no model)."""
    candidates = ctl.candidates
    given = list(scores) + [scores[-1]] * (len(candidates) - len(scores))
    events = ctl._observe(given[ctl.chosen], candidates, given)  # type: ignore[arg-type]
    ctl.epoch_examples += 1
    if ctl.schedule.due(ctl.epoch_examples):
        ctl._test()
    return events


def good(rng: random.Random, label: str = "a", source=FeedbackSource.REVIEW) -> Scored:  # type: ignore[no-untyped-def]
    """A well-calibrated model's score: high confidence is almost always right."""
    c = rng.uniform(0.5, 1.0)
    right = rng.random() > (1 - c) / 10
    return Scored(pred(label, c), label if right else "other", source)


def certify(ctl: TrustController, n: int = 1500, rng: random.Random | None = None) -> None:
    rng = rng or random.Random(0)
    for _ in range(n):
        feed(ctl, good(rng))


def test_certifies_on_good_evidence_at_scheduled_tests_only() -> None:
    ctl = trust()
    rng = random.Random(0)
    for _ in range(39):
        feed(ctl, good(rng))
    assert ctl.schedule.tests == 0  # the first test is due at 40 examples
    certify(ctl, 1500, rng)
    view = ctl.view()
    assert ctl.certificate.certified and view.certificate is ctl.certificate
    assert 0.5 < ctl.certificate.threshold_for("a") < 1.0
    assert 0 < ctl.schedule.spent < 0.05 and ctl.certified_once


def test_no_threshold_is_ever_certified_where_none_is_valid() -> None:
    """5.5% error at every confidence, target 95%: the spent budget keeps the chance of a
    certificate at ANY moment of 6,000 examples (about 15 tests) under delta."""
    certified_runs = 0
    for seed in range(40):
        rng = random.Random(seed)
        ctl = trust()
        for _ in range(6000):
            c = rng.uniform(0.5, 1.0)
            feed(
                ctl,
                Scored(pred("a", c), "a" if rng.random() > 0.055 else "b", FeedbackSource.REVIEW),
            )
            if ctl.certificate.certified:
                certified_runs += 1
                break
    assert certified_runs <= 2  # delta = 0.05: 2 of 40 expected at most


def test_audit_outcomes_are_importance_weighted() -> None:
    ctl = trust()
    for i in range(8):
        correct = i % 4 != 0  # a quarter of audited labels wrong
        feed(ctl, Scored(pred("a", 0.99), "a" if correct else "b", FeedbackSource.AUDIT, 20.0))
    assert not ctl.fallback and ctl.audit_error_rate == pytest.approx(0.25)


def test_wrong_audits_refute_the_certificate_within_a_few_audits() -> None:
    rng = random.Random(1)
    ctl = trust()
    certify(ctl, 1500, rng)
    assert ctl.certificate.certified and not ctl.fallback
    epoch, evidence_epoch = ctl.epoch, ctl.schedule.epoch
    audits = 0
    while not ctl.fallback:  # a swap: a third of the accepted labels are wrong
        audits += 1
        wrong = rng.random() < 0.33
        feed(ctl, Scored(pred("a", 0.99), "b" if wrong else "a", FeedbackSource.AUDIT, 20.0))
        assert audits < 60
    assert audits <= 30
    assert ctl.epoch == epoch + 1 and ctl.schedule.epoch == evidence_epoch + 1
    assert not ctl.certificate.certified and not ctl.view().accepting
    # the model in use, a fresh one of its family and a frozen copy with renamed labels
    assert [c.name for c in ctl.candidates] == [
        ctl.candidates[0].name,
        ctl.candidates[0].name,
        f"{ctl.candidates[0].name} remapped",
    ]
    assert ctl.drift_counts["audit_error"] == 1


@pytest.mark.parametrize(
    ("changes", "remapped"),
    [({}, True), ({"remap_max_bytes": 1}, False), ({"remap_evidence_share": 0.0}, False)],
    ids=["default", "too-large", "off"],
)
def test_a_renamed_copy_joins_a_recovery_unless_it_is_off_or_too_large(
    changes: dict[str, float], remapped: bool
) -> None:
    ctl = warmed()  # real models
    ctl.config = replace(ctl.config, **changes)
    ctl._enter_fallback(DriftEvent(DriftSignal.AUDIT_ERROR, 0, 0.05, 1.0, "test"))
    kinds = [isinstance(c.model, RemappedClassifier) for c in ctl.candidates]
    assert kinds == [False] * (len(ctl._families) + 1) + ([True] if remapped else [])


def test_a_class_that_turns_wrong_is_seen_in_its_own_audits() -> None:
    rng = random.Random(2)
    ctl = trust()
    certify(ctl, 1500, rng)
    audits = 0
    while not ctl.fallback:  # one class of seven swaps: its audits are all wrong
        audits += 1
        label = rng.choice("abcdefg")
        wrong = label == "g"
        feed(ctl, Scored(pred(label, 0.99), "x" if wrong else label, FeedbackSource.AUDIT, 20.0))
        assert audits < 200
    assert audits <= 60


def test_a_class_right_for_a_long_time_is_refuted_as_fast_when_it_turns_wrong() -> None:
    rng = random.Random(2)
    ctl = trust()
    certify(ctl, 1500, rng)
    for _ in range(700):  # ~100 right audits of class "g" before it swaps
        label = rng.choice("abcdefg")
        feed(ctl, Scored(pred(label, 0.99), label, FeedbackSource.AUDIT, 20.0))
    assert not ctl.fallback
    wrong = 0
    while not ctl.fallback:
        label = rng.choice("abcdefg")
        wrong += label == "g"
        truth = "x" if label == "g" else label
        feed(ctl, Scored(pred(label, 0.99), truth, FeedbackSource.AUDIT, 20.0))
        assert wrong < 30
    assert wrong <= 5  # as many as a class with no history needs


def test_recovery_promotes_a_model_certified_on_post_change_evidence() -> None:
    rng = random.Random(3)
    ctl = trust()
    certify(ctl, 1500, rng)
    while not ctl.fallback:
        feed(ctl, Scored(pred("a", 0.99), "b", FeedbackSource.AUDIT, 20.0))
    _old, fresh, _remapped = ctl.candidates
    for _ in range(3000):  # the old model stays wrong; the fresh one is right when confident
        c = rng.uniform(0.5, 1.0)
        truth = "a" if rng.random() > (1 - c) / 10 else "b"
        wrong = Scored(pred("b" if truth == "a" else "a", c), truth, FeedbackSource.REVIEW)
        right = Scored(pred("a", c), truth, FeedbackSource.REVIEW)
        feed(ctl, wrong, right, wrong)
        if not ctl.fallback:
            break
    assert not ctl.fallback, "never re-certified on post-change evidence"
    # one per family; the frozen copy is dropped when it does not label
    assert ctl.candidates == [fresh] and ctl.classifier is fresh.model
    assert ctl.certificate.certified and ctl.promotions == 1
    assert ctl.audit_rate == pytest.approx(0.25)  # raised after a change
    for _ in range(10):
        feed(ctl, Scored(pred("a", 0.99), "a", FeedbackSource.AUDIT, 4.0))
    assert ctl.audit_rate < 0.25  # back down after boost_audits


def test_after_a_swap_the_renamed_copy_of_the_old_model_labels_again() -> None:
    """Real models: two classes swap names; the frozen copy of the old model learns the
    new names and certifies on post-change evidence in the test that ends the fallback."""
    rng = random.Random(8)
    ctl = controller(evidence_window=1000, min_evidence=200)
    offset = 0

    def absorb(label_of: dict[str, str], source: FeedbackSource) -> None:
        nonlocal offset
        label = "ab"[offset % 2]  # well apart: the confident region is nearly always right
        item = answer(offset, rng.gauss(2.5 if label == "a" else -2.5, 1.0), label, source)
        fb = item.feedback
        swapped = fb.model_copy(update={"label": label_of.get(label, label)})
        ctl.absorb(Admitted(swapped, source, item.weight, None, None), offset)
        offset += 1

    while not ctl.certificate.certified:
        absorb({}, FeedbackSource.REVIEW)
        assert offset < 20_000, "never certified"
    # tested from 100 answers (the others from 200): before the old model has unlearned
    ctl.config = replace(ctl.config, remap_evidence_share=0.5)
    ctl._enter_fallback(DriftEvent(DriftSignal.AUDIT_ERROR, 0, 0.05, 1.0, "a swap"))
    renamed = ctl.candidates[-1]
    assert isinstance(renamed.model, RemappedClassifier) and renamed.name.endswith(" remapped")
    while ctl.fallback:  # reviewers now call a "b" and b "a"
        absorb({"a": "b", "b": "a"}, FeedbackSource.REVIEW)
        assert offset < 40_000, "never recovered"
    assert renamed.model.mapping == {"a": "b", "b": "a"}
    assert renamed.certificate.certified and ctl.view().accepting
    assert ctl.classifier is renamed.model and ctl.candidates[ctl.chosen] is renamed
    probe = Record(id="p", features={"x": 3.0})  # well on a's side: now called b
    prediction = renamed.model.predict_one(probe)
    assert prediction is not None and prediction.label == "b" and prediction.confidence > 0.5


def test_a_test_that_certifies_nothing_keeps_the_certificate_in_force() -> None:
    rng = random.Random(4)
    ctl = trust()
    certify(ctl, 1500, rng)
    tests = ctl.schedule.tests
    for _ in range(3000):  # a 5.5% error everywhere: nothing passes at the later levels
        feed(
            ctl,
            Scored(
                pred("a", rng.uniform(0.5, 1.0)),
                "a" if rng.random() > 0.055 else "b",
                FeedbackSource.REVIEW,
            ),
        )
    assert not ctl.fallback and ctl.schedule.tests > tests
    assert not ctl.candidates[0].certificate.certified  # the last test certified nothing
    assert ctl.certificate.certified  # and the one in force stays


def test_reviewed_errors_jumping_beyond_the_models_confidence_stop_acceptance() -> None:
    rng = random.Random(5)
    ctl = trust()
    certify(ctl, 1500, rng)
    reviews = 0
    while not ctl.fallback:  # confident reviewed predictions suddenly wrong half the time
        reviews += 1
        feed(ctl, Scored(pred("a", 0.9), "b" if rng.random() < 0.5 else "a", FeedbackSource.REVIEW))
        assert reviews < 300
    assert ctl.drift_counts["prequential_error"] == 1 and reviews <= 120


def test_the_best_certified_candidate_labels() -> None:
    rng = random.Random(6)
    ctl = trust(TWO)
    assert [c.name.split("/")[0] for c in ctl.candidates] == ["softmax", "naive_bayes"]
    for _ in range(2000):  # naive Bayes is confident and right far more often
        c = rng.uniform(0.5, 1.0)
        truth = "a"
        weak = Scored(pred("a", 0.55), truth if rng.random() < 0.7 else "b", FeedbackSource.REVIEW)
        strong = Scored(
            pred("a", c), truth if rng.random() > (1 - c) / 10 else "b", FeedbackSource.REVIEW
        )
        feed(ctl, weak, strong)
    assert ctl.chosen == 1 and ctl.promotions == 1
    assert ctl.status().chosen.startswith("naive_bayes")


def test_a_labeler_alarm_is_answered_with_a_new_epoch_and_more_audits() -> None:
    ctl = trust()
    certify(ctl)
    stale = ConfidenceSignal(
        worker="w", epoch=ctl.epoch + 5, model_version=0, chunk_means=[], alarm=True
    )
    assert not ctl.observe_signal(stale, offset=3).drift_events  # not about the state in force
    assert ctl.signals_offset == 4
    alarm = ConfidenceSignal(
        worker="w", epoch=ctl.epoch, model_version=0, chunk_means=[], alarm=True
    )
    epoch = ctl.epoch
    outcome = ctl.observe_signal(alarm, offset=4)
    assert outcome.tightened and ctl.epoch == epoch + 1 and ctl.signals_offset == 5
    assert not ctl.fallback and ctl.audit_rate == pytest.approx(0.25)


def test_falling_confidence_raises_audits_but_does_not_stop_acceptance() -> None:
    ctl = trust()
    certify(ctl)
    rng = random.Random(3)
    high = [min(1.0, rng.gauss(0.95, 0.02)) for _ in range(400)]
    low = [min(1.0, rng.gauss(0.6, 0.05)) for _ in range(400)]
    for start in range(0, 800, 40):
        means = (high + low)[start : start + 40]
        ctl.observe_signal(
            ConfidenceSignal(worker="w", epoch=ctl.epoch, model_version=1, chunk_means=means)
        )
    assert ctl.drift_counts["confidence"] >= 1
    assert not ctl.fallback and ctl.audit_rate == pytest.approx(0.25)


def test_evidence_ages_by_records() -> None:
    ctl = trust(max_age_records=1000)
    certify(ctl, 300)
    assert len(ctl.candidates[0].evidence) == 300
    ctl.observe_signal(
        ConfidenceSignal(worker="w", epoch=ctl.epoch, model_version=1, records=1500, chunk_means=[])
    )
    assert len(ctl.candidates[0].evidence) == 0  # observed at record 0, now 1,500 ago


def test_fixed_mode_keeps_no_trust_state() -> None:
    ctl = controller(mode="fixed", confidence_threshold=0.8)
    signal = ConfidenceSignal(worker="w", epoch=0, model_version=0, chunk_means=[0.1], alarm=True)
    assert not ctl.observe_signal(signal).drift_events and not ctl.fallback
    view = ctl.view()
    assert view.mode == "fixed" and view.fixed_threshold == 0.8


def test_chunk_means_carry_the_remainder_and_skip_non_finite() -> None:
    pending: list[float] = []
    assert chunk_means([0.5] * 5, pending) == [] and len(pending) == 5
    assert chunk_means([1.0, math.nan, 1.0, 1.0], pending) == [pytest.approx(0.6875)]
    assert pending == []


def test_the_controller_pickles_with_everything_it_owns() -> None:
    ctl = controller()
    for i in range(30):
        ctl.absorb(answer(i, float(i % 3), "abc"[i % 3], key=bytes([i]) * 16), i)
    copy = pickle.loads(pickle.dumps(ctl))
    assert copy.feedback_offset == 30 and copy.learned_by_source == ctl.learned_by_source
    assert copy.absorb(answer(3, 0.0, "a", key=bytes([3]) * 16), 30).kind == "duplicate"
    assert copy.view().model_version == ctl.view().model_version


def test_per_test_guarantee_re_tests_at_full_delta_for_more_automation() -> None:
    """The opt-in: every 16 answers at the full delta (valid per test, not per stream)."""
    stream, per_test = trust(), trust(guarantee="per_test")
    rng = random.Random(7)
    evidence = [good(rng) for _ in range(600)]
    for scored in evidence:
        feed(stream, scored)
        feed(per_test, scored)
    assert per_test.schedule.tests > stream.schedule.tests
    assert per_test.schedule.preview() == 0.05
    assert per_test.certificate.certified
    assert per_test.certificate.share >= stream.certificate.share
