"""The dit backend with a tiny random model: the backend contract, its options, and a whole cascade run to an MP4."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import require_modules

require_modules("torch", "diffusers", "transformers")

import codirector  # noqa: E402
from codirector.cli import run as cli_run  # noqa: E402
from codirector.errors import ConfigError  # noqa: E402
from codirector.generator.backend import Backend  # noqa: E402
from codirector.generator.backends.dit import DitBackend  # noqa: E402
from codirector.generator.testing import BackendConformance  # noqa: E402
from codirector.generator.videoio import probe_video  # noqa: E402
from codirector.schemas import RenderPlan, dump_document  # noqa: E402
from codirector.schemas.render_plan import DiffusionSettings, FrameSize  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class TestDitConformance(BackendConformance):
    judge_fidelity = False  # random weights: only the contract's structure is checked

    def make_backend(self) -> Backend:
        return DitBackend(tiny=True, max_frames=9)


def test_options_are_checked_before_anything_loads() -> None:
    with pytest.raises(ConfigError, match="needs weights"):
        DitBackend()
    with pytest.raises(ConfigError, match="4k \\+ 1"):
        DitBackend(tiny=True, max_frames=8)
    with pytest.raises(ConfigError, match="has no transformer/ folder"):
        _ = DitBackend(weights="/nonexistent/wan").pipeline


def _small(plan: RenderPlan) -> RenderPlan:
    """The plan at 64x64, 1 step per stage and no guidance branches: a tiny model renders it in seconds."""

    def one_step(settings: DiffusionSettings) -> dict[str, object]:
        return {**settings.model_dump(), "num_inference_steps": 1, "guidance_scale": 0.0,
                "audio_guidance_scale": 0.0, "negative_frame_guidance_scale": 0.0}  # fmt: skip

    stages = plan.stages
    data = plan.model_dump()
    data["output"] = FrameSize(width=64, height=64).model_dump()
    data["stages"] = {
        "low_res": {"width": 32, "height": 32}, "high_res": {"width": 64, "height": 64}, "blueprint_fps": 4,
        **{name: one_step(getattr(stages, name))
           for name in ("blueprint", "keyframes", "subclips", "transitions", "super_resolution")},
    }  # fmt: skip
    return RenderPlan.model_validate(data)


@pytest.mark.parametrize("example", ["cat", "dialogue"])  # one voice; two voices gated by predicted masks
def test_codirector_render_with_the_tiny_dit_makes_an_mp4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: str
) -> None:
    monkeypatch.setenv("CODIRECTOR_HOME", str(tmp_path / "home"))
    plan = codirector.plan(EXAMPLES / example / "job.yaml", config=codirector.Config(home=tmp_path / "home"))
    small = _small(plan.render_plan)
    dump_document(small, tmp_path / "render_plan.json")
    code = cli_run(["render", str(tmp_path / "render_plan.json"), "-o", str(tmp_path / "cat.mp4"), "--backend", "dit",
                    "--backend-option", "tiny=true", "--backend-option", "max_frames=9"])  # fmt: skip
    assert code == 0
    info = probe_video(tmp_path / "cat.mp4")
    assert (info.video_codec, info.width, info.height) == ("h264", 64, 64)
    assert set(info.audio_codecs) == {"aac"}  # the mix, and each voice when there are two
    assert info.num_frames == round(small.duration_s * small.fps)


def test_custom_sigmas_and_cpu_offload_are_used() -> None:
    from codirector.generator.testing import make_requests

    requests = make_requests(height=32, width=32, num_frames=5, seed=0, upscale=2)
    default = list(DitBackend(tiny=True, max_frames=9).first_last_frame(requests.clip))
    custom = DitBackend(tiny=True, max_frames=9, sigmas=[1.0, 0.75, 0.25], cpu_offload=True)
    frames = list(custom.first_last_frame(requests.clip))
    assert len(frames) == len(default) == 5
    assert custom.pipeline.sigmas == [1.0, 0.75, 0.25]  # three steps where the request asks for two
    assert custom.pipeline.vae_device.type == "cpu"
    assert any(not (a == b).all() for a, b in zip(frames, default, strict=True))  # another schedule, other frames


def test_gpus_per_task_needs_the_ray_executor(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli_run(["render", str(tmp_path / "plan.json"), "-o", str(tmp_path / "o.mp4"), "--gpus-per-task", "1"])
    assert code == 2
    assert "--executor ray" in capsys.readouterr().err
