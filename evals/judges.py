"""Judges for GSB comparisons: metric rules offline, a language model through any provider, or people.

A judge looks at one case's two results, the baseline (A) and the candidate (B), and gives a verdict per GSB
dimension and overall, from the candidate's point of view (`codirector.evals.gsb`). A panel of judges, three as
the papers' annotators (Kling-Avatar sec. 3.2 / KlingAvatar 2.0 sec. 4: GSB with a majority vote of three), votes
on every case; `run_panel` turns their verdicts into `Vote`s for `gsb_table`.

* `MetricJudge`: offline and deterministic. Each dimension has three pieces of evidence (`EVIDENCE`), one per
  judge, so the default panel of three is three independent readings of the metrics rather than one reading
  counted three times.
* `LLMJudge`: a chat model reads both sides (plans and metrics, a frame when it sees images) and is asked
  twice, with the sides swapped; a preference that does not survive the swap is position bias and counts as
  "same".
* `SheetJudge`: one annotator's column of a CSV sheet that `write_verdict_sheet` made for people to fill in.
"""

from __future__ import annotations

import csv
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, cast, runtime_checkable

from pydantic import Field

from codirector.agents.providers.base import ChatModel, ImagePart, OfflineProvider
from codirector.agents.providers.registry import resolve_provider
from codirector.agents.structured import Asked, ask
from codirector.errors import InputFileError, UserError
from codirector.evals.gsb import DIMENSIONS, VERDICTS, Verdict, Vote
from codirector.evals.metric_info import METRICS
from codirector.schemas.base import Contract
from codirector.schemas.evals import GSB_DIMENSIONS, EvalRecord
from codirector.schemas.plan import Plan

__all__ = [
    "DIMENSION_GUIDE",
    "EVIDENCE",
    "SHEET_COLUMNS",
    "Evidence",
    "Exchange",
    "Judge",
    "LLMJudge",
    "MetricJudge",
    "PairwiseAnswer",
    "SheetJudge",
    "Side",
    "check_panel",
    "default_panel",
    "describe_side",
    "load_judges",
    "run_panel",
    "sheet_annotators",
    "write_verdict_sheet",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a case's record from one run, with its plan and video when there are some.

    Attributes:
        record: the case's result line.
        plan: the plan the record points to, loaded.
        video: the rendered MP4, resolved against the run folder.
    """

    record: EvalRecord
    plan: Plan | None = None
    video: Path | None = None


@runtime_checkable
class Judge(Protocol):
    """Anything that rates a candidate against a baseline.

    Attributes:
        name: unique within a panel; recorded with every vote.
    """

    name: str

    def judge(self, case_id: str, baseline: Side, candidate: Side) -> dict[str, Verdict]:
        """A verdict for every GSB dimension and "overall", from the candidate's point of view."""
        ...


# ---------------------------------------------------------------------------------------------------------------
# Offline: metric rules


_ROUNDING = 1e-9
"""Added to every margin, so that float rounding cannot turn a change of exactly the margin into a verdict."""


@dataclass(frozen=True)
class Evidence:
    """One metric as evidence for a dimension, and how large a difference counts.

    Attributes:
        metric: the `EvalRecord.metrics` key.
        higher_is_better: the metric's direction.
        margin: a difference of at most this is "same"; absolute, or a fraction when `relative`.
        relative: the margin is a fraction of the larger magnitude of the two values (for metrics without a
            natural scale, such as flicker), so the rule is symmetric: swapping the sides flips the verdict.
    """

    metric: str
    higher_is_better: bool
    margin: float
    relative: bool = False

    def compare(self, baseline: float | None, candidate: float | None) -> Verdict:
        """The candidate's verdict on this metric; "same" when either value is missing (nothing to compare).

        Example:
            >>> Evidence("render.flicker", higher_is_better=False, margin=0.1, relative=True).compare(2.0, 1.5)
            'good'
        """
        if baseline is None or candidate is None or math.isnan(baseline) or math.isnan(candidate):
            return "same"
        gain = candidate - baseline if self.higher_is_better else baseline - candidate
        threshold = self.margin * max(abs(baseline), abs(candidate)) if self.relative else self.margin
        threshold += _ROUNDING  # 0.55 - 0.5 is 0.05000000000000004, yet a change of exactly the margin is "same"
        if gain > threshold:
            return "good"
        if gain < -threshold:
            return "bad"
        return "same"


EVIDENCE: dict[str, tuple[Evidence, ...]] = {
    "lip_sync": (
        Evidence("render.lip_sync_corr", True, 0.05),
        Evidence("render.lip_sync_offset_abs_frames", False, 0.5),  # half a frame: below what can be seen
        Evidence("render.right_mouth", True, 0.01),
    ),
    "visual_quality": (
        Evidence("render.flicker", False, 0.10, relative=True),
        Evidence("render.identity_similarity", True, 0.01),
        Evidence("render.color_drift_de", False, 1.0),  # CIEDE2000 of about 1: a just-noticeable difference
    ),
    "motion": (
        Evidence("render.seam_jump", False, 0.10, relative=True),
        Evidence("plan.camera_adherence", True, 0.05),
        Evidence("plan.action_adherence", True, 0.05),
    ),
    "expressiveness": (
        Evidence("plan.emotion_adherence", True, 0.05),
        Evidence("plan.negative_opposition", True, 0.05),
        Evidence("plan.conflict_resolution", True, 0.05),
    ),
    "text_relevance": (
        Evidence("plan.text_relevance", True, 0.02),
        Evidence("plan.instruction_adherence", True, 0.05),
        Evidence("plan.speaker_binding", True, 0.05),
    ),
}
"""Dimension -> evidence, one per metric judge (column k is `MetricJudge(k)`). Add a column to every row for a
fourth judge, or a row for a new dimension; each row needs as many columns as the panel has metric judges."""


def _overall(verdicts: Sequence[Verdict]) -> Verdict:
    """The sign of (#good - #bad): the side that wins more dimensions wins overall."""
    score = sum(v == "good" for v in verdicts) - sum(v == "bad" for v in verdicts)
    return "good" if score > 0 else "bad" if score < 0 else "same"


class MetricJudge:
    """An offline judge that reads column `column` of the evidence table: one metric per dimension.

    Args:
        column: which piece of evidence per dimension this judge uses.
        evidence: the table; `EVIDENCE` by default. It must cover every GSB dimension.

    Raises:
        ValueError: the table misses a GSB dimension, names "overall", or has no column `column`.

    Example:
        >>> from codirector.schemas.evals import EvalRecord
        >>> def side(corr: float) -> Side:
        ...     return Side(EvalRecord(suite="s", case_id="c", category="other", provider="offline",
        ...         prompts_sha256="0" * 64, job_sha256="0" * 64, status="ok",
        ...         metrics={"render.lip_sync_corr": corr}))
        >>> verdicts = MetricJudge(0).judge("c", side(0.5), side(0.7))
        >>> verdicts["lip_sync"], verdicts["motion"], verdicts["overall"]
        ('good', 'same', 'good')
    """

    def __init__(self, column: int, evidence: Mapping[str, Sequence[Evidence]] = EVIDENCE) -> None:
        missing = [d for d in GSB_DIMENSIONS if d not in evidence]
        if missing or "overall" in evidence:
            raise ValueError(f"the evidence table must cover {list(GSB_DIMENSIONS)} and not 'overall'")
        width = min(len(row) for row in evidence.values())
        if not 0 <= column < width:
            raise ValueError(f"column must be in 0..{width - 1}, got {column}")
        self.column = column
        self.evidence: dict[str, Evidence] = {dimension: row[column] for dimension, row in evidence.items()}
        self.name = f"metrics:{column}"

    def judge(self, case_id: str, baseline: Side, candidate: Side) -> dict[str, Verdict]:
        """Compare the two records' metrics, dimension by dimension; "overall" is who wins more dimensions."""
        verdicts: dict[str, Verdict] = {
            dimension: item.compare(baseline.record.metrics.get(item.metric), candidate.record.metrics.get(item.metric))
            for dimension, item in self.evidence.items()
        }
        verdicts["overall"] = _overall(list(verdicts.values()))
        return verdicts

    def __repr__(self) -> str:
        return f"MetricJudge({self.column})"


def default_panel() -> list[Judge]:
    """The offline panel: one `MetricJudge` per evidence column, three with `EVIDENCE`.

    Example:
        >>> [judge.name for judge in default_panel()]
        ['metrics:0', 'metrics:1', 'metrics:2']
    """
    width = min(len(row) for row in EVIDENCE.values())
    return [MetricJudge(column) for column in range(width)]


# ---------------------------------------------------------------------------------------------------------------
# A language model, both orders

Preference = Literal["first", "second", "same"]

DIMENSION_GUIDE: dict[str, str] = {
    "lip_sync": "the mouth moves with the speech or singing, in time, and it is the speaking character's mouth",
    "visual_quality": "a sharp, steady picture without flicker; the face stays the reference's; colours hold",
    "motion": "natural body and camera motion, as planned, without jumps where clips meet",
    "expressiveness": "face and gesture carry the emotion of the voice and text, with nothing the negatives forbid",
    "text_relevance": "follows the user's text: the asked actions, camera and emotions, the right speaker on time",
    "overall": "the result you would rather deliver",
}
"""What each dimension means, for the model (and for people filling in a sheet)."""


class PairwiseAnswer(Contract):
    """What the LLM judge answers: which side is better per dimension, in the order the sides were shown."""

    lip_sync: Preference = Field(description=DIMENSION_GUIDE["lip_sync"])
    visual_quality: Preference = Field(description=DIMENSION_GUIDE["visual_quality"])
    motion: Preference = Field(description=DIMENSION_GUIDE["motion"])
    expressiveness: Preference = Field(description=DIMENSION_GUIDE["expressiveness"])
    text_relevance: Preference = Field(description=DIMENSION_GUIDE["text_relevance"])
    overall: Preference = Field(description=DIMENSION_GUIDE["overall"])
    rationale: str = Field("", max_length=400)


Order = Literal["baseline_first", "candidate_first"]


@dataclass(frozen=True)
class Exchange:
    """One of the two questions put to the LLM judge about a case, with its answer.

    Attributes:
        order: which side was shown first.
        answer: the model's validated answer, in its own terms (first/second/same).
        verdicts: the answer from the candidate's point of view (good/same/bad), per dimension.
    """

    order: Order
    answer: PairwiseAnswer
    verdicts: dict[str, Verdict]

    def to_dict(self) -> dict[str, object]:
        return {"order": self.order, "answer": self.answer.model_dump(), "verdicts": dict(self.verdicts)}


def _as_verdict(preference: Preference, order: Order) -> Verdict:
    if preference == "same":
        return "same"
    candidate_shown = "second" if order == "baseline_first" else "first"
    return "good" if preference == candidate_shown else "bad"


def _directions() -> dict[str, bool]:
    """Metric -> higher is better, for the judge's metrics table: the report's directions (`METRICS`), and the
    evidence table's for any metric that only it names."""
    directions = {item.metric: item.higher_is_better for row in EVIDENCE.values() for item in row}
    directions |= {name: info.better == "higher" for name, info in METRICS.items() if info.better != "none"}
    return directions


def describe_side(side: Side, image: int | None = None) -> str:
    """A side as the LLM judge reads it: status, the plan's shots, the metrics, and whether a frame is attached.

    The provider, backend and prompt versions are left out on purpose: the judge is blind to which setup made
    which side, as the papers' annotators are.

    Args:
        side: the side to describe.
        image: the number of its attached frame among the message's images, if one is attached.

    Example:
        >>> from codirector.schemas.evals import EvalRecord
        >>> record = EvalRecord(suite="s", case_id="c", category="other", provider="offline",
        ...     prompts_sha256="0" * 64, job_sha256="0" * 64, status="ok", metrics={"render.flicker": 0.25})
        >>> print(describe_side(Side(record)))
        Status: ok
        Plan: none.
        Metrics:
        - render.flicker = 0.25 (lower is better)
        Frame: none attached.
    """
    record = side.record
    lines = [f"Status: {record.status}" + (f" ({record.error})" if record.error else "")]
    if side.plan is None:
        lines.append("Plan: none.")
    else:
        story = side.plan.storyline
        lines.append(f"Plan: {len(story.shots)} shots over {story.duration_s:.2f} s.")
        if side.plan.text_report.prompt:  # what text relevance is judged against
            lines.append(f"User's text: {side.plan.text_report.prompt}")
        lines.append(f"Global prompt: {story.global_prompt}")
        if story.global_negative_prompt:
            lines.append(f"Global negative prompt: {story.global_negative_prompt}")
        for index, shot in enumerate(story.shots, start=1):
            camera = shot.camera
            move = " ".join(
                part for part in (camera.movement.value, camera.direction and camera.direction.value) if part
            )
            lines.append(
                f"Shot {index}, {shot.start_s:.2f}-{shot.end_s:.2f} s: speakers {', '.join(shot.speakers) or 'none'}; "
                f"{shot.shot_size.value}; camera {move}, {camera.speed.value}; "
                f"emotion {shot.emotion.label.value} ({shot.emotion.intensity}/3); "
                f"actions: {'; '.join(shot.actions) or 'none'}"
            )
            if shot.transcript:
                lines.append(f"  words: {shot.transcript}")
            lines.append(f"  prompt: {shot.prompt}")
            if shot.negative_prompt:
                lines.append(f"  negative prompt: {shot.negative_prompt}")
    directions = _directions()
    lines.append("Metrics:" if record.metrics else "Metrics: none.")
    for name in sorted(record.metrics):
        value = record.metrics[name]
        shown = "n/a" if value is None else f"{value:.4g}"
        direction = directions.get(name)
        lines.append(
            f"- {name} = {shown}"
            + ("" if direction is None else " (higher is better)" if direction else " (lower is better)")
        )
    lines.append(f"Frame: image {image}, from the middle of the video." if image else "Frame: none attached.")
    return "\n".join(lines)


def _middle_frame(video: Path, folder: Path, stem: str) -> Path | None:
    """The video's middle frame as a PNG in `folder`, or None (logged) when it cannot be read: the judge then
    reads the side's text alone, which its description says."""
    from av.error import FFmpegError
    from PIL import Image

    from codirector.generator.videoio import probe_video, read_frames

    try:
        info = probe_video(video)
        frame = next(read_frames(video, [info.num_frames // 2]), None) if info.num_frames else None
    except (OSError, FFmpegError) as error:
        logger.warning("LLM judge: no frame from %s (%s)", video, error)
        return None
    if frame is None:
        logger.warning("LLM judge: %s has no frames", video)
        return None
    path = folder / f"{stem}.png"
    Image.fromarray(frame).save(path)
    return path


class LLMJudge:
    """A chat model as a judge, asked twice per case with the sides in both orders.

    Models favour a position (often the first shown). Asking with the baseline first and then with the candidate
    first cancels that: a preference counts only when both orders name the same side; otherwise the dimension
    is "same". Both answers of every case are kept in `exchanges` (and the last case's in `last_exchanges`).

    Args:
        model: any `ChatModel` (`resolve_provider("openai:gpt-4o-mini")`, a local model...).
        seed: passed to the model; part of the judge's name, so two seeds make two judges.
        prompts_dir: a folder that overrides the packaged prompt `eval_judge/pairwise`.
        frames: attach each side's middle frame when the model sees images and the side has a video.

    Example:
        >>> import json
        >>> from codirector.agents.providers.base import ChatResponse
        >>> class AlwaysFirst:  # a model that only ever prefers what it sees first
        ...     name, sees_images, hears_audio = "fake:first", False, False
        ...     def complete(self, messages, **options):
        ...         answer = dict.fromkeys(DIMENSIONS, "first")
        ...         return ChatResponse(text=json.dumps(answer), model=self.name)
        >>> judge = LLMJudge(AlwaysFirst())
        >>> judge.name
        'llm:fake:first#0'
        >>> from codirector.schemas.evals import EvalRecord
        >>> record = EvalRecord(suite="s", case_id="c", category="other", provider="offline",
        ...     prompts_sha256="0" * 64, job_sha256="0" * 64, status="ok")
        >>> judge.judge("c", Side(record), Side(record))["overall"]  # "first" both times: no preference
        'same'
    """

    def __init__(
        self, model: ChatModel, seed: int = 0, prompts_dir: Path | None = None, *, frames: bool = True
    ) -> None:
        self.model = model
        self.seed = seed
        self.prompts_dir = prompts_dir
        self.frames = frames
        self.name = f"llm:{model.name}#{seed}"
        self.accounting = Asked()
        self.exchanges: dict[str, tuple[Exchange, Exchange]] = {}
        self.last_exchanges: tuple[Exchange, ...] = ()

    def judge(self, case_id: str, baseline: Side, candidate: Side) -> dict[str, Verdict]:
        """Ask with the baseline first, then with the candidate first; keep what both orders agree on.

        Raises:
            AgentOutputError: the model gave no valid answer within `ask`'s repair loop.
            ProviderError: the model could not be reached.
        """
        with tempfile.TemporaryDirectory(prefix="codirector-judge-") as folder:
            images: dict[str, ImagePart] = {}
            if self.frames and self.model.sees_images:
                for key, side in (("baseline", baseline), ("candidate", candidate)):
                    frame = _middle_frame(side.video, Path(folder), key) if side.video is not None else None
                    if frame is not None:
                        images[key] = ImagePart(frame)
            forward = self._ask(case_id, (baseline, images.get("baseline")), (candidate, images.get("candidate")))
            backward = self._ask(case_id, (candidate, images.get("candidate")), (baseline, images.get("baseline")))
        exchanges = (
            self._exchange(forward, "baseline_first"),
            self._exchange(backward, "candidate_first"),
        )
        verdicts: dict[str, Verdict] = {}
        for dimension in DIMENSIONS:
            first, second = (exchange.verdicts[dimension] for exchange in exchanges)
            verdicts[dimension] = first if first == second else "same"
        flipped = [d for d in DIMENSIONS if exchanges[0].verdicts[d] != exchanges[1].verdicts[d]]
        if flipped:
            logger.info("%s on %s: the order changed %s; counted as same", self.name, case_id, ", ".join(flipped))
        self.exchanges[case_id] = exchanges
        self.last_exchanges = exchanges
        return verdicts

    def _ask(
        self, case_id: str, first: tuple[Side, ImagePart | None], second: tuple[Side, ImagePart | None]
    ) -> PairwiseAnswer:
        attachments = [image for _, image in (first, second) if image is not None]
        numbers = iter(range(1, len(attachments) + 1))
        texts = [describe_side(side, next(numbers) if image is not None else None) for side, image in (first, second)]
        return ask(
            self.model,
            "eval_judge/pairwise",
            PairwiseAnswer,
            expert="eval_judge",
            purpose=f"pairwise {case_id}",
            inputs={
                "case_id": case_id,
                "dimensions": "\n".join(f"- {d}: {DIMENSION_GUIDE[d]}" for d in DIMENSIONS),
                "first": texts[0],
                "second": texts[1],
            },
            attachments=attachments,
            prompts_dir=self.prompts_dir,
            seed=self.seed,
            accounting=self.accounting,
        )

    @staticmethod
    def _exchange(answer: PairwiseAnswer, order: Order) -> Exchange:
        verdicts = {dimension: _as_verdict(getattr(answer, dimension), order) for dimension in DIMENSIONS}
        return Exchange(order=order, answer=answer, verdicts=verdicts)

    def __repr__(self) -> str:
        return f"LLMJudge({self.name!r})"


# ---------------------------------------------------------------------------------------------------------------
# People: a verdict sheet

SHEET_COLUMNS: tuple[str, ...] = ("case_id", "dimension", "baseline_video", "candidate_video")
"""The sheet's fixed columns; every column after them is one annotator's."""

_CELL: dict[str, Verdict] = {"good": "good", "g": "good", "same": "same", "s": "same", "bad": "bad", "b": "bad"}
"""What a sheet cell may hold (case and surrounding spaces aside): the verdict, or its first letter."""


def _video_cell(side: Side) -> str:
    if side.video is not None:
        return str(side.video)
    return side.record.video_path or ""


def write_verdict_sheet(
    pairs: Sequence[tuple[str, Side, Side]], path: Path, annotators: Sequence[str] = ("a1", "a2", "a3")
) -> Path:
    """Write a CSV for people to fill in: one row per case and dimension, one empty column per annotator.

    Each annotator watches the two videos and writes good, same or bad (or g, s, b) from the candidate's point
    of view: good when the candidate video is better in that row's dimension.

    Args:
        pairs: (case_id, baseline, candidate) per case.
        path: the CSV to write (its folder is created).
        annotators: the annotators' column names.

    Raises:
        ValueError: no annotators, a duplicate name, or a name that clashes with the fixed columns.

    Example:
        >>> import tempfile
        >>> from codirector.schemas.evals import EvalRecord
        >>> record = EvalRecord(suite="s", case_id="c", category="other", provider="offline",
        ...     prompts_sha256="0" * 64, job_sha256="0" * 64, status="ok", video_path="c/output.mp4")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     sheet = write_verdict_sheet([("c", Side(record), Side(record))], Path(folder) / "gsb.csv")
        ...     sheet.read_text().splitlines()[:2]
        ['case_id,dimension,baseline_video,candidate_video,a1,a2,a3', 'c,lip_sync,c/output.mp4,c/output.mp4,,,']
    """
    names = [name.strip() for name in annotators]
    if not names or len(set(names)) != len(names) or not all(names) or set(names) & set(SHEET_COLUMNS):
        raise ValueError(f"annotators must be distinct, non-empty names other than {SHEET_COLUMNS}, got {names}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*SHEET_COLUMNS, *names])
        for case_id, baseline, candidate in pairs:
            for dimension in DIMENSIONS:
                writer.writerow([case_id, dimension, _video_cell(baseline), _video_cell(candidate), *[""] * len(names)])
    return path


def _read_sheet(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The sheet's header and rows; utf-8-sig so that a sheet saved by a spreadsheet (with a BOM) reads too."""
    if not path.is_file():
        raise InputFileError(path, "no such verdict sheet", "Write one with write_verdict_sheet and fill it in.")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        reader.fieldnames = header
        rows = list(reader)
    if header[: len(SHEET_COLUMNS)] != list(SHEET_COLUMNS):
        raise InputFileError(
            path,
            f"a verdict sheet starts with the columns {', '.join(SHEET_COLUMNS)}; this one has {header}",
            "Start from a sheet written by write_verdict_sheet.",
        )
    return header, rows


def sheet_annotators(path: Path) -> list[str]:
    """The annotator columns of a verdict sheet (every column after `SHEET_COLUMNS`).

    Raises:
        InputFileError: the file is missing, is not a verdict sheet, or has no annotator column.
    """
    header, _ = _read_sheet(path)
    names = [name for name in header[len(SHEET_COLUMNS) :] if name]
    if not names:
        raise InputFileError(path, "the verdict sheet has no annotator column", "Add one column per annotator.")
    return names


class SheetJudge:
    """One annotator's column of a filled-in verdict sheet, as a judge.

    The whole column is read and checked when the judge is made, so a gap in the sheet stops a comparison before
    it starts, with the line to fix.

    Args:
        path: the CSV from `write_verdict_sheet`, filled in.
        annotator: the column to read.

    Raises:
        InputFileError: the file is missing or is not a verdict sheet.
        UserError: no such column; an empty or invalid cell (names the file, line and column); a case and
            dimension given twice.
    """

    def __init__(self, path: Path, annotator: str) -> None:
        self.path = Path(path)
        self.annotator = annotator
        self.name = f"sheet:{self.path.name}#{annotator}"
        header, rows = _read_sheet(self.path)
        if annotator not in header[len(SHEET_COLUMNS) :]:
            raise UserError(
                self.path,
                f"no annotator column {annotator!r} (columns: {', '.join(header)})",
                "Name an annotator column of the sheet.",
            )
        self.verdicts: dict[tuple[str, str], Verdict] = {}
        for line, row in enumerate(rows, start=2):  # line 1 is the header
            where = f"line {line}, column {annotator!r}"
            cell = (row.get(annotator) or "").strip().lower()
            if cell not in _CELL:
                problem = "is empty" if not cell else f"holds {cell!r}"
                raise UserError(self.path, f"{where} {problem}", f"Write one of {', '.join(VERDICTS)} there.")
            key = ((row.get("case_id") or "").strip(), (row.get("dimension") or "").strip())
            if key in self.verdicts:
                raise UserError(self.path, f"line {line}: case {key[0]!r}, {key[1]!r} appears twice", "Keep one row.")
            self.verdicts[key] = _CELL[cell]

    def judge(self, case_id: str, baseline: Side, candidate: Side) -> dict[str, Verdict]:
        """The annotator's verdicts on `case_id`, for every dimension.

        Raises:
            UserError: the sheet has no row for the case in some dimension.
        """
        missing = [d for d in DIMENSIONS if (case_id, d) not in self.verdicts]
        if missing:
            raise UserError(
                self.path,
                f"no row for case {case_id!r} in {', '.join(missing)}",
                "Write the sheet for the runs being compared (write_verdict_sheet) and fill it in.",
            )
        return {dimension: self.verdicts[(case_id, dimension)] for dimension in DIMENSIONS}

    def __repr__(self) -> str:
        return f"SheetJudge({str(self.path)!r}, {self.annotator!r})"


# ---------------------------------------------------------------------------------------------------------------
# Panels

_SPEC_FORMS = "metrics, metrics:K (K = 0..2), llm:PROVIDER:MODEL[#SEED], sheet:PATH"


def check_panel(judges: Sequence[Judge]) -> None:
    """Refuse a panel that cannot give a majority vote as the papers do.

    The papers take the majority of three annotators. Any odd number of judges works the same way; an even
    number can split evenly between two verdicts (good against bad), so it is refused rather than reported as a
    string of splits.

    Raises:
        UserError: no judges, an even number of them, or two judges with one name.
    """
    names = [judge.name for judge in judges]
    if not names:
        raise UserError("judges", "the panel is empty", f"Name three judges, e.g. 'metrics' ({_SPEC_FORMS}).")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UserError(
            f"judges {', '.join(names)}",
            f"{', '.join(twice)} {'appear' if len(twice) > 1 else 'appears'} more than once",
            "Name each judge once (an LLM judge with another seed: llm:PROVIDER:MODEL#SEED).",
        )
    if len(names) % 2 == 0:
        raise UserError(
            f"judges {', '.join(names)}",
            f"a panel of {len(names)} judges can split evenly, leaving no majority",
            "Use an odd number of judges: three, as the papers' three annotators.",
        )


def load_judges(specs: Sequence[str], **provider_options: object) -> list[Judge]:
    """Build a panel from judge specs.

    Specs:
        ``metrics``: the three offline metric judges (`default_panel`).
        ``metrics:K``: metric judge K alone (0, 1 or 2).
        ``llm:PROVIDER_REF[#SEED]``: a chat model as a judge, e.g. ``llm:openai:gpt-4o-mini#1``; the
        reference goes to `resolve_provider` with `provider_options`.
        ``sheet:PATH``: a filled-in verdict sheet, one judge per annotator column.

    Raises:
        UserError: an unknown spec, ``llm:offline`` (an LLM judge needs a model), a bad seed or column, an
            unknown provider (`ProviderNotFoundError`), a bad sheet, or a panel `check_panel` refuses.

    Example:
        >>> [judge.name for judge in load_judges(["metrics:0", "metrics:2", "metrics:1"])]
        ['metrics:0', 'metrics:2', 'metrics:1']
    """
    judges: list[Judge] = []
    for spec in specs:
        kind, _, rest = spec.strip().partition(":")
        rest = rest.strip()
        if kind == "metrics":
            judges += _metric_judges(spec, rest)
        elif kind == "llm":
            judges.append(_llm_judge(spec, rest, provider_options))
        elif kind == "sheet" and rest:
            path = Path(rest)
            judges += [SheetJudge(path, annotator) for annotator in sheet_annotators(path)]
        else:
            raise UserError(spec, "not a judge spec", f"Write one of: {_SPEC_FORMS}.")
    check_panel(judges)
    return judges


def _metric_judges(spec: str, column: str) -> list[Judge]:
    if not column:
        return default_panel()
    width = min(len(row) for row in EVIDENCE.values())
    if not (column.isdigit() and int(column) < width):
        raise UserError(spec, f"no metric judge {column!r}", f"Write metrics:K with K in 0..{width - 1}, or metrics.")
    return [MetricJudge(int(column))]


def _llm_judge(spec: str, rest: str, provider_options: Mapping[str, object]) -> Judge:
    ref, sep, seed_text = rest.rpartition("#")
    if not sep:
        ref, seed_text = rest, "0"
    if not seed_text.isdigit():
        raise UserError(spec, f"the seed {seed_text!r} is not a whole number", "Write llm:PROVIDER:MODEL#SEED.")
    if not ref:
        raise UserError(spec, "no model given", "Write llm:PROVIDER:MODEL, e.g. llm:openai:gpt-4o-mini.")
    provider = resolve_provider(ref, **provider_options)
    if isinstance(provider, OfflineProvider):
        raise UserError(
            spec,
            "an LLM judge needs a model, and the offline provider has none",
            "Name a chat model, e.g. llm:openai:gpt-4o-mini, or use the offline metric judges: metrics.",
        )
    return LLMJudge(provider, seed=int(seed_text))


def _checked(judge: Judge, case_id: str, verdicts: Mapping[str, str]) -> dict[str, Verdict]:
    """A judge's answer, checked: every dimension present and every verdict good/same/bad."""
    missing = [d for d in DIMENSIONS if d not in verdicts]
    invalid = {d: v for d, v in verdicts.items() if v not in VERDICTS}
    if missing or invalid:
        raise ValueError(f"judge {judge.name!r} on {case_id!r}: missing {missing}, invalid {invalid}")
    return {dimension: cast(Verdict, verdict) for dimension, verdict in verdicts.items()}


def run_panel(judges: Sequence[Judge], pairs: Sequence[tuple[str, Side, Side]]) -> list[Vote]:
    """Let every judge rate every pair; one `Vote` per case and dimension, verdicts in judge order.

    Dimensions are `DIMENSIONS`, then any extra dimension every judge rated (from an extended `EVIDENCE`).

    Args:
        judges: the panel (`check_panel` must accept it).
        pairs: (case_id, baseline, candidate) per case; each case once.

    Raises:
        UserError: the panel is refused (see `check_panel`), or a judge's own input error.
        ValueError: a case appears twice, or a judge answered without some dimension or with an invalid verdict.

    Example:
        >>> from codirector.schemas.evals import EvalRecord
        >>> record = EvalRecord(suite="s", case_id="c", category="other", provider="offline",
        ...     prompts_sha256="0" * 64, job_sha256="0" * 64, status="ok")
        >>> votes = run_panel(default_panel(), [("c", Side(record), Side(record))])
        >>> len(votes), votes[0].dimension, votes[0].majority
        (6, 'lip_sync', 'same')
    """
    check_panel(judges)
    names = tuple(judge.name for judge in judges)
    seen: set[str] = set()
    votes: list[Vote] = []
    for case_id, baseline, candidate in pairs:
        if case_id in seen:
            raise ValueError(f"case {case_id!r} appears more than once in the pairs")
        seen.add(case_id)
        answers = [_checked(judge, case_id, judge.judge(case_id, baseline, candidate)) for judge in judges]
        extra = [d for d in answers[0] if d not in DIMENSIONS and all(d in answer for answer in answers)]
        for dimension in (*DIMENSIONS, *extra):
            votes.append(Vote(case_id, dimension, tuple(answer[dimension] for answer in answers), names))
        logger.debug("judged %s: %s", case_id, {d: [a[d] for a in answers] for d in DIMENSIONS})
    return votes
