"""The preview backend: the conformance suite, and the behaviour a person previewing a plan relies on.

The mouth, camera and detail tests render the examples' real pictures with synthetic audio and measure the frames:
the mouth's motion against the audio's loudness, the face's size and the picture's shift against the camera move.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from helpers import EXAMPLES

from codirector.errors import ConfigError
from codirector.faces import detect_face
from codirector.generator.backend import (
    Backend,
    Capability,
    CharacterCondition,
    ClipRequest,
    InterpolationRequest,
    MaskRequest,
    SuperResolutionRequest,
    UpscaleRequest,
    VideoRequest,
)
from codirector.generator.backends.preview import PreviewBackend
from codirector.generator.testing import BackendConformance, make_direction, mean_abs_error
from codirector.media import load_image
from codirector.schemas.render_plan import DiffusionSettings
from codirector.schemas.storyline import Camera
from codirector.schemas.vocab import CameraAngle, CameraMovement, Direction, MotionSpeed, ShotSize

FPS = 25.0
RATE = 16_000


class TestPreviewConformance(BackendConformance):
    max_lookahead_frames = 1

    def make_backend(self) -> Backend:
        return PreviewBackend()


class _DropsAFrame(PreviewBackend):
    def text_to_video(self, request: VideoRequest) -> Iterator[np.ndarray]:
        return itertools.islice(super().text_to_video(request), request.num_frames - 1)


class _Unseeded(PreviewBackend):
    def text_to_video(self, request: VideoRequest) -> Iterator[np.ndarray]:
        noise = np.random.default_rng().integers(0, 2, (request.height, request.width, 3), dtype=np.uint8)
        return (cv2.add(frame, noise) for frame in super().text_to_video(request))


class _ClaimsLess(PreviewBackend):
    capabilities = frozenset({Capability.TEXT_TO_VIDEO})

    def upscale_image(self, request: UpscaleRequest) -> np.ndarray:  # forgets self.require(...)
        return np.zeros((request.height, request.width, 3), np.uint8)


def test_the_conformance_suite_catches_broken_backends() -> None:
    suite = TestPreviewConformance()
    requests = suite.build_requests(seed=0)
    with pytest.raises(AssertionError, match="expected 8 frames, got 7"):
        suite.test_video_frames(_DropsAFrame(), requests, Capability.TEXT_TO_VIDEO)
    suite.make_backend = _Unseeded  # type: ignore[method-assign]
    with pytest.raises(AssertionError, match="Arrays are not equal"):
        suite.test_same_seed_same_output(_Unseeded(), Capability.TEXT_TO_VIDEO)
    with pytest.raises(pytest.fail.Exception, match="DID NOT RAISE"):
        suite.test_undeclared_capability_raises(_ClaimsLess(), requests, Capability.IMAGE_UPSCALE)


# -- helpers ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def portrait() -> np.ndarray:
    return load_image(EXAMPLES / "english_portrait" / "reference.jpg")


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    return load_image(EXAMPLES / "cat" / "reference.jpg")


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    return load_image(EXAMPLES / "dialogue" / "scene.jpg")


HOST_BOX = (0.020, 0.030, 0.360, 1.000)  # examples/dialogue/job.yaml
GUEST_BOX = (0.500, 0.120, 0.830, 1.000)


def talk(duration_s: float, turns: list[tuple[float, float]], seed: int = 0) -> np.ndarray:
    """A voice that speaks in the given (start_s, end_s) turns and is silent elsewhere: voiced syllables at 4 Hz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * RATE)) / RATE
    voiced = sum(np.sin(2 * np.pi * k * (130 + 20 * rng.random()) * t) / k for k in range(1, 10))
    syllables = 0.35 + 0.65 * np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None)
    on = np.zeros_like(t)
    for start, end in turns:
        on[(t >= start) & (t < end)] = 1.0
    return (0.12 * voiced * syllables * on).astype(np.float32)


def loudness(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """The audio's RMS around each frame (two frames wide): what the mouth should follow."""
    half = int(RATE / FPS)
    centers = (np.arange(num_frames) / FPS * RATE).astype(int)
    return np.array([np.sqrt(np.mean(audio[max(0, c - half) : c + half] ** 2)) for c in centers])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def sampler(seed: int = 0) -> DiffusionSettings:
    return DiffusionSettings(num_inference_steps=1, guidance_scale=1.0, seed=seed)


def video(
    characters: tuple[CharacterCondition, ...],
    *,
    scene: np.ndarray | None = None,
    shot_size: ShotSize = ShotSize.CLOSE_UP,
    camera: Camera | None = None,
    num_frames: int = 50,
    height: int = 180,
    width: int = 320,
    seed: int = 0,
) -> VideoRequest:
    duration_s = num_frames / FPS
    return VideoRequest(
        prompt="a talk show", characters=characters, scene=scene, fps=FPS, num_frames=num_frames,
        directions=(make_direction(0.0, duration_s, shot_size=shot_size, camera=camera, speakers=(characters[0].id,)),),
        height=height, width=width, sampler=sampler(seed),
    )  # fmt: skip


def grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)


def change(frames: list[np.ndarray], still: list[np.ndarray], region: tuple[slice, slice]) -> np.ndarray:
    """Per frame, the mean absolute difference inside `region` from the same render without audio."""
    return np.array([np.abs(grey(f)[region] - grey(s)[region]).mean() for f, s in zip(frames, still, strict=True)])


# -- options ---------------------------------------------------------------------------------------------------------


def test_options_are_validated_and_recorded() -> None:
    backend = PreviewBackend(mouth_gain=1.5, motion="0.5")
    assert backend.config() == {"mouth_gain": 1.5, "motion": 0.5, "detail": 1.0}
    assert PreviewBackend.name == "preview"
    for bad in ({"mouth_gain": -1}, {"motion": "lots"}, {"detail": True}, {"detail": float("nan")}, {"speed": 2}):
        with pytest.raises(ConfigError):
            PreviewBackend(**bad)


# -- the mouth follows each character's own audio ------------------------------------------------------------------


def test_mouth_follows_the_audio_envelope(portrait: np.ndarray) -> None:
    """A clip between two identical anchors: only the mouth moves, and it moves with the loudness."""
    num_frames, size = 75, (256, 256)
    audio = talk(num_frames / FPS + 0.2, [(0.3, 0.9), (1.3, 1.7), (2.1, 2.7)])
    anchor = cv2.resize(portrait, size, interpolation=cv2.INTER_AREA)
    request = ClipRequest(
        prompt="she talks", characters=(CharacterCondition(id="host", reference=portrait, audio=audio),), fps=FPS,
        directions=(make_direction(0.0, num_frames / FPS),), num_frames=num_frames, height=size[1], width=size[0],
        sampler=sampler(), first_frame=anchor, last_frame=anchor,
    )  # fmt: skip
    frames = list(PreviewBackend().first_last_frame(request))
    face = detect_face(portrait)
    assert face is not None
    x0, y0, x1, y1 = (v * size[0] / portrait.shape[1] for v in face.box)
    mouth = (slice(int(y0 + 0.6 * (y1 - y0)), int(y1 + 0.2 * (y1 - y0))), slice(int(x0), int(x1)))
    motion = change(frames, [anchor] * num_frames, mouth)
    inner = slice(6, num_frames - 6)  # the mouth fades in and out over 0.2 s at the anchors
    r = pearson(motion[inner], loudness(audio, num_frames)[inner])
    assert r > 0.7, r  # measured 0.96
    assert frames[0].tobytes() == anchor.tobytes()
    assert frames[-1].tobytes() == anchor.tobytes()
    assert motion[inner].max() > 3.0  # a visible opening, in grey levels over the whole mouth box


def test_each_mouth_follows_only_its_own_voice(scene: np.ndarray) -> None:
    """Two characters in one scene who take turns: each mouth moves with its own track, not the other's."""
    num_frames = 75
    duration_s = num_frames / FPS + 0.2
    host_audio = talk(duration_s, [(0.2, 1.0), (2.0, 2.6)], seed=1)
    guest_audio = talk(duration_s, [(1.1, 1.9), (2.6, 3.0)], seed=2)
    characters = (
        CharacterCondition(id="host", region_xyxy_norm=HOST_BOX, audio=host_audio),
        CharacterCondition(id="guest", region_xyxy_norm=GUEST_BOX, audio=guest_audio),
    )
    request = video(characters, scene=scene, shot_size=ShotSize.WIDE, num_frames=num_frames, height=288, width=576)
    silent = dataclasses.replace(request, characters=tuple(dataclasses.replace(c, audio=None) for c in characters))
    backend = PreviewBackend(motion=0.0)  # still heads: only mouths change
    frames, still = list(backend.text_to_video(request)), list(backend.text_to_video(silent))
    half = request.width // 2
    host = change(frames, still, (slice(None), slice(0, half)))
    guest = change(frames, still, (slice(None), slice(half, None)))
    host_loud, guest_loud = loudness(host_audio, num_frames), loudness(guest_audio, num_frames)
    own = (pearson(host, host_loud), pearson(guest, guest_loud))
    crossed = (pearson(host, guest_loud), pearson(guest, host_loud))
    assert min(own) > 0.6, own  # measured 0.98 and 0.99
    assert max(crossed) < 0.1, crossed  # measured -0.66 and -0.68 (they take turns)


def test_a_silent_character_keeps_still_lips(scene: np.ndarray) -> None:
    characters = (
        CharacterCondition(id="host", region_xyxy_norm=HOST_BOX, audio=talk(1.2, [(0.0, 1.2)])),
        CharacterCondition(id="guest", region_xyxy_norm=GUEST_BOX, audio=np.zeros(int(1.2 * RATE), np.float32)),
    )
    request = video(characters, scene=scene, shot_size=ShotSize.WIDE, num_frames=25, height=288, width=576)
    silent = dataclasses.replace(request, characters=tuple(dataclasses.replace(c, audio=None) for c in characters))
    backend = PreviewBackend(motion=0.0)
    frames, still = list(backend.text_to_video(request)), list(backend.text_to_video(silent))
    half = request.width // 2
    assert change(frames, still, (slice(None), slice(half, None))).max() == 0.0
    assert change(frames, still, (slice(None), slice(0, half))).max() > 0.1  # a mean over half the frame


def test_a_cat_talks_with_its_own_mouth(cat: np.ndarray) -> None:
    """The cat's face is found by the cat cascades; the mouth opens under its nose, not elsewhere."""
    num_frames = 25
    audio = talk(num_frames / FPS + 0.2, [(0.0, 1.2)])
    request = video((CharacterCondition(id="cat", reference=cat, audio=audio),), shot_size=ShotSize.WIDE,
                    num_frames=num_frames, height=300, width=451)  # fmt: skip
    silent = dataclasses.replace(request, characters=(CharacterCondition(id="cat", reference=cat),))
    backend = PreviewBackend(motion=0.0)
    frames, still = list(backend.text_to_video(request)), list(backend.text_to_video(silent))
    moved = sum(np.abs(grey(f) - grey(s)) for f, s in zip(frames, still, strict=True))
    ys, xs = np.nonzero(moved > 0.2 * moved.max())
    # examples/cat: the nose tip is at about (265, 250) and the mouth just under it, at the picture's bottom edge.
    assert 225 < np.median(xs) < 305, np.median(xs)
    assert 240 < np.median(ys) <= 300, np.median(ys)


# -- the camera ------------------------------------------------------------------------------------------------------


def face_area(frame: np.ndarray) -> float:
    found = detect_face(frame)
    assert found is not None
    x0, y0, x1, y1 = found.box
    return (x1 - x0) * (y1 - y0)


def test_push_in_grows_the_face(portrait: np.ndarray) -> None:
    character = (CharacterCondition(id="host", reference=portrait),)
    camera = Camera(movement=CameraMovement.PUSH_IN, speed=MotionSpeed.FAST)
    push = video(character, shot_size=ShotSize.MEDIUM, camera=camera, num_frames=30, height=360, width=640)
    frames = list(PreviewBackend().text_to_video(push))
    assert face_area(frames[-1]) > 1.3 * face_area(frames[0])  # 1 + 0.25 x 1.6 zoom: 1.96 in area


def shift_x(first: np.ndarray, last: np.ndarray) -> float:
    """How far the picture moved right from `first` to `last`, pixels (phase correlation)."""
    (dx, _), _ = cv2.phaseCorrelate(grey(first), grey(last))
    return dx


@pytest.mark.parametrize(("direction", "sign"), [(Direction.LEFT, 1.0), (Direction.RIGHT, -1.0)])
def test_pan_moves_the_picture_the_other_way(scene: np.ndarray, direction: Direction, sign: float) -> None:
    characters = (CharacterCondition(id="host", region_xyxy_norm=HOST_BOX),)
    camera = Camera(movement=CameraMovement.PAN, direction=direction, speed=MotionSpeed.MEDIUM)
    frames = list(PreviewBackend(motion=0.0).text_to_video(video(characters, scene=scene, shot_size=ShotSize.MEDIUM,
                                                                  camera=camera, num_frames=20)))  # fmt: skip
    moved = shift_x(frames[0], frames[-1])
    assert sign * moved > 0.1 * 320, moved  # the crop travels 18% of its width: content moves the other way


def test_static_camera_keeps_the_picture(scene: np.ndarray) -> None:
    characters = (CharacterCondition(id="host", region_xyxy_norm=HOST_BOX),)
    frames = list(
        PreviewBackend().text_to_video(video(characters, scene=scene, shot_size=ShotSize.MEDIUM, num_frames=20))
    )
    assert abs(shift_x(frames[0], frames[-1])) < 1.0


def test_dutch_angle_rolls_the_picture(portrait: np.ndarray) -> None:
    character = (CharacterCondition(id="host", reference=portrait),)
    level, dutch = (
        next(iter(PreviewBackend(motion=0.0).text_to_video(video(character, camera=Camera(angle=angle), num_frames=1))))
        for angle in (CameraAngle.EYE_LEVEL, CameraAngle.DUTCH)
    )
    roll = cv2.findTransformECC(grey(level), grey(dutch), np.eye(2, 3, dtype=np.float32), cv2.MOTION_EUCLIDEAN)[1]
    assert 6.0 < abs(np.degrees(np.arctan2(roll[1, 0], roll[0, 0]))) < 10.0


@pytest.mark.parametrize("camera", [Camera(), Camera(angle=CameraAngle.DUTCH, movement=CameraMovement.HANDHELD)])
def test_a_wide_shot_of_a_small_picture_has_no_black_bars(cat: np.ndarray, camera: Camera) -> None:
    """The portrait-shaped and the small pictures are filled out with their blurred copy, never with black."""
    tall = cv2.resize(cat, (120, 200))
    for image in (cat, tall):
        request = video((CharacterCondition(id="cat", reference=image),), shot_size=ShotSize.WIDE, camera=camera,
                        num_frames=3, height=360, width=640)  # fmt: skip
        for frame in PreviewBackend().text_to_video(request):
            assert frame.max(axis=(0, 2)).min() > 40
            assert frame.max(axis=(1, 2)).min() > 40
            assert frame[:, :40].std() > 2.0  # the fill is a picture, not a flat colour


# -- determinism and laziness ----------------------------------------------------------------------------------------


def test_seeded_motion_is_reproducible_and_seed_dependent(portrait: np.ndarray) -> None:
    character = (CharacterCondition(id="host", reference=portrait, audio=talk(1.0, [(0.0, 1.0)])),)
    camera = Camera(movement=CameraMovement.HANDHELD)
    runs = [
        list(PreviewBackend().text_to_video(video(character, camera=camera, num_frames=12, seed=s))) for s in (3, 3, 4)
    ]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(runs[0], runs[1], strict=True))
    assert any(a.tobytes() != b.tobytes() for a, b in zip(runs[0], runs[2], strict=True))


def test_frames_come_lazily(portrait: np.ndarray) -> None:
    """An hour-long request yields its first frames at once: nothing is computed or held per frame up front."""
    character = (CharacterCondition(id="host", reference=portrait),)
    start = time.perf_counter()
    frames = list(itertools.islice(PreviewBackend().text_to_video(video(character, num_frames=90_000)), 3))
    assert len(frames) == 3
    assert time.perf_counter() - start < 5.0


# -- transitions, upscaling, masks -----------------------------------------------------------------------------------


def test_transition_mouth_moves_through_the_whole_window(portrait: np.ndarray) -> None:
    """At a seam the lips follow the audio in every frame, the first and last ones included."""
    anchor = cv2.resize(portrait, (256, 256), interpolation=cv2.INTER_AREA)
    loud = talk(0.6, [(0.0, 0.6)])
    request = InterpolationRequest(
        prompt="she talks", characters=(CharacterCondition(id="host", reference=portrait, audio=loud),), fps=FPS,
        directions=(make_direction(0.0, 0.2),), num_frames=5, height=256, width=256, sampler=sampler(),
        before=anchor, after=anchor,
    )  # fmt: skip
    frames = list(PreviewBackend().interpolate(request))
    assert all(mean_abs_error(frame, anchor) > 0.1 for frame in frames)


def truth_and_low(portrait: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    truth = cv2.warpAffine(portrait, np.float32([[1, 0, -37.3], [0, 1, -60.6]]), (448, 252))
    return truth, cv2.resize(truth, (448 // factor, 252 // factor), interpolation=cv2.INTER_AREA)


def test_upscale_restores_detail_from_the_reference(portrait: np.ndarray) -> None:
    truth, low = truth_and_low(portrait, 4)
    character = (CharacterCondition(id="host", reference=portrait),)
    request = UpscaleRequest(image=low, time_s=0.0, prompt="", characters=character, direction=make_direction(0, 1),
                             height=252, width=448, sampler=sampler())  # fmt: skip
    plain = cv2.resize(low, (448, 252), interpolation=cv2.INTER_CUBIC)
    assert mean_abs_error(PreviewBackend().upscale_image(request), truth) < 0.5 * mean_abs_error(plain, truth)
    assert PreviewBackend(detail=0).upscale_image(request).tobytes() == plain.tobytes()


def test_super_resolution_restores_detail_from_the_anchors(portrait: np.ndarray) -> None:
    num_frames = 12
    truth = [
        cv2.warpAffine(
            portrait, np.float32([[1 + 0.1 * a, 0, -10 - 40 * a], [0, 1 + 0.1 * a, -60 - 10 * a]]), (448, 252)
        )
        for a in np.linspace(0, 1, num_frames)
    ]
    low = [cv2.resize(frame, (224, 126), interpolation=cv2.INTER_AREA) for frame in truth]
    request = SuperResolutionRequest(
        frames=iter(low), num_frames=num_frames, first_anchor=truth[0], last_anchor=truth[-1], prompt="",
        characters=(), start_s=0.0, fps=FPS, height=252, width=448, sampler=sampler(),
    )  # fmt: skip
    out = list(PreviewBackend().super_resolve(request))
    plain = [cv2.resize(frame, (448, 252), interpolation=cv2.INTER_CUBIC) for frame in low]
    for index in range(num_frames):
        assert mean_abs_error(out[index], truth[index]) < 0.8 * mean_abs_error(plain[index], truth[index]), index


def test_masks_find_each_character_by_identity(scene: np.ndarray) -> None:
    """References cut from the scene, the scene's halves swapped: each mask still lands on its own character."""
    height, width = scene.shape[:2]
    left, right = scene[:, : width // 2], scene[:, width // 2 :]
    characters = (
        CharacterCondition(id="host", reference=np.ascontiguousarray(left[: height // 2])),
        CharacterCondition(id="guest", reference=np.ascontiguousarray(right[: height // 2])),
    )
    swapped = np.ascontiguousarray(np.concatenate([right, left], axis=1))  # the guest now stands on the left
    masks = PreviewBackend().predict_masks(MaskRequest(image=swapped, characters=characters))
    assert masks["guest"][:, : width // 2].mean() > 3 * masks["guest"][:, width // 2 :].mean()
    assert masks["host"][:, width // 2 :].mean() > 3 * masks["host"][:, : width // 2].mean()
