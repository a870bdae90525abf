"""Pluggable feature extractors for the render metrics: how open a mouth is, and who a face is.

The defaults need no model weights, because none ship with codirector:

* ``mouth-darkness`` (`MouthDarkness`) is landmark-free. It reads the lower middle of a face box and measures how
  much of it is darker than the face's own skin: the cavity of an open mouth. It does not locate lips, so a beard,
  a hand before the mouth or a hard shadow reads as "open" too; what it is good for is following one face over
  time, which is what a correlation with the audio needs.
* ``hog`` (`HogEmbedder`) describes a face by its gradients (OpenCV's HOG on a grey, equalised 64x64 crop). It
  tells two people apart and notices a face that blurs or warps, but it is no face-recognition model.

Where a user has better models they plug in through the same two protocols: any class with a ``name`` and a
``measure(frame_rgb, face_box)`` (a landmark model's lip distance, a SyncNet-style mouth crop score) or an
``embed(face_rgb)`` (ArcFace) is named as ``"module.path:ClassName"``; an ArcFace-style TorchScript file loads
directly as ``"torchscript:/path/model.pt?size=112"``. A SyncNet-style model, which needs mouth crop sequences and
the audio together, plugs in beside them as a lip-sync scorer (`codirector.evals.sync_scorers`).
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import parse_qs

import numpy as np

from codirector.errors import ConfigError, InputFileError

if TYPE_CHECKING:
    from codirector.evals.sync_scorers import LipSyncScorer

__all__ = [
    "Box",
    "Extractors",
    "FaceEmbedder",
    "HogEmbedder",
    "MouthDarkness",
    "MouthOpening",
    "TorchScriptFaceEmbedder",
    "crop_face",
    "load_identity_extractor",
    "load_mouth_extractor",
    "load_torchscript",
]

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, as codirector.faces.Box

_MOUTH_FORMS = '"mouth-darkness" or "module.path:ClassName" (a class with name and measure(frame_rgb, face_box))'
_IDENTITY_FORMS = (
    '"hog", "torchscript:/path/model.pt[?size=112]" or "module.path:ClassName" (a class with name and embed(face_rgb))'
)


@runtime_checkable
class MouthOpening(Protocol):
    """Measures how open the mouth of a face is in one frame.

    Attributes:
        name: what the measure is, as reports show it.
    """

    name: str

    def measure(self, frame_rgb: np.ndarray, face_box: Box) -> float | None:
        """How open the mouth is: larger is more open, on any scale that is the same for every frame.

        Args:
            frame_rgb: the whole frame, RGB uint8 (height, width, 3).
            face_box: the face in frame pixels; it may reach past the frame's edges.

        Returns:
            The opening, or None where it cannot be measured (a face too small or too dark).
        """
        ...


@runtime_checkable
class FaceEmbedder(Protocol):
    """Describes a face crop as a vector; faces of the same person get a high cosine similarity.

    Attributes:
        name: what the embedding is, as reports show it.
    """

    name: str

    def embed(self, face_rgb: np.ndarray) -> np.ndarray:
        """The embedding of a face crop (RGB uint8, any size): 1-D float32 with unit L2 norm."""
        ...


def crop_face(frame_rgb: np.ndarray, box: Box, margin: float = 0.1) -> np.ndarray | None:
    """The face box grown by `margin` of its size on every side, clipped to the frame; None if nothing is left.

    The same crop is taken from the reference picture and from the video, so whatever margin an embedder likes
    (ArcFace crops show a little hair and chin) applies to both alike.
    """
    x0, y0, x1, y1 = box
    grow_x, grow_y = margin * (x1 - x0), margin * (y1 - y0)
    height, width = frame_rgb.shape[:2]
    left, top = max(0, round(x0 - grow_x)), max(0, round(y0 - grow_y))
    right, bottom = min(width, round(x1 + grow_x)), min(height, round(y1 + grow_y))
    if right - left < 4 or bottom - top < 4:
        return None
    return frame_rgb[top:bottom, left:right]


def _unit(vector: np.ndarray) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


class MouthDarkness:
    """Landmark-free mouth opening: the share of the lower middle of a face that is darker than its skin.

    An open mouth shows its dark inside; closed lips are about as bright as the skin around them. The skin level
    is a bright percentile (the 75th) of the upper face, so eyes, brows and shadows do not lower it; each
    mouth pixel counts by how far it falls below `threshold` of that level, from 0 (at the threshold) to 1 (black).
    The mean over the mouth region is the opening, between 0 and 1.

    The regions are shares of a Haar face box (which runs from the brows to the chin) and assume an upright face,
    frontal or in profile. The value follows one face over time; it is not an opening in millimetres, and two
    faces' values are not comparable.

    Args:
        threshold: share of the skin level below which a pixel counts as mouth cavity.
        min_face_px: faces smaller than this (box height, pixels) are not measured.
    """

    name = "mouth-darkness"

    # Shares of the face box. The mouth region reaches a little below the box: a Haar box ends at the chin of a
    # closed mouth, and an open jaw drops past it. The skin level comes from the whole upper face, not just the
    # cheeks: more pixels make a steadier level on a small face. Tuned on the preview renders of
    # examples/dialogue (a frontal and a profile face) and examples/english_portrait: own-voice r 0.85, 0.58
    # and 0.83, against 0.79, 0.37 and 0.86 with the cheeks alone and threshold 0.7.
    mouth_rows = (0.6, 1.05)  # from under the nose to below the chin
    mouth_cols = (0.25, 0.75)
    skin_rows = (0.15, 0.6)  # forehead, eyes, cheeks and nose, above the mouth
    skin_cols = (0.2, 0.8)

    def __init__(self, threshold: float = 0.45, min_face_px: int = 24) -> None:
        self.threshold = threshold
        self.min_face_px = min_face_px

    @staticmethod
    def _span(start: float, size: float, shares: tuple[float, float], limit: int) -> tuple[int, int]:
        return max(0, round(start + shares[0] * size)), min(limit, round(start + shares[1] * size))

    def measure(self, frame_rgb: np.ndarray, face_box: Box) -> float | None:
        """The darkness of the mouth region, 0 (as bright as the skin) to 1 (black); None if not measurable."""
        x0, y0, x1, y1 = face_box
        width, height = x1 - x0, y1 - y0
        if height < self.min_face_px or width < self.min_face_px:
            return None
        frame_h, frame_w = frame_rgb.shape[:2]
        regions = []
        for rows, cols in ((self.skin_rows, self.skin_cols), (self.mouth_rows, self.mouth_cols)):
            top, bottom = self._span(y0, height, rows, frame_h)
            left, right = self._span(x0, width, cols, frame_w)
            # Rec. 601 luma of just these pixels: the cost follows the face, not the frame
            patch = frame_rgb[top:bottom, left:right].astype(np.float32)
            regions.append(patch @ np.array([0.299, 0.587, 0.114], np.float32))
        skin, mouth = regions
        # a mouth region cut by the frame's edge to under half its size would measure a different part of the face
        full = (self.mouth_rows[1] - self.mouth_rows[0]) * (self.mouth_cols[1] - self.mouth_cols[0]) * width * height
        if skin.size == 0 or mouth.size < 0.5 * full:
            return None
        level = float(np.percentile(skin, 75))
        if level < 25:  # a face this dark has no darker cavity to see
            return None
        cut = self.threshold * level
        return float(np.clip((cut - mouth) / cut, 0.0, 1.0).mean())


class HogEmbedder:
    """A face described by its gradients: OpenCV's HOG of the grey, histogram-equalised crop at 64x64.

    The descriptor is centred (its mean taken off) before the L2 norm, so the cosine of two faces is the
    correlation of their gradient patterns: near 1 for the same face, near 0 for unrelated ones, where raw HOG
    vectors (all positive) would score every pair above 0.7.
    """

    name = "hog"

    def __init__(self) -> None:
        import cv2

        # 64x64 window, 16x16 blocks every 8 px, 8x8 cells, 9 orientations: 1764 values
        self._hog = cv2.HOGDescriptor((64, 64), (16, 16), (8, 8), (8, 8), 9)

    def embed(self, face_rgb: np.ndarray) -> np.ndarray:
        """The centred, L2-normalised HOG descriptor (1764 float32) of an RGB face crop."""
        import cv2

        gray = cv2.cvtColor(np.ascontiguousarray(face_rgb), cv2.COLOR_RGB2GRAY)
        gray = cv2.equalizeHist(cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA))
        descriptor = np.asarray(self._hog.compute(gray), dtype=np.float32).reshape(-1)
        return _unit(descriptor - descriptor.mean())


def load_torchscript(path: str | Path, spec: str) -> tuple[Any, Any]:
    """A TorchScript file loaded on the CPU in eval mode, and the torch module; torch is imported only here.

    Args:
        path: the file (``torch.jit.save``).
        spec: the extractor spec it was named in, for the error when torch is missing.

    Raises:
        InputFileError: the file is missing or is not TorchScript.
        ConfigError: torch is not installed.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputFileError(path, "no such TorchScript file", "Give the path of a model saved with torch.jit.save.")
    try:
        import torch
    except ImportError:
        raise ConfigError(
            spec, "needs torch, which is not installed", "Install torch (README: torch: CPU or CUDA)."
        ) from None
    try:
        with warnings.catch_warnings():
            # torch 2.9+ calls TorchScript deprecated, but it is how ArcFace- and SyncNet-style models are shared
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=DeprecationWarning)
            model = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as error:
        raise InputFileError(
            path, f"cannot be loaded as TorchScript ({error})", "Give a model saved with torch.jit.save."
        ) from None
    model.eval()
    return model, torch


class TorchScriptFaceEmbedder:
    """An ArcFace-style face model saved as TorchScript: RGB (1, 3, S, S) scaled (x - 127.5) / 128 in, (1, D) out.

    The model runs on the CPU in eval mode without gradients; torch is imported only here, when such a model is
    asked for.

    Args:
        path: the TorchScript file (``torch.jit.save``).
        size: the square input side S the model expects (112 for ArcFace).
    """

    def __init__(self, path: str | Path, size: int = 112) -> None:
        path = Path(path).expanduser()
        model, torch = load_torchscript(path, f"torchscript:{path}")
        self._model = model
        self._torch = torch
        self.size = size
        self.path = path
        self.name = f"torchscript:{path.name}"

    def embed(self, face_rgb: np.ndarray) -> np.ndarray:
        """The model's output for the crop resized to S x S, flattened to float32 and L2-normalised."""
        import cv2

        torch = self._torch
        resized = cv2.resize(np.ascontiguousarray(face_rgb), (self.size, self.size), interpolation=cv2.INTER_AREA)
        pixels = (resized.astype(np.float32) - 127.5) / 128.0
        batch = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)[None]))
        with torch.inference_mode():
            output = self._model(batch)
        if isinstance(output, (tuple, list)):  # some exports return (embedding, extras)
            output = output[0]
        return _unit(output.detach().to(torch.float32).cpu().numpy())


@dataclass(frozen=True)
class Extractors:
    """The feature extractors one measurement uses.

    Attributes:
        mouth: measures mouth opening per frame (lip sync, right mouth).
        identity: embeds face crops (identity similarity and drift).
        sync: scores mouth crop sequences against the audio, SyncNet-style (the ``render.sync_*`` metrics); None
            leaves those metrics out, and the video is then decoded without collecting crops.
    """

    mouth: MouthOpening
    identity: FaceEmbedder
    sync: LipSyncScorer | None = None

    @classmethod
    def default(cls) -> Extractors:
        """The weight-free defaults: ``mouth-darkness`` and ``hog``, and no lip-sync scorer."""
        return cls(mouth=MouthDarkness(), identity=HogEmbedder())

    @classmethod
    def from_specs(cls, mouth: str = "mouth-darkness", identity: str = "hog", sync: str | None = None) -> Extractors:
        """Extractors named as `load_mouth_extractor`, `load_identity_extractor` and
        `codirector.evals.sync_scorers.load_sync_scorer` take them (no scorer when `sync` is None)."""
        from codirector.evals.sync_scorers import load_sync_scorer

        return cls(
            mouth=load_mouth_extractor(mouth),
            identity=load_identity_extractor(identity),
            sync=None if sync is None else load_sync_scorer(sync),
        )


def _load_class(spec: str, forms: str, method: str) -> Any:
    """Instantiate ``module.path:ClassName`` without arguments and check that it has `method` and a name."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name or not module_name.replace(".", "").replace("_", "").isalnum():
        raise ConfigError(spec, "is not a known extractor", f"Use one of {forms}.")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            spec, f"cannot import {module_name} ({error})", f"Install it, or use one of {forms}."
        ) from None
    kind = getattr(module, class_name, None)
    if not callable(kind):
        raise ConfigError(spec, f"{module_name} has no class {class_name}", f"Use one of {forms}.")
    try:
        instance = kind()
    except TypeError as error:  # a class that needs arguments, or a function named by mistake
        raise ConfigError(
            spec, f"{class_name} cannot be made without arguments ({error})", f"Use one of {forms}."
        ) from None
    if not callable(getattr(instance, method, None)) or not isinstance(getattr(instance, "name", None), str):
        raise ConfigError(spec, f"{class_name} has no name and {method}() method", f"Use one of {forms}.")
    return instance


def load_mouth_extractor(spec: str) -> MouthOpening:
    """The mouth-opening measure named by `spec`.

    Args:
        spec: ``"mouth-darkness"`` (the built-in, landmark-free measure) or ``"module.path:ClassName"`` (a class
            with a ``name`` and ``measure(frame_rgb, face_box)``, instantiated without arguments).

    Raises:
        ConfigError: the spec names no known extractor, or the class cannot be imported or lacks ``measure``.
    """
    if spec == MouthDarkness.name:
        return MouthDarkness()
    if ":" in spec:
        return _load_class(spec, _MOUTH_FORMS, "measure")
    raise ConfigError(spec, "is not a known mouth extractor", f"Use {_MOUTH_FORMS}.")


def load_identity_extractor(spec: str) -> FaceEmbedder:
    """The face embedder named by `spec`.

    Args:
        spec: ``"hog"`` (the built-in gradient descriptor), ``"torchscript:/path/model.pt"`` with an optional
            ``?size=S`` input side (default 112), or ``"module.path:ClassName"`` (a class with a ``name`` and
            ``embed(face_rgb)``, instantiated without arguments).

    Raises:
        ConfigError: the spec names no known extractor, or its class cannot be imported or lacks ``embed``.
        InputFileError: a TorchScript file is missing or does not load.
    """
    if spec == HogEmbedder.name:
        return HogEmbedder()
    if spec.startswith("torchscript:"):
        location, _, query = spec.removeprefix("torchscript:").partition("?")
        options = parse_qs(query, keep_blank_values=True)
        unknown = sorted(set(options) - {"size"})
        size_text = options.get("size", ["112"])[-1]
        if not location or unknown or not size_text.isdigit() or int(size_text) < 8:
            raise ConfigError(
                spec, "is not a valid TorchScript extractor", 'Write it as "torchscript:/path/model.pt?size=112".'
            )
        return TorchScriptFaceEmbedder(location, size=int(size_text))
    if ":" in spec:
        return _load_class(spec, _IDENTITY_FORMS, "embed")
    raise ConfigError(spec, "is not a known identity extractor", f"Use {_IDENTITY_FORMS}.")
