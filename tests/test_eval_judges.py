"""GSB judges: metric rules, an LLM asked in both orders, human verdict sheets, and panels."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import ScriptedChatModel
from samples import sample

from codirector.agents.providers.base import ChatMessage, ImagePart, TextPart
from codirector.errors import InputFileError, ProviderNotFoundError, UserError
from codirector.evals.gsb import DIMENSIONS, gsb_table
from codirector.evals.judges import EVIDENCE, Evidence, MetricJudge, Side, default_panel, load_judges, run_panel
from codirector.evals.llm_judge import LLMJudge, PairwiseAnswer, describe_side
from codirector.evals.verdict_sheet import SHEET_COLUMNS, SheetJudge, write_verdict_sheet
from codirector.generator.videoio import write_frames
from codirector.schemas.evals import GSB_DIMENSIONS, EvalRecord
from codirector.schemas.plan import Plan

SHA = "0" * 64


def _record(case_id: str = "greeting", provider: str = "offline", **metrics: float | None) -> EvalRecord:
    return EvalRecord(
        suite="smoke",
        case_id=case_id,
        category="english_speech",
        provider=provider,
        prompts_sha256=SHA,
        job_sha256=SHA,
        status="ok",
        video_path=f"videos/{case_id}.mp4",
        metrics=dict(metrics),
    )


def _side(**metrics: float | None) -> Side:
    return Side(_record(**metrics))


# --- metric judges -----------------------------------------------------------------------------------------------


def test_metric_judge_better_worse_within_margin_and_missing() -> None:
    judge = MetricJudge(0)  # lip_sync reads render.lip_sync_corr (higher is better, margin 0.05)
    base = _side(**{"render.lip_sync_corr": 0.50})
    assert judge.judge("c", base, _side(**{"render.lip_sync_corr": 0.60}))["lip_sync"] == "good"
    assert judge.judge("c", base, _side(**{"render.lip_sync_corr": 0.40}))["lip_sync"] == "bad"
    assert judge.judge("c", base, _side(**{"render.lip_sync_corr": 0.54}))["lip_sync"] == "same"
    assert judge.judge("c", base, _side(**{"render.lip_sync_corr": None}))["lip_sync"] == "same"
    assert judge.judge("c", base, _side())["lip_sync"] == "same"
    assert judge.judge("c", _side(), base)["lip_sync"] == "same"
    assert judge.judge("c", base, _side(**{"render.lip_sync_corr": float("nan")}))["lip_sync"] == "same"


def test_a_judge_without_its_own_evidence_reads_the_next_in_its_row() -> None:
    # lip_sync row: r, |offset|, right mouth. Judge 2 reads right mouth; with none (one voice) it reads r.
    judge = MetricJudge(2)
    base, better = _side(**{"render.lip_sync_corr": 0.5}), _side(**{"render.lip_sync_corr": 0.8})
    assert judge.judge("c", base, better)["lip_sync"] == "good"
    # its own evidence wins when both sides have it, whatever the others say
    own = {"render.right_mouth": 1.0}
    assert (
        judge.judge("c", _side(**own, **{"render.lip_sync_corr": 0.5}), _side(**own, **{"render.lip_sync_corr": 0.8}))[
            "lip_sync"
        ]
        == "same"
    )
    # a plan-only run: motion falls from the seam (render) to camera adherence for judge 0
    assert (
        MetricJudge(0).judge("c", _side(**{"plan.camera_adherence": 1.0}), _side(**{"plan.camera_adherence": 0.0}))[
            "motion"
        ]
        == "bad"
    )


def test_metric_judge_lower_is_better_and_relative_margins() -> None:
    offset = MetricJudge(1)  # lip_sync: render.lip_sync_offset_abs_frames, lower is better, margin 0.5 frames
    base = _side(**{"render.lip_sync_offset_abs_frames": 2.0})
    assert offset.judge("c", base, _side(**{"render.lip_sync_offset_abs_frames": 1.0}))["lip_sync"] == "good"
    assert offset.judge("c", base, _side(**{"render.lip_sync_offset_abs_frames": 3.0}))["lip_sync"] == "bad"
    assert offset.judge("c", base, _side(**{"render.lip_sync_offset_abs_frames": 2.4}))["lip_sync"] == "same"
    flicker = MetricJudge(0)  # visual_quality: render.flicker, lower is better, 10% of the larger value
    base = _side(**{"render.flicker": 1.0})
    assert flicker.judge("c", base, _side(**{"render.flicker": 0.85}))["visual_quality"] == "good"
    assert flicker.judge("c", base, _side(**{"render.flicker": 0.95}))["visual_quality"] == "same"
    assert flicker.judge("c", base, _side(**{"render.flicker": 1.2}))["visual_quality"] == "bad"
    # Small values: an absolute 0.05 would call these equal; relative to their scale they differ.
    assert flicker.judge("c", _side(**{"render.flicker": 0.02}), _side(**{"render.flicker": 0.01}))[
        "visual_quality"
    ] == ("good")
    # The relative rule is symmetric: swapping the sides flips the verdict.
    for b, c in [(1.0, 0.89), (0.89, 1.0), (0.3, 0.0)]:
        forward = Evidence("m", False, 0.1, relative=True).compare(b, c)
        backward = Evidence("m", False, 0.1, relative=True).compare(c, b)
        assert {forward, backward} == {"good", "bad"}
    assert Evidence("m", True, 0.05).compare(0.5, 0.55) == "same"  # exactly the margin is not "more than" it
    assert Evidence("m", True, 0.0).compare(0.0, 0.0) == "same"


def test_metric_judge_overall_is_the_sign_of_wins_minus_losses() -> None:
    judge = MetricJudge(0)
    base = {"render.lip_sync_corr": 0.5, "render.flicker": 1.0, "render.seam_jump": 1.0}
    two_up_one_down = {"render.lip_sync_corr": 0.7, "render.flicker": 0.5, "render.seam_jump": 2.0}
    verdicts = judge.judge("c", _side(**base), _side(**two_up_one_down))
    assert set(verdicts) == set(DIMENSIONS)
    assert [verdicts[d] for d in ("lip_sync", "visual_quality", "motion", "expressiveness")] == [
        "good",
        "good",
        "bad",
        "same",
    ]
    assert verdicts["overall"] == "good"
    one_each = {**two_up_one_down, "render.flicker": 1.0}
    assert judge.judge("c", _side(**base), _side(**one_each))["overall"] == "same"
    assert judge.judge("c", _side(**two_up_one_down), _side(**base))["overall"] == "bad"


def test_default_panel_is_three_judges_reading_different_evidence() -> None:
    panel = default_panel()
    assert [judge.name for judge in panel] == ["metrics:0", "metrics:1", "metrics:2"]
    for dimension in GSB_DIMENSIONS:
        assert len({judge.evidence[dimension][0].metric for judge in panel}) == 3  # type: ignore[attr-defined]
    assert set(EVIDENCE) == set(GSB_DIMENSIONS)
    with pytest.raises(ValueError, match="column"):
        MetricJudge(3)
    with pytest.raises(ValueError, match="cover"):
        MetricJudge(0, {"lip_sync": EVIDENCE["lip_sync"]})


def test_run_panel_gives_one_vote_per_case_and_dimension() -> None:
    better = {"render.lip_sync_corr": 0.9, "render.lip_sync_offset_abs_frames": 0.0, "render.right_mouth": 1.0}
    worse = {"render.lip_sync_corr": 0.2, "render.lip_sync_offset_abs_frames": 3.0, "render.right_mouth": 0.5}
    pairs = [
        ("up", Side(_record("up", **worse)), Side(_record("up", **better))),
        ("down", Side(_record("down", **better)), Side(_record("down", **worse))),
    ]
    votes = run_panel(default_panel(), pairs)
    assert len(votes) == 2 * len(DIMENSIONS)
    assert [(v.case_id, v.dimension) for v in votes[: len(DIMENSIONS)]] == [("up", d) for d in DIMENSIONS]
    by_key = {(v.case_id, v.dimension): v for v in votes}
    assert by_key["up", "lip_sync"].verdicts == ("good", "good", "good")
    assert by_key["up", "lip_sync"].judges == ("metrics:0", "metrics:1", "metrics:2")
    assert by_key["down", "overall"].majority == "bad"
    assert by_key["up", "motion"].majority == "same"
    table = gsb_table(votes, num_resamples=100)
    assert (table["lip_sync"].good, table["lip_sync"].bad, table["lip_sync"].ratio) == (1, 1, 1.0)
    with pytest.raises(ValueError, match="more than once"):
        run_panel(default_panel(), [*pairs, pairs[0]])
    with pytest.raises(UserError, match="split evenly"):
        run_panel(default_panel()[:2], pairs)


class _Partial:
    name = "partial"

    def judge(self, case_id: str, baseline: Side, candidate: Side) -> dict[str, str]:
        return {"lip_sync": "good", "overall": "better"}


def test_run_panel_refuses_a_judge_that_skips_dimensions() -> None:
    with pytest.raises(ValueError, match=r"partial.*missing.*visual_quality.*better"):
        run_panel([_Partial()], [("c", _side(), _side())])  # type: ignore[list-item]


# --- the LLM judge -----------------------------------------------------------------------------------------------


def _user_text(messages: Sequence[ChatMessage]) -> str:
    return next(m for m in messages if m.role == "user").text()


def _shown(messages: Sequence[ChatMessage]) -> tuple[str, str]:
    """The FIRST and SECOND parts of the question."""
    text = _user_text(messages)
    first, second = text.split("SECOND:")
    return first.split("FIRST:")[1], second


def _answer(**preferences: str) -> str:
    answer = dict.fromkeys(DIMENSIONS, "same") | preferences
    return json.dumps({**answer, "rationale": "because"})


# The candidate is told apart by its metrics: flicker 0.1 against the baseline's 0.5.
BASELINE = _side(**{"render.flicker": 0.5})
CANDIDATE = _side(**{"render.flicker": 0.1})
CANDIDATE_MARK = "render.flicker = 0.1 "


def test_a_model_that_always_prefers_the_first_side_has_no_say() -> None:
    model = ScriptedChatModel(lambda messages, schema: _answer(**dict.fromkeys(DIMENSIONS, "first")))
    judge = LLMJudge(model)
    verdicts = judge.judge("greeting", BASELINE, CANDIDATE)
    assert verdicts == dict.fromkeys(DIMENSIONS, "same")
    forward, backward = judge.last_exchanges
    assert (forward.order, backward.order) == ("baseline_first", "candidate_first")
    assert set(forward.verdicts.values()) == {"bad"}  # "first" was the baseline
    assert set(backward.verdicts.values()) == {"good"}  # "first" was the candidate
    assert judge.exchanges["greeting"] == (forward, backward)
    assert forward.to_dict()["answer"]["lip_sync"] == "first"
    assert len(model.conversations) == 2


def test_a_model_that_prefers_the_candidate_in_both_orders_says_good() -> None:
    def prefers_candidate(messages: Sequence[ChatMessage], schema: dict[str, Any] | None) -> str:
        first, _ = _shown(messages)
        return _answer(**dict.fromkeys(DIMENSIONS, "first" if CANDIDATE_MARK in first else "second"))

    model = ScriptedChatModel(prefers_candidate)
    verdicts = LLMJudge(model, seed=3).judge("greeting", BASELINE, CANDIDATE)
    assert verdicts == dict.fromkeys(DIMENSIONS, "good")
    # The second question really had the sides swapped.
    first_q, second_q = (_shown(conversation) for conversation in model.conversations)
    assert CANDIDATE_MARK not in first_q[0]
    assert CANDIDATE_MARK in first_q[1]
    assert CANDIDATE_MARK in second_q[0]
    assert CANDIDATE_MARK not in second_q[1]
    assert "render.flicker = 0.5 (lower is better)" in first_q[0]


def test_only_preferences_that_survive_the_swap_count() -> None:
    def mixed(messages: Sequence[ChatMessage], schema: dict[str, Any] | None) -> str:
        first, _ = _shown(messages)
        candidate, baseline = ("first", "second") if CANDIDATE_MARK in first else ("second", "first")
        # lip_sync: candidate both times; motion: baseline both times; expressiveness: always first (bias);
        # overall: candidate once, "same" once; the rest same.
        overall = candidate if CANDIDATE_MARK in first else "same"
        return _answer(lip_sync=candidate, motion=baseline, expressiveness="first", overall=overall)

    verdicts = LLMJudge(ScriptedChatModel(mixed)).judge("greeting", BASELINE, CANDIDATE)
    assert verdicts == {
        "lip_sync": "good",
        "visual_quality": "same",
        "motion": "bad",
        "expressiveness": "same",
        "text_relevance": "same",
        "overall": "same",
    }


def test_invalid_answers_go_through_the_repair_loop() -> None:
    model = ScriptedChatModel(["not json at all", _answer(lip_sync="second"), _answer(lip_sync="first")])
    judge = LLMJudge(model)
    assert judge.judge("greeting", BASELINE, CANDIDATE)["lip_sync"] == "good"
    assert len(model.conversations) == 3
    repair = model.conversations[1]
    assert repair[-2].role == "assistant"
    assert repair[-2].text() == "not json at all"
    assert "did not validate" in repair[-1].text()
    assert len(judge.accounting.repairs) == 1
    assert [call.ok for call in judge.accounting.calls] == [False, True, True]
    assert {ref.id for ref in judge.accounting.prompt_refs} == {"eval_judge/pairwise", "repair"}


def test_the_judge_reads_the_plans_blind_to_who_made_them() -> None:
    plan = Plan.model_validate(sample("plan"))
    baseline = Side(_record(provider="openai:secret-model", **{"render.flicker": 0.5}), plan=plan)
    model = ScriptedChatModel(lambda messages, schema: _answer())
    judge = LLMJudge(model, seed=2)
    assert judge.name == "llm:fake:scripted#2"
    judge.judge("greeting", baseline, CANDIDATE)
    system = model.conversations[0][0].text()
    first, second = _shown(model.conversations[0])
    assert json.dumps(PairwiseAnswer.model_json_schema()["properties"]["lip_sync"]["enum"]) in system
    assert "lip_sync: the mouth moves" in system
    assert "Shot 1, 0.00-1.50 s: speakers host; medium_close_up; camera pan left, slow" in first
    assert "emotion happy (2/3); actions: nods" in first
    assert "prompt: Ada smiles and greets the guest." in first
    assert "User's text: She smiles; slow push-in at the end." in first
    assert "words: Hello there" in first
    assert "negative prompt: sad face, frantic motion" in first
    assert "Plan: none." in second
    assert "secret-model" not in _user_text(model.conversations[0])
    assert "Frame: none attached." in first


def test_pairwise_answer_covers_every_dimension() -> None:
    assert set(PairwiseAnswer.model_fields) == {*DIMENSIONS, "rationale"}


def _video(path: Path, colour: tuple[int, int, int]) -> Path:
    frame = np.zeros((32, 32, 3), dtype=np.uint8) + np.array(colour, dtype=np.uint8)
    write_frames(path, [frame] * 5, width=32, height=32, fps=5, codec="mjpeg")
    return path


def test_a_model_that_sees_gets_both_middle_frames_in_the_order_shown(tmp_path: Path) -> None:
    baseline = Side(BASELINE.record, video=_video(tmp_path / "red.mkv", (220, 20, 20)))
    candidate = Side(CANDIDATE.record, video=_video(tmp_path / "blue.mkv", (20, 20, 220)))
    seen: list[list[str]] = []

    def look(messages: Sequence[ChatMessage], schema: dict[str, Any] | None) -> str:
        content = messages[1].content
        assert isinstance(content, tuple)
        assert isinstance(content[0], TextPart)
        colours = []
        for part in content[1:]:
            assert isinstance(part, ImagePart)
            with part.path.open("rb"):
                from PIL import Image

                pixel = np.asarray(Image.open(part.path).convert("RGB")).mean(axis=(0, 1))
            colours.append("red" if pixel[0] > pixel[2] else "blue")
        seen.append(colours)
        return _answer()

    model = ScriptedChatModel(look, sees_images=True)
    LLMJudge(model).judge("greeting", baseline, candidate)
    assert seen == [["red", "blue"], ["blue", "red"]]
    first, second = _shown(model.conversations[0])
    assert "Frame: image 1" in first
    assert "Frame: image 2" in second
    blind = ScriptedChatModel(lambda messages, schema: _answer())  # a model that does not see gets text only
    LLMJudge(blind).judge("greeting", baseline, candidate)
    assert all(isinstance(part, TextPart) for part in blind.conversations[0][1].content)


def test_describe_side_marks_directions_and_missing_values() -> None:
    text = describe_side(_side(**{"render.lip_sync_corr": 0.61234, "plan.text_relevance": None, "x.custom": 2.0}))
    assert "- render.lip_sync_corr = 0.6123 (higher is better)" in text
    assert "- plan.text_relevance = n/a (higher is better)" in text
    assert "- x.custom = 2\n" in text


# --- human verdict sheets ------------------------------------------------------------------------------------------


def _pairs() -> list[tuple[str, Side, Side]]:
    return [
        ("greeting", Side(_record("greeting")), Side(_record("greeting"), video=Path("/runs/b/greeting.mp4"))),
        ("farewell", Side(_record("farewell")), Side(_record("farewell"))),
    ]


def _fill(path: Path, fill: dict[str, Any]) -> None:
    """Fill annotator columns: a column name -> a verdict for every row, or a function of the row."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    for row in rows:
        for column, value in fill.items():
            row[column] = value(row) if callable(value) else value
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows(rows)


def test_sheet_round_trip(tmp_path: Path) -> None:
    sheet = write_verdict_sheet(_pairs(), tmp_path / "sheets" / "gsb.csv")
    with sheet.open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [*SHEET_COLUMNS, "a1", "a2", "a3"]
    assert len(rows) == 1 + 2 * len(DIMENSIONS)
    assert rows[1] == ["greeting", "lip_sync", "videos/greeting.mp4", "/runs/b/greeting.mp4", "", "", ""]
    assert [row[1] for row in rows[1:7]] == list(DIMENSIONS)
    _fill(
        sheet,
        {
            "a1": "good",
            "a2": lambda row: "bad" if row["case_id"] == "farewell" else " Good ",
            "a3": lambda row: "s" if row["dimension"] == "motion" else "B",
        },
    )
    judges = load_judges([f"sheet:{sheet}"])
    assert [judge.name for judge in judges] == ["sheet:gsb.csv#a1", "sheet:gsb.csv#a2", "sheet:gsb.csv#a3"]
    votes = {(v.case_id, v.dimension): v for v in run_panel(judges, _pairs())}
    assert votes["greeting", "lip_sync"].verdicts == ("good", "good", "bad")
    assert votes["greeting", "lip_sync"].majority == "good"
    assert votes["farewell", "motion"].verdicts == ("good", "bad", "same")
    assert votes["farewell", "motion"].majority is None
    assert votes["farewell", "overall"].majority == "bad"


def test_sheet_cells_must_be_filled_with_verdicts(tmp_path: Path) -> None:
    sheet = write_verdict_sheet(_pairs(), tmp_path / "gsb.csv", annotators=("ann", "bob", "cy"))
    _fill(sheet, {"ann": "good", "bob": lambda row: "" if row["dimension"] == "visual_quality" else "same"})
    assert SheetJudge(sheet, "ann").judge("farewell", _pairs()[1][1], _pairs()[1][2])["motion"] == "good"
    with pytest.raises(UserError, match=r"gsb\.csv: line 3, column 'bob' is empty") as caught:
        SheetJudge(sheet, "bob")
    assert "good, same, bad" in caught.value.fix
    _fill(sheet, {"bob": "better"})
    with pytest.raises(UserError, match="line 2, column 'bob' holds 'better'"):
        SheetJudge(sheet, "bob")
    _fill(sheet, {"bob": "same"})
    with pytest.raises(UserError, match="line 2, column 'cy' is empty"):
        load_judges([f"sheet:{sheet}"])
    with pytest.raises(UserError, match="no annotator column 'dan'"):
        SheetJudge(sheet, "dan")
    with pytest.raises(UserError, match="no row for case 'other'"):
        SheetJudge(sheet, "ann").judge("other", _side(), _side())
    with pytest.raises(InputFileError, match="no such verdict sheet"):
        SheetJudge(tmp_path / "missing.csv", "a1")
    (tmp_path / "bad.csv").write_text("case,verdict\nx,good\n")
    with pytest.raises(InputFileError, match="starts with the columns"):
        load_judges([f"sheet:{tmp_path / 'bad.csv'}"])
    with pytest.raises(ValueError, match="distinct"):
        write_verdict_sheet(_pairs(), tmp_path / "x.csv", annotators=("a1", "a1"))


# --- panels from specs ---------------------------------------------------------------------------------------------


def test_load_judges_specs() -> None:
    assert [judge.name for judge in load_judges(["metrics"])] == ["metrics:0", "metrics:1", "metrics:2"]
    mixed = load_judges(
        ["metrics:0", "llm:openai:gpt-4o-mini#7", "metrics:2"], base_url="http://127.0.0.1:9/v1", api_key="x"
    )
    assert [judge.name for judge in mixed] == ["metrics:0", "llm:openai:gpt-4o-mini#7", "metrics:2"]
    assert isinstance(mixed[1], LLMJudge)
    assert mixed[1].seed == 7
    assert load_judges(["llm:openai:gpt-4o-mini"], api_key="x")[0].name == "llm:openai:gpt-4o-mini#0"


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["llm:offline"], "needs a model"),
        (["llm:"], "no model given"),
        (["llm:openai:gpt-4o-mini#x"], "seed 'x'"),
        (["metrics:3"], "no metric judge '3'"),
        (["metrics:one"], "no metric judge 'one'"),
        (["judges"], "not a judge spec"),
        (["sheet:"], "not a judge spec"),
        ([], "the panel is empty"),
        (["metrics:0", "metrics:1"], "2 judges can split evenly"),
        (["metrics", "metrics:0", "metrics:1"], "metrics:0, metrics:1 appear more than once"),
        (["metrics:0", "metrics:0", "metrics:1"], "metrics:0 appears more than once"),
    ],
)
def test_load_judges_refuses_bad_specs(specs: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_judges(specs, api_key="x")


def test_load_judges_names_an_unknown_provider() -> None:
    with pytest.raises(ProviderNotFoundError, match="unknown provider 'nope'"):
        load_judges(["llm:nope:model"])
