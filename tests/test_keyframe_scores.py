"""Keyframe scores on real pictures with known answers: degraded copies of a reference must lose on the right score.

The frames are 640x360 "blueprint" frames made from the examples' pictures (examples/english_portrait is
scikit-image's astronaut, examples/cat its cat); a different person is a face from scikit-image's LFW subset pasted
over the astronaut's, tinted to her skin colour so that only the face itself differs.
"""

from __future__ import annotations

from dataclasses import fields

import cv2
import numpy as np
import pytest
from helpers import EXAMPLES
from PIL import Image

from codirector.errors import ConfigError
from codirector.faces import detect_face
from codirector.generator import keyframe_scores
from codirector.generator.keyframe_scores import KeyframeScorer, KeyframeScores, ScoreWeights, default_identity_embedder

WIDTH, HEIGHT = 640, 360


def load(example: str) -> np.ndarray:
    return np.asarray(Image.open(EXAMPLES / example / "reference.jpg").convert("RGB"))


def blueprint_frame(picture: np.ndarray, x: int = 140, height_share: float = 1.0) -> np.ndarray:
    """The picture scaled to a share of the frame's height, centred on a dark background, its left edge at `x`."""
    height = round(HEIGHT * height_share)
    scale = height / picture.shape[0]
    scaled = cv2.resize(picture, (round(picture.shape[1] * scale), height), interpolation=cv2.INTER_AREA)
    frame = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    left, right, top = max(0, x), min(WIDTH, x + scaled.shape[1]), (HEIGHT - height) // 2
    frame[top : top + height, left:right] = scaled[:, left - x : right - x]
    return frame


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return load("english_portrait")


@pytest.fixture(scope="module")
def scorer(astronaut: np.ndarray) -> KeyframeScorer:
    return KeyframeScorer([astronaut])


@pytest.fixture(scope="module")
def clean(astronaut: np.ndarray) -> np.ndarray:
    return blueprint_frame(astronaut)


@pytest.fixture(scope="module")
def face_box(clean: np.ndarray) -> tuple[int, int, int, int]:
    detection = detect_face(clean)
    assert detection is not None
    return tuple(round(value) for value in detection.box)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def other_person(clean: np.ndarray, face_box: tuple[int, int, int, int]) -> np.ndarray:
    from skimage.data import lfw_subset

    x0, y0, x1, y1 = face_box
    skin = clean[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)
    gray = cv2.resize((lfw_subset()[0] * 255).astype(np.uint8), (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
    frame = clean.copy()
    frame[y0:y1, x0:x1] = np.clip(gray[..., None] * (skin / skin.mean()), 0, 255).astype(np.uint8)
    return frame


def test_blurred_candidate_scores_lower_sharpness(scorer: KeyframeScorer, clean: np.ndarray) -> None:
    blurred = cv2.GaussianBlur(clean, (0, 0), 2.5)

    sharp, soft, again = scorer.score([clean, blurred, clean])

    assert soft.sharpness < 0.5 * sharp.sharpness
    assert sharp.sharpness == again.sharpness == 1.0
    assert soft.face > 0.8  # blur is not occlusion


@pytest.mark.parametrize("damage", ["grey box over the face", "half out of frame"])
def test_covered_or_cut_face_scores_lower_face(
    scorer: KeyframeScorer, astronaut: np.ndarray, clean: np.ndarray, face_box: tuple[int, ...], damage: str
) -> None:
    if damage == "grey box over the face":
        damaged = clean.copy()
        x0, y0, x1, y1 = face_box
        damaged[y0 - 10 : y1 + 20, x0 - 10 : x1 + 10] = 128
    else:
        damaged = blueprint_frame(astronaut, x=140 - face_box[0] - (face_box[2] - face_box[0]) // 2)

    whole, hidden = scorer.score([clean, damaged])

    assert whole.face > 0.8
    assert hidden.face < 0.5 * whole.face
    assert hidden.identity < whole.identity


def test_covered_mouth_and_chin_score_lower_face(
    scorer: KeyframeScorer, clean: np.ndarray, face_box: tuple[int, int, int, int]
) -> None:
    # A skin-coloured patch (a hand) over the lowest quarter of the face: the detector still finds the face, so
    # only the flat lower half tells the occlusion.
    x0, y0, x1, y1 = face_box
    skin = clean[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0).astype(np.uint8)
    covered = clean.copy()
    covered[y0 + 3 * (y1 - y0) // 4 : y1 + 5, x0 + 8 : x1 - 8] = skin

    whole, hidden = scorer.score([clean, covered])

    assert hidden.identity > 0.8  # found, and still her
    assert hidden.face < 0.8 * whole.face


def test_face_cut_by_the_border_scores_between(scorer: KeyframeScorer, astronaut: np.ndarray) -> None:
    # the face's left edge at x=4: found, but the head around it is cut by the frame
    (cut,) = scorer.score([blueprint_frame(astronaut, x=-120)])

    assert 0.5 < cut.face < 0.95


def test_other_person_scores_lower_identity(
    scorer: KeyframeScorer, clean: np.ndarray, other_person: np.ndarray
) -> None:
    same, other = scorer.score([clean, other_person])

    assert other.face > 0.5  # a face is there...
    assert same.identity > 0.85
    assert other.identity < same.identity - 0.2  # ...but not hers


def test_open_mouth_scores_higher_expressiveness(
    scorer: KeyframeScorer, clean: np.ndarray, face_box: tuple[int, int, int, int]
) -> None:
    x0, y0, x1, _ = face_box
    side = x1 - x0
    opened = clean.copy()
    mouth = (slice(y0 + side * 64 // 100, y0 + side * 88 // 100), slice(x0 + side * 30 // 100, x0 + side * 70 // 100))
    opened[mouth] = (opened[mouth] * 0.35).astype(np.uint8)  # a dark open mouth

    before, open_mouth, after = scorer.score([clean, opened, clean])

    assert open_mouth.expressiveness == 1.0
    assert max(before.expressiveness, after.expressiveness) < 0.7


def test_motion_is_difference_from_neighbours(scorer: KeyframeScorer, astronaut: np.ndarray) -> None:
    still, moved = blueprint_frame(astronaut), blueprint_frame(astronaut, x=160)

    first, middle, last = scorer.score([still, still, moved])

    # frame 0 equals its neighbour; frame 1 differs from one of two; frame 2 from its only neighbour
    assert [first.motion, middle.motion, last.motion] == pytest.approx([0.0, 0.5, 1.0])


def test_faceless_frames_get_no_face_and_no_identity(scorer: KeyframeScorer) -> None:
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(3)]

    for scores in scorer.score(noise):
        assert (scores.face, scores.identity, scores.expressiveness) == (0.0, 0.0, 0.0)


def test_best_prefers_the_clean_frame(
    scorer: KeyframeScorer, astronaut: np.ndarray, clean: np.ndarray, other_person: np.ndarray
) -> None:
    covered = clean.copy()
    covered[20:180, 240:360] = 128
    candidates = [
        cv2.GaussianBlur(clean, (0, 0), 2.5),
        covered,
        other_person,
        clean,  # not in the middle: a tie would go to the middle, this must win on its scores
        blueprint_frame(astronaut, x=-200),
    ]

    best, scores = scorer.best(candidates)

    assert best == 3
    assert len(scores) == len(candidates)


def test_total_is_the_weighted_sum(astronaut: np.ndarray, clean: np.ndarray) -> None:
    weights = ScoreWeights(face=0.5, sharpness=2.0, motion=0.0, expressiveness=1.0, identity=3.0)
    scorer = KeyframeScorer([astronaut], weights=weights)

    for scores in scorer.score([clean, cv2.GaussianBlur(clean, (0, 0), 2.0), blueprint_frame(astronaut, x=150)]):
        expected = sum(getattr(weights, f.name) * getattr(scores, f.name) for f in fields(ScoreWeights))
        assert scores.total == pytest.approx(expected)
        assert set(scores.as_dict()) == {f.name for f in fields(KeyframeScores)}


def test_weights_decide_the_winner(astronaut: np.ndarray, clean: np.ndarray) -> None:
    blurred_and_moved = cv2.GaussianBlur(blueprint_frame(astronaut, x=170), (0, 0), 2.0)
    frames = [clean, clean, blurred_and_moved]

    assert KeyframeScorer([astronaut], weights=ScoreWeights(motion=10.0)).best(frames)[0] == 2
    assert KeyframeScorer([astronaut], weights=ScoreWeights(sharpness=10.0)).best(frames)[0] != 2


def test_custom_embedder_is_used(astronaut: np.ndarray, clean: np.ndarray) -> None:
    crops: list[np.ndarray] = []

    def mean_colour(crop: np.ndarray) -> np.ndarray:
        crops.append(crop)
        return crop.reshape(-1, 3).mean(axis=0)

    scorer = KeyframeScorer([astronaut], embedder=mean_colour)
    bluish = clean.copy()
    bluish[..., 2] = 255
    scores = scorer.score([clean, bluish, np.zeros_like(clean)])

    assert len(crops) == 1 + 2  # the reference, then each candidate with a face
    assert all(crop.ndim == 3 and crop.shape[2] == 3 for crop in crops)
    assert scores[0].identity > 0.98  # same mean colour as the reference's face
    assert scores[1].identity < scores[0].identity - 0.05
    assert scores[2].identity == 0.0


def test_default_embedder_tells_the_face_from_another(
    clean: np.ndarray, other_person: np.ndarray, face_box: tuple[int, int, int, int]
) -> None:
    x0, y0, x1, y1 = face_box
    same = default_identity_embedder(clean[y0:y1, x0:x1])
    shifted = default_identity_embedder(clean[y0 + 2 : y1 + 2, x0 - 2 : x1 - 2])
    other = default_identity_embedder(other_person[y0:y1, x0:x1])

    assert same.shape == (32 * 32 + 12 * 4,)
    assert np.linalg.norm(same) == pytest.approx(1.0, abs=1e-5)
    assert float(same @ shifted) > float(same @ other) + 0.2


def test_cat_reference_finds_cat_faces(clean: np.ndarray) -> None:
    cat = load("cat")
    scorer = KeyframeScorer([cat])
    frames = [blueprint_frame(cat, x=60 + 5 * step, height_share=0.6) for step in range(5)]

    scores = scorer.score([*frames, cv2.GaussianBlur(frames[-1], (0, 0), 3.0)])
    (person,) = scorer.score([clean])

    for cat_scores in scores:
        assert cat_scores.face > 0.8
        # the cat cascade frames a face more tightly than the reference's vote, hence not near 1
        assert cat_scores.identity > 0.4
    assert scores[-1].sharpness < 0.5 * max(s.sharpness for s in scores[:-1])
    assert person.face == 0.0  # the cat's scorer looks for cat faces


def test_without_references_identity_is_zero(clean: np.ndarray) -> None:
    scores = KeyframeScorer([]).score([clean, clean])

    assert all(s.face > 0.8 and s.identity == 0.0 for s in scores)


def test_scoring_never_runs_the_slow_detector(
    scorer: KeyframeScorer, clean: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # codirector.faces.detect_face votes over many runs (~200 ms a picture); candidates get one fast run each.
    def slow(_: np.ndarray) -> None:
        raise AssertionError("detect_face called while scoring candidates")

    monkeypatch.setattr(keyframe_scores, "detect_face", slow)

    assert len(scorer.score([clean] * 10)) == 10


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([], "at least one"),
        ([np.zeros((360, 640, 3), np.uint8), np.zeros((360, 480, 3), np.uint8)], "shape of frames"),
        ([np.zeros((360, 640, 3), np.float32)], "RGB uint8"),
        ([np.zeros((360, 640), np.uint8)], "RGB uint8"),
    ],
)
def test_bad_frames_fail_loudly(scorer: KeyframeScorer, frames: list[np.ndarray], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scorer.score(frames)


def test_bad_weights_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="non-negative"):
        ScoreWeights(face=-1.0)
    with pytest.raises(ConfigError, match="not all zero"):
        ScoreWeights(face=0, sharpness=0, motion=0, expressiveness=0, identity=0)
