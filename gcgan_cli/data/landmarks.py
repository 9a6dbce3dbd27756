"""MediaPipe FaceMesh landmarks (478 points, iris included) and the part groups of spec §1.2.

One `LandmarkDetector` is built per process and reused for every image; the reference built a
new FaceMesh per image (about 6x slower here). Only this module touches mediapipe, so a later
switch to the Tasks FaceLandmarker (same 478-point topology) stays local.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from gcgan_cli.errors import UsageError

N_LANDMARKS = 478

# MediaPipe ids per part, subject's right/left (spec §1.2). Each list is in ascending id order.
RIGHT_EYE = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246)
LEFT_EYE = (249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
RIGHT_IRIS = (469, 470, 471, 472)
LEFT_IRIS = (474, 475, 476, 477)
RIGHT_BROW = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107)
LEFT_BROW = (276, 282, 283, 285, 293, 295, 296, 300, 334, 336)
NOSE = (1, 2, 64, 98, 102, 189, 294, 327, 331, 417)
MOUTH = (0, 17, 37, 39, 40, 61, 84, 91, 146, 181, 185, 267, 269, 270, 291, 314, 321, 375, 405, 409)
# Eye corners used by the crop geometry (spec §1.4): (outer, inner).
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (263, 362)


@contextlib.contextmanager
def _quiet_stderr():
    """Silence file descriptor 2 for a while: mediapipe's C++ graph logs warnings there on every
    image (absl logging, which no environment variable turns off)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _divert_native_stderr() -> None:
    """Send file descriptor 2 to /dev/null for the rest of this process, and Python's sys.stderr
    (which gcgan's messages use) to a copy of the original. mediapipe's graph threads log there
    at any moment, also after `process` has returned, so silencing single calls is not enough.
    Skipped when sys.stderr is not fd 2 (captured, as under pytest, or already diverted)."""
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, OSError, ValueError):
        return
    sys.stderr.flush()
    original = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    sys.stderr = open(original, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace")


class LandmarkDetector:
    """FaceMesh with the reference settings: static images, one face, refined iris, confidence 0.5.

    `detect(rgb)` returns float32 pixel coordinates [478, 2] (x, y; pixel i spans [i, i+1)),
    NaN for landmarks outside the image, or None when no face is found.
    """

    def __init__(self, min_confidence: float = 0.5):
        try:
            from mediapipe.python.solutions import face_mesh
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise UsageError(
                "mediapipe is not installed: `pip install mediapipe==0.10.21` (Python < 3.13) "
                "to find face landmarks; `gcgan segment synthetic` needs none"
            ) from exc
        _divert_native_stderr()
        with _quiet_stderr():
            self._mesh = face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                min_detection_confidence=min_confidence,
            )

    def detect(self, rgb: np.ndarray) -> np.ndarray | None:
        height, width = rgb.shape[:2]
        with _quiet_stderr():
            result = self._mesh.process(np.ascontiguousarray(rgb))
        if not result.multi_face_landmarks:
            return None
        marks = result.multi_face_landmarks[0].landmark
        norm = np.array([(m.x, m.y) for m in marks], dtype=np.float32)
        inside = np.all((norm >= 0.0) & (norm <= 1.0), axis=1)
        points = norm * np.array([width, height], dtype=np.float32)
        points[~inside] = np.nan
        return points

    def close(self) -> None:
        with _quiet_stderr():
            self._mesh.close()

    def __enter__(self) -> LandmarkDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
