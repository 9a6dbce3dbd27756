"""Small datasets in the real on-disk formats, built from a real face photograph.

`skimage.data.astronaut()` (public domain, shipped with scikit-image) is cut to its face,
resized to 224x224 like the ETH-XGaze preprocessed release, and varied by shifts and flips.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
from skimage import data

FACE_BOX = (20, 230, 110, 320)  # rows, cols of the astronaut's face in the 512x512 photo


def face_rgb(size: int = 224, shift: tuple[int, int] = (0, 0), flip: bool = False) -> np.ndarray:
    """The astronaut's face as an RGB [size, size, 3] uint8 patch, optionally shifted / mirrored."""
    y0, y1, x0, x1 = FACE_BOX
    dy, dx = shift
    face = data.astronaut()[y0 + dy : y1 + dy, x0 + dx : x1 + dx]
    face = cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(face[:, ::-1]) if flip else face


def no_face(size: int = 224) -> np.ndarray:
    """A plain horizontal gradient: nothing a face detector could take for a face."""
    ramp = np.linspace(40, 200, size).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (size, size, 3)))


# Rows of the ETH fixture: (variant, camera, frame, pitch, yaw). Variants: None = no face.
ETHX_ROWS = [
    (((0, 0), False), 1, 10, -0.4398, 0.2769),
    (((4, -6), False), 2, 11, -0.10, -0.35),
    (((-5, 5), True), 3, 12, 0.12, 0.50),
    (((0, 0), False), 4, 13, 0.0, 0.0),  # camera 4: filtered out by default
    (((2, 2), False), 8, 600, 0.05, 0.05),  # dim-light frame: filtered out by default
    (None, 8, 14, 0.2, -0.2),  # no face
    (((-3, 0), True), 8, 15, -0.25, 0.8),
]


def drift(frames: int, seed: int, reach: int = 6) -> list[tuple[int, int]]:
    """Shifts of a face that wanders slowly, as in one camera's run of normalised ETH-XGaze patches:
    a random walk of at most 1 px per axis and frame, within +-`reach`."""
    rng = np.random.default_rng(seed)
    at, shifts = np.zeros(2, int), []
    for _ in range(frames):
        shifts.append((int(at[0]), int(at[1])))
        at = np.clip(at + rng.integers(-1, 2, 2), -reach, reach)
    return shifts


def camera_runs(frames: int, cameras=(1, 2), seed: int = 0) -> list:
    """ETHX rows of `frames` frames seen by each of `cameras`, frame by frame (each frame's cameras
    in turn); each camera's face drifts on its own, mirrored in the even cameras."""
    walks = {cam: drift(frames, seed + cam) for cam in cameras}
    return [
        ((walks[cam][f], cam % 2 == 0), cam, f, 0.01 * (f % 30) - 0.15, 0.02 * (f % 20) - 0.2)
        for f in range(frames)
        for cam in cameras
    ]


def write_ethx_subject(path: Path, rows=ETHX_ROWS, labelled: bool = True) -> None:
    """An ETH-XGaze subject file: face_patch BGR uint8 [N,224,224,3], face_gaze [N,2],
    frame_index [N,1], cam_index [N,1], face_head_pose [N,2]."""
    patches = [no_face() if v is None else face_rgb(shift=v[0], flip=v[1]) for v, *_ in rows]
    with h5py.File(path, "w") as h5:
        h5.create_dataset("face_patch", data=np.stack([p[:, :, ::-1] for p in patches]), chunks=(1, 224, 224, 3))
        if labelled:
            h5.create_dataset("face_gaze", data=np.array([[r[3], r[4]] for r in rows], np.float32))
        h5.create_dataset("frame_index", data=np.array([[r[2]] for r in rows], np.int32))
        h5.create_dataset("cam_index", data=np.array([[r[1]] for r in rows], np.int32))
        h5.create_dataset("face_head_pose", data=np.zeros((len(rows), 2), np.float32))


def write_truncated(path: Path, source: Path) -> None:
    """The first third of a valid HDF5 file, as a download cut short."""
    blob = source.read_bytes()
    path.write_bytes(blob[: len(blob) // 3])


def write_celeba(root: Path, ids=(0, 1, 2), no_face_id: int | None = 2, annotations: bool = True) -> None:
    """A CelebAMask-HQ layout: CelebA-HQ-img/{id}.jpg (1024^2) and, with `annotations`,
    CelebAMask-HQ-mask-anno/{id//2000}/{id:05d}_{part}.png (512^2) drawn from FaceMesh-free
    geometry of the photo (ellipses around the known face parts)."""
    (root / "CelebA-HQ-img").mkdir(parents=True, exist_ok=True)
    for i in ids:
        if i == no_face_id:
            photo = cv2.resize(no_face(), (1024, 1024))
        else:
            photo = cv2.resize(data.astronaut()[0:400, 50:450], (1024, 1024), interpolation=cv2.INTER_CUBIC)
            if i % 2:
                photo = np.ascontiguousarray(photo[:, ::-1])
        cv2.imwrite(str(root / "CelebA-HQ-img" / f"{i}.jpg"), photo[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        if annotations and i != no_face_id:
            folder = root / "CelebAMask-HQ-mask-anno" / str(i // 2000)
            folder.mkdir(parents=True, exist_ok=True)
            for part, layer in annotation_layers(photo).items():
                cv2.imwrite(str(folder / f"{i:05d}_{part}.png"), layer)


def annotation_layers(photo: np.ndarray) -> dict[str, np.ndarray]:
    """Part masks at 512 from the photo's FaceMesh landmarks: what a human annotator would mark."""
    from gcgan_cli.data import landmarks as lm
    from gcgan_cli.data.landmarks import LandmarkDetector

    small = cv2.resize(photo, (512, 512), interpolation=cv2.INTER_AREA)
    with LandmarkDetector() as detector:
        points = detector.detect(small)
    layers = {}
    groups = {
        "skin": range(lm.N_LANDMARKS),
        "l_brow": lm.LEFT_BROW,
        "r_brow": lm.RIGHT_BROW,
        "nose": lm.NOSE,
        "l_eye": lm.LEFT_EYE,
        "r_eye": lm.RIGHT_EYE,
        "u_lip": lm.MOUTH,
    }
    for part, ids in groups.items():
        layer = np.zeros((512, 512), np.uint8)
        hull = cv2.convexHull(points[list(ids)].astype(np.float32)).astype(np.int32)
        cv2.fillConvexPoly(layer, hull, 255)
        layers[part] = layer
    return layers
