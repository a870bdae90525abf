"""Context parallelism on the CPU: two real processes (gloo), diffusers' Ulysses attention, our frame-aligned plan.

What is checked: a clip split between ranks by whole latent frames, unevenly (3 latent frames on 2 ranks), gives the
single-process output, audio windows and character gates included; the backend's group of processes renders the same
clip as one process; what cannot run is refused before anything loads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from helpers import require_modules

require_modules("torch", "diffusers")

import torch  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402

from codirector.errors import ConfigError  # noqa: E402
from codirector.generator.backends.dit.audio_attention import audio_windows  # noqa: E402
from codirector.generator.backends.dit.context_parallel import (  # noqa: E402
    ContextParallelSpec,
    _free_port,
    enable_context_parallel,
)
from codirector.generator.backends.dit.model import AudioWanTransformer3DModel, tiny_config  # noqa: E402


def _model() -> AudioWanTransformer3DModel:
    torch.manual_seed(0)
    model = AudioWanTransformer3DModel(**tiny_config(num_attention_heads=4, attention_head_dim=6)).eval()
    with torch.no_grad():  # a trained adapter: the zero-initialised output projections made non-zero
        for block in model.blocks:
            block.audio_attn.to_out[0].weight.normal_(std=0.3)
    return model


def _inputs(num_frames: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    masks = torch.rand(1, 2, num_frames, 8, 8, generator=generator)
    return {
        "hidden_states": torch.randn(1, 16, num_frames, 16, 16, generator=generator),
        "timestep": torch.tensor([500]),
        "encoder_hidden_states": torch.randn(1, 8, 32, generator=generator),
        "audio_features": torch.randn(1, 2, 4 * (num_frames - 1) + 1, 16, generator=generator),
        "character_masks": masks,
    }


def _rank(rank: int, world_size: int, port: int, num_frames: int, queue: Any) -> None:
    """One rank of the model-level check: the same tiny model, Ulysses over `world_size` CPU processes."""
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                         world_size=world_size)  # fmt: skip
    try:
        model = _model()
        enable_context_parallel([model], ContextParallelSpec("ulysses", world_size), torch.device("cpu"))
        seen: list[int] = []
        model.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[1]))
        with torch.no_grad():
            output = model(**_inputs(num_frames), return_dict=False)[0]
        queue.put((rank, seen[0], output.numpy()))
    finally:
        torch.distributed.destroy_process_group()


def test_frames_split_unevenly_between_two_ranks_give_the_single_process_output() -> None:
    num_frames = 3  # 2 latent frames on rank 0, 1 on rank 1: only the "anything" attention takes that
    with torch.no_grad():
        expected = _model()(**_inputs(num_frames), return_dict=False)[0].numpy()
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = _free_port()
    processes = [context.Process(target=_rank, args=(rank, 2, port, num_frames, queue)) for rank in range(2)]
    for process in processes:
        process.start()
    try:
        results = sorted(queue.get(timeout=90) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    tokens_per_frame = 8 * 8
    assert [seen for _, seen, _ in results] == [2 * tokens_per_frame, 1 * tokens_per_frame]  # whole frames
    for _, _, output in results:
        np.testing.assert_allclose(output, expected, atol=1e-5, rtol=0)
    assert np.abs(expected).max() > 0.1


def test_a_ranks_audio_windows_are_its_frames_windows_in_the_whole_clip() -> None:
    whole = audio_windows((5, 2, 2), 3, 1, "cpu")
    last_two = audio_windows((5, 2, 2), 3, 1, "cpu", torch.tensor([3, 4]))
    by_frame = {
        int(frame): index
        for group in whole.groups
        for frame, index in zip(group.frames, group.audio_index, strict=True)
    }
    for group in last_two.groups:
        for position, index in zip(group.frames.tolist(), group.audio_index, strict=True):
            assert index.tolist() == by_frame[3 + position].tolist()
    assert last_two.order.shape == (2,)


def test_specs_parse_and_what_cannot_run_is_refused() -> None:
    assert ContextParallelSpec.parse("ring:4") == ContextParallelSpec("ring", 4)
    assert ContextParallelSpec.parse(2) == ContextParallelSpec("ulysses", 2)
    for bad in ("ring:1", "tensor:2", "ulysses:x"):
        with pytest.raises(ConfigError, match="ring:N or ulysses:N"):
            ContextParallelSpec.parse(bad)
    with pytest.raises(ConfigError, match="log-sum-exp"):
        ContextParallelSpec("ring", 2).check(torch.device("cpu"), None)
    ContextParallelSpec("ring", 2).check(torch.device("cpu"), "_native_cudnn")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="needs 2 GPUs"):
            ContextParallelSpec("ulysses", 2).check(torch.device("cuda"), None)


def test_the_backends_two_ranks_render_the_clip_one_process_renders() -> None:
    from codirector.generator.backends.dit import DitBackend
    from codirector.generator.testing import make_requests

    requests = make_requests(height=32, width=32, num_frames=9, seed=0, upscale=2)  # 3 latent frames
    single = list(DitBackend(tiny=True, max_frames=9).first_last_frame(requests.clip))
    backend = DitBackend(tiny=True, max_frames=9, device="cpu", context_parallel="ulysses:2")
    held: list[int] = []
    try:
        backend.pipeline.transformer.blocks[0].register_forward_pre_hook(lambda m, args: held.append(args[0].shape[1]))
        parallel = list(backend.first_last_frame(requests.clip))
        follower = backend._group._processes[0]
        assert follower.is_alive()
    finally:
        backend.close()
    follower.join(timeout=30)
    assert follower.exitcode == 0  # told to stop, it stopped cleanly
    assert held  # every forward pass on rank 0 held 2 of the 3 latent frames (2 x 2 tokens each)
    assert set(held) == {2 * 2 * 2}
    assert len(parallel) == len(single) == 9
    difference = max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(parallel, single, strict=True))
    assert difference <= 1  # uint8 rounding of float sums taken in another order


def test_the_backend_refuses_context_parallel_with_what_it_cannot_combine() -> None:
    from codirector.generator.backends.dit import DitBackend

    for options, match in (
        ({"offload": "group"}, "does not combine"),
        ({"first_block_cache": 0.05}, "does not combine"),
        ({"device": "cuda:1"}, "CUDA_VISIBLE_DEVICES|no CUDA GPU"),
        ({"context_parallel": "ring:2", "device": "cpu"}, "log-sum-exp"),
        ({"context_parallel": "pipeline:2"}, "ring:N or ulysses:N"),
    ):
        with pytest.raises(ConfigError, match=match):
            DitBackend(tiny=True, **{"context_parallel": "ulysses:2", "device": "cpu", **options})


def test_the_memory_estimate_gives_each_rank_its_share_of_the_tokens() -> None:
    from codirector.generator.backends.dit.memory import transformer_working_bytes
    from codirector.generator.backends.dit.published import published_configs

    config = published_configs("Wan2.1-I2V-14B-480P-Diffusers")["transformer"]
    size = dict(height=480, width=832, num_frames=81, dtype_bytes=2)
    one, two, four = (transformer_working_bytes(config, **size, context_parallel=n) for n in (1, 2, 4))
    assert one > two > four  # 21 latent frames: 11 on rank 0 of 2, 6 of 4
    assert 0.5 < two / one < 0.6
