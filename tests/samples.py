"""Valid sample documents of every kind, as plain data, for round-trip and rule tests.

They are small but complete: every nested model appears at least once, so a round trip exercises all fields.
"""

from __future__ import annotations

import copy
from typing import Any

SHA = "0" * 63 + "1"


def job() -> dict[str, Any]:
    return {
        "schema_version": "1",
        "kind": "job",
        "prompt": "Two hosts chat; the guest gets excited at the end. Slow push-in.",
        "language": "en",
        "scene_image": "/media/scene.jpg",
        "characters": [
            {
                "id": "host",
                "name": "Ada",
                "scene_box_xyxy_norm": [0.0, 0.1, 0.5, 1.0],
                "audio": "/media/host.wav",
            },
            {"id": "guest", "reference_image": "/media/guest.jpg", "audio": "/media/guest.wav"},
            {"id": "cat", "reference_image": "/media/cat.jpg", "description": "listens"},
        ],
        "output": {"resolution": "480p", "aspect": "16:9", "fps": 25, "seed": 7},
        "director": {"max_rounds": 2, "provider": "offline", "providers": {"visual": "openai:gpt-4o-mini"}},
        "render": {
            "backend": "preview",
            "executor": "process",
            "num_workers": 2,
            "backend_options": {"a": [1]},
        },
    }


def _emotion() -> dict[str, Any]:
    return {"label": "happy", "intensity": 2, "confidence": 0.8}


def audio_report() -> dict[str, Any]:
    return {
        "kind": "audio_report",
        "character_id": "host",
        "audio_path": "/media/host.wav",
        "duration_s": 4.0,
        "sample_rate_hz": 16000,
        "language": "en",
        "language_probability": 0.98,
        "delivery": "speech",
        "delivery_confidence": 0.9,
        "words": [
            {"text": "Hello", "start_s": 0.2, "end_s": 0.6, "probability": 0.99},
            {"text": "there", "start_s": 0.65, "end_s": 1.0},
            {"text": "friends", "start_s": 2.0, "end_s": 2.5},
        ],
        "utterances": [
            {"text": "Hello there", "start_s": 0.2, "end_s": 1.0, "first_word": 0, "last_word": 1},
            {
                "text": "friends",
                "start_s": 2.0,
                "end_s": 2.5,
                "first_word": 2,
                "last_word": 2,
                "emotion": _emotion(),
            },
        ],
        "emotion": _emotion(),
        "prosody": {
            "pitch_median_hz": 180.0,
            "pitch_range_semitones": 7.5,
            "energy_mean_dbfs": -20.0,
            "energy_range_db": 12.0,
            "speech_rate_wps": 2.5,
            "voiced_ratio": 0.6,
            "tempo_bpm": None,
            "pauses": [{"start_s": 1.0, "end_s": 2.0}],
        },
        "speaking_intent": "greet",
        "intent_summary": "Greets the audience.",
    }


def visual_report() -> dict[str, Any]:
    return {
        "kind": "visual_report",
        "characters": [
            {
                "character_id": "host",
                "source_image": "/media/scene.jpg",
                "bbox_xyxy_norm": [0.0, 0.1, 0.5, 1.0],
                "face_bbox_xyxy_norm": [0.2, 0.15, 0.35, 0.4],
                "framing": "medium",
                "subject": "human",
                "appearance": "short dark hair, orange flight suit",
            }
        ],
        "scene": "a studio with a blue backdrop",
        "lighting": {
            "key_direction": "front",
            "brightness": 0.5,
            "contrast": 0.4,
            "warmth": 0.1,
            "description": "soft",
        },
        "style": "photo",
    }


def co_reasoning() -> dict[str, Any]:
    return {
        "kind": "co_reasoning",
        "num_rounds": 1,
        "max_rounds": 3,
        "findings": [
            {
                "id": "a1",
                "round": 0,
                "expert": "audio",
                "aspect": "emotion",
                "value": "angry",
                "statement": "Loud, high pitch from 1.0 s.",
                "start_s": 1.0,
                "end_s": 3.0,
                "confidence": 0.7,
            },
            {
                "id": "t1",
                "round": 0,
                "expert": "text",
                "aspect": "emotion",
                "value": "calm",
                "statement": "The user asks for a calm delivery.",
                "character_id": "host",
            },
        ],
        "conflicts": [
            {
                "id": "c1",
                "round": 1,
                "aspect": "emotion",
                "modalities": ["audio", "text"],
                "finding_ids": ["a1", "t1"],
                "description": "Angry voice against a calm script.",
            }
        ],
        "resolutions": [
            {
                "conflict_id": "c1",
                "round": 1,
                "decided_by": "text",
                "decision": "calm, intensity 2",
                "rationale": "The user's words take priority (Kling-Avatar sec. 2.1).",
            }
        ],
        "stop_reason": "no_open_conflicts",
    }


def _shot(start_s: float, end_s: float, speakers: list[str], **extra: Any) -> dict[str, Any]:
    shot = {
        "start_s": start_s,
        "end_s": end_s,
        "speakers": speakers,
        "transcript": "Hello there",
        "shot_size": "medium_close_up",
        "camera": {"angle": "eye_level", "movement": "pan", "direction": "left", "speed": "slow"},
        "emotion": {"label": "happy", "intensity": 2},
        "actions": ["nods"],
        "gaze": {"target": "character", "character_id": "guest"},
        "background": "studio",
        "lighting": "soft key light",
        "prompt": "Ada smiles and greets the guest.",
        "negative_prompt": "sad face, frantic motion",
        "rationale": "Greeting.",
    }
    shot.update(extra)
    return shot


def storyline() -> dict[str, Any]:
    return {
        "kind": "storyline",
        "duration_s": 4.0,
        "fps": 25,
        "characters": [
            {"id": "host", "name": "Ada", "audio": "/media/host.wav", "appearance": "flight suit"},
            {"id": "guest", "name": "Bo", "audio": "/media/guest.wav"},
            {"id": "cat", "name": "Cat"},
        ],
        "style": {"visual_style": "photo", "scene": "studio", "lighting": "soft", "mood": "warm"},
        "global_prompt": "Two people talk in a studio.",
        "global_negative_prompt": "blurry",
        "shots": [
            _shot(0.0, 1.5, ["host"]),
            _shot(1.5, 2.5, [], camera={"movement": "static"}, gaze={"target": "camera"}),
            _shot(2.5, 4.0, ["host", "guest"], camera={"movement": "push_in", "speed": "medium"}),
        ],
        "reasoning": co_reasoning(),
        "prompt_refs": [{"id": "text_expert/storyline", "version": "1", "sha256": SHA}],
    }


def _diffusion(seed: int) -> dict[str, Any]:
    return {
        "num_inference_steps": 4,
        "guidance_scale": 5.0,
        "audio_guidance_scale": 3.0,
        "negative_frame_guidance_scale": 1.5,
        "seed": seed,
    }


def _segment(start_s: float, end_s: float, shot_index: int, speakers: list[str]) -> dict[str, Any]:
    return {
        "start_s": start_s,
        "end_s": end_s,
        "shot_index": shot_index,
        "speakers": speakers,
        "prompt": "Ada smiles.",
        "negative_prompt": "sad",
        "shot_size": "close_up",
        "camera": {"movement": "arc", "direction": "right"},
        "emotion": {"label": "calm", "intensity": 1},
    }


def render_plan() -> dict[str, Any]:
    return {
        "kind": "render_plan",
        "duration_s": 4.0,
        "fps": 25,
        "output": {"width": 854, "height": 480},
        "scene_image": "/media/scene.jpg",
        "characters": [
            {
                "id": "host",
                "name": "Ada",
                "scene_box_xyxy_norm": [0.0, 0.1, 0.5, 1.0],
                "audio": "/media/host.wav",
            },
            {"id": "guest", "name": "Bo", "reference_image": "/media/guest.jpg", "audio": "/media/guest.wav"},
            {"id": "cat", "name": "Cat", "reference_image": "/media/cat.jpg"},
        ],
        "global_prompt": "Two people talk in a studio.",
        "global_negative_prompt": "blurry",
        "anchors_s": [0.0, 1.5, 2.5, 4.0],
        "segments": [
            _segment(0.0, 1.5, 0, ["host"]),
            _segment(1.5, 2.5, 1, []),
            _segment(2.5, 4.0, 2, ["guest"]),
        ],
        "stages": {
            "low_res": {"width": 432, "height": 240},
            "high_res": {"width": 854, "height": 480},
            "blueprint_fps": 12,
            "blueprint": _diffusion(1),
            "keyframes": _diffusion(2),
            "subclips": _diffusion(3),
            "transitions": _diffusion(4),
            "super_resolution": _diffusion(5),
        },
        "storyline_sha256": SHA,
        "prompt_refs": [{"id": "text_expert/segments", "version": "2", "sha256": SHA}],
    }


def render_manifest() -> dict[str, Any]:
    artifact = {
        "path": "stages/blueprint/video.mp4",
        "sha256": SHA,
        "size_bytes": 1024,
        "media_type": "video/mp4",
    }
    return {
        "kind": "render_manifest",
        "codirector_version": "0.1.0",
        "run_id": "run-1",
        "created_at": "2026-11-22T10:00:00Z",
        "backend": "preview",
        "executor": "local",
        "plan_sha256": SHA,
        "stages": [
            {
                "name": "blueprint",
                "status": "done",
                "backend": "preview",
                "seed": 1,
                "input_sha256": SHA,
                "settings": {"num_inference_steps": 4, "size": [432, 240]},
                "artifacts": [artifact],
                "started_at": "2026-11-22T10:00:00Z",
                "finished_at": "2026-11-22T10:00:02Z",
                "duration_s": 2.0,
            },
        ],
        "output": {**artifact, "path": "output.mp4"},
        "prompt_refs": [],
    }


def plan() -> dict[str, Any]:
    visual = visual_report()
    visual.pop("kind")
    audio = audio_report()
    return {
        "kind": "plan",
        "job_sha256": SHA,
        "providers": {"audio": "offline", "visual": "offline", "text": "openai:gpt-4o-mini", "negative": "offline"},
        "audio_reports": [audio],
        "visual_report": visual_report(),
        "text_report": {
            "prompt": "She smiles; slow push-in at the end.",
            "instructions": [
                {"aspect": "emotion", "value": "happy", "source_text": "She smiles"},
                {"aspect": "camera", "value": "push_in", "timing": "end", "source_text": "slow push-in at the end"},
            ],
        },
        "storyline": storyline(),
        "render_plan": render_plan(),
        "repairs": [{"stage": "storyline", "kind": "deterministic", "action": "snap_to_word", "detail": "1.49->1.5"}],
        "model_calls": [
            {
                "expert": "text",
                "purpose": "storyline",
                "provider": "openai:gpt-4o-mini",
                "attempt": 1,
                "ok": True,
                "latency_s": 1.2,
                "prompt_tokens": 900,
                "completion_tokens": 400,
            }
        ],
        "prompt_refs": [{"id": "text_expert/storyline", "version": "1", "sha256": SHA}],
    }


def eval_suite() -> dict[str, Any]:
    return {
        "kind": "eval_suite",
        "name": "mini",
        "description": "One case of each expectation type.",
        "render": False,
        "cases": [
            {
                "id": "greeting",
                "category": "conflicting_instructions",
                "job": "/jobs/greeting/job.yaml",
                "prompt": "She is sad; push-in at the end.",
                "render": True,
                "expect": {
                    "emotions": [{"label": "sad", "at": "throughout"}],
                    "camera": [{"movement": "pan", "direction": "left", "at": "window", "start_s": 1.0, "end_s": 2.0}],
                    "actions": [{"text": "nod", "at": "start", "character_id": "host"}],
                    "speakers": [{"character_id": "host", "at": "end", "alone": True}],
                    "conflicts": [{"aspect": "emotion", "modalities": ["audio", "text"], "decided_by": "text"}],
                    "negative_must_not_contain": ["sad face"],
                    "delivery": "speech",
                    "language": "en",
                    "num_shots": [1, 5],
                },
            }
        ],
    }


def eval_run() -> dict[str, Any]:
    return {
        "kind": "eval_run",
        "codirector_version": "0.1.0",
        "suite": "mini",
        "suite_path": "/suites/mini.yaml",
        "suite_sha256": SHA,
        "provider": "offline",
        "backend": "preview",
        "prompts_dir": "/prompts/edited",
        "prompt_refs": [{"id": "text_expert/storyline", "version": "1", "sha256": SHA}],
        "created_at": "2026-11-22T10:00:00Z",
        "duration_s": 12.5,
        "num_cases": 1,
        "num_failed": 0,
    }


SAMPLES = {
    "job": job,
    "audio_report": audio_report,
    "visual_report": visual_report,
    "co_reasoning": co_reasoning,
    "storyline": storyline,
    "render_plan": render_plan,
    "render_manifest": render_manifest,
    "plan": plan,
    "eval_suite": eval_suite,
    "eval_run": eval_run,
}


def sample(kind: str) -> dict[str, Any]:
    """A fresh deep copy of the sample of `kind`, safe to mutate."""
    return copy.deepcopy(SAMPLES[kind]())
