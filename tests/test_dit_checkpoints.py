"""The dit backend on what users have: stock Wan image-to-video folders (saved by diffusers itself, tiny but with the
published structure), original-format transformer files, adapters of any audio config, any number of speakers.

Parity: without audio weights our clip equals diffusers' `WanImageToVideoPipeline` on the same folder, seed,
scheduler and steps, for Wan2.1 I2V, FLF2V and Wan2.2's two experts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import EXAMPLES, require_modules, small_render_plan

require_modules("torch", "diffusers", "transformers", "ftfy")

import torch  # noqa: E402

import codirector  # noqa: E402
from codirector.cli import run as cli_run  # noqa: E402
from codirector.errors import ConfigError  # noqa: E402
from codirector.generator.backends.dit import DitBackend  # noqa: E402
from codirector.generator.backends.dit.checkpoint import WanCheckpoint  # noqa: E402
from codirector.generator.backends.dit.model import AudioWanTransformer3DModel, save_adapter  # noqa: E402
from codirector.generator.backends.dit.pipeline import ClipConditions, DitPipeline  # noqa: E402
from codirector.generator.backends.dit.tiny import write_tiny_checkpoint  # noqa: E402
from codirector.generator.testing import make_requests, synthetic_face  # noqa: E402
from codirector.generator.videoio import probe_video  # noqa: E402
from codirector.schemas import dump_document  # noqa: E402
from codirector.schemas.render_plan import DiffusionSettings  # noqa: E402

FAMILIES = ["wan2.1-i2v", "wan2.1-flf2v", "wan2.2-i2v"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("wan")
    return {family: write_tiny_checkpoint(root / family, family, seed=3) for family in FAMILIES}


def _image(height: int = 32, width: int = 48, seed: int = 0) -> np.ndarray:
    return synthetic_face(height, width, seed=seed)


# --- reading folders -------------------------------------------------------------------------------------------


def test_a_stock_folder_is_read_from_its_model_index(folders: dict[str, Path]) -> None:
    opened = {family: WanCheckpoint.open(path) for family, path in folders.items()}
    assert {family: c.family for family, c in opened.items()} == {f: f for f in FAMILIES}
    assert [opened[f].image_embeddings for f in FAMILIES] == [1, 2, 0]
    assert opened["wan2.2-i2v"].boundary_ratio == 0.9
    assert opened["wan2.1-i2v"].parts["image_encoder"] == ("transformers", "CLIPVisionModelWithProjection")


def test_a_folder_missing_a_part_is_refused_naming_it(folders: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    broken = Path(shutil.copytree(folders["wan2.1-i2v"], tmp_path / "broken"))
    shutil.rmtree(broken / "image_encoder")
    with pytest.raises(ConfigError, match="has no image_encoder/ folder"):
        WanCheckpoint.open(broken)
    (broken / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    shutil.copytree(folders["wan2.1-i2v"] / "image_encoder", broken / "image_encoder")
    with pytest.raises(ConfigError, match=r"vae/ holds none of diffusion_pytorch_model\.safetensors"):
        WanCheckpoint.open(broken)
    with pytest.raises(ConfigError, match=r"has no model_index\.json"):
        WanCheckpoint.open(broken / "vae")
    t2v = Path(shutil.copytree(folders["wan2.1-i2v"], tmp_path / "t2v"))
    config = json.loads((t2v / "transformer" / "config.json").read_text())
    (t2v / "transformer" / "config.json").write_text(json.dumps({**config, "in_channels": 16}))
    with pytest.raises(ConfigError, match="not an image-to-video one"):
        WanCheckpoint.open(t2v)


# --- parity with diffusers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_a_clip_without_audio_weights_equals_diffusers_wan_image_to_video(
    folders: dict[str, Path], family: str
) -> None:
    """Same folder, seed, scheduler (the folder's UniPC), steps and CFG: our clip is diffusers' clip."""
    from diffusers import WanImageToVideoPipeline
    from PIL import Image

    folder = folders[family]
    first, last = _image(seed=1), _image(seed=2)
    prompt, negative = "a person talks and smiles", "blurry static"
    reference = WanImageToVideoPipeline.from_pretrained(folder)
    expected = reference(
        image=Image.fromarray(first), last_image=Image.fromarray(last) if family == "wan2.1-flf2v" else None,
        prompt=prompt, negative_prompt=negative, height=32, width=48, num_frames=9, num_inference_steps=3,
        guidance_scale=4.0, generator=torch.Generator().manual_seed(7), output_type="pt",
    ).frames  # (1, F, 3, H, W) in [0, 1]  # fmt: skip

    ours = DitPipeline.from_pretrained(folder, dtype=torch.float32, device="cpu")
    assert not ours.audio.active
    given = {0: first, 8: last} if family == "wan2.1-flf2v" else {0: first}
    conditions = ClipConditions(prompt=prompt, negative_prompt=negative, given=given, audio=[], sample_rate=16_000,
                                fps=25.0)  # fmt: skip
    sampler = DiffusionSettings(num_inference_steps=3, guidance_scale=4.0, seed=7)
    video = ours.sample(ours.grid(9, 32, 48), conditions, sampler)  # (1, 3, F, H, W) in [-1, 1]
    got = (video / 2 + 0.5).clamp(0, 1).permute(0, 2, 1, 3, 4)
    assert got.shape == expected.shape
    assert float(expected.std()) > 0.01  # a real video, not a constant
    torch.testing.assert_close(got, expected.float(), atol=2e-4, rtol=1e-3)


def test_flf2v_feeds_both_frames_clip_embeddings(folders: dict[str, Path]) -> None:
    pipeline = DitPipeline.from_pretrained(folders["wan2.1-flf2v"], dtype=torch.float32, device="cpu")
    seen: list[tuple[int, ...]] = []
    embedder = pipeline.transformer.condition_embedder.image_embedder
    embedder.register_forward_pre_hook(lambda _module, args: seen.append(tuple(args[0].shape)))
    first, last = _image(seed=1), _image(seed=2)
    conditions = ClipConditions(prompt="a person talks", negative_prompt="", given={0: first, 8: last}, audio=[],
                                sample_rate=16_000, fps=25.0)  # fmt: skip
    pipeline.sample(pipeline.grid(9, 32, 48), conditions, DiffusionSettings(num_inference_steps=1,
                                                                             guidance_scale=1.0, seed=0))  # fmt: skip
    tokens = pipeline.transformer.config.pos_embed_seq_len // 2
    assert seen == [(2, tokens, pipeline.transformer.config.image_dim)]  # the first and the last frame
    only_first = pipeline.image_encoder.encode([first])
    both = pipeline.image_encoder.encode([first, last])
    assert only_first.shape[0] == 2  # a clip with one given frame shows it twice
    assert not torch.equal(both[0], both[1])


# --- original-format single files ------------------------------------------------------------------------------


def _to_original_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers' Wan transformer keys -> Wan's own (the inverse of diffusers' convert_wan_transformer_to_diffusers),
    as the original checkpoints and ComfyUI's repackaged files have them."""
    renames = [
        ("condition_embedder.time_embedder.linear_1", "time_embedding.0"),
        ("condition_embedder.time_embedder.linear_2", "time_embedding.2"),
        ("condition_embedder.text_embedder.linear_1", "text_embedding.0"),
        ("condition_embedder.text_embedder.linear_2", "text_embedding.2"),
        ("condition_embedder.time_proj", "time_projection.1"),
        ("condition_embedder.image_embedder.norm1", "img_emb.proj.0"),
        ("condition_embedder.image_embedder.ff.net.0.proj", "img_emb.proj.1"),
        ("condition_embedder.image_embedder.ff.net.2", "img_emb.proj.3"),
        ("condition_embedder.image_embedder.norm2", "img_emb.proj.4"),
        ("attn2", "cross_attn"), ("attn1", "self_attn"), (".to_out.0.", ".o."), (".to_q.", ".q."),
        (".to_k.", ".k."), (".to_v.", ".v."), (".add_k_proj.", ".k_img."), (".add_v_proj.", ".v_img."),
        (".norm_added_k.", ".norm_k_img."), ("ffn.net.0.proj", "ffn.0"), ("ffn.net.2", "ffn.2"),
        ("norm2", "norm__swap"), ("norm3", "norm2"), ("norm__swap", "norm3"),
    ]  # fmt: skip
    out = {}
    for key, value in state.items():
        new = key
        if key == "scale_shift_table":
            new = "head.modulation"
        elif key.startswith("proj_out."):
            new = key.replace("proj_out", "head.head")
        else:
            for old, replacement in renames:
                new = new.replace(old, replacement)
            new = new.replace(".scale_shift_table", ".modulation")
        out[f"model.diffusion_model.{new}"] = value.contiguous()
    return out


def test_an_original_format_transformer_file_loads_through_diffusers_single_file(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    from diffusers import WanTransformer3DModel
    from safetensors.torch import save_file

    folder = folders["wan2.1-i2v"]
    stock = WanTransformer3DModel.from_pretrained(folder / "transformer")
    file = tmp_path / "wan2.1_i2v_480p_14B_bf16.safetensors"
    save_file(_to_original_keys(stock.state_dict()), str(file))
    loaded = DitPipeline.from_pretrained(WanCheckpoint.open(folder, file), dtype=torch.float32, device="cpu")
    ours = loaded.transformer.state_dict()
    for key, value in stock.state_dict().items():
        torch.testing.assert_close(ours[key], value, msg=key)
    assert DitBackend(weights=str(folder), transformer=str(file), tiny=False).report()["checkpoint"][
        "transformer_file"] == str(file)  # fmt: skip


# --- adapters ----------------------------------------------------------------------------------------------------


def _adapter(folder: Path, path: Path, **audio: object) -> Path:
    """An adapter saved from a model whose audio config differs from the defaults, with non-zero audio weights."""
    config = json.loads((folder / "transformer" / "config.json").read_text())
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    torch.manual_seed(0)
    model = AudioWanTransformer3DModel(**{**config, **audio})
    for block in model.blocks:
        torch.nn.init.normal_(block.audio_attn.to_out[0].weight, std=0.05)
    return save_adapter(model, path)


def test_an_adapter_of_any_saved_audio_config_loads_mask_heads_included(
    folders: dict[str, Path], tmp_path: Path
) -> None:
    audio = dict(audio_dim=16, audio_tokens_per_frame=2, audio_hidden_dim=8, audio_window_padding=2, mask_layers=[1],
                 identity_dim=8, mask_head_num_heads=2)  # fmt: skip
    adapter = _adapter(folders["wan2.1-i2v"], tmp_path / "adapter.safetensors", **audio)
    pipeline = DitPipeline.from_pretrained(folders["wan2.1-i2v"], adapter=adapter, dtype=torch.float32, device="cpu")
    config = pipeline.transformer.config
    assert {k: (list(config[k]) if k == "mask_layers" else config[k]) for k in audio} == audio
    assert pipeline.audio.trained
    assert pipeline.audio.mask_head
    saved = _adapter(folders["wan2.1-i2v"], tmp_path / "again.safetensors", **audio)
    from safetensors.torch import load_file

    for key, value in load_file(str(saved)).items():
        torch.testing.assert_close(pipeline.transformer.state_dict()[key], value, msg=key)


# --- audio honesty -----------------------------------------------------------------------------------------------


def test_without_audio_weights_the_audio_branch_is_skipped_and_said(folders: dict[str, Path]) -> None:
    pipeline = DitPipeline.from_pretrained(folders["wan2.1-i2v"], dtype=torch.float32, device="cpu")
    calls: list[bool] = []
    pipeline.transformer.register_forward_pre_hook(
        lambda _m, _a, kwargs: calls.append(kwargs.get("audio_features") is not None), with_kwargs=True
    )
    voice = np.sin(np.linspace(0, 400, 16_000)).astype(np.float32)
    conditions = ClipConditions(prompt="a person talks", negative_prompt="", given={0: _image()}, audio=[voice],
                                sample_rate=16_000, fps=25.0)  # fmt: skip
    sampler = DiffusionSettings(num_inference_steps=2, guidance_scale=3.0, audio_guidance_scale=2.0, seed=0)
    pipeline.sample(pipeline.grid(9, 32, 48), conditions, sampler)
    assert calls == [False] * 4  # 2 steps x (conditional + unconditional); no audio, no no-audio branch
    assert "does NOT drive the lips" in pipeline.audio.describe()
    report = DitBackend(weights=str(folders["wan2.1-i2v"])).report()
    assert report["lip_sync_driven"] is False
    assert report["audio_conditioning"]["trained"] is False


# --- speakers, clips, memory, whole renders ----------------------------------------------------------------------


def test_two_voices_without_a_mask_head_are_gated_by_masks_drawn_where_the_faces_are() -> None:
    from codirector.generator.backends.dit.gating import decide_gating

    left, right = synthetic_face(96, 80, seed=1), synthetic_face(96, 80, seed=2)
    frame = np.concatenate([left, right], axis=1)  # two faces side by side, 160 x 96
    gating = decide_gating(2, has_mask_head=False, frame=frame, regions=[(0.5, 0, 1, 1), (0, 0, 0.5, 1)],
                           token_grid=(6, 10))  # fmt: skip
    assert gating.source == "faces"
    first, second = gating.masks
    # the first character stands right in the scene, so the right face is theirs
    assert first[:, 6:].mean() > 0.5 > first[:, :3].mean()
    assert second[:, :4].mean() > 0.5 > second[:, 7:].mean()
    blank = decide_gating(2, has_mask_head=False, frame=np.zeros((96, 160, 3), np.uint8),
                          regions=[(0.5, 0, 1, 1), (0, 0, 0.5, 1)], token_grid=(6, 10))  # fmt: skip
    assert blank.source == "scene_boxes"
    strips = decide_gating(3, has_mask_head=False, frame=None, regions=[None] * 3, token_grid=(6, 12))
    assert strips.source == "strips"
    assert [int(np.argmax(mask.mean(axis=0))) // 4 for mask in strips.masks] == [0, 1, 2]
    assert decide_gating(2, has_mask_head=True, frame=frame, regions=[None, None], token_grid=(6, 10)).source == (
        "mask_head")  # fmt: skip


def test_a_five_second_clip_is_exact_81_frame_calls_with_the_audio_sliced_to_their_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses

    requests = make_requests(height=32, width=32, num_frames=125, seed=0, upscale=1)  # 5 s at 25 fps
    backend = DitBackend(tiny=True, max_frames=81)
    pipeline = backend.pipeline
    calls: list[tuple[int, np.ndarray, set[int]]] = []
    real_sample = pipeline.sample

    def spy_sample(grid: object, conditions: ClipConditions, sampler: DiffusionSettings, **kwargs: object) -> object:
        calls.append((grid.num_frames, np.asarray(conditions.audio[0]), set(conditions.given)))  # type: ignore[attr-defined]
        return real_sample(grid, conditions, sampler, **kwargs)

    monkeypatch.setattr(pipeline, "sample", spy_sample)
    clip = dataclasses.replace(requests.clip, sampler=DiffusionSettings(num_inference_steps=1, guidance_scale=1.0,
                                                                        seed=0))  # fmt: skip
    frames = list(backend.first_last_frame(clip))
    assert len(frames) == 125
    assert [n for n, _, _ in calls] == [81, 81]  # 0..80 and 44..124: every call 4k + 1, none longer than 81
    # the second continues from the first's frames 44-48 (motion frames: two latent frames) and ends on the anchor
    assert [sorted(g) for _, _, g in calls] == [[0], [0, 1, 2, 3, 4, 80]]
    voice = clip.characters[0].audio
    per_frame = clip.sample_rate / clip.fps
    for (count, audio, _), start in zip(calls, (0, 44), strict=True):
        first = round(start * per_frame)
        assert len(audio) == round(count * per_frame)
        np.testing.assert_array_equal(audio, voice[first : first + len(audio)])


def test_the_preflight_refuses_a_too_small_memory_budget_with_the_figures(folders: dict[str, Path]) -> None:
    backend = DitBackend(weights=str(folders["wan2.1-i2v"]), memory_budget_gb=1e-6)
    with pytest.raises(ConfigError, match=r"GB") as caught:
        backend.pipeline_for(480, 832)
    message = str(caught.value)
    assert "transformer" in message  # the table of what would load
    assert "text_encoder" in message
    assert backend._pipeline is None  # refused before loading anything


@pytest.mark.parametrize("adapter", [False, True], ids=["stock", "mask-head adapter"])
def test_a_two_speaker_plan_renders_from_a_stock_folder(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, adapter: bool
) -> None:
    monkeypatch.setenv("CODIRECTOR_HOME", str(tmp_path / "home"))
    plan = codirector.plan(EXAMPLES / "dialogue" / "job.yaml", config=codirector.Config(home=tmp_path / "home"))
    small = small_render_plan(plan.render_plan)
    dump_document(small, tmp_path / "render_plan.json")
    options = ["--backend-option", f"weights={folders['wan2.1-i2v']}", "--backend-option", "max_frames=9",
               "--backend-option", "preset=plan"]  # fmt: skip
    if adapter:
        audio = dict(audio_dim=80, audio_tokens_per_frame=2, audio_hidden_dim=8, mask_layers=[0], identity_dim=8,
                     mask_head_num_heads=2)  # fmt: skip
        path = _adapter(folders["wan2.1-i2v"], tmp_path / "a.safetensors", **audio)
        options += ["--backend-option", f"adapter={path}"]
    code = cli_run(["render", str(tmp_path / "render_plan.json"), "-o", str(tmp_path / "out.mp4"), "--backend", "dit",
                    "--run-dir", str(tmp_path / "run"), *options])  # fmt: skip
    assert code == 0
    info = probe_video(tmp_path / "out.mp4")
    assert (info.video_codec, info.width, info.height) == ("h264", 64, 64)
    assert info.num_frames == round(small.duration_s * small.fps)
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    report = manifest["backend_report"]
    assert report["lip_sync_driven"] is adapter
    assert report["audio_conditioning"]["mask_head"] is adapter
    assert report["checkpoint"]["family"] == "wan2.1-i2v"


def test_device_and_dtype_default_to_what_the_machine_has() -> None:
    from codirector.generator.backends.dit.backend import _Placement

    expected = ("cuda", "bfloat16") if torch.cuda.is_available() else ("cpu", "float32")
    placement = _Placement.resolve("auto", "auto")
    assert (placement.device, placement.dtype) == expected
    assert DitBackend(tiny=True).config()["device"] == "auto"
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            _Placement.resolve("cuda", "auto")


@pytest.mark.parametrize("offload", ["model", "group"])
def test_offloading_gives_the_same_frames_as_resident_models(offload: str) -> None:
    requests = make_requests(height=32, width=32, num_frames=5, seed=0, upscale=2)
    resident = list(DitBackend(tiny=True, max_frames=9).first_last_frame(requests.clip))
    backend = DitBackend(tiny=True, max_frames=9, offload=offload)
    moved = list(backend.first_last_frame(requests.clip))
    for a, b in zip(resident, moved, strict=True):
        np.testing.assert_array_equal(a, b)
    hooked = set(backend.pipeline._hooks)
    expected = {"text_encoder", "image_encoder", "vae"} | ({"transformer_0"} if offload == "model" else set())
    assert hooked == expected  # accelerate's offload hooks on every part the mode moves
