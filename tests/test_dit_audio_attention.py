"""The windowed audio cross-attention without a mask (Kling-Avatar sec. 2.4, KlingAvatar 2.0 sec. 3.3): it equals
the dense block-diagonal masked attention, runs under diffusers' attention backends, and never hands a backend a
mask (flash and sage refuse one)."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import require_modules

require_modules("torch", "diffusers")

import torch  # noqa: E402
from diffusers.models.transformers import transformer_wan  # noqa: E402

from codirector.generator.backends.dit.audio_attention import (  # noqa: E402
    AudioInjection,
    AudioWanTransformerBlock,
    audio_windows,
)
from codirector.generator.backends.dit.model import AudioWanTransformer3DModel, tiny_config  # noqa: E402


def make_model(seed: int = 0, **overrides: Any) -> AudioWanTransformer3DModel:
    """A tiny model with a 'trained' audio adapter: random (non-zero) audio output projections."""
    torch.manual_seed(seed)
    model = AudioWanTransformer3DModel(**tiny_config(**overrides)).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.audio_attn.to_out[0].weight.normal_(std=0.3)
            block.audio_attn.to_out[0].bias.normal_(std=0.3)
    return model


def masked_reference(
    block: AudioWanTransformerBlock,
    hidden_states: torch.Tensor,
    tokens: torch.Tensor,
    grid: tuple[int, int, int],
    padding: int,
    gates: torch.Tensor | None,
    scale: float,
) -> torch.Tensor:
    """The dense form: every video token against all F * K audio tokens under a (1, 1, L, F * K) bool mask, True
    where |frame(video token) - frame(audio token)| <= padding; one call per character, gated, summed."""
    num_frames, height, width = grid
    tokens_per_frame = tokens.shape[2] // num_frames
    video_frame = torch.arange(num_frames).repeat_interleave(height * width)  # l
    audio_frame = torch.arange(num_frames).repeat_interleave(tokens_per_frame)  # (f k)
    mask = ((video_frame[:, None] - audio_frame[None, :]).abs() <= padding)[None, None]
    norm_hidden_states = block.norm_audio(hidden_states.float()).type_as(hidden_states)
    output = torch.zeros_like(hidden_states)
    for character in range(tokens.shape[1]):
        attended = block.audio_attn(norm_hidden_states, tokens[:, character], mask, None)  # b l d
        if gates is not None:
            attended = attended * gates[:, character, :, None]
        output = output + attended
    return output * scale


def test_windows_group_frames_by_window_length() -> None:
    windows = audio_windows((6, 2, 3), audio_tokens_per_frame=2, padding=2, device="cpu")
    assert [group.frames.tolist() for group in windows.groups] == [[0, 5], [1, 4], [2, 3]]
    # frame 0 sees frames 0..2, frame 5 sees 3..5; two audio tokens per frame
    assert windows.groups[0].audio_index.tolist() == [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]]
    assert windows.groups[2].audio_index[1].tolist() == list(range(2, 12))  # frame 3 sees 1..5
    assert windows.order.tolist() == [0, 2, 4, 5, 3, 1]
    assert len(audio_windows((1, 2, 3), 2, 2, "cpu").groups) == 1
    with pytest.raises(ValueError, match="padding must be >= 0"):
        audio_windows((3, 2, 2), 2, -1, "cpu")


@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("num_frames", [1, 2, 5])
@pytest.mark.parametrize("num_characters", [1, 3])
@pytest.mark.parametrize("gated", [False, True])
@torch.no_grad()
def test_mask_free_attention_equals_the_dense_masked_form(
    padding: int, num_frames: int, num_characters: int, gated: bool
) -> None:
    block = make_model().blocks[0]
    grid, tokens_per_frame, dim, batch = (num_frames, 3, 4), 4, 24, 2  # Ht != Wt: a transposed grid would show
    generator = torch.Generator().manual_seed(num_frames * 10 + padding)
    hidden_states = torch.randn(batch, num_frames * 12, dim, generator=generator)
    tokens = torch.randn(batch, num_characters, num_frames * tokens_per_frame, dim, generator=generator)
    gates = torch.rand(batch, num_characters, num_frames * 12, generator=generator) if gated else None
    windows = audio_windows(grid, tokens_per_frame, padding, hidden_states.device)
    assert len(windows.groups) <= padding + 1

    output = block.audio_attention(hidden_states, AudioInjection(tokens, windows, gates, scale=1.5))
    expected = masked_reference(block, hidden_states, tokens, grid, padding, gates, scale=1.5)
    assert output.shape == (batch, num_frames * 12, dim)
    assert expected.abs().amax() > 1e-2
    torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-5)
    if num_frames > padding + 1:  # the window matters: attending all audio tokens gives something else
        unwindowed = masked_reference(block, hidden_states, tokens, grid, num_frames, gates, scale=1.5)
        assert not torch.allclose(output, unwindowed, atol=1e-3)


def two_character_inputs(num_frames: int = 5) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {
        "hidden_states": torch.randn(1, 16, num_frames, 16, 16, generator=generator),
        "timestep": torch.tensor([500]),
        "encoder_hidden_states": torch.randn(1, 8, 32, generator=generator),
        "audio_features": torch.randn(1, 2, 4 * (num_frames - 1) + 1, 16, generator=generator),
        "character_masks": torch.rand(1, 2, num_frames, 8, 8, generator=generator),
    }


# The backends of diffusers' AttentionBackendName that run on a CPU without extra packages or downloads.
CPU_BACKENDS = ["native", "_native_math", "_native_flash", "flex"]


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@torch.no_grad()
def test_every_cpu_attention_backend_runs_the_audio_model(backend: str) -> None:
    batch = two_character_inputs()
    expected = make_model()(**batch).sample
    silent = make_model()(**{k: v for k, v in batch.items() if k not in ("audio_features", "character_masks")})
    assert not torch.allclose(expected, silent.sample, atol=1e-3)  # the audio reaches the output
    from diffusers.models.attention_dispatch import _AttentionBackendRegistry

    model = make_model()
    previous = _AttentionBackendRegistry.get_active_backend()[0]
    try:
        model.set_attention_backend(backend)  # also sets diffusers' process-wide active backend
        assert model.blocks[0].audio_attn.processor._attention_backend == backend
        torch.testing.assert_close(model(**batch).sample, expected, rtol=1e-4, atol=1e-4)
    finally:
        _AttentionBackendRegistry.set_active_backend(previous)


def test_no_attention_of_the_model_gets_a_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    """flash-attn 2 raises on `attn_mask`, sage has no such argument: a mask-free dispatch runs on both."""
    calls = []
    dispatch = transformer_wan.dispatch_attention_fn

    def mask_refusing_dispatch(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, **kwargs: Any) -> Any:
        if kwargs.get("attn_mask") is not None:
            raise ValueError("`attn_mask` is not supported for flash-attn 2.")
        calls.append((tuple(query.shape), tuple(key.shape)))
        return dispatch(query, key, value, **kwargs)

    monkeypatch.setattr(transformer_wan, "dispatch_attention_fn", mask_refusing_dispatch)
    references = torch.randn(1, 2, 16, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    model = make_model()
    with torch.no_grad():
        model(**two_character_inputs(), reference_latents=references, return_masks=True)
    # audio calls: queries are one latent frame's 8 x 8 tokens; (batch, seq, heads, head_dim) after projection
    audio_calls = sorted(call for call in calls if call[0][1] == 64)
    # 5 latent frames, padding 1: frames 0 and 4 see 2 frames, 1..3 see 3; 2 characters in the batch; 2 blocks
    assert audio_calls == [((4, 64, 2, 12), (4, 8, 2, 12))] * 2 + [((6, 64, 2, 12), (6, 12, 2, 12))] * 2
    assert len(calls) > len(audio_calls)  # self-, text and mask-head attention went through the same check
