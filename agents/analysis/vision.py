"""The offline visual expert's measurements: faces, framing, lighting, style, appearance and scene (OpenCV).

KlingAvatar 2.0 sec. 3.2: the visual expert "summarizes appearance, layout, and scene context from reference
images". Without a vision-language model, faces come from OpenCV's Haar cascades and everything else from pixel
statistics around them: the colour above a face is hair, below it clothing, outside the body the background.
"""

from __future__ import annotations

import colorsys
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from codirector.faces import Box, FaceDetection, detect_face
from codirector.media import load_image
from codirector.schemas.reports import CharacterAppearance, Lighting, VisualReport
from codirector.schemas.vocab import ShotSize, Subject, VisualStyle

if TYPE_CHECKING:
    from codirector.config import Config
    from codirector.schemas.job import CharacterSpec, Job

__all__ = ["FaceDetection", "analyze_images", "color_name", "detect_face", "estimate_style"]  # faces re-exported

logger = logging.getLogger(__name__)

RGB = tuple[int, int, int]
KeyDirection = Literal["front", "left", "right", "top", "back", "even"]


# Face height over frame height -> shot size, tightest first (a face fills half the frame in an extreme close-up).
_SHOT_SIZES = (
    (0.5, ShotSize.EXTREME_CLOSE_UP),
    (0.3, ShotSize.CLOSE_UP),
    (0.18, ShotSize.MEDIUM_CLOSE_UP),
    (0.1, ShotSize.MEDIUM),
    (0.06, ShotSize.MEDIUM_FULL),
    (0.03, ShotSize.FULL),
)
_HAIR_WORDS = {
    "black": "dark", "dark gray": "dark", "gray": "gray", "light gray": "gray", "white": "white", "beige": "blond",
    "yellow": "blond", "orange": "red", "red": "red", "dark red": "auburn", "brown": "brown", "olive": "brown",
}  # fmt: skip


def estimate_style(rgb: np.ndarray) -> VisualStyle:
    """Photo or drawing, from how the image shades.

    A photo shades continuously: many pixels have a gentle gradient (30 to 80 % on the examples and scikit-image's
    photos, a rocket against a flat sky included). A flat-colour drawing is flat areas and sharp outlines, with
    almost no gentle gradients (under 5 % on a drawn test figure, JPEG-compressed or not); few distinct colours
    then say cartoon rather than illustration. Anime, painting and 3D renders need a learned model to tell apart.
    """
    import cv2

    scale = min(1.0, 256 / max(rgb.shape[:2]))
    small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else rgb
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    magnitude = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    flat = float(np.mean(magnitude < 8))
    shading = float(np.mean((magnitude >= 8) & (magnitude <= 100)))
    counts = np.sort(np.bincount((small >> 5).reshape(-1, 3).astype(np.int32) @ np.array([64, 8, 1]), minlength=512))
    few_colors = float(counts[::-1][:12].sum() / counts.sum())
    logger.debug("style: flat %.2f, shading %.2f, top-12 colour share %.2f", flat, shading, few_colors)
    if shading < 0.12 and flat > 0.5:
        return VisualStyle.CARTOON if few_colors >= 0.9 else VisualStyle.ILLUSTRATION
    return VisualStyle.PHOTO


def dominant_colors(pixels: np.ndarray, count: int) -> list[RGB]:
    """Mean RGB of the most populated colour bins (4 levels a channel), most common first; later ones only when
    they cover at least a fifth of the pixels. The mode, not the mean: a white suit in shadow stays white."""
    flat = pixels.reshape(-1, 3).astype(np.int32)
    if not len(flat):
        return []
    codes = (flat >> 6) @ np.array([16, 4, 1])
    colors: list[RGB] = []
    for code in np.argsort(np.bincount(codes, minlength=64))[::-1][:count]:
        members = flat[codes == code]
        if len(members) and (not colors or len(members) >= 0.2 * len(flat)):
            colors.append((int(members[:, 0].mean()), int(members[:, 1].mean()), int(members[:, 2].mean())))
    return colors


def color_name(rgb: RGB) -> str:
    """A plain colour word for an RGB triple, from hue, saturation and value.

    Example:
        >>> color_name((200, 30, 40)), color_name((240, 240, 235)), color_name((120, 80, 40))
        ('red', 'white', 'brown')
    """
    hue, saturation, value = colorsys.rgb_to_hsv(*(v / 255 for v in rgb))
    hue *= 360
    if value < 0.2:
        return "black"
    if saturation < 0.18:
        return "white" if value > 0.85 else "light gray" if value > 0.6 else "gray" if value > 0.35 else "dark gray"
    if hue < 10 or hue >= 345:
        return "dark red" if value < 0.45 else "pink" if saturation < 0.4 else "red"
    if hue < 45:  # orange hues: beige when pale, brown when dark or dull
        return (
            "beige" if saturation < 0.45 and value > 0.6 else "brown" if value < 0.65 or saturation < 0.5 else "orange"
        )
    if hue < 70:
        return "olive" if value < 0.5 else "yellow"
    return "green" if hue < 165 else "teal" if hue < 200 else "blue" if hue < 255 else "purple" if hue < 290 else "pink"


def _names(colors: list[RGB]) -> str:
    return " and ".join(dict.fromkeys(color_name(c) for c in colors)) or "unknown"


def _region(rgb: np.ndarray, box: Box) -> np.ndarray:
    height, width = rgb.shape[:2]
    x0, y0 = int(np.clip(box[0], 0, width)), int(np.clip(box[1], 0, height))
    x1, y1 = int(np.clip(box[2], 0, width)), int(np.clip(box[3], 0, height))
    return rgb[y0:y1, x0:x1]


def _is_grayscale(rgb: np.ndarray) -> bool:
    channels = rgb.reshape(-1, 3).astype(np.int16)
    return bool(np.percentile(np.abs(channels[:, 0] - channels[:, 2]), 95) <= 8)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma in 0..1."""
    return (rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)) / 255.0


def _foreground(region: np.ndarray, backdrop: RGB, *, skin: bool = True) -> np.ndarray:
    """The region's pixels, as (n, 3), that are not backdrop-coloured and (if `skin`) not skin-toned (YCrCb box)."""
    import cv2

    pixels = region.reshape(-1, 3)
    if not len(pixels):
        return pixels
    keep = np.linalg.norm(pixels.astype(np.int16) - np.array(backdrop, np.int16), axis=1) > 40
    if skin:
        ycrcb = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.int16)
        keep &= ~((ycrcb[:, 1] >= 135) & (ycrcb[:, 1] <= 180) & (ycrcb[:, 2] >= 85) & (ycrcb[:, 2] <= 135))
    return pixels[keep]


def _hair_word(rgb: RGB) -> str:
    """The word people use for a hair colour: black is dark, pale yellow is blond, a darker beige light brown."""
    name = color_name(rgb)
    if name == "beige" and max(rgb) < 0.7 * 255:
        return "light brown"
    return _HAIR_WORDS.get(name, "dark")


def _appearance(rgb: np.ndarray, face: FaceDetection | None, description: str) -> str:
    """A phrase a prompt should keep: hair colour from above the face, clothing colours from below it, or fur.

    Backdrop-coloured pixels (the colour of the picture's top edge) and skin tones are left out of hair and
    clothing, so a bright sky above a head does not become grey hair.
    """
    parts: list[str] = []
    backdrop = (dominant_colors(rgb[: max(1, rgb.shape[0] // 20)], 1) or [(0, 0, 0)])[0]
    if face is not None and face.subject is Subject.HUMAN:
        x0, y0, x1, y1 = face.box
        width, height = x1 - x0, y1 - y0
        above = _region(rgb, (x0 + 0.2 * width, y0 - 0.35 * height, x1 - 0.2 * width, y0 + 0.05 * height))
        hair = _foreground(above, backdrop, skin=False)
        if len(hair) < 0.3 * above.size / 3:
            # Little but backdrop above the box: a profile box holds the hair itself, at its top.
            hair = _foreground(_region(rgb, (x0 + 0.2 * width, y0, x1 - 0.2 * width, y0 + 0.25 * height)), backdrop)
        clothes = _region(rgb, (x0 - 0.6 * width, y1 + 0.4 * height, x1 + 0.6 * width, y1 + 2.0 * height))
        clothes = _foreground(clothes, backdrop)
        if len(hair) >= 30:
            parts.append(f"{_hair_word(dominant_colors(hair, 1)[0])} hair")
        if len(clothes) >= 30:
            parts.append(f"{_names(dominant_colors(clothes, 2))} clothing")
    elif face is not None:
        x0, y0, x1, y1 = face.box
        inner = _region(rgb, (x0 + 0.2 * (x1 - x0), y0 + 0.2 * (y1 - y0), x1 - 0.2 * (x1 - x0), y1 - 0.2 * (y1 - y0)))
        parts.append(f"{_names(dominant_colors(inner, 2))} fur")
    else:
        parts.append(f"mostly {_names(dominant_colors(rgb, 2))}")
    if _is_grayscale(rgb):
        parts.append("in black and white")
    measured = ", ".join(parts)
    return f"{description.strip()}: {measured}" if description.strip() else measured


def _lighting(rgb: np.ndarray, face: Box | None, body: Box | None) -> Lighting:
    """Key direction from the face's bright side, brightness, contrast (5-95 % luma spread), warmth (red - blue)."""
    luma = _luminance(rgb)
    brightness = float(np.clip(luma.mean(), 0.0, 1.0))
    contrast = float(np.clip(np.subtract(*np.percentile(luma, [95, 5])), 0.0, 1.0))
    channels = rgb.reshape(-1, 3).astype(np.float32)
    warmth = float(np.clip(2.0 * (channels[:, 0] - channels[:, 2]).mean() / 255.0, -1.0, 1.0))
    key: KeyDirection = "even"
    face_luma = _region(luma[..., None], face)[..., 0] if face is not None else np.empty((0, 0))
    if face_luma.size:
        height, width = face_luma.shape
        mean = max(float(face_luma.mean()), 0.05)
        side = (float(face_luma[:, : width // 2].mean()) - float(face_luma[:, width // 2 :].mean())) / mean
        top = (float(face_luma[: height // 2].mean()) - float(face_luma[height // 2 :].mean())) / mean
        outside = np.ones(luma.shape, bool)
        if body is not None:
            outside[int(body[1]) : int(body[3]), int(body[0]) : int(body[2])] = False
        background = float(luma[outside].mean()) if outside.any() else mean
        if mean < 0.6 * background and background > 0.5:
            key = "back"  # a face much darker than a bright background: a silhouette against the light
        elif abs(side) >= 0.15:
            key = "left" if side > 0 else "right"  # the side of the frame, as the viewer sees it
        elif top >= 0.2:
            key = "top"
        elif mean >= 1.1 * background:
            key = "front"
    level = "bright" if brightness > 0.6 else "dim" if brightness < 0.3 else "moderate"
    hardness = "harsh" if contrast > 0.75 else "soft" if contrast < 0.35 else "medium"
    tone = "monochrome" if _is_grayscale(rgb) else "warm" if warmth > 0.1 else "cool" if warmth < -0.1 else "neutral"
    where = {"even": "even light on the face", "front": "the face lit from the front"}.get(
        key, f"key light from the {key}"
    )
    return Lighting(
        key_direction=key,
        brightness=round(brightness, 3),
        contrast=round(contrast, 3),
        warmth=round(warmth, 3),
        description=f"{level.capitalize()}, {tone} light with {hardness} contrast; {where}.",
    )


def _scene(rgb: np.ndarray, bodies: list[Box]) -> str:
    """A sentence about the background: indoors or outdoors, plain or busy, bright or dark, its main colours."""
    import cv2

    height, width = rgb.shape[:2]
    outside = np.ones((height, width), bool)
    for x0, y0, x1, y1 in bodies:
        outside[int(y0) : int(y1), int(x0) : int(x1)] = False
    if outside.mean() < 0.1:  # the character fills the frame: read its outer border
        border = max(1, int(0.08 * min(height, width)))
        outside[:] = True
        outside[border:-border, border:-border] = False
    edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), 80, 160) > 0
    background = rgb[outside]
    names = [color_name(c) for c in dominant_colors(background, 2)]
    top = outside.copy()
    top[max(1, height // 4) :] = False
    outdoor = "green" in names[:1]  # mostly greenery
    if top.any():
        # Open sky: a bright, smooth band across the top, blue (or pale, in a black-and-white picture).
        sky = {color_name(c) for c in dominant_colors(rgb[top], 1)}
        pale = {"blue", "teal"} | ({"white", "light gray"} if _is_grayscale(rgb) else set())
        outdoor |= bool(sky & pale) and float(_luminance(rgb[top]).mean()) > 0.55 and float(edges[top].mean()) < 0.04
    luma = float(_luminance(background).mean()) if background.size else 0.5
    tone = "bright" if luma > 0.55 else "dark" if luma < 0.3 else "mid-toned"
    texture = "busy" if background.size and float(edges[outside].mean()) > 0.06 else "plain"
    setting = "Outdoors" if outdoor else "Indoors or before a backdrop"
    mono = " Black-and-white picture." if _is_grayscale(rgb) else ""
    return f"{setting}, with a {texture} {tone} background, mostly {' and '.join(dict.fromkeys(names))}.{mono}"


def _body_box(face: FaceDetection | None, width: int, height: int) -> Box:
    """The character's body in its own picture: about three face widths wide, from the hair to the bottom."""
    if face is None:
        return (0.0, 0.0, float(width), float(height))
    x0, y0, x1, y1 = face.box
    half = (1.5 if face.subject is Subject.HUMAN else 1.25) * (x1 - x0)
    center = (x0 + x1) / 2
    return (max(0.0, center - half), max(0.0, y0 - 0.3 * (y1 - y0)), min(float(width), center + half), float(height))


def _normalized(box: Box, width: int, height: int) -> Box:
    """A pixel box as 0..1 fractions of the image, clipped and never empty."""
    x0, y0 = min(max(box[0] / width, 0.0), 0.999), min(max(box[1] / height, 0.0), 0.999)
    x1, y1 = min(max(box[2] / width, x0 + 0.001), 1.0), min(max(box[3] / height, y0 + 0.001), 1.0)
    return (round(x0, 4), round(y0, 4), round(x1, 4), round(y1, 4))


@dataclass(frozen=True)
class _Measured:
    """One character, measured: the report entry, and its face and body boxes in the source image's pixels."""

    appearance: CharacterAppearance
    face: Box | None
    body: Box


def _measure_character(character: CharacterSpec, source: Path, image: np.ndarray) -> _Measured:
    """Find a character in its picture: the reference image, or its box of the scene image."""
    height, width = image.shape[:2]
    scene_box = None if character.reference_image is not None else character.scene_box_xyxy_norm
    if scene_box is None:
        left, top, crop = 0, 0, image
    else:
        left, top = int(scene_box[0] * width), int(scene_box[1] * height)
        crop = image[top : max(int(scene_box[3] * height), top + 1), left : max(int(scene_box[2] * width), left + 1)]
    face = detect_face(crop)
    if face is None:
        logger.warning("no face found for character %r in %s: subject 'other', framing unknown", character.id, source)
    x0, y0, x1, y1 = _body_box(face, crop.shape[1], crop.shape[0])
    body = (x0 + left, y0 + top, x1 + left, y1 + top)
    if scene_box is not None:
        body = (scene_box[0] * width, scene_box[1] * height, scene_box[2] * width, scene_box[3] * height)
    face_box = None if face is None else (face.box[0] + left, face.box[1] + top, face.box[2] + left, face.box[3] + top)
    # Framing is judged in the frame the character is seen in: the whole reference picture or the whole scene.
    framing = ShotSize.MEDIUM if face_box is None else next(
        (size for share, size in _SHOT_SIZES if (face_box[3] - face_box[1]) / height > share), ShotSize.WIDE
    )  # fmt: skip
    appearance = CharacterAppearance(
        character_id=character.id,
        source_image=source,
        bbox_xyxy_norm=_normalized(body, width, height),
        face_bbox_xyxy_norm=None if face_box is None else _normalized(face_box, width, height),
        framing=framing,
        subject=Subject.OTHER if face is None else face.subject,
        appearance=_appearance(crop, face, character.description),
    )
    return _Measured(appearance, face_box, body)


def analyze_images(job: Job, config: Config) -> VisualReport:
    """Measure every character's picture and the shared scene into a `VisualReport`.

    A character's picture is its `reference_image`, or the job's `scene_image` cut to its `scene_box_xyxy_norm`
    (its boxes are then in the scene's coordinates). A picture without a detectable face still gives a valid
    report: the subject is "other", the body the whole picture, and a warning is logged. Lighting and scene are
    read from the scene image, or from the first character's picture when there is none.

    Args:
        job: the job whose images to read (paths already resolved, as `codirector.api.load_job` does).
        config: the settings; unused by these measurements, kept so that every expert has the same signature.

    Raises:
        MediaError: an image is missing or cannot be decoded.

    Example:
        >>> from codirector.api import load_job
        >>> from codirector.config import Config
        >>> report = analyze_images(load_job("examples/cat/job.yaml"), Config())
        >>> report.characters[0].subject, report.style
        (<Subject.ANIMAL: 'animal'>, <VisualStyle.PHOTO: 'photo'>)
    """
    del config
    images: dict[Path, np.ndarray] = {}
    measured: list[_Measured] = []
    for character in job.characters:
        source = character.reference_image if character.reference_image is not None else job.scene_image
        if source is None:  # the Job validator already refuses this; say so plainly if it is bypassed
            raise ValueError(f"character {character.id!r} has neither a reference_image nor a scene box")
        if source not in images:
            images[source] = load_image(source)
        measured.append(_measure_character(character, source, images[source]))
    primary = job.scene_image if job.scene_image is not None else measured[0].appearance.source_image
    on_primary = [m for m in measured if m.appearance.source_image == primary]
    lit = next((m for m in on_primary if m.face is not None), None)
    styles = [estimate_style(pixels) for pixels in images.values()]
    return VisualReport(
        characters=[m.appearance for m in measured],
        scene=_scene(images[primary], [m.body for m in on_primary]),
        lighting=_lighting(images[primary], lit.face if lit else None, lit.body if lit else None),
        style=max(dict.fromkeys(styles), key=styles.count),
    )
