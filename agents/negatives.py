"""The negative director: a negative prompt per shot, tied to that shot's story.

KlingAvatar 2.0 sec. 3.2: "negative prompts explicitly down-weight implausible poses, artifacts, and
fine-grained opposite emotions (e.g., sad vs. happy) or motion styles (e.g., overly fast vs. slow)"; sec. 4
(Fig. 7): prior work uses "a small, fixed set of generic negative prompts ... for an entire video", where shot-
specific ones "track the evolving storyline and target emotion". The tables live in
prompts/negative_director/opposites.yaml so they can be tuned like any prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codirector.prompts.templates import load_prompt, load_prompt_data
from codirector.schemas.base import PromptRef
from codirector.schemas.reports import VisualReport
from codirector.schemas.storyline import Shot, Storyline
from codirector.schemas.vocab import CameraMovement

__all__ = ["direct_negatives", "negative_terms"]


def negative_terms(
    shot: Shot, tables: dict[str, Any], subjects: Sequence[str], style: str, num_in_frame: int
) -> list[str]:
    """The terms that oppose one shot: its emotion's opposites, the wrong motion speed, poses implausible at its
    framing, what its subject and style are not, a talking listener, and the usual artifacts."""
    terms: list[str] = []
    terms += tables["emotion"].get(shot.emotion.label.value, [])
    if shot.camera.movement is not CameraMovement.STATIC:
        terms += tables["speed"].get(shot.camera.speed.value, [])
    if any("stands still" in action for action in shot.actions):
        terms += tables["stillness"]
    terms += tables["framing"].get(shot.shot_size.value, [])
    for subject in dict.fromkeys(subjects):
        terms += tables["subject"].get(subject, [])
    terms += tables["style"].get(style, [])
    if num_in_frame > len(shot.speakers) and shot.speakers:
        terms += [f"{term} on the listener" for term in tables["listener"]]
    terms += tables["artifacts"]
    # A negative must never ask against what the shot asks for (an eval checks this): drop any term that
    # shares a content word with the shot's own actions or emotion.
    wanted = {
        word for text in [*shot.actions, shot.emotion.label.value] for word in text.lower().split() if len(word) > 3
    }
    return [t for t in dict.fromkeys(terms) if not wanted & {w for w in t.lower().split() if len(w) > 3}]


def direct_negatives(
    storyline: Storyline, visual: VisualReport, prompts_dir: Path | None = None
) -> tuple[Storyline, list[PromptRef]]:
    """Write every shot's negative prompt, and the global one (the artifacts every shot shares)."""
    tables, table_ref = load_prompt_data("negative_director/opposites", prompts_dir)
    template = load_prompt("negative_director/shot_negative", prompts_dir)
    subjects = [c.subject.value for c in visual.characters]
    style = storyline.style.visual_style.value
    shots = [
        shot.model_copy(
            update={
                "negative_prompt": template.render(
                    terms=negative_terms(shot, tables, subjects, style, len(storyline.characters))
                )
            }
        )
        for shot in storyline.shots
    ]
    global_negative = template.render(terms=tables["artifacts"] + tables["style"].get(style, []))
    updated = storyline.model_copy(update={"shots": shots, "global_negative_prompt": global_negative})
    return updated, [table_ref, template.ref]
