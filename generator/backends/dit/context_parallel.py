"""One clip on several GPUs: diffusers' context parallelism (ring or Ulysses attention) over whole latent frames.

diffusers splits a model's token sequence across ranks with hooks named by the model's `_cp_plan`, runs self-attention
with ring or Ulysses communication, and gathers the output (`ModelMixin.enable_parallelism`). Wan's own plan cuts the
sequence anywhere; ours (`CONTEXT_PARALLEL_PLAN`) cuts it between latent frames, because the audio cross-attention
gives each latent frame its own window of audio tokens and the character gates are per frame (Kling-Avatar sec. 2.4,
KlingAvatar 2.0 sec. 3.3). Frames need not divide evenly (81 video frames are 21 latent frames), so the "anything"
variants of diffusers' attention run, which take uneven shards.

Processes: the pipeline stays in this process as rank 0 and does everything but the transformer's other shards;
`ContextParallelGroup` spawns ranks 1..n-1, each of which builds the same transformer(s) on its own device and runs
every forward pass rank 0 runs, on the arguments rank 0 broadcasts. So executors, reuse and file writing stay as
they are: one backend, one process that writes, n devices.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import torch
from accelerate.utils import send_to_device
from diffusers.hooks import HookRegistry, ModelHook
from diffusers.models._modeling_parallel import ContextParallelConfig, ContextParallelInput, ContextParallelOutput
from torch import nn

from codirector.errors import ConfigError

__all__ = [
    "CONTEXT_PARALLEL_PLAN",
    "ContextParallelGroup",
    "ContextParallelSpec",
    "FrameGather",
    "FrameSplit",
    "enable_context_parallel",
    "gather_frames",
]

logger = logging.getLogger(__name__)

_MIRROR_HOOK = "codirector_context_parallel_mirror"
# How long a rank waits for the others: rank 0 decodes and encodes with the VAE between forward passes.
_TIMEOUT = timedelta(minutes=60)
# Ring attention merges partial results by their log-sum-exp, which diffusers' native (SDPA) op does not return.
_RING_BACKENDS = ("flash", "flash_hub", "_flash_3_hub", "_native_cudnn", "_native_flash", "sage", "sage_hub")


class FrameSplit(nn.Module):
    """Where the plan splits: tokens (B, F, S, D), rope cos and sin (1, F, S, h), frame numbers (F,) in, this
    rank's consecutive frames of each out. Without context parallelism it returns its inputs."""

    def forward(self, tokens: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, frames: torch.Tensor) -> tuple:
        return tokens, cos, sin, frames


class FrameGather(nn.Module):
    """Where the plan gathers: (B, f, ...) this rank's frames in, (B, F, ...) every rank's out."""

    def forward(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor


def _split(dims: int, dim: int = 1) -> ContextParallelInput:
    return ContextParallelInput(split_dim=dim, expected_dims=dims, split_output=True)


# Module name -> what its hooks split or gather (diffusers' `ContextParallelModelPlan`), for AudioWanTransformer3DModel.
CONTEXT_PARALLEL_PLAN: dict[str, Any] = {
    "frame_split": {0: _split(4), 1: _split(4), 2: _split(4), 3: _split(1, dim=0)},
    "frame_gather": ContextParallelOutput(gather_dim=1, expected_dims=4),
}


def gather_frames(gather: FrameGather, local: torch.Tensor, num_frames: int, parallel_config: Any) -> torch.Tensor:
    """(B, f, ...) this rank's frames -> (B, F, ...) the clip's, through `gather` (the plan's gather point).

    Each rank's shard is padded to the longest one first, so every rank sends the same shape (gloo refuses uneven
    gathers, and NCCL gathers equal ones in one call), and the padding is dropped after.
    """
    context = None if parallel_config is None else parallel_config.context_parallel_config
    if context is None:
        return gather(local)
    shards = [len(shard) for shard in torch.arange(num_frames).tensor_split(context._flattened_mesh.size())]
    longest = shards[0]  # tensor_split puts the remainder first
    padded = torch.cat([local, local.new_zeros(local.shape[0], longest - local.shape[1], *local.shape[2:])], dim=1)
    keep = torch.cat([rank * longest + torch.arange(size) for rank, size in enumerate(shards)])
    return gather(padded)[:, keep.to(local.device)]


@dataclass(frozen=True)
class ContextParallelSpec:
    """How one clip's attention is spread: `kind` ring or ulysses over `degree` devices.

    Example:
        >>> ContextParallelSpec.parse("ring:2")
        ContextParallelSpec(kind='ring', degree=2)
    """

    kind: Literal["ring", "ulysses"]
    degree: int

    @classmethod
    def parse(cls, value: str | int) -> ContextParallelSpec:
        """`ulysses:N`, `ring:N`, or `N` (Ulysses); raises ConfigError naming the option."""
        kind, _, degree = str(value).rpartition(":")
        kind = kind or "ulysses"
        if kind not in ("ring", "ulysses") or not degree.isdigit() or int(degree) < 2:
            raise ConfigError("backend 'dit' option context_parallel", f"{value!r} is not ring:N or ulysses:N, N >= 2",
                              "Use context_parallel=ulysses:2 (two GPUs) or ring:4.")  # fmt: skip
        return cls(kind, int(degree))  # type: ignore[arg-type]

    def config(self) -> ContextParallelConfig:
        # the "anything" variants take shards of unequal length: frames rarely divide by the degree
        if self.kind == "ring":
            return ContextParallelConfig(ring_degree=self.degree, ring_anything=True)
        return ContextParallelConfig(ulysses_degree=self.degree, ulysses_anything=True)

    def check(self, device: torch.device, attention_backend: str | None) -> None:
        """Refuse what cannot run, before anything is loaded: too few devices, ring without a log-sum-exp backend."""
        visible = torch.cuda.device_count()
        if device.type == "cuda" and visible < self.degree:
            raise ConfigError("backend 'dit' option context_parallel", f"needs {self.degree} GPUs, {visible} are "
                              "visible", f"Use context_parallel={self.kind}:{visible} or more GPUs.")  # fmt: skip
        if self.kind == "ring" and (attention_backend or "native") not in _RING_BACKENDS:
            raise ConfigError("backend 'dit' option context_parallel", f"ring attention needs an attention backend "
                              f"that returns log-sum-exp, not {attention_backend or 'native'}",
                              "Add --backend-option attention_backend=_native_cudnn (or flash), or use "
                              f"context_parallel=ulysses:{self.degree}.")  # fmt: skip


@contextlib.contextmanager
def _cpu_ranks(device: torch.device) -> Iterator[None]:
    """diffusers places rank r on accelerator r % count, which divides by zero without one; CPU ranks (gloo) all
    use the CPU, so there the count is taken as 1."""
    if device.type != "cpu":
        yield
        return
    count = torch.accelerator.device_count
    torch.accelerator.device_count = lambda: 1  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.accelerator.device_count = count  # type: ignore[assignment]


def enable_context_parallel(models: Sequence[nn.Module], spec: ContextParallelSpec, device: torch.device) -> None:
    """diffusers' `enable_parallelism` on each model with our frame-aligned plan; torch.distributed must be up."""
    for model in models:
        with _cpu_ranks(device):
            model.enable_parallelism(config=spec.config(), cp_plan=CONTEXT_PARALLEL_PLAN)


class _Mirror(ModelHook):
    """On rank 0: before each forward pass, send its arguments to the other ranks, which run the same pass."""

    def __init__(self, group: ContextParallelGroup, index: int) -> None:
        super().__init__()
        self.group, self.index = group, index

    def pre_forward(self, module: nn.Module, *args: Any, **kwargs: Any) -> tuple[tuple, dict]:
        # on the CPU: a CUDA tensor would be unpickled onto rank 0's GPU on every rank
        self.group.broadcast((self.index, send_to_device(args, "cpu"), send_to_device(kwargs, "cpu")))
        return args, kwargs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _init(rank: int, world_size: int, port: int, device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(
        "nccl" if device.type == "cuda" else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
        world_size=world_size, timeout=_TIMEOUT,
    )  # fmt: skip


def _device(device_type: str, rank: int) -> torch.device:
    return torch.device(device_type, rank) if device_type == "cuda" else torch.device("cpu")


def _follow(rank: int, world_size: int, port: int, spec: ContextParallelSpec, device_type: str,
            build: Callable[[torch.device], Sequence[nn.Module]]) -> None:  # fmt: skip
    """Rank r > 0: build the same models on device r, then run every forward pass rank 0 sends until it says stop."""
    device = _device(device_type, rank)
    _init(rank, world_size, port, device)
    try:
        models = list(build(device))
        enable_context_parallel(models, spec, device)
        while True:
            message: list[Any] = [None]
            torch.distributed.broadcast_object_list(message, src=0)
            if message[0] is None:
                break
            index, args, kwargs = message[0]
            with torch.no_grad():
                models[index](*send_to_device(args, device), **send_to_device(kwargs, device))
    finally:
        torch.distributed.destroy_process_group()


class ContextParallelGroup:
    """Rank 0 here, ranks 1..n-1 in spawned processes; `attach` makes the models' passes run on all of them.

    Args:
        spec: ring or Ulysses over `spec.degree` devices.
        device_type: "cuda" (rank r on cuda:r of the visible GPUs) or "cpu" (n CPU processes, gloo).
        build: picklable; builds the same transformer(s), in the same order, on a given device (the other ranks).
    """

    def __init__(self, spec: ContextParallelSpec, device_type: str,
                 build: Callable[[torch.device], Sequence[nn.Module]]) -> None:  # fmt: skip
        if torch.distributed.is_initialized():
            raise ConfigError("backend 'dit' option context_parallel", "torch.distributed is already initialised in "
                              "this process", "Run codirector as one process; it starts the other ranks "
                              "itself.")  # fmt: skip
        self.spec, self.device = spec, _device(device_type, 0)
        port = _free_port()
        context = torch.multiprocessing.get_context("spawn")
        arguments = [(rank, spec.degree, port, spec, device_type, build) for rank in range(1, spec.degree)]
        self._processes = [context.Process(target=_follow, args=args, name=f"codirector-cp-rank{args[0]}")
                           for args in arguments]  # fmt: skip
        for process in self._processes:
            process.start()
        _init(0, spec.degree, port, self.device)
        self._open = True
        logger.info("dit: context parallelism, %s attention over %d ranks", spec.kind, spec.degree)

    def attach(self, models: Sequence[nn.Module]) -> None:
        """Enable the plan on rank 0's models and mirror their forward passes to the other ranks."""
        enable_context_parallel(models, self.spec, self.device)
        for index, model in enumerate(models):
            HookRegistry.check_if_exists_or_initialize(model).register_hook(_Mirror(self, index), _MIRROR_HOOK)

    def broadcast(self, message: Any) -> None:
        torch.distributed.broadcast_object_list([message], src=0)

    def close(self) -> None:
        """Tell the other ranks to stop and wait for them (idempotent)."""
        if not self._open:
            return
        self._open = False
        try:
            self.broadcast(None)
        finally:
            for process in self._processes:
                process.join(timeout=60)
                if process.is_alive():
                    process.kill()
            torch.distributed.destroy_process_group()
