"""MediaPipe FaceMesh landmarks (478 points, iris included) and the reference's part groups.

One `LandmarkDetector` is built per process and reused for every image; the reference built a
new FaceMesh per image (about 6x slower here). Only this module touches mediapipe, so a later
switch to the Tasks FaceLandmarker (same 478-point topology) stays local.

FaceMesh is two models in one graph: a face detector, whose box (a `Region`) is cropped for the
landmark model. `find` runs both; `follow` runs the landmark model alone on a given region, a
second graph built from the same FaceLandmarkCpu subgraph, so that landmarks for a known region
are exactly those FaceMesh gives when its detector returns that region.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from gcgan_cli.errors import UsageError

N_LANDMARKS = 478

# MediaPipe ids per part, subject's right/left, as the reference groups them (each id in at most one part).
# Each list is in ascending id order, the order the reference's loop over all 478 ids left them in.
RIGHT_EYE = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246)
LEFT_EYE = (249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
RIGHT_IRIS = (469, 470, 471, 472)
LEFT_IRIS = (474, 475, 476, 477)
RIGHT_BROW = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107)
LEFT_BROW = (276, 282, 283, 285, 293, 295, 296, 300, 334, 336)
NOSE = (1, 2, 64, 98, 102, 189, 294, 327, 331, 417)
MOUTH = (0, 17, 37, 39, 40, 61, 84, 91, 146, 181, 185, 267, 269, 270, 291, 314, 321, 375, 405, 409)
# Eye corners used by the crop geometry (the eye width and centres): (outer, inner).
RIGHT_EYE_CORNERS = (33, 133)
LEFT_EYE_CORNERS = (263, 362)

PRESENCE = 0.5  # FaceMesh's default min_tracking_confidence: below it the landmark model reports no face
_FACEMESH_GRAPH = "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb"
_DETECTOR_SCORE = (
    "facedetectionshortrangecpu__facedetectionshortrange__facedetection__TensorsToDetectionsCalculator.min_score_thresh"
)
_PRESENCE_SCORE = "facelandmarkcpu__ThresholdingCalculator.threshold"
# The landmark half of FaceMesh's graph: the image and a region in, the landmarks and their own region out.
_FOLLOW_GRAPH = """
input_stream: "IMAGE:image"
input_stream: "ROI:region"
input_side_packet: "WITH_ATTENTION:with_attention"
output_stream: "LANDMARKS:landmarks"
output_stream: "ROI:extent"
node { calculator: "FaceLandmarkCpu" input_stream: "IMAGE:image" input_stream: "ROI:region"
       input_side_packet: "WITH_ATTENTION:with_attention" output_stream: "LANDMARKS:landmarks" }
node { calculator: "ImagePropertiesCalculator" input_stream: "IMAGE:image" output_stream: "SIZE:size" }
node { calculator: "FaceLandmarkLandmarksToRoi" input_stream: "LANDMARKS:landmarks" input_stream: "IMAGE_SIZE:size"
       output_stream: "ROI:extent" }
"""


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


@dataclass(frozen=True)
class Region:
    """The rotated square the landmark model crops: centre and sides as fractions of the image
    width and height, rotation in radians (mediapipe's NormalizedRect)."""

    x: float
    y: float
    width: float
    height: float
    rotation: float

    @classmethod
    def of(cls, rect) -> Region:
        return cls(rect.x_center, rect.y_center, rect.width, rect.height, rect.rotation)

    def rect(self):
        from mediapipe.framework.formats import rect_pb2

        return rect_pb2.NormalizedRect(
            x_center=self.x, y_center=self.y, width=self.width, height=self.height, rotation=self.rotation
        )


class Face(NamedTuple):
    """Landmarks [478, 2] in pixels (NaN outside the image), the region the landmark model was
    given (the detector's box, or the one passed to `follow`), and the region these landmarks
    span (FaceMesh's tracking mode gives it to the landmark model for the next video frame)."""

    points: np.ndarray
    crop: Region
    extent: Region


class LandmarkDetector:
    """FaceMesh with the reference settings: static images, one face, refined iris, confidence 0.5.

    `detect(rgb)` returns float32 pixel coordinates [478, 2] (x, y; pixel i spans [i, i+1)),
    NaN for landmarks outside the image, or None when no face is found. `find` returns the
    regions as well, and `follow` skips the detector.
    """

    def __init__(self, min_confidence: float = 0.5):
        try:
            from mediapipe.python import solution_base
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise UsageError(
                "mediapipe is not installed: `pip install mediapipe==0.10.21` (Python < 3.13) "
                "to find face landmarks; `gcgan segment synthetic` needs none"
            ) from exc
        _divert_native_stderr()
        with _quiet_stderr():
            # What solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
            # refine_landmarks=True) builds, observing the regions too.
            self._mesh = solution_base.SolutionBase(
                binary_graph_path=_FACEMESH_GRAPH,
                side_inputs={"num_faces": 1, "with_attention": True, "use_prev_landmarks": False},
                calculator_params={_DETECTOR_SCORE: min_confidence, _PRESENCE_SCORE: PRESENCE},
                outputs=["multi_face_landmarks", "face_rects_from_detections", "face_rects_from_landmarks"],
            )
        self._follower = None  # the landmark-only graph, built on the first `follow`

    def detect(self, rgb: np.ndarray) -> np.ndarray | None:
        face = self.find(rgb)
        return None if face is None else face.points

    def find(self, rgb: np.ndarray) -> Face | None:
        """Detector, then landmark model: the face in `rgb` [H, W, 3] RGB uint8, or None."""
        with _quiet_stderr():
            result = self._mesh.process(np.ascontiguousarray(rgb))
        if not result.multi_face_landmarks:
            return None
        return Face(
            _pixels(result.multi_face_landmarks[0], rgb.shape),
            Region.of(result.face_rects_from_detections[0]),
            Region.of(result.face_rects_from_landmarks[0]),
        )

    def follow(self, rgb: np.ndarray, region: Region) -> Face | None:
        """The landmark model alone on `region` of `rgb`: the face there, or None when the model's
        face presence score is below PRESENCE (the region holds no face, or too little of one)."""
        if self._follower is None:
            from google.protobuf import text_format
            from mediapipe.framework import calculator_pb2
            from mediapipe.python import solution_base

            with _quiet_stderr():
                self._follower = solution_base.SolutionBase(
                    graph_config=text_format.Parse(_FOLLOW_GRAPH, calculator_pb2.CalculatorGraphConfig()),
                    side_inputs={"with_attention": True},
                    calculator_params={_PRESENCE_SCORE: PRESENCE},
                    outputs=["landmarks", "extent"],
                )
        with _quiet_stderr():
            result = self._follower.process({"image": np.ascontiguousarray(rgb), "region": region.rect()})
        if result.landmarks is None:
            return None
        return Face(_pixels(result.landmarks, rgb.shape), region, Region.of(result.extent))

    def close(self) -> None:
        with _quiet_stderr():
            self._mesh.close()
            if self._follower is not None:
                self._follower.close()

    def __enter__(self) -> LandmarkDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pixels(landmarks, shape: tuple[int, ...]) -> np.ndarray:
    """A NormalizedLandmarkList -> float32 pixel coordinates [478, 2], NaN outside the image."""
    height, width = shape[:2]
    norm = np.array([(m.x, m.y) for m in landmarks.landmark], dtype=np.float32)
    inside = np.all((norm >= 0.0) & (norm <= 1.0), axis=1)
    points = norm * np.array([width, height], dtype=np.float32)
    points[~inside] = np.nan
    return points
