"""Co-reasoning rules: conflicts between modalities, priority resolution, filled details, the stop rule."""

from __future__ import annotations

from samples import audio_report, visual_report

from codirector.agents.coreasoning import detect_conflicts, fill_details, prevailing, resolve_conflicts, stop_reason
from codirector.agents.findings import findings_from_audio, findings_from_text, findings_from_visual, place_cue
from codirector.schemas import AudioReport, CoReasoningRecord, Finding, Instruction, TextReport, VisualReport
from codirector.schemas.vocab import Modality


def _audio(**changes) -> AudioReport:
    data = audio_report()
    data.update(changes)
    return AudioReport.model_validate(data)


def _text(*instructions: dict) -> TextReport:
    return TextReport(prompt="x", instructions=[Instruction(source_text="x", **i) for i in instructions])


def _round0(audio: AudioReport, text: TextReport, visual: VisualReport | None = None):
    visual = visual or VisualReport.model_validate(visual_report())
    return [*findings_from_audio([audio]), *findings_from_visual(visual), *findings_from_text(text)]


def test_angry_voice_against_a_calm_script_conflicts_and_text_wins() -> None:
    audio = _audio(emotion={"label": "angry", "intensity": 3, "confidence": 0.7})
    findings = _round0(audio, _text({"aspect": "emotion", "value": "calm"}))
    conflicts = detect_conflicts(findings, [], 1)
    assert [c.aspect for c in conflicts] == ["emotion"]
    assert set(conflicts[0].modalities) == {Modality.AUDIO, Modality.TEXT}
    resolutions = resolve_conflicts(conflicts, findings, 2)
    assert resolutions[0].decided_by is Modality.TEXT
    staged = prevailing(findings, conflicts, resolutions)
    emotions = {f.value for f in staged if f.aspect == "emotion"}
    assert "calm" in emotions
    assert "angry" not in emotions
    # the same conflict is not reported twice
    assert detect_conflicts(findings, conflicts, 2) == []


def test_compatible_emotions_do_not_conflict() -> None:
    audio = _audio(emotion={"label": "neutral", "intensity": 1, "confidence": 0.7})
    findings = _round0(audio, _text({"aspect": "emotion", "value": "happy"}))
    assert detect_conflicts(findings, [], 1) == []


def test_song_against_stand_still_and_close_up_against_walking() -> None:
    audio = _audio(delivery="singing")
    visual = visual_report()
    visual["characters"][0]["framing"] = "close_up"
    text = _text({"aspect": "action", "value": "stands still"}, {"aspect": "action", "value": "walks across the frame"})
    conflicts = detect_conflicts(_round0(audio, text, VisualReport.model_validate(visual)), [], 1)
    described = {(c.aspect, tuple(sorted(m.value for m in c.modalities))) for c in conflicts}
    assert ("action", ("audio", "text")) in described
    assert ("action", ("text", "visual")) in described


def test_style_conflict_is_settled_for_the_text() -> None:
    findings = _round0(_audio(), _text({"aspect": "style", "value": "anime"}))
    conflicts = detect_conflicts(findings, [], 1)
    assert [c.aspect for c in conflicts] == ["style"]
    assert resolve_conflicts(conflicts, findings, 1)[0].decided_by is Modality.TEXT


def test_word_cues_are_placed_on_the_transcript() -> None:
    cue = Instruction(aspect="emotion", value="happy", timing="word", cue_word="friends", source_text="x")
    placed = place_cue(cue, [_audio()], 4.0)
    assert (placed.start_s, placed.end_s) == (2.0, 2.5)
    missing = place_cue(cue.model_copy(update={"cue_word": "zebra"}), [_audio()], 4.0)
    assert missing.start_s == 2.0
    assert "never spoken" in missing.detail


def test_details_are_filled_from_the_words_and_the_delivery() -> None:
    visual = VisualReport.model_validate(visual_report())
    filled = fill_details([], [_audio()], visual, 1)
    assert any(f.value == "waves a hand" and f.start_s == 0.2 for f in filled)  # "Hello there"
    singing = fill_details([], [_audio(delivery="singing")], visual, 1)
    assert any(f.value == "sways to the rhythm" for f in singing)
    still = findings_from_text(_text({"aspect": "action", "value": "stands still"}))
    assert not any(
        f.value == "sways to the rhythm" for f in fill_details(still, [_audio(delivery="singing")], visual, 1)
    )


def test_stop_rule_is_a_pure_function_of_the_record() -> None:
    audio = _audio(emotion={"label": "angry", "intensity": 3, "confidence": 0.7})
    findings = _round0(audio, _text({"aspect": "emotion", "value": "calm"}))
    conflicts = detect_conflicts(findings, [], 1)
    open_record = CoReasoningRecord(num_rounds=1, max_rounds=3, findings=findings, conflicts=conflicts)
    assert stop_reason(open_record) is None
    assert stop_reason(open_record.model_copy(update={"num_rounds": 3})) == "max_rounds"
    settled = open_record.model_copy(update={"resolutions": resolve_conflicts(conflicts, findings, 1)})
    assert stop_reason(settled) == "no_open_conflicts"
    assert stop_reason(CoReasoningRecord(num_rounds=0, max_rounds=3)) is None


def test_free_text_values_from_a_model_never_break_conflict_detection() -> None:
    loud = Finding(id="audio-r0-9", round=0, expert=Modality.AUDIO, aspect="intensity", value="3", statement="x")
    odd = [
        Finding(id=f"text-r1-{n}", round=1, expert=Modality.TEXT, aspect=aspect, value=value, statement="model")
        for n, (aspect, value) in enumerate([("intensity", "positive"), ("emotion", "thrilled"), ("delivery", "?")])
    ]
    assert detect_conflicts([loud, *odd], [], 1) == []  # values outside the vocabularies compare as nothing
    assert len(detect_conflicts([loud, odd[0].model_copy(update={"value": "1"})], [], 1)) == 1
