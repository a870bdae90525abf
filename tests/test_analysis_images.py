"""The offline visual expert's measurements on the shipped example pictures and on drawn and degenerate images."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from helpers import EXAMPLES
from PIL import Image, ImageDraw

from codirector.agents.analysis import analyze_images
from codirector.agents.analysis.vision import color_name
from codirector.api import load_job
from codirector.config import Config
from codirector.schemas.job import Job
from codirector.schemas.reports import VisualReport
from codirector.schemas.vocab import ShotSize, Subject, VisualStyle


def _analyze(example: str) -> VisualReport:
    return analyze_images(load_job(EXAMPLES / example / "job.yaml"), Config())


def _job_with_image(path: Path, description: str = "") -> Job:
    character = {"id": "subject", "reference_image": str(path), "audio": str(path.with_suffix(".wav"))}
    return Job.model_validate({"characters": [{**character, "description": description}]})


def _inside(inner: tuple[float, ...], outer: tuple[float, ...], slack: float = 1e-3) -> bool:
    return (
        inner[0] >= outer[0] - slack
        and inner[1] >= outer[1] - slack
        and inner[2] <= outer[2] + slack
        and inner[3] <= outer[3] + slack
    )


def test_astronaut_portrait() -> None:
    report = _analyze("english_portrait")
    (astronaut,) = report.characters
    assert astronaut.subject is Subject.HUMAN
    face = astronaut.face_bbox_xyxy_norm
    assert face is not None
    # skimage's astronaut: the face sits in the upper middle, about a fifth of the frame high.
    assert 0.25 < (face[0] + face[2]) / 2 < 0.6
    assert face[1] < 0.3
    assert 0.12 < face[3] - face[1] < 0.3
    assert _inside(face, astronaut.bbox_xyxy_norm)
    assert astronaut.framing in {ShotSize.CLOSE_UP, ShotSize.MEDIUM_CLOSE_UP}
    assert report.style is VisualStyle.PHOTO
    assert "hair" in astronaut.appearance
    assert "orange" in astronaut.appearance
    assert report.lighting.warmth > 0.1  # warm skin and an orange suit
    assert 0.2 < report.lighting.brightness < 0.8
    assert report.scene.endswith(".")


def test_cat_is_an_animal() -> None:
    report = _analyze("cat")
    (cat,) = report.characters
    assert cat.subject is Subject.ANIMAL
    assert cat.face_bbox_xyxy_norm is not None
    assert cat.framing in {ShotSize.EXTREME_CLOSE_UP, ShotSize.CLOSE_UP}  # the face fills the picture
    assert "fur" in cat.appearance
    assert "brown" in cat.appearance
    assert report.style is VisualStyle.PHOTO


def test_profile_face_in_black_and_white() -> None:
    report = _analyze("mandarin_portrait")
    (cameraman,) = report.characters
    assert cameraman.subject is Subject.HUMAN  # a face turned to the side, found by the mirrored profile cascade
    assert cameraman.face_bbox_xyxy_norm is not None
    assert "Black-and-white" in report.scene
    assert "black and white" in cameraman.appearance
    assert report.lighting.warmth == pytest.approx(0.0, abs=0.02)


def test_dialogue_scene_boxes() -> None:
    job = load_job(EXAMPLES / "dialogue" / "job.yaml")
    report = analyze_images(job, Config())
    assert [c.character_id for c in report.characters] == ["host", "guest"]
    for character, spec in zip(report.characters, job.characters, strict=True):
        assert character.source_image == job.scene_image
        assert character.bbox_xyxy_norm == pytest.approx(spec.scene_box_xyxy_norm)
        assert character.subject is Subject.HUMAN
        assert character.face_bbox_xyxy_norm is not None
        assert _inside(character.face_bbox_xyxy_norm, spec.scene_box_xyxy_norm)
    host_face, guest_face = (c.face_bbox_xyxy_norm for c in report.characters)
    assert host_face[2] < 0.5 < guest_face[0]  # the astronaut is on the left half, the cameraman on the right


@pytest.mark.parametrize("kind", ["noise", "flat"])
def test_faceless_image_still_gives_a_report(tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) if kind == "noise" else np.full((240, 320, 3), 90)
    path = tmp_path / f"{kind}.png"
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    with caplog.at_level(logging.WARNING, logger="codirector.agents.analysis.vision"):
        report = analyze_images(_job_with_image(path), Config())
    (character,) = report.characters
    assert character.face_bbox_xyxy_norm is None
    assert character.subject is Subject.OTHER
    assert character.bbox_xyxy_norm == (0.0, 0.0, 1.0, 1.0)
    assert "no face" in caplog.text
    VisualReport.model_validate_json(report.model_dump_json())


def _cartoon(path: Path) -> Path:
    """A flat-colour drawing: sky, grass, a round face with outlined eyes and smile, a red shirt (saved as JPEG)."""
    image = Image.new("RGB", (300, 400), (120, 190, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 300, 300, 400), fill=(90, 170, 60))
    draw.rectangle((90, 230, 210, 400), fill=(220, 40, 40), outline=(0, 0, 0), width=3)
    draw.ellipse((70, 70, 230, 230), fill=(250, 220, 170), outline=(0, 0, 0), width=3)
    draw.ellipse((110, 120, 130, 140), fill=(0, 0, 0))
    draw.ellipse((170, 120, 190, 140), fill=(0, 0, 0))
    draw.arc((115, 155, 185, 195), 0, 180, fill=(0, 0, 0), width=3)
    image.save(path, quality=90)
    return path


def test_flat_drawing_is_not_a_photo(tmp_path: Path) -> None:
    report = analyze_images(_job_with_image(_cartoon(tmp_path / "drawing.jpg")), Config())
    assert report.style is VisualStyle.CARTOON


def test_description_prefixes_the_appearance(tmp_path: Path) -> None:
    report = analyze_images(_job_with_image(_cartoon(tmp_path / "d.jpg"), description="the narrator"), Config())
    assert report.characters[0].appearance.startswith("the narrator: ")


def test_light_from_the_left(tmp_path: Path) -> None:
    pixels = np.asarray(Image.open(EXAMPLES / "english_portrait" / "reference.jpg"), dtype=np.float32)
    ramp = np.linspace(1.0, 0.35, pixels.shape[1])[None, :, None]  # bright on the left, dim on the right
    path = tmp_path / "relit.png"
    Image.fromarray((pixels * ramp).clip(0, 255).astype(np.uint8)).save(path)
    report = analyze_images(_job_with_image(path), Config())
    assert report.characters[0].face_bbox_xyxy_norm is not None
    assert report.lighting.key_direction == "left"
    assert "from the left" in report.lighting.description


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((200, 30, 40), "red"),
        ((225, 111, 75), "orange"),  # the astronaut's launch suit
        ((240, 240, 235), "white"),
        ((10, 10, 12), "black"),
        ((120, 80, 40), "brown"),
        ((40, 90, 200), "blue"),
        ((60, 160, 70), "green"),
        ((128, 128, 128), "gray"),
    ],
)
def test_color_names(rgb: tuple[int, int, int], name: str) -> None:
    assert color_name(rgb) == name
