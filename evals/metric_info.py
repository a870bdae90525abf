"""What each metric means for a comparison: which way is better, and how small a change is noise.

`codirector eval compare` calls a case worse on a metric when it moved the wrong way by more than the metric's
tolerance (absolute, or relative to the baseline for unbounded metrics such as flicker). Metrics not listed
are reported but never called better or worse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["METRICS", "MetricInfo", "change"]


@dataclass(frozen=True)
class MetricInfo:
    """A metric's direction (`higher` or `lower` is better, or `none` for counts that only inform), tolerance,
    and a short label for reports."""

    label: str
    better: Literal["higher", "lower", "none"]
    tolerance: float = 0.0
    relative: bool = False


METRICS: dict[str, MetricInfo] = {
    # plans (evals/plan_metrics.py)
    "plan.schema_valid": MetricInfo("schema valid", "higher", 0.0),
    "plan.repairs": MetricInfo("repairs", "lower", 0.5),
    "plan.model_calls": MetricInfo("model calls", "none"),
    "plan.model_retries": MetricInfo("model retries", "lower", 0.5),
    "plan.latency_s": MetricInfo("planning time (s)", "lower", 0.25, relative=True),
    "plan.num_shots": MetricInfo("shots", "none"),
    "plan.coverage": MetricInfo("timeline coverage", "higher", 0.001),
    "plan.gaps_s": MetricInfo("gaps (s)", "lower", 0.04),
    "plan.overlaps_s": MetricInfo("overlaps (s)", "lower", 0.04),
    "plan.word_boundary_cuts": MetricInfo("cuts between words", "higher", 0.01),
    "plan.emotion_adherence": MetricInfo("emotion adherence", "higher", 0.02),
    "plan.camera_adherence": MetricInfo("camera adherence", "higher", 0.02),
    "plan.action_adherence": MetricInfo("action adherence", "higher", 0.02),
    "plan.speaker_expectations": MetricInfo("speaker expectations", "higher", 0.02),
    "plan.instruction_adherence": MetricInfo("instruction adherence", "higher", 0.02),
    "plan.speaker_binding": MetricInfo("speaker binding", "higher", 0.02),
    "plan.conflict_resolution": MetricInfo("conflicts as expected", "higher", 0.01),
    "plan.conflicts_found": MetricInfo("conflicts found", "none"),
    "plan.open_conflicts": MetricInfo("open conflicts", "lower", 0.5),
    "plan.rounds": MetricInfo("co-reasoning rounds", "none"),
    "plan.negative_opposition": MetricInfo("negatives oppose their shot", "higher", 0.02),
    "plan.negative_violations": MetricInfo("negatives against their shot", "lower", 0.5),
    "plan.audio_analysis": MetricInfo("delivery and language right", "higher", 0.01),
    "plan.shot_count_ok": MetricInfo("shot count in range", "higher", 0.0),
    "plan.text_relevance": MetricInfo("text relevance", "higher", 0.01),
    # renders (evals/render_metrics.py)
    "render.lip_sync_corr": MetricInfo("lip sync r", "higher", 0.03),
    "render.lip_sync_offset_frames": MetricInfo("lip sync offset (frames)", "none"),
    "render.lip_sync_offset_abs_frames": MetricInfo("lip sync |offset| (frames)", "lower", 0.5),
    "render.sync_offset_frames": MetricInfo("SyncNet offset (frames)", "none"),
    "render.sync_offset_abs_frames": MetricInfo("SyncNet |offset| (frames)", "lower", 0.5),
    "render.sync_distance": MetricInfo("SyncNet distance (LSE-D)", "lower", 0.05, relative=True),
    "render.sync_confidence": MetricInfo("SyncNet confidence (LSE-C)", "higher", 0.1, relative=True),
    "render.identity_similarity": MetricInfo("identity similarity", "higher", 0.01),
    "render.identity_drift_per_min": MetricInfo("identity drift /min", "lower", 0.01),
    "render.color_drift_de": MetricInfo("colour drift (ΔE)", "lower", 1.0),
    "render.color_drift_per_min": MetricInfo("colour drift ΔE/min", "lower", 0.5),
    "render.seam_jump": MetricInfo("worst seam jump", "lower", 0.1, relative=True),
    "render.seam_jump_mean": MetricInfo("mean seam jump", "lower", 0.1, relative=True),
    "render.flicker": MetricInfo("flicker", "lower", 0.1, relative=True),
    "render.right_mouth": MetricInfo("right mouth moves", "higher", 0.01),
    "render.right_mouth_margin": MetricInfo("right-mouth margin", "higher", 0.05),
    "render.num_frames_measured": MetricInfo("frames measured", "none"),
    "render.duration_s": MetricInfo("video length (s)", "none"),
    "render.seconds": MetricInfo("render time (s)", "lower", 0.25, relative=True),
}


def change(metric: str, baseline: float | None, candidate: float | None) -> Literal["better", "worse", "same"] | None:
    """Whether `candidate` is better, worse or the same as `baseline` on `metric`; None when either is missing
    or the metric has no direction."""
    info = METRICS.get(metric)
    if info is None or info.better == "none" or baseline is None or candidate is None:
        return None
    margin = info.tolerance * abs(baseline) if info.relative else info.tolerance
    delta = candidate - baseline
    if abs(delta) <= margin:
        return "same"
    return "better" if (delta > 0) == (info.better == "higher") else "worse"
