"""Blueprint continuity of the dit backend over 4 windows, as JSON: identity and pose drift curves, seam jumps.

Usage:
    python benchmarks/bench_dit_continuity.py [--max-frames 9] [--windows 4] [--size 32]

A long blueprint is several model calls (`windows.py`). This renders one on the tiny random model two ways: as the
backend does (each window continues from the motion frames of the one before) and as it did before issue 13 (each
window restarted from the reference picture). For every frame it reports the distance to the reference (mean
absolute pixel difference: an identity drift proxy) and to the frame before (a pose-jump proxy), and summarises
the jumps at window seams against the jumps inside windows. Random weights make no face, so the curves measure
continuity, not quality: a restart shows as a seam jump the continuation does not have.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np


def _curves(frames: list[np.ndarray], reference: np.ndarray, seams: list[int]) -> dict[str, object]:
    stack = np.stack(frames).astype(np.float32)
    to_reference = np.abs(stack - reference.astype(np.float32)).mean(axis=(1, 2, 3))
    jumps = np.abs(np.diff(stack, axis=0)).mean(axis=(1, 2, 3))  # jumps[i]: frame i -> i + 1
    at_seams = [float(jumps[s - 1]) for s in seams if s > 0]
    inside = [float(j) for i, j in enumerate(jumps) if i + 1 not in seams]
    return {
        "distance_to_reference": [round(float(v), 2) for v in to_reference],
        "frame_jump": [round(float(v), 2) for v in jumps],
        "seam_jump_mean": round(float(np.mean(at_seams)), 2) if at_seams else None,
        "inner_jump_median": round(float(np.median(inside)), 2),
    }


def main() -> None:
    from codirector.generator.backends.dit import DitBackend
    from codirector.generator.backends.dit.conditioning import video_to_frames
    from codirector.generator.backends.dit.windows import plan_windows
    from codirector.generator.testing import make_requests
    from codirector.schemas.render_plan import DiffusionSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-frames", type=int, default=9)
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    overlap = (args.max_frames - 1) // 2
    num_frames = args.max_frames + (args.windows - 1) * (args.max_frames - overlap)
    requests = make_requests(height=args.size, width=args.size, num_frames=num_frames, seed=0, upscale=1)
    request = dataclasses.replace(requests.video, sampler=DiffusionSettings(num_inference_steps=2, guidance_scale=1.0,
                                                                            seed=0))  # fmt: skip
    reference = requests.video.characters[0].reference
    windows = plan_windows(num_frames, args.max_frames, overlap)
    seams = [w.start for w in windows[1:]]

    backend = DitBackend(tiny=True, max_frames=args.max_frames, overlap_frames=overlap)
    continued = list(backend.text_to_video(request))

    # before issue 13: every window from the reference, the overlap simply overwritten
    pipeline = backend.pipeline
    restarted: list[np.ndarray] = [np.zeros_like(continued[0])] * num_frames
    for window in windows:
        conditions = backend._conditions(request, {0: reference}, args.size, args.size, window.start, window.num_frames)
        video = pipeline.sample(pipeline.grid(window.num_frames, args.size, args.size), conditions, request.sampler)
        restarted[window.start : window.start + window.keep] = video_to_frames(video)[: window.keep]

    report = {
        "windows": [dataclasses.asdict(w) for w in windows], "num_frames": num_frames, "seams": seams,
        "continued (motion frames)": _curves(continued, reference, seams),
        "restarted from the reference": _curves(restarted, reference, seams),
    }  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
