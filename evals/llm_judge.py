"""The LLM judge for GSB comparisons: a chat model as one of the panel's judges (`codirector.evals.judges`).

The model reads both sides of a case (plans and metrics, and a frame from each video when it sees images) and is
asked twice, with the sides swapped; a preference that does not survive the swap is position bias and counts as
"same". It is blind to which setup made which side, as the papers' annotators are.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from codirector.agents.providers.base import ChatModel, ImagePart
from codirector.agents.structured import Asked, ask
from codirector.evals.gsb import DIMENSIONS, Verdict
from codirector.evals.judges import EVIDENCE, Side
from codirector.evals.metric_info import METRICS
from codirector.schemas.base import Contract

__all__ = ["DIMENSION_GUIDE", "Exchange", "LLMJudge", "PairwiseAnswer", "describe_side"]

logger = logging.getLogger(__name__)

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
