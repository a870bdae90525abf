"""Finding faces with OpenCV's Haar cascades: human faces (frontal and profile) and cat faces.

A cascade alone fires on textures; a face counts only where several runs (image sizes, equalization, mirrored
profile) agree on it, which separates the examples' real faces (4-8 agreeing runs) from everything else (at most 3).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codirector.schemas.vocab import Subject

__all__ = [
    "FAST_SEARCHES",
    "Box",
    "FaceDetection",
    "FaceView",
    "FastSearch",
    "detect_face",
    "detect_faces",
    "find_face_fast",
    "haar_cascade",
    "iou",
]

logger = logging.getLogger(__name__)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels


@dataclass(frozen=True)
class _Search:
    """How a family of cascades is run: (file, on the mirrored image) pairs, image sizes, borders, thresholds."""

    cascades: tuple[tuple[str, bool], ...]
    levels: tuple[int, ...]  # long side of each resized copy, pixels
    pads: tuple[float, ...]  # replicated border around each copy, as a share of its long side
    equalize: bool
    min_neighbors: int
    min_share: float  # smallest face searched, as a share of the short side
    min_support: int  # distinct runs that must agree on a face


# OpenCV's profile cascade knows faces turned one way; the mirror finds the other (the cameraman in
# examples/mandarin_portrait looks to the left). A real face is found by most runs (cascade x size x histogram
# equalization), a false one (a fold in a sleeve) by one to three: on the examples and scikit-image's photos,
# faces had 4 to 8 of 16 runs agreeing, everything else at most 3.
_HUMAN = _Search(
    cascades=(
        ("haarcascade_frontalface_default.xml", False),
        ("haarcascade_frontalface_alt2.xml", False),
        ("haarcascade_profileface.xml", False),
        ("haarcascade_profileface.xml", True),
    ),
    levels=(320, 160), pads=(0.0,), equalize=True, min_neighbors=3, min_share=0.08, min_support=3,
)  # fmt: skip
# Cat cascades were trained on small, whole cat heads: a cat face filling the frame (examples/cat) is only found on
# small copies with a border around them, hence a denser ladder of sizes (11 of 24 runs agree on the cat, at most 3
# on any of scikit-image's other photos).
_ANIMAL = _Search(
    cascades=(("haarcascade_frontalcatface.xml", False), ("haarcascade_frontalcatface_extended.xml", False)),
    levels=(120, 140, 160, 185, 215, 250), pads=(0.1, 0.25), equalize=False, min_neighbors=2, min_share=0.2,
    min_support=5,
)  # fmt: skip


@dataclass(frozen=True)
class FaceDetection:
    """A face found in an image: its box in pixels, what kind of face, and how many detector runs agree."""

    box: Box
    subject: Subject
    support: int


@functools.lru_cache(maxsize=8)
def haar_cascade(name: str) -> Any:
    """One of OpenCV's bundled Haar cascades, loaded once per process."""
    import cv2

    classifier = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / name))
    if classifier.empty():
        raise FileNotFoundError(f"OpenCV Haar cascade {name} is missing: install opencv-python-headless<5")
    return classifier


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not touch)."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _find(gray: np.ndarray, search: _Search) -> tuple[Box, int] | None:
    """The face most runs agree on (clipped) and its support, or None."""
    found = _faces(gray, search)
    return found[0] if found else None


def _faces(gray: np.ndarray, search: _Search) -> list[tuple[Box, int]]:
    """Run every cascade at every size; return every face the runs found (clipped) with its support, the face most
    runs agree on first (then the larger).

    Faces smaller than `search.min_share` of the short side are not searched: a reference picture is about its
    character, and the small windows are where a cascade spends its time and finds its false faces.
    """
    import cv2

    height, width = gray.shape
    clusters: list[list[tuple[Box, str]]] = []
    for level in search.levels:
        scale = min(1.0, level / max(height, width))
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        min_side = max(20, int(search.min_share * min(small.shape)))
        for pad_share in search.pads:
            pad = int(pad_share * max(small.shape))
            padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else small
            views = [(padded, "")] + ([(cv2.equalizeHist(padded), "eq")] if search.equalize else [])
            for image, tag in views:
                for name, mirrored in search.cascades:
                    view = np.ascontiguousarray(image[:, ::-1]) if mirrored else image
                    boxes, _ = haar_cascade(name).detectMultiScale2(
                        view, scaleFactor=1.1 if len(search.levels) < 3 else 1.05,
                        minNeighbors=search.min_neighbors, minSize=(min_side, min_side),
                    )  # fmt: skip
                    run = f"{name}{'~' if mirrored else ''}@{level}/{pad_share}{tag}"
                    for x, y, w, h in np.asarray(boxes).reshape(-1, 4).tolist():
                        left = view.shape[1] - x - w if mirrored else x
                        box = ((left - pad) / scale, (y - pad) / scale, (left - pad + w) / scale, (y - pad + h) / scale)
                        home = next((c for c in clusters if iou(c[0][0], box) > 0.35), None)
                        if home is None:
                            clusters.append([(box, run)])
                        else:
                            home.append((box, run))

    def rank(cluster: list[tuple[Box, str]]) -> tuple[int, float]:  # support, then size
        box = cluster[0][0]
        return len({run for _, run in cluster}), (box[2] - box[0]) * (box[3] - box[1])

    faces = []
    for cluster in sorted(clusters, key=rank, reverse=True):
        x0, y0, x1, y1 = np.median(np.array([box for box, _ in cluster]), axis=0).tolist()
        faces.append(((max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)), rank(cluster)[0]))
    return faces


def detect_face(rgb: np.ndarray) -> FaceDetection | None:
    """The main face in an RGB image: a human face if the human cascades agree on one, else a cat's, else None."""
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    found: dict[Subject, tuple[Box, int] | None] = {}
    for subject, search in ((Subject.HUMAN, _HUMAN), (Subject.ANIMAL, _ANIMAL)):
        found[subject] = _find(gray, search)
        if (hit := found[subject]) is not None and hit[1] >= search.min_support:
            return FaceDetection(hit[0], subject, hit[1])
    logger.debug("no face; best support: %s", {s.value: hit and hit[1] for s, hit in found.items()})
    return None


def detect_faces(rgb: np.ndarray) -> list[FaceDetection]:
    """Every human face in an RGB image that enough detector runs agree on, most certain first (cat faces when
    there is no human one): the faces of a multi-character frame."""
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    for subject, search in ((Subject.HUMAN, _HUMAN), (Subject.ANIMAL, _ANIMAL)):
        faces = [FaceDetection(box, subject, n) for box, n in _faces(gray, search) if n >= search.min_support]
        if faces:
            return faces
    return []


@dataclass(frozen=True)
class FastSearch:
    """A single Haar run on a small grayscale copy: the fast counterpart of `detect_face`'s voting search.

    One run fires on textures now and then; here that matters less than for a reference picture, because only one
    candidate per boundary is searched whole and the others only around the face it found, at its size.
    """

    cascade: str
    long_sides: tuple[int, ...]  # sizes of the small copy tried, in order, until a face is found
    pad_share: float  # replicated border, as a share of the copy's long side
    equalize: bool
    min_neighbors: int
    min_side: int  # smallest face searched, in pixels of the small copy


# As in the voting search: the cat cascade finds a cat face that fills the frame only on a small copy with a
# border (examples/cat); a 640x360 frame at 320 px still shows a head of 1/11 of its height.
FAST_SEARCHES = {
    Subject.HUMAN: FastSearch("haarcascade_frontalface_alt2.xml", (320,), 0.0, True, 3, 16),
    Subject.ANIMAL: FastSearch("haarcascade_frontalcatface.xml", (100, 140, 200), 0.1, False, 2, 20),
}
_REACH = 0.6  # how far around the last face seen the next candidate is searched, as a share of the face's side


@dataclass(frozen=True)
class FaceView:
    """A frame's small grayscale copy for one search: `image` pixels = frame pixels * scale + pad."""

    image: np.ndarray
    scale: float
    pad: int

    @classmethod
    def of(cls, gray: np.ndarray, search: FastSearch, long_side: int) -> FaceView:
        import cv2

        scale = min(1.0, long_side / max(gray.shape))
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        if search.equalize:
            small = cv2.equalizeHist(small)
        pad = int(search.pad_share * max(small.shape))
        if pad:
            small = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        return cls(small, scale, pad)

    def to_frame(self, box: Box) -> Box:
        return tuple((value - self.pad) / self.scale for value in box)  # type: ignore[return-value]

    def to_small(self, box: Box) -> Box:
        return tuple(value * self.scale + self.pad for value in box)  # type: ignore[return-value]


def find_face_fast(view: FaceView, search: FastSearch, near: Box | None = None) -> Box | None:
    """The face in `view` (frame pixels): the surest anywhere, or the one nearest `near` and of about its size."""
    x_offset = y_offset = 0
    image, min_side, max_side = view.image, search.min_side, 0
    if near is not None:
        x0, y0, x1, y1 = view.to_small(near)
        side = max(x1 - x0, y1 - y0)
        # between neighbouring candidates a face moves less than _REACH of its size and changes size by < 1.4x
        reach = _REACH * side
        x_offset, y_offset = max(0, int(x0 - reach)), max(0, int(y0 - reach))
        image = view.image[y_offset : int(y1 + reach) + 1, x_offset : int(x1 + reach) + 1]
        min_side, max_side = max(search.min_side, int(side / 1.4)), int(side * 1.4) + 1
        if min(image.shape) < min_side:
            return None
    size_limits = {"maxSize": (max_side, max_side)} if max_side else {}
    boxes, votes = haar_cascade(search.cascade).detectMultiScale2(
        image, scaleFactor=1.1, minNeighbors=search.min_neighbors, minSize=(min_side, min_side), **size_limits
    )
    found = [
        ((x + x_offset, y + y_offset, x + x_offset + w, y + y_offset + h), vote)
        for (x, y, w, h), vote in zip(np.reshape(boxes, (-1, 4)).tolist(), np.ravel(votes).tolist(), strict=True)
    ]
    if not found:
        return None
    if near is None:
        # the box most overlapping windows agree on (then the larger): a false face fires on few of them
        best = max(found, key=lambda item: (item[1], item[0][2] - item[0][0]))[0]
    else:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        best = min(
            found, key=lambda item: abs((item[0][0] + item[0][2]) / 2 - cx) + abs((item[0][1] + item[0][3]) / 2 - cy)
        )[0]
    return view.to_frame(tuple(float(value) for value in best))  # type: ignore[arg-type]
