"""The dit backend with a tiny random model: the backend contract, its options, and a whole cascade run to an MP4."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import require_modules, small_render_plan

require_modules("torch", "diffusers", "transformers")

import codirector  # noqa: E402
from codirector.cli import run as cli_run  # noqa: E402
from codirector.errors import ConfigError  # noqa: E402
from codirector.generator.backend import Backend  # noqa: E402
from codirector.generator.backends.dit import DitBackend  # noqa: E402
from codirector.generator.testing import BackendConformance  # noqa: E402
from codirector.generator.videoio import probe_video  # noqa: E402
from codirector.schemas import dump_document  # noqa: E402

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
    with pytest.raises(ConfigError, match="does not exist"):
        DitBackend(weights="/nonexistent/wan")
    with pytest.raises(ConfigError, match="offload"):
        DitBackend(tiny=True, offload="everything")
    with pytest.raises(ConfigError, match="dtype"):
        DitBackend(tiny=True, dtype="int8")


@pytest.mark.parametrize("example", ["cat", "dialogue"])  # one voice; two voices gated by predicted masks
def test_codirector_render_with_the_tiny_dit_makes_an_mp4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: str
) -> None:
    monkeypatch.setenv("CODIRECTOR_HOME", str(tmp_path / "home"))
    plan = codirector.plan(EXAMPLES / example / "job.yaml", config=codirector.Config(home=tmp_path / "home"))
    small = small_render_plan(plan.render_plan)
    dump_document(small, tmp_path / "render_plan.json")
    code = cli_run(["render", str(tmp_path / "render_plan.json"), "-o", str(tmp_path / "cat.mp4"), "--backend", "dit",
                    "--backend-option", "tiny=true", "--backend-option", "max_frames=9"])  # fmt: skip
    assert code == 0
    info = probe_video(tmp_path / "cat.mp4")
    assert (info.video_codec, info.width, info.height) == ("h264", 64, 64)
    assert set(info.audio_codecs) == {"aac"}  # the mix, and each voice when there are two
    assert info.num_frames == round(small.duration_s * small.fps)


def test_custom_sigmas_are_used() -> None:
    from codirector.generator.testing import make_requests

    requests = make_requests(height=32, width=32, num_frames=5, seed=0, upscale=2)
    default = list(DitBackend(tiny=True, max_frames=9).first_last_frame(requests.clip))
    custom = DitBackend(tiny=True, max_frames=9, sigmas=[1.0, 0.75, 0.25])
    frames = list(custom.first_last_frame(requests.clip))
    assert len(frames) == len(default) == 5
    assert custom.pipeline.sigmas == [1.0, 0.75, 0.25]  # three steps where the request asks for two
    assert any(not (a == b).all() for a, b in zip(frames, default, strict=True))  # another schedule, other frames


def test_gpus_per_task_needs_the_ray_executor(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli_run(["render", str(tmp_path / "plan.json"), "-o", str(tmp_path / "o.mp4"), "--gpus-per-task", "1"])
    assert code == 2
    assert "--executor ray" in capsys.readouterr().err


def test_first_last_frame_conditioning_keeps_the_anchors_latents_where_the_mask_says_keep() -> None:
    import numpy as np
    import torch

    from codirector.generator.backends.dit.conditioning import LatentGrid, condition_channels, frames_to_video
    from codirector.generator.backends.dit.pipeline import DitPipeline

    pipeline = DitPipeline.tiny(0)
    rng = np.random.default_rng(0)
    first, last = (rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(2))
    grid = LatentGrid(9, 32, 32)  # 3 latent frames: frame 0 alone, then frames 1-4 and 5-8
    given = {0: frames_to_video([first])[:, :, 0], 8: frames_to_video([last])[:, :, 0]}
    channels = condition_channels(grid, given, pipeline.encode)
    mask, latents = channels[:, :4], channels[:, 4:]
    assert channels.shape == (1, 20, 3, 4, 4)
    assert torch.equal(mask[0, :, 0], torch.ones(4, 4, 4))  # the first anchor fills latent frame 0
    assert torch.equal(mask[0, :, 1], torch.zeros(4, 4, 4))  # nothing given in frames 1-4
    assert torch.equal(mask[0, :3, 2], torch.zeros(3, 4, 4))  # frames 5-7 free...
    assert torch.equal(mask[0, 3, 2], torch.ones(4, 4))  # ...frame 8, the last anchor, kept
    # Wan's VAE is causal in time: latent frame 0 is the first anchor's own latent
    alone = pipeline.encode(frames_to_video([first]))
    torch.testing.assert_close(latents[:, :, 0], alone[:, :, 0])
