"""Supervision's pure parts: which calls are recorded, the config's refusals,
retention on real files, the survey's result and the report's scores on a real
SQLite archive."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from ari_app.config.supervision import RecordingSettings, SupervisionSettings, SurveySettings
from ari_app.records.archive import Archive
from ari_app.records.events import late_fact, problem, record_to_events
from ari_app.records.model import CallRecord
from ari_app.reports.survey import survey_scores
from ari_app.supervision.recording import chosen
from ari_app.supervision.retention import purge
from ari_app.supervision.survey import result_of


def test_the_share_is_deterministic_by_call_id_and_about_right() -> None:
    ids = [f"{i:020x}" for i in range(4000)]
    assert all(chosen(c, 100) for c in ids) and not any(chosen(c, 0) for c in ids)
    picked = [c for c in ids if chosen(c, 25)]
    assert 800 < len(picked) < 1200  # a quarter, give or take
    assert picked == [c for c in ids if chosen(c, 25)]  # the same calls every time


def test_per_entity_share_overrides_the_default() -> None:
    rs = RecordingSettings(share=10, entities={"phcc": 100})
    assert rs.share_for("phcc") == 100 and rs.share_for("mof") == 10
    assert rs.share_for(None) == 10


@pytest.mark.parametrize(("bad", "where"), [
    ({"recording": {"share": 101}}, "share"),
    ({"recording": {"subdir": "../etc"}}, "subdir"),
    ({"recording": {"subdir": "/abs"}}, "subdir"),
    ({"recording": {"retention_days": 0}}, "retention_days"),
    ({"survey": {"questions": 3}}, "questions"),
    ({"survey": {"answer_timeout": 0}}, "answer_timeout"),
])
def test_bad_settings_are_refused_naming_the_key(bad: dict, where: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError, match=where):
        SupervisionSettings.model_validate(bad)


def test_unknown_entities_are_named() -> None:
    s = SupervisionSettings(recording=RecordingSettings(entities={"nope": 50}),
                            survey=SurveySettings(entities=["phcc", "gone"]))
    assert s.problems({"phcc"}) == [
        "supervision.recording.entities: unknown entity 'nope'",
        "supervision.survey.entities: unknown entity 'gone'"]


def test_retention_deletes_only_files_past_the_limit(tmp_path: Path) -> None:
    d = tmp_path / "hotline"
    d.mkdir()
    old, new, stray = d / f"{'a' * 20}.wav", d / f"{'b' * 20}.wav", d / "notes.wav"
    for p in (old, new, stray):
        p.write_bytes(b"RIFF")
    then = time.time() - 3 * 86_400
    os.utime(old, (then, then))
    os.utime(stray, (then, then))
    (d / "keep.txt").write_text("not a recording")
    os.utime(d / "keep.txt", (then, then))
    done = purge(RecordingSettings(directory=tmp_path, subdir="hotline", retention_days=2))
    assert [c for c, _ in done] == ["a" * 20]  # a stray name is deleted, but has no call
    assert not old.exists() and not stray.exists() and new.exists()
    assert (d / "keep.txt").exists()


def test_survey_result() -> None:
    assert result_of([4], 1) == "answered"
    assert result_of([4, None], 2) == "partial"
    assert result_of([None], 1) == "no_answer"
    assert result_of([], 2) == "no_answer"


def _call(call_id: str, entity: str, agent: str, lang: str) -> CallRecord:
    return CallRecord(call_id=call_id, arrived_at="2026-03-05T10:00:00.000Z",
                      ended_at="2026-03-05T10:05:00.000Z", entity=entity, agent=agent,
                      language=lang, outcome="answered")


def test_survey_and_retention_facts_fold_into_the_archive_and_report(tmp_path: Path) -> None:
    with Archive(tmp_path / "a.sqlite3") as a:
        for c, e, ag, lang in (("c1", "phcc", "a014", "en"), ("c2", "phcc", "a014", "ar"),
                               ("c3", "mof", "a002", "en"), ("c4", "mof", "a002", "en")):
            a.add_events(record_to_events(_call(c, e, ag, lang)))
        facts = [late_fact("c1", "survey", "survey", {"survey_q1": 4, "survey_q2": 5,
                                                      "survey_result": "answered"}),
                 late_fact("c2", "survey", "survey", {"survey_q1": 2, "survey_q2": None,
                                                      "survey_result": "partial"}),
                 late_fact("c3", "survey", "survey", {"survey_q1": None, "survey_q2": None,
                                                      "survey_result": "no_answer"}),
                 late_fact("c4", "recording_deleted", "retention",
                           {"recording_deleted_at": "2026-06-05T00:00:00.000Z"})]
        assert all(problem(f) is None for f in facts)
        a.add_events(facts)
        scores = survey_scores(a.db, "2026-03-01T00:00:00.000Z", "2026-04-01T00:00:00.000Z")
        deleted = a.db.execute("SELECT recording_deleted_at FROM calls WHERE call_id = 'c4'"
                               ).fetchone()
    assert deleted == ("2026-06-05T00:00:00.000Z",)
    by = {dim: {s.key: s for s in rows} for dim, rows in scores.items()}
    assert by["entity"]["phcc"].surveyed == 2 and by["entity"]["phcc"].q1_average == 3.0
    assert by["entity"]["phcc"].q2_average == 5.0
    # c4 was never surveyed: it does not count
    assert by["entity"]["mof"].surveyed == 1 and by["entity"]["mof"].answered == 0
    assert by["language"]["en"].q1_average == 4.0 and by["agent"]["a002"].q1_average is None


def test_a_late_fact_may_not_set_the_recording_itself() -> None:
    with pytest.raises(ValueError, match="recording"):
        late_fact("c1", "x", "survey", {"recording": "hotline/c1.wav"})
