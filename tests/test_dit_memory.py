"""The dit backend's memory preflight: parameter counts of the published Wan2.1 14B configs built on the meta device,
the offload modes' order, the refusal with its table and the option that fits, and the working-set formulas against
a live-storage trace of the real modules."""

from __future__ import annotations

import json
import re
import weakref
from pathlib import Path
from typing import Any

import pytest
from helpers import require_modules

require_modules("torch", "diffusers", "transformers")

import torch  # noqa: E402
from diffusers import AutoencoderKLWan, WanTransformer3DModel  # noqa: E402
from torch._subclasses.fake_tensor import FakeTensorMode  # noqa: E402
from torch.utils import _pytree as pytree  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from codirector.errors import ConfigError  # noqa: E402
from codirector.generator.backends.dit.memory import (  # noqa: E402
    OFFLOAD_MODES,
    SAFETY_FACTOR,
    MemoryEstimate,
    check_fits,
    component_parameters,
    estimate_memory,
    format_table,
    transformer_working_bytes,
    vae_working_bytes,
)
from codirector.generator.backends.dit.model import AudioWanTransformer3DModel, tiny_config  # noqa: E402
from codirector.generator.backends.dit.published import published_configs, write_config_folder  # noqa: E402

I2V_480P = "Wan2.1-I2V-14B-480P-Diffusers"
FLF2V = "Wan2.1-FLF2V-14B-720P-diffusers"
SIZES = {"480p": (480, 832), "720p": (720, 1280)}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("published")
    return {name: write_config_folder(root / name, published_configs(name)) for name in (I2V_480P, FLF2V)}


@pytest.fixture(scope="module")
def counts(published: dict[str, Path]) -> dict[str, int]:
    return component_parameters(published[I2V_480P])


def transformer_config(root: Path) -> dict[str, Any]:
    return json.loads((root / "transformer" / "config.json").read_text())


def estimate(counts: dict[str, int], root: Path, offload: str, size: str = "480p", **options: Any) -> MemoryEstimate:
    height, width = SIZES[size]
    settings: dict[str, Any] = dict(dtype_bytes=2, height=height, width=width, num_frames=81, vae_tiling=True)
    settings.update(options)
    return estimate_memory(counts, offload=offload, transformer_config=transformer_config(root), **settings)


# --- parameter counts --------------------------------------------------------------------------------------------


def test_published_i2v_counts(counts: dict[str, int], published: dict[str, Path]) -> None:
    # Stock Wan2.1-I2V-14B is 16.39e9; our 40 audio cross-attentions (4 * 5120^2 each) and the audio projector add
    # 4.37e9, so the transformer we load is 20.76e9.
    assert set(counts) == {"transformer", "text_encoder", "image_encoder", "vae"}
    assert 20.7e9 < counts["transformer"] < 20.8e9
    assert 5.6e9 < counts["text_encoder"] < 5.75e9  # umt5-xxl encoder
    assert 0.62e9 < counts["image_encoder"] < 0.64e9  # CLIP ViT-H/14 vision tower + projection
    assert 0.12e9 < counts["vae"] < 0.13e9
    with torch.device("meta"):
        config = transformer_config(published[I2V_480P])
        stock = sum(p.numel() for p in WanTransformer3DModel.from_config(config).parameters())
        ours = AudioWanTransformer3DModel.from_config(config)
    audio = sum(p.numel() for name, p in ours.named_parameters() if "audio" in name)
    assert 16.3e9 < stock < 16.5e9
    assert counts["transformer"] == stock + audio


def test_flf2v_adds_the_two_frame_position_embedding(counts: dict[str, int], published: dict[str, Path]) -> None:
    flf2v = component_parameters(published[FLF2V])
    assert flf2v["transformer"] - counts["transformer"] == 2 * 257 * 1280
    assert {k: v for k, v in flf2v.items() if k != "transformer"} == {
        k: v for k, v in counts.items() if k != "transformer"}  # fmt: skip


def test_adapter_config_shapes_the_counted_audio_modules(counts: dict[str, int], published: dict[str, Path]) -> None:
    wider = component_parameters(published[I2V_480P], adapter_config={"audio_dim": 1024, "mask_layers": [20]})
    assert wider["transformer"] > counts["transformer"]


def test_meta_counts_equal_real_tiny_models(tmp_path: Path) -> None:
    """A tiny folder: the meta-device counts equal those of the same models built for real."""
    import transformers

    text = dict(model_type="umt5", d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, vocab_size=128,
                feed_forward_proj="gated-gelu", tie_word_embeddings=False)  # fmt: skip
    image = dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_attention_heads=4,
                 num_hidden_layers=2, patch_size=14, image_size=28, projection_dim=16)  # fmt: skip
    vae = dict(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True])
    transformer = tiny_config(in_channels=36, image_dim=16, added_kv_proj_dim=24, mask_layers=[0])
    configs = published_configs(I2V_480P)
    write_config_folder(tmp_path, {"model_index": configs["model_index"], "transformer": transformer,
                                   "text_encoder": text, "image_encoder": image, "vae": vae})  # fmt: skip
    real = {
        "transformer": AudioWanTransformer3DModel(**transformer),
        "text_encoder": transformers.UMT5EncoderModel(transformers.UMT5Config(**text)),
        "image_encoder": transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**image)),
        "vae": AutoencoderKLWan(**vae),
    }
    assert component_parameters(tmp_path) == {name: sum(p.numel() for p in m.parameters()) for name, m in real.items()}
    small = estimate_memory(component_parameters(tmp_path), dtype_bytes=4, offload="none", height=64, width=64,
                            num_frames=9, vae_tiling=False, transformer_config=transformer)  # fmt: skip
    assert 1e9 < small.peak_accelerator_bytes < 2e9  # the 1 GiB reserve and a few MB
    assert "transformer" in format_table(small)


def test_wan22_two_experts_without_image_encoder(tmp_path: Path, counts: dict[str, int]) -> None:
    """Wan2.2 I2V-A14B: transformer and transformer_2 without the image branch, no image encoder."""
    configs = published_configs(I2V_480P)
    expert = {k: v for k, v in configs["transformer"].items() if k not in ("image_dim", "added_kv_proj_dim")}
    index = {k: v for k, v in configs["model_index"].items() if not k.startswith("image")}
    write_config_folder(tmp_path, {"model_index": {**index, "transformer_2": index["transformer"]},
                                   "transformer": expert, "transformer_2": expert, "text_encoder":
                                   configs["text_encoder"], "vae": configs["vae"]})  # fmt: skip
    experts = component_parameters(tmp_path)
    assert set(experts) == {"transformer", "transformer_2", "text_encoder", "vae"}
    assert experts["transformer"] == experts["transformer_2"] < counts["transformer"]
    none, model, group = (estimate_memory(experts, dtype_bytes=2, offload=mode, height=480, width=832, num_frames=81,
                          vae_tiling=True, transformer_config=expert) for mode in OFFLOAD_MODES)  # fmt: skip
    both = 2 * (experts["transformer"] + experts["transformer_2"])
    assert none.peak_accelerator_bytes > both > model.peak_accelerator_bytes > group.peak_accelerator_bytes
    assert group.host_bytes == model.host_bytes  # groups are pinned as they stream (low_cpu_mem_usage)


def test_folder_refusals(tmp_path: Path, published: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match=r"has no model_index\.json"):
        component_parameters(tmp_path)
    configs = published_configs(I2V_480P)
    write_config_folder(tmp_path, {k: v for k, v in configs.items() if k != "text_encoder"})
    with pytest.raises(ConfigError, match=r"has no text_encoder/config.json"):
        component_parameters(tmp_path)
    write_config_folder(tmp_path, {**configs, "model_index": {**configs["model_index"], "vae": ["diffusers", "Nope"]}})
    with pytest.raises(ConfigError, match=r"diffusers.Nope"):
        component_parameters(tmp_path)
    del configs["model_index"]["transformer"]
    write_config_folder(tmp_path, configs)
    with pytest.raises(ConfigError, match="names no transformer"):
        component_parameters(tmp_path)


# --- the estimate and the preflight ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("vae_tiling", [True, False])
def test_offload_modes_order_peak_memory(
    counts: dict[str, int], published: dict[str, Path], size: str, vae_tiling: bool
) -> None:
    none, model, group = (estimate(counts, published[I2V_480P], mode, size, vae_tiling=vae_tiling)
                          for mode in OFFLOAD_MODES)  # fmt: skip
    assert none.peak_accelerator_bytes > model.peak_accelerator_bytes > group.peak_accelerator_bytes
    # all weights stay on the host when offloading; group offload pins each group as it streams, no second copy
    assert group.host_bytes == model.host_bytes
    # model offload's peak is the transformer (its weights dwarf the rest) with its working set
    transformer = next(row for row in model.components if row.name == "transformer")
    assert model.peak_accelerator_bytes == transformer.accelerator_bytes + 2**30


def test_tiling_and_size_raise_what_they_should(counts: dict[str, int], published: dict[str, Path]) -> None:
    root = published[I2V_480P]
    tiled, untiled = (estimate(counts, root, "group", "720p", vae_tiling=t) for t in (True, False))
    assert untiled.peak_accelerator_bytes > tiled.peak_accelerator_bytes
    assert untiled.peak_phase == "VAE encode/decode"
    sd, hd = (estimate(counts, root, "none", size) for size in ("480p", "720p"))
    assert hd.peak_accelerator_bytes > sd.peak_accelerator_bytes
    assert estimate(counts, root, "none", dtype_bytes=4).peak_accelerator_bytes > 4 * counts["transformer"]


def test_check_fits_names_the_mode_that_fits(counts: dict[str, int], published: dict[str, Path]) -> None:
    root = published[I2V_480P]
    none, model, group = (estimate(counts, root, mode) for mode in OFFLOAD_MODES)
    check_fits(none, accelerator_bytes=none.peak_accelerator_bytes, host_bytes=None)  # fits: no error
    check_fits(none, accelerator_bytes=None, host_bytes=None)  # a CPU run checks nothing

    budget = (model.peak_accelerator_bytes + none.peak_accelerator_bytes) // 2
    with pytest.raises(ConfigError) as caught:
        check_fits(none, accelerator_bytes=budget, host_bytes=None)
    message = str(caught.value)
    assert "--backend-option offload=model" in message
    assert f"about {none.peak_accelerator_bytes / 1e9:.1f} GB on the accelerator" in message
    assert f"which has {budget / 1e9:.1f} GB free" in message
    assert re.search(r"transformer +20\.76 +16-bit +41\.5", message)
    assert re.search(r"text_encoder +5\.68", message)

    with pytest.raises(ConfigError, match="offload=group"):
        check_fits(none, accelerator_bytes=group.peak_accelerator_bytes, host_bytes=None)
    # group offload fits the accelerator but the weights do not fit this host's RAM: nothing fits
    with pytest.raises(ConfigError, match=r"No offload mode fits.*lower the resolution"):
        check_fits(none, accelerator_bytes=group.peak_accelerator_bytes, host_bytes=model.host_bytes - 1)
    with pytest.raises(ConfigError, match="host RAM"):
        check_fits(group, accelerator_bytes=None, host_bytes=group.host_bytes - 1)


def test_check_fits_suggests_vae_tiling_when_only_it_helps(counts: dict[str, int], published: dict[str, Path]) -> None:
    root = published[I2V_480P]
    untiled = estimate(counts, root, "group", "720p", vae_tiling=False)
    tiled = estimate(counts, root, "group", "720p", vae_tiling=True)
    with pytest.raises(ConfigError, match="offload=group vae_tiling=true"):
        check_fits(untiled, accelerator_bytes=tiled.peak_accelerator_bytes, host_bytes=None)


def test_estimate_refuses_bad_options(counts: dict[str, int], published: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="option offload"):
        estimate(counts, published[I2V_480P], "cpu")
    with pytest.raises(ValueError, match="4k \\+ 1"):
        estimate(counts, published[I2V_480P], "none", num_frames=80)


# --- the formulas against a trace of the real modules ------------------------------------------------------------


class LiveBytes(TorchDispatchMode):
    """The peak of the bytes held by tensors that ops create while the mode is on (inputs and weights excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self.sizes: dict[int, int] = {}

    def _free(self, key: int) -> None:
        self.live -= self.sizes.pop(key)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for tensor in pytree.tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and tensor.untyped_storage()._cdata not in self.sizes:
                storage = tensor.untyped_storage()
                self.sizes[storage._cdata] = storage.nbytes()
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._free, storage._cdata)
        return out


@pytest.mark.parametrize(("height", "width", "num_frames"), [(480, 832, 9), (320, 576, 21)])
def test_transformer_formula_covers_a_traced_forward(height: int, width: int, num_frames: int) -> None:
    """A one-block model of Wan 14B's proportions (ffn_dim / width 2.75) at width 256, run for real in bf16 on the
    CPU: the formula is at least the live bytes of the forward plus its inputs, and not far above."""
    config = dict(published_configs(I2V_480P)["transformer"], num_attention_heads=2, ffn_dim=704, num_layers=1,
                  text_dim=64, image_dim=64, added_kv_proj_dim=256, audio_dim=16, audio_hidden_dim=32)  # fmt: skip
    del config["_class_name"]
    torch.manual_seed(0)
    model = AudioWanTransformer3DModel(**config).to(torch.bfloat16).eval()
    latent_frames = (num_frames - 1) // 4 + 1
    inputs = dict(
        hidden_states=torch.randn(1, 36, latent_frames, height // 8, width // 8, dtype=torch.bfloat16),
        timestep=torch.tensor([500]), encoder_hidden_states=torch.randn(1, 512, 64, dtype=torch.bfloat16),
        encoder_hidden_states_image=torch.randn(1, 257, 64, dtype=torch.bfloat16),
        audio_features=torch.randn(1, 1, num_frames, 16, dtype=torch.bfloat16),
    )  # fmt: skip
    tracker = LiveBytes()
    with torch.no_grad(), tracker:
        model(**inputs, return_dict=False)
    traced = tracker.peak + sum(t.numel() * t.element_size() for t in inputs.values())
    formula = transformer_working_bytes(config, height=height, width=width, num_frames=num_frames, dtype_bytes=2)
    assert traced <= formula <= 1.5 * traced


@pytest.mark.parametrize(("height", "width", "num_frames", "tiling"),
                         [(64, 64, 9, False), (320, 320, 5, False), (320, 320, 5, True)])  # fmt: skip
def test_vae_formula_matches_a_traced_encode_and_decode(height: int, width: int, num_frames: int, tiling: bool) -> None:
    """The published Wan VAE on fake tensors (no compute): the formula is the traced peak of the larger pass
    within a few percent (the per-pixel constants come from such traces)."""
    peaks = []
    with FakeTensorMode():
        vae = AutoencoderKLWan().eval()
        if tiling:
            vae.enable_tiling()
        latent_frames = (num_frames - 1) // 4 + 1
        for video in (False, True):
            shape = (1, 3, num_frames, height, width) if video else (1, 16, latent_frames, height // 8, width // 8)
            x = torch.randn(shape)
            tracker = LiveBytes()
            with torch.no_grad(), tracker:
                vae.encode(x).latent_dist.mode() if video else vae.decode(x).sample
            peaks.append(tracker.peak + x.numel() * 4)
    formula = vae_working_bytes(height=height, width=width, num_frames=num_frames, tiling=tiling)
    assert 0.98 * max(peaks) <= formula <= 1.2 * max(peaks)
    assert SAFETY_FACTOR * formula > max(peaks)
