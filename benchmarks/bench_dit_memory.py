"""The dit backend's memory estimate for the published Wan2.1 14B checkpoints, as JSON.

Usage:
    python benchmarks/bench_dit_memory.py [--frames 81] [--dtype-bytes 2]

Writes the published JSON configs (no weights) of Wan2.1-I2V-14B-480P-Diffusers, -720P-Diffusers and
Wan2.1-FLF2V-14B-720P-diffusers to a temporary folder, counts each part's parameters on the meta device, and prints
for 480p (832x480) and 720p (1280x720), each offload mode and VAE tiling on and off: the peak accelerator GB and the
host RAM GB (GB = 10^9 bytes), with the phase that sets the peak, for the stock weights and with an audio adapter
of the default config. Nothing runs on an accelerator.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from codirector.generator.backends.dit.memory import (
    OFFLOAD_MODES,
    component_parameters,
    estimate_memory,
)
from codirector.generator.backends.dit.published import published_configs, write_config_folder

CHECKPOINTS = ("Wan2.1-I2V-14B-480P-Diffusers", "Wan2.1-I2V-14B-720P-Diffusers", "Wan2.1-FLF2V-14B-720P-diffusers")
SIZES = {"480p": (480, 832), "720p": (720, 1280)}
# stock weights build no audio modules; an adapter of the default audio config adds them to every block
AUDIO: dict[str, dict[str, object]] = {"stock (no adapter)": {"with_audio": False}, "with a default-config adapter": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--dtype-bytes", type=int, default=2, help="transformer and text encoder (2: bfloat16)")
    args = parser.parse_args()
    report: dict[str, object] = {"unit": "GB = 1e9 bytes", "num_frames": args.frames, "dtype_bytes": args.dtype_bytes}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CHECKPOINTS:
            configs = published_configs(name)
            root = write_config_folder(Path(tmp) / name, configs)
            start = time.perf_counter()
            entry: dict[str, object] = {}
            for audio, adapter_config in AUDIO.items():
                counts = component_parameters(root, adapter_config)
                entry[audio] = _table(counts, {**configs["transformer"], **adapter_config}, args)
            entry["count_seconds"] = round(time.perf_counter() - start, 2)
            report[name] = entry
    print(json.dumps(report, indent=2))


def _table(counts: dict[str, int], transformer: dict[str, object], args: argparse.Namespace) -> dict[str, object]:
    """Each size x offload mode x VAE tiling: the peak accelerator GB, host GB and the phase that sets the peak."""
    entry: dict[str, object] = {"parameters_billion": {part: round(n / 1e9, 3) for part, n in counts.items()}}
    for size, (height, width) in SIZES.items():
        rows = {}
        for offload in OFFLOAD_MODES:
            for tiling in (True, False):
                estimate = estimate_memory(
                    counts, dtype_bytes=args.dtype_bytes, offload=offload, height=height, width=width,
                    num_frames=args.frames, vae_tiling=tiling, transformer_config=transformer,
                )  # fmt: skip
                rows[f"offload={offload},vae_tiling={'on' if tiling else 'off'}"] = {
                    "peak_accelerator_gb": round(estimate.peak_accelerator_bytes / 1e9, 1),
                    "host_gb": round(estimate.host_bytes / 1e9, 1),
                    "peak_phase": estimate.peak_phase,
                }
        entry[f"{size} ({width}x{height})"] = rows
    return entry


if __name__ == "__main__":
    main()
