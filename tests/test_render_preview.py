"""The main job end to end with the preview backend: `codirector run`, executors, mouths, faults.

These check the finished MP4 the way a person would with ffprobe and their eyes: streams, duration against the
audio, size and rate, the same bytes under every executor, and each character's mouth moving with their own
voice and not with the other's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import require_modules

import codirector
from codirector.cli import run as cli_run
from codirector.errors import RenderStageError
from codirector.faces import detect_face
from codirector.generator import register_backend
from codirector.generator.backends.preview import PreviewBackend
from codirector.generator.inputs import SAMPLE_RATE
from codirector.generator.videoio import probe_video, read_frames
from codirector.media import file_sha256, load_audio, load_image, probe_audio
from codirector.schemas import RenderPlan
from codirector.schemas.storyline import Camera
from codirector.schemas.vocab import ShotSize

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class DyingPreview(PreviewBackend):
    """Preview, except that the worker process dies (os._exit) on the sub-clip starting at $DIE_AT_S."""

    name = "dying-preview-test"

    def first_last_frame(self, request):  # type: ignore[no-untyped-def]
        die_at = os.environ.get("DIE_AT_S")
        if die_at is not None and abs(request.start_s - float(die_at)) < 1e-6:
            os._exit(3)
        return super().first_last_frame(request)


class InterruptedPreview(PreviewBackend):
    """Preview, except that Ctrl-C arrives during the sub-clip starting at $INTERRUPT_AT_S."""

    name = "interrupted-preview-test"

    def first_last_frame(self, request):  # type: ignore[no-untyped-def]
        at = os.environ.get("INTERRUPT_AT_S")
        if at is not None and abs(request.start_s - float(at)) < 1e-6:
            raise KeyboardInterrupt
        return super().first_last_frame(request)


@pytest.fixture(scope="module", autouse=True)
def _backends() -> None:
    register_backend("dying-preview-test", "tests.test_render_preview:DyingPreview")
    register_backend("interrupted-preview-test", InterruptedPreview)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def cat_plan(home: Path) -> codirector.Plan:
    return codirector.plan(EXAMPLES / "cat" / "job.yaml", config=codirector.Config(home=home))


def test_codirector_run_turns_a_job_into_an_mp4_with_its_audio(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODIRECTOR_HOME", str(home))
    code = cli_run(["run", str(EXAMPLES / "cat" / "job.yaml"), "-o", str(tmp_path / "cat.mp4")])
    assert code == 0
    info = probe_video(tmp_path / "cat.mp4")
    audio_s = probe_audio(EXAMPLES / "cat" / "speech.wav").duration_s
    assert (info.video_codec, info.audio_codecs) == ("h264", ("aac",))
    assert info.fps == pytest.approx(25)
    assert min(info.width, info.height) == 480
    assert abs(info.duration_s - audio_s) <= 1 / 25
    assert (tmp_path / "cat.plan.json").is_file()
    frames = list(read_frames(tmp_path / "cat.mp4", [0, info.num_frames // 2]))
    assert all(frame.std() > 20 for frame in frames)  # a picture, not a blank


@pytest.mark.parametrize("executor", ["process", "ray"])
def test_every_executor_gives_the_same_bytes(cat_plan: codirector.Plan, tmp_path: Path, executor: str) -> None:
    if executor == "ray":
        require_modules("ray")
    local = codirector.render(cat_plan, tmp_path / "local.mp4", run_dir=tmp_path / "local")
    other = codirector.render(
        cat_plan, tmp_path / f"{executor}.mp4", executor=executor, num_workers=2, run_dir=tmp_path / executor
    )
    assert file_sha256(local.video) == file_sha256(other.video)
    assert other.manifest.executor == executor


def test_a_dying_worker_is_a_clear_error_and_the_rerun_resumes(
    cat_plan: codirector.Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = cat_plan.render_plan
    monkeypatch.setenv("DIE_AT_S", str(round(plan.segments[-1].start_s * plan.fps) / plan.fps))
    with pytest.raises(RenderStageError, match="worker process died"):
        codirector.render(
            cat_plan, tmp_path / "out.mp4", backend="dying-preview-test", executor="process", num_workers=2,
            run_dir=tmp_path / "run",
        )  # fmt: skip
    assert not (tmp_path / "out.mp4").exists()
    monkeypatch.delenv("DIE_AT_S")
    result = codirector.render(
        cat_plan, tmp_path / "out.mp4", backend="dying-preview-test", executor="process", num_workers=2,
        run_dir=tmp_path / "run",
    )  # fmt: skip
    assert {s.name: s.status for s in result.manifest.stages}["upscale_keyframes"] == "reused"
    assert probe_video(result.video).num_frames == round(plan.duration_s * plan.fps)


def test_ctrl_c_exits_130_leaves_no_output_and_the_rerun_resumes(
    cat_plan: codirector.Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    plan_file = tmp_path / "plan.json"
    codirector.schemas.dump_document(cat_plan, plan_file)
    plan = cat_plan.render_plan
    monkeypatch.setenv("INTERRUPT_AT_S", str(round(plan.segments[-1].start_s * plan.fps) / plan.fps))
    command = ["render", str(plan_file), "-o", str(tmp_path / "out.mp4"), "--backend", "interrupted-preview-test",
               "--run-dir", str(tmp_path / "run")]  # fmt: skip
    assert cli_run(command) == 130
    assert not (tmp_path / "out.mp4").exists()
    assert "Traceback" not in capsys.readouterr().err
    monkeypatch.delenv("INTERRUPT_AT_S")
    assert cli_run(command) == 0
    assert probe_video(tmp_path / "out.mp4").num_frames == round(plan.duration_s * plan.fps)


def _envelope(path: Path, fps: int, num_frames: int) -> np.ndarray:
    samples = load_audio(path, SAMPLE_RATE).samples
    hop = SAMPLE_RATE // fps
    samples = np.pad(samples, (0, max(0, num_frames * hop - len(samples))))[: num_frames * hop]
    return np.sqrt((samples.reshape(num_frames, hop) ** 2).mean(axis=1))


def test_each_mouth_moves_with_its_own_voice_in_a_dialogue(home: Path, tmp_path: Path) -> None:
    job = codirector.load_job(EXAMPLES / "dialogue" / "job.yaml")
    made = codirector.plan(job, config=codirector.Config(home=home))
    # A static wide framing keeps each character where the scene puts them, so a fixed box is their mouth.
    static = [s.model_copy(update={"camera": Camera(), "shot_size": ShotSize.WIDE}) for s in made.render_plan.segments]
    plan = RenderPlan.model_validate({**made.render_plan.model_dump(), "segments": static})
    result = codirector.render(plan, tmp_path / "dialogue.mp4", run_dir=tmp_path / "run")
    info = probe_video(result.video)
    scene = load_image(job.scene_image)
    # a wide shot fits the whole scene in the frame, keeping its aspect (any bands are a blurred fill)
    scale = min(info.width / scene.shape[1], info.height / scene.shape[0])
    pad_x, pad_y = (info.width - scale * scene.shape[1]) / 2, (info.height - scale * scene.shape[0]) / 2
    (first,) = read_frames(result.video, [0])
    mouths = {}
    for character in job.characters:
        # where the scene puts the character, in the frame; the face found there; its lower part is the mouth
        x0, y0, x1, y1 = (
            int(pad + scale * v * side)
            for v, pad, side in zip(
                character.scene_box_xyxy_norm, (pad_x, pad_y) * 2, (scene.shape[1], scene.shape[0]) * 2, strict=True
            )
        )
        face = detect_face(first[y0:y1, x0:x1])
        assert face is not None, character.id
        fx0, fy0, fx1, fy1 = face.box
        width, height = fx1 - fx0, fy1 - fy0
        mouths[character.id] = (
            int(x0 + fx0 + 0.25 * width), int(y0 + fy0 + 0.65 * height),
            int(x0 + fx1 - 0.25 * width), int(y0 + fy1 + 0.05 * height),
        )  # fmt: skip
    patches = {c: [] for c in mouths}
    for frame in read_frames(result.video):
        gray = frame.mean(axis=2)
        for character, (x0, y0, x1, y1) in mouths.items():
            patches[character].append(gray[y0:y1, x0:x1])
    correlation = {}
    for character in mouths:
        stack = np.stack(patches[character])
        motion = np.abs(stack - np.median(stack, axis=0)).mean(axis=(1, 2))  # departure from the resting mouth
        for voice in job.characters:
            envelope = _envelope(voice.audio, round(info.fps), info.num_frames)
            correlation[(character, voice.id)] = float(np.corrcoef(motion, envelope)[0, 1])
    for character in mouths:
        other = next(c for c in mouths if c != character)
        own, others = correlation[(character, character)], correlation[(character, other)]
        # measured on the finished MP4: own voice 0.47 and 0.64, the other's -0.22 and -0.24
        assert own > 0.35, correlation
        assert own > others + 0.4, correlation


def test_cli_run_refuses_a_missing_job_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_run(["run", str(tmp_path / "nope.yaml"), "-o", str(tmp_path / "o.mp4")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_cli_render_refuses_an_unknown_backend_with_exit_2(
    cat_plan: codirector.Plan, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    codirector.schemas.dump_document(cat_plan, tmp_path / "plan.json")
    assert cli_run(["render", str(tmp_path / "plan.json"), "-o", str(tmp_path / "o.mp4"), "--backend", "preveiw"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'preview'" in err.lower()
    assert "Traceback" not in err
    shutil.rmtree(tmp_path, ignore_errors=True)
