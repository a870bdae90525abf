"""The render metrics' feature extractors: the weight-free defaults, loading by spec, and TorchScript models."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import EXAMPLES, require_modules
from talking_faces import portrait as portrait_at
from talking_faces import with_mouth

from codirector.errors import ConfigError, InputFileError, UserError
from codirector.evals.extractors import (
    Extractors,
    FaceEmbedder,
    HogEmbedder,
    MouthDarkness,
    MouthOpening,
    TorchScriptFaceEmbedder,
    crop_face,
    load_identity_extractor,
    load_mouth_extractor,
)
from codirector.faces import detect_face
from codirector.media import load_image


@pytest.fixture(scope="module")
def portrait() -> tuple[np.ndarray, tuple[float, float, float, float]]:
    return portrait_at(None)  # full size


class ConstantMouth:
    """A stand-in for a landmark model: always the same opening."""

    name = "constant-mouth"

    def measure(self, frame_rgb: np.ndarray, face_box: tuple[float, float, float, float]) -> float | None:
        return 0.5


class NeedsArguments:
    name = "needs-arguments"

    def __init__(self, weights: str) -> None:
        self.weights = weights

    def embed(self, face_rgb: np.ndarray) -> np.ndarray:
        return np.ones(3, np.float32)


def test_the_defaults_are_the_weight_free_extractors() -> None:
    extractors = Extractors.default()
    assert (extractors.mouth.name, extractors.identity.name) == ("mouth-darkness", "hog")
    assert isinstance(extractors.mouth, MouthOpening)
    assert isinstance(extractors.identity, FaceEmbedder)
    named = Extractors.from_specs("mouth-darkness", "hog")
    assert (type(named.mouth), type(named.identity)) == (MouthDarkness, HogEmbedder)


def test_mouth_darkness_grows_as_the_mouth_opens(portrait: tuple[np.ndarray, tuple[float, ...]]) -> None:
    image, box = portrait
    mouth = MouthDarkness()
    values = [mouth.measure(with_mouth(image, box, opening), box) for opening in (0.0, 0.3, 0.6, 1.0)]
    assert all(value is not None for value in values)
    assert values == sorted(values)
    assert values[-1] > values[0] + 0.1, values


def test_mouth_darkness_declines_faces_it_cannot_read(portrait: tuple[np.ndarray, tuple[float, ...]]) -> None:
    image, (x0, y0, x1, y1) = portrait
    mouth = MouthDarkness()
    assert mouth.measure(image, (x0, y0, x0 + 12, y0 + 12)) is None  # too small
    height = y1 - y0
    # a box whose mouth region lies below the frame's edge
    assert mouth.measure(image, (x0, image.shape[0] - 0.5 * height, x1, image.shape[0] + 0.5 * height)) is None
    assert mouth.measure(np.zeros_like(image), (x0, y0, x1, y1)) is None  # black: no skin to compare with


def test_hog_embeddings_are_unit_vectors_that_tell_faces_apart(portrait: tuple[np.ndarray, tuple[float, ...]]) -> None:
    image, box = portrait
    hog = HogEmbedder()
    face = crop_face(image, box)
    assert face is not None
    same = hog.embed(face)
    assert same.dtype == np.float32
    assert same.ndim == 1
    assert np.linalg.norm(same) == pytest.approx(1.0, abs=1e-5)
    nudged = crop_face(image, tuple(v + 2 for v in box))  # type: ignore[arg-type]
    scene = load_image(EXAMPLES / "dialogue" / "scene.jpg")
    other = detect_face(scene[:, 512:])  # the cameraman
    assert nudged is not None
    assert other is not None
    stranger = crop_face(scene[:, 512:], other.box)
    assert stranger is not None
    assert float(same @ hog.embed(nudged)) > 0.8
    assert float(same @ hog.embed(stranger)) < 0.3
    blurred = cv2.GaussianBlur(face, (0, 0), 4)
    assert float(same @ hog.embed(face)) > float(same @ hog.embed(blurred))


def test_crop_face_grows_the_box_and_stays_in_the_frame() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    assert crop_face(frame, (50, 20, 90, 60), margin=0.25).shape == (60, 60, 3)
    assert crop_face(frame, (-30, -30, 20, 20), margin=0.0).shape == (20, 20, 3)
    assert crop_face(frame, (300, 20, 340, 60)) is None


def test_specs_resolve_to_builtins_and_to_classes_by_module_path() -> None:
    assert isinstance(load_mouth_extractor("mouth-darkness"), MouthDarkness)
    assert isinstance(load_identity_extractor("hog"), HogEmbedder)
    assert isinstance(load_identity_extractor("codirector.evals.extractors:HogEmbedder"), HogEmbedder)
    custom = load_mouth_extractor(f"{__name__}:ConstantMouth")
    assert custom.name == "constant-mouth"
    assert custom.measure(np.zeros((4, 4, 3), np.uint8), (0, 0, 4, 4)) == 0.5


@pytest.mark.parametrize(
    ("loader", "spec", "says"),
    [
        (load_mouth_extractor, "mouth-landmarks", "mouth-darkness"),
        (load_mouth_extractor, "no_such_module_xyz:Mouth", "cannot import no_such_module_xyz"),
        (load_mouth_extractor, "codirector.evals.extractors:Missing", "has no class Missing"),
        (load_mouth_extractor, "codirector.evals.extractors:HogEmbedder", "measure()"),
        (load_identity_extractor, "arcface", "torchscript:/path/model.pt"),
        (load_identity_extractor, f"{__name__}:NeedsArguments", "without arguments"),
        (load_identity_extractor, "torchscript:", "torchscript:/path/model.pt?size=112"),
        (load_identity_extractor, "torchscript:/m.pt?size=big", "torchscript:/path/model.pt?size=112"),
        (load_identity_extractor, "torchscript:/m.pt?sise=112", "torchscript:/path/model.pt?size=112"),
    ],
)
def test_a_bad_spec_is_a_user_error_that_names_it_and_the_valid_forms(loader, spec: str, says: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        loader(spec)
    message = str(caught.value)
    assert spec in message
    assert says in message
    assert isinstance(caught.value, UserError)


def test_a_missing_torchscript_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nope\.pt"):
        load_identity_extractor(f"torchscript:{tmp_path / 'nope.pt'}")


# torch 2.9+ calls torch.jit.script and save deprecated; ArcFace-style files are TorchScript all the same
_TORCHSCRIPT_DEPRECATED = pytest.mark.filterwarnings("ignore:.*torch.jit.*deprecated:DeprecationWarning")


def _save_scripted(module: object, path: Path) -> Path:
    import torch

    torch.jit.save(torch.jit.script(module), str(path))
    return path


@_TORCHSCRIPT_DEPRECATED
def test_a_torchscript_embedder_feeds_the_model_arcface_style_input(tmp_path: Path) -> None:
    require_modules("torch")
    import torch

    class InputProbe(torch.nn.Module):
        """Returns what it was given: the mean of each channel, a constant 1, and the input side."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            side = torch.full((1, 1), float(x.shape[-1]))
            return torch.cat([x.mean(dim=(2, 3)), torch.ones(1, 1), side], dim=1)

    model = _save_scripted(InputProbe(), tmp_path / "probe.pt")
    embedder = load_identity_extractor(f"torchscript:{model}?size=48")
    assert isinstance(embedder, TorchScriptFaceEmbedder)
    face = np.zeros((30, 20, 3), np.uint8)
    face[..., 0] = 255  # red: (255 - 127.5) / 128 = 0.99609
    face[..., 2] = 0  # blue: -0.99609; green stays 0 -> -0.99609
    vector = embedder.embed(face)
    assert vector.shape == (5,)
    assert vector.dtype == np.float32
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    red, green, blue, one, side = (vector / vector[3]).tolist()
    assert (red, green, blue) == pytest.approx((127.5 / 128, -127.5 / 128, -127.5 / 128), abs=1e-4)
    assert side == pytest.approx(48)
    assert one == pytest.approx(1.0)


@_TORCHSCRIPT_DEPRECATED
def test_a_tiny_random_torchscript_model_embeds_faces(
    tmp_path: Path, portrait: tuple[np.ndarray, tuple[float, ...]]
) -> None:
    require_modules("torch")
    import torch

    torch.manual_seed(0)
    tiny_random_model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(),
        torch.nn.Linear(32, 16),
    )  # fmt: skip
    path = _save_scripted(tiny_random_model, tmp_path / "tiny_random_face_model.pt")
    embedder = load_identity_extractor(f"torchscript:{path}")
    assert embedder.name == "torchscript:tiny_random_face_model.pt"
    image, box = portrait
    face = crop_face(image, box)
    assert face is not None
    first, again = embedder.embed(face), embedder.embed(face)
    assert first.shape == (16,)
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, embedder.embed(255 - face))
