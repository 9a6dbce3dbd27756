"""What this machine has for gcgan: the checks behind ``gcgan doctor``.

Each check returns a ``Check``. ``fail`` is reserved for the core (Python,
torch, numpy, the reference ops): without it nothing works. A missing optional
part (GPU, CUDA kernels, mediapipe, FID weights...) is a ``warn`` with its fix.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

import gcgan_cli
from cuda_ops import build as ops_build
from gcgan_cli.core import ops_check
from gcgan_cli.core.metrics import inception_weights

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"

MEDIAPIPE_PIN = "mediapipe==0.10.21"
# The FaceMesh graph and models that the legacy `solutions.face_mesh` API loads from the wheel.
FACEMESH_FILES = (
    "modules/face_landmark/face_landmark_front_cpu.binarypb",
    "modules/face_landmark/face_landmark_with_attention.tflite",
    "modules/face_detection/face_detection_short_range.tflite",
)
OPENCV_DISTRIBUTIONS = (
    "opencv-python",
    "opencv-contrib-python",
    "opencv-python-headless",
    "opencv-contrib-python-headless",
)
LOW_DISK_BYTES = 5 * 2**30


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | info
    detail: str
    fix: str = ""


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    version = platform.python_version()
    if sys.version_info < (3, 10):  # noqa: UP036 (doctor runs from a checkout under any Python)
        return Check("Python", FAIL, version, "gcgan needs Python >= 3.10")
    return Check("Python", OK, f"{version} ({sys.executable})")


def check_gcgan() -> Check:
    return Check("gcgan", OK, f"{gcgan_cli.__version__} ({Path(gcgan_cli.__file__).parent})")


def check_torch() -> Check:
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU-only build"
    return Check("torch", OK, f"{torch.__version__}, {build}, {torch.get_num_threads()} threads")


def check_numpy() -> Check:
    version = _version("numpy")
    if version is None:
        return Check("numpy", FAIL, "not installed", "pip install 'numpy<2'")
    if int(version.split(".")[0]) >= 2:
        return Check("numpy", WARN, version, f"{MEDIAPIPE_PIN} needs numpy<2: pip install 'numpy<2'")
    return Check("numpy", OK, version)


def check_gpu(device: torch.device) -> Check:
    if not torch.cuda.is_available():
        return Check(
            "CUDA GPU",
            WARN,
            "none visible to torch: everything runs on the CPU (fine for tests, slow for training)",
            "on a GPU machine: make setup TORCH_SPEC=torch (PyPI's Linux torch is a CUDA build)",
        )
    index = device.index if device.type == "cuda" and device.index is not None else 0
    props = torch.cuda.get_device_properties(index)
    return Check(
        "CUDA GPU",
        OK,
        f"cuda:{index} {props.name}, sm_{props.major}{props.minor}, "
        f"{props.total_memory / 2**30:.0f} GiB ({torch.cuda.device_count()} visible)",
    )


def check_reference_ops() -> Check:
    failures = ops_check.reference_vectors()
    if failures:
        return Check("ops (reference)", FAIL, "; ".join(failures[:3]), "reinstall gcgan; report a bug")
    return Check("ops (reference)", OK, "pure-PyTorch upfirdn2d / fused_leaky_relu match their hand-checked vectors")


def check_cuda_ops(device: torch.device) -> Check:
    policy = ops_build.policy()
    tools = (
        f"nvcc {'found' if shutil.which('nvcc') else 'missing'}, "
        f"ninja {'found' if shutil.which('ninja') else 'missing'}"
    )
    if policy == "off":
        return Check("ops (CUDA)", INFO, f"GCGAN_CUDA_OPS=off: the reference ops are used ({tools})")
    if device.type != "cuda":
        return Check(
            "ops (CUDA)",
            INFO,
            f"not built (no CUDA device selected): the reference ops are in use ({tools})",
        )
    result = ops_check.cuda_parity(device)
    if not result.built:
        return Check(
            "ops (CUDA)",
            FAIL if policy == "force" else WARN,
            f"build failed, using the reference ops: {result.error}",
            "install nvcc matching torch.version.cuda and ninja, or set GCGAN_CUDA_OPS=off",
        )
    status = OK if result.max_error < 1e-5 else FAIL
    return Check(
        "ops (CUDA)",
        status,
        f"built/loaded in {result.seconds:.1f}s for {ops_build.status()['arch_list']}; "
        f"parity vs reference: max rel. error {result.max_error:.1e} (fwd + bwd)",
        "" if status == OK else "the kernels disagree with the reference: set GCGAN_CUDA_OPS=off and report",
    )


def check_mediapipe() -> Check:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or spec.origin is None:
        return Check(
            "mediapipe",
            WARN,
            "not installed: `gcgan segment ethx|celeba` needs FaceMesh",
            f"pip install {MEDIAPIPE_PIN} (Python 3.10-3.12)",
        )
    root = Path(spec.origin).parent
    version = _version("mediapipe") or "?"
    missing = [name for name in FACEMESH_FILES if not (root / name).is_file()]
    if missing:
        return Check(
            "mediapipe",
            WARN,
            f"{version}: FaceMesh model files missing ({', '.join(missing)})",
            f"pip install --force-reinstall {MEDIAPIPE_PIN} (later wheels drop the models)",
        )
    return Check("mediapipe", OK, f"{version}, FaceMesh models bundled in {root / 'modules'}")


def check_opencv() -> Check:
    installed = [f"{d} {_version(d)}" for d in OPENCV_DISTRIBUTIONS if _version(d)]
    if not installed:
        return Check("OpenCV", WARN, "not installed", "pip install 'opencv-contrib-python<4.12'")
    if len(installed) > 1:
        return Check(
            "OpenCV",
            WARN,
            f"several distributions share the cv2 folder: {', '.join(installed)}",
            "pip uninstall -y "
            + " ".join(d.split()[0] for d in installed)
            + " && pip install 'opencv-contrib-python<4.12'",
        )
    return Check("OpenCV", OK, installed[0])


def check_module(name: str, dist: str, needed_by: str) -> Check:
    version = _version(dist)
    if version is None or importlib.util.find_spec(name) is None:
        return Check(name, WARN, f"not installed ({needed_by} needs it)", f"pip install {dist}")
    return Check(name, OK, version)


def check_inception_weights() -> Check:
    try:
        path, source = inception_weights.locate_inception_weights()
    except Exception as exc:  # a bad GCGAN_INCEPTION_WEIGHTS is reported, not raised
        return Check("FID Inception", WARN, str(exc), inception_weights.ways_to_provide())
    if path is None:
        return Check(
            "FID Inception",
            WARN,
            "weights not found: `gcgan inception` and FID during training need them",
            inception_weights.ways_to_provide(),
        )
    return Check("FID Inception", OK, f"{path} (from {source})")


def check_disk(folder: Path) -> Check:
    free = shutil.disk_usage(folder).free
    detail = f"{free / 2**30:.1f} GiB free in {folder}"
    if free < LOW_DISK_BYTES:
        return Check("disk", WARN, detail, "free space or work elsewhere: datasets and LMDBs take GBs")
    return Check("disk", OK, detail)


def run_checks(device: torch.device, workdir: Path, progress: Callable[[str], None]) -> list[Check]:
    """All checks in table order; ``progress`` gets each check's name as it starts."""
    steps: list[tuple[str, Callable[[], Check]]] = [
        ("Python", check_python),
        ("gcgan", check_gcgan),
        ("torch", check_torch),
        ("numpy", check_numpy),
        ("CUDA GPU", lambda: check_gpu(device)),
        ("ops (reference)", check_reference_ops),
        ("ops (CUDA)", lambda: check_cuda_ops(device)),
        ("mediapipe", check_mediapipe),
        ("OpenCV", check_opencv),
        ("lmdb", lambda: check_module("lmdb", "lmdb", "`gcgan pack` and training")),
        ("h5py", lambda: check_module("h5py", "h5py", "`gcgan segment ethx`")),
        ("scipy", lambda: check_module("scipy", "scipy", "FID")),
        ("FID Inception", check_inception_weights),
        ("disk", lambda: check_disk(workdir)),
    ]
    results = []
    for name, step in steps:
        progress(name)
        results.append(step())
    return results
