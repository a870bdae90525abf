"""Building blocks shared by every contract: strict base models, typed scalars, and located rule violations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "SCHEMA_VERSION",
    "BoxNorm",
    "CharacterId",
    "Confidence",
    "Contract",
    "Document",
    "Intensity",
    "Loc",
    "PromptRef",
    "RuleViolation",
    "Seconds",
    "Sha256",
    "check_speakers",
    "check_unique",
]

SCHEMA_VERSION = "1"

Loc = tuple[str | int, ...]


class RuleViolation(ValueError):
    """A cross-field rule broken inside a model validator, with the location of every offending field.

    pydantic reports a model validator's error at the model itself; keeping the locations lets
    `codirector validate` point at ``$.shots[3].start_s`` instead of the whole document.
    """

    def __init__(self, issues: Sequence[tuple[Loc, str]]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(f"{_dotted(loc)}: {message}" for loc, message in self.issues))

    @classmethod
    def raise_if_any(cls, issues: Sequence[tuple[Loc, str]]) -> None:
        if issues:
            raise cls(issues)


def _dotted(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "$"


class Contract(BaseModel):
    """Base of every serialized model: unknown fields are errors, never silently dropped."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False, validate_default=True)


class Document(Contract):
    """A file a user keeps (job, storyline, plan, manifest...): it names its kind and schema version.

    `kind` is declared by each subclass as a ``Literal`` with a default, so files written by codirector always
    say what they are, and `codirector validate` can tell them apart.
    """

    KIND: ClassVar[str]

    schema_version: Literal["1"] = Field(
        SCHEMA_VERSION, description="Version of this file's schema; bumped on incompatible changes."
    )


def _check_box(box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
        raise ValueError(f"box {list(box)} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    return box


Seconds = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
"""A time on the audio timeline, in seconds from its start."""

BoxNorm = Annotated[
    tuple[float, float, float, float],
    AfterValidator(_check_box),
    Field(description="Box as [x0, y0, x1, y1], normalized to the image's width and height (0..1)."),
]

CharacterId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$"),
    Field(description="Stable character id: a lowercase slug such as 'host' or 'guest_2'."),
]

Confidence = Annotated[float, Field(ge=0.0, le=1.0, description="Probability-like confidence, 0..1.")]

Intensity = Annotated[int, Field(ge=1, le=3, description="1 subtle, 2 clear, 3 strong.")]

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class PromptRef(Contract):
    """Which prompt template produced something: recorded in plans and manifests so evals can attribute results."""

    id: str = Field(description="Prompt id from its front matter, e.g. 'text_expert/storyline'.")
    version: str = Field(description="Prompt version from its front matter.")
    sha256: Sha256 = Field(description="Hash of the prompt file's text.")


def check_unique(values: Iterable[str], field: str, what: str) -> list[tuple[Loc, str]]:
    """Issues for repeated values in a list of ids, each located at its index."""
    seen: set[str] = set()
    issues: list[tuple[Loc, str]] = []
    for index, value in enumerate(values):
        if value in seen:
            issues.append(((field, index), f"{what} {value!r} appears more than once"))
        seen.add(value)
    return issues


def check_speakers(
    speaker_lists: Sequence[Sequence[str]], known: set[str], voiced: set[str], field: str
) -> list[tuple[Loc, str]]:
    """Every speaker must be a known character that has an audio track."""
    issues: list[tuple[Loc, str]] = []
    for index, speakers in enumerate(speaker_lists):
        for speaker_index, speaker in enumerate(speakers):
            loc: Loc = (field, index, "speakers", speaker_index)
            if speaker not in known:
                issues.append((loc, f"unknown character {speaker!r}"))
            elif speaker not in voiced:
                issues.append((loc, f"character {speaker!r} has no audio track, so cannot speak"))
    return issues
