"""The audio-driven Wan transformer on tiny random weights: equivalence with diffusers' Wan at zero init, audio
windows in time, character masks that gate each voice, the mask head's training step, adapter files."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from helpers import require_modules

require_modules("torch", "diffusers")

import torch  # noqa: E402
from diffusers import WanTransformer3DModel  # noqa: E402

from codirector.generator.backends.dit.model import (  # noqa: E402
    AudioWanTransformer3DModel,
    load_adapter,
    save_adapter,
    tiny_config,
)
from codirector.generator.backends.dit.multi_character import (  # noqa: E402
    MaskHeadBatch,
    mask_head_loss,
    mask_head_parameters,
    masks_from_boxes,
)


def make_model(seed: int = 0, randomize_adapter: bool = False, **overrides: Any) -> AudioWanTransformer3DModel:
    torch.manual_seed(seed)
    model = AudioWanTransformer3DModel(**tiny_config(**overrides)).eval()
    if randomize_adapter:  # a trained adapter: the zero-initialised output projections made non-zero
        with torch.no_grad():
            for block in model.blocks:
                block.audio_attn.to_out[0].weight.normal_(std=0.3)
                block.audio_attn.to_out[0].bias.normal_(std=0.3)
    return model


def inputs(num_latent_frames: int = 3, in_channels: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "hidden_states": torch.randn(1, in_channels, num_latent_frames, 16, 16, generator=generator),
        "timestep": torch.tensor([500]),
        "encoder_hidden_states": torch.randn(1, 8, 32, generator=generator),
    }


def audio(num_characters: int = 1, num_latent_frames: int = 3, seed: int = 2) -> torch.Tensor:
    """(1, N, 4 * (F - 1) + 1, audio_dim 16)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, num_characters, 4 * (num_latent_frames - 1) + 1, 16, generator=generator)


@torch.no_grad()
def run(model: AudioWanTransformer3DModel, **kwargs: Any) -> torch.Tensor:
    return model(**kwargs).sample


@pytest.mark.parametrize("in_channels", [16, 36])
def test_zero_adapter_equals_stock_wan_exactly(in_channels: int) -> None:
    model = make_model(in_channels=in_channels)
    wan_args = inspect.signature(WanTransformer3DModel.__init__).parameters
    stock = WanTransformer3DModel(**{k: v for k, v in tiny_config(in_channels=in_channels).items() if k in wan_args})
    unexpected = stock.load_state_dict(model.state_dict(), strict=False).unexpected_keys
    assert unexpected
    assert all(k.startswith(("audio_projector", "mask_heads")) or "audio" in k for k in unexpected)
    stock.eval()
    batch = inputs(in_channels=in_channels)
    expected = run(stock, **batch)
    assert torch.equal(run(model, **batch), expected)
    assert torch.equal(run(model, **batch, audio_features=audio()), expected)


@pytest.mark.parametrize(("video_frame", "latent_frame"), [(0, 0), (8, 2), (9, 3), (16, 4)])
def test_audio_reaches_only_the_latent_frames_of_its_window(video_frame: int, latent_frame: int) -> None:
    # One block: later blocks' self-attention would spread the change over all frames.
    model = make_model(randomize_adapter=True, num_layers=1, mask_layers=(), audio_window_padding=1)
    batch = inputs(num_latent_frames=5)
    features = audio(num_latent_frames=5)
    perturbed = features.clone()
    perturbed[:, :, video_frame] += 3.0
    change = (run(model, **batch, audio_features=perturbed) - run(model, **batch, audio_features=features)).abs()
    per_frame = change.amax(dim=(0, 1, 3, 4))  # f
    window = range(max(latent_frame - 1, 0), min(latent_frame + 1, 4) + 1)
    for frame in range(5):
        if frame in window:
            assert per_frame[frame] > 1e-4, (frame, per_frame)
        else:
            assert per_frame[frame] <= 1e-6, (frame, per_frame)


def test_a_zero_character_mask_keeps_that_characters_audio_out() -> None:
    model = make_model(randomize_adapter=True)
    batch = inputs()
    masks = torch.ones(1, 2, 3, 8, 8)
    masks[:, 1] = 0
    features = audio(num_characters=2)
    baseline = run(model, **batch, audio_features=features, character_masks=masks)
    silent_changed, speaker_changed = features.clone(), features.clone()
    silent_changed[:, 1] += 3.0
    speaker_changed[:, 0] += 3.0
    assert torch.equal(run(model, **batch, audio_features=silent_changed, character_masks=masks), baseline)
    assert not torch.allclose(run(model, **batch, audio_features=speaker_changed, character_masks=masks), baseline)


def test_a_half_frame_mask_confines_audio_to_that_half() -> None:
    model = make_model(randomize_adapter=True, num_layers=1, mask_layers=())
    batch = inputs()
    masks = masks_from_boxes(torch.tensor([[[0.0, 0.0, 0.5, 1.0]]]), (3, 8, 8))  # left half
    features = audio()
    perturbed = features + 3.0
    change = (
        run(model, **batch, audio_features=perturbed, character_masks=masks)
        - run(model, **batch, audio_features=features, character_masks=masks)
    ).abs()  # 1 c f h w, h and w are twice the token grid
    assert change[..., :8].amax() > 1e-4
    assert change[..., 8:].amax() <= 1e-6


def test_audio_scale_zero_equals_no_audio() -> None:
    model = make_model(randomize_adapter=True)
    batch = inputs()
    assert torch.equal(run(model, **batch, audio_features=audio(), audio_scale=0.0), run(model, **batch))
    assert not torch.allclose(run(model, **batch, audio_features=audio(), audio_scale=2.0), run(model, **batch))


def test_predicted_masks_have_the_token_grid_shape_and_gate_multi_character_audio() -> None:
    model = make_model(randomize_adapter=True)
    references = torch.randn(1, 2, 16, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    out = model(**inputs(), audio_features=audio(num_characters=2), reference_latents=references, return_masks=True)
    assert out.character_masks.shape == (1, 2, 3, 8, 8)
    assert out.character_masks.min() >= 0
    assert out.character_masks.max() <= 1
    # Blocks after the first mask layer carry the gated voices; passed-in masks override the prediction.
    silent = run(model, **inputs())
    assert not torch.allclose(out.sample, silent)
    muted = torch.zeros(1, 2, 3, 8, 8)
    kwargs = {"audio_features": audio(num_characters=2), "reference_latents": references, "character_masks": muted}
    assert torch.equal(run(model, **inputs(), **kwargs), silent)


def test_inputs_are_checked() -> None:
    model = make_model()
    with pytest.raises(ValueError, match="audio_features must be"):
        model(**inputs(), audio_features=torch.randn(1, 1, 8, 16))
    with pytest.raises(ValueError, match="each voice reaches only its own character"):
        model(**inputs(), audio_features=audio(num_characters=2))
    with pytest.raises(ValueError, match="mask_layers"):
        AudioWanTransformer3DModel(**tiny_config(mask_layers=(5,)))


def synthetic_mask_batch(seed: int, batch_size: int = 4) -> MaskHeadBatch:
    """Each character is a random latent colour; a coin flip puts it in the left or right half of the frame, and
    its reference crop is that colour plus noise, so the head has to match identities, not memorise sides."""
    generator = torch.Generator().manual_seed(seed)
    colours = torch.randn(batch_size, 2, 16, 1, 1, 1, generator=generator) * 2
    left_is_first = torch.rand(batch_size, generator=generator) < 0.5
    latents = torch.randn(batch_size, 16, 3, 16, 16, generator=generator) * 0.3
    masks = torch.zeros(batch_size, 2, 9, 16, 16)
    for row in range(batch_size):
        left, right = (0, 1) if left_is_first[row] else (1, 0)
        latents[row, :, :, :, :8] += colours[row, left]
        latents[row, :, :, :, 8:] += colours[row, right]
        masks[row, left, :, :, :8] = 1
        masks[row, right, :, :, 8:] = 1
    noise = torch.randn(batch_size, 2, 16, 1, 4, 4, generator=generator)
    references = colours.expand(-1, -1, -1, 1, 4, 4) + 0.3 * noise
    return MaskHeadBatch(
        hidden_states=latents,
        timestep=torch.randint(0, 1000, (batch_size,), generator=generator),
        encoder_hidden_states=torch.randn(batch_size, 8, 32, generator=generator),
        reference_latents=references,
        character_masks=masks,
    )


def test_mask_head_learns_with_the_backbone_frozen() -> None:
    model = make_model(randomize_adapter=True).train()
    backbone = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("mask_heads")}
    optimizer = torch.optim.Adam(mask_head_parameters(model), lr=3e-3)
    batches = [synthetic_mask_batch(seed) for seed in range(40)]
    losses = []
    for step in range(40):
        loss = mask_head_loss(model, batches[step % len(batches)])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4, losses
    held_out = synthetic_mask_batch(seed=99)
    with torch.no_grad():
        logits = model.predict_character_mask_logits(
            held_out.hidden_states, held_out.timestep, held_out.encoder_hidden_states, held_out.reference_latents
        )
    targets = held_out.character_masks[:, :, ::4, ::2, ::2] > 0.5  # b n f ht wt on the token grid
    # Every step saw new identities and sides, so this measures matching identities, not memorised batches.
    assert ((logits > 0) == targets).float().mean() > 0.7
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in backbone.items())
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("mask_heads"))


def test_adapter_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    trained = make_model(randomize_adapter=True)
    with torch.no_grad():
        for parameter in trained.mask_heads.parameters():
            parameter.add_(0.1)
    path = save_adapter(trained, tmp_path / "adapter.safetensors")
    fresh = make_model()  # same backbone seed, zero adapter
    load_adapter(fresh, path)
    references = torch.randn(1, 2, 16, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    kwargs = {**inputs(), "audio_features": audio(num_characters=2), "reference_latents": references}
    assert torch.equal(run(fresh, **kwargs), run(trained, **kwargs))
    with pytest.raises(ValueError, match="another config"):
        load_adapter(make_model(audio_tokens_per_frame=2), path)


def test_from_pretrained_loads_a_stock_wan_folder_and_an_adapter(tmp_path: Path) -> None:
    wan_args = inspect.signature(WanTransformer3DModel.__init__).parameters
    torch.manual_seed(3)
    WanTransformer3DModel(**{k: v for k, v in tiny_config().items() if k in wan_args}).save_pretrained(tmp_path)
    stock = WanTransformer3DModel.from_pretrained(tmp_path)
    audio_config = {k: v for k, v in tiny_config().items() if k not in wan_args}
    model = AudioWanTransformer3DModel.from_pretrained(tmp_path, **audio_config)
    assert not any(p.is_meta for p in model.parameters())
    assert all(block.audio_attn.to_out[0].weight.abs().sum() == 0 for block in model.blocks)
    assert model.mask_heads["0"].mlp[0].weight.std() > 0
    batch = inputs()
    assert torch.equal(run(model, **batch, audio_features=audio()), run(stock, **batch))

    trained = make_model(randomize_adapter=True)
    save_adapter(trained, tmp_path / "adapter.safetensors")
    loaded = AudioWanTransformer3DModel.from_pretrained(tmp_path, adapter_path=tmp_path / "adapter.safetensors")
    assert torch.equal(loaded.blocks[1].audio_attn.to_out[0].weight, trained.blocks[1].audio_attn.to_out[0].weight)
